"""Validation of landed event lines: every non-empty line becomes a typed event or a quarantine row.

Rules, in the order a line is judged (the first that fails is its `reason`):

1. `malformed_json`: not a JSON object.
2. `missing_field:<f>` / `wrong_type:<f>` / `invalid_value:<f>` for the fields every event has
   (event_id, event_type, user_id, ts, platform, country), then for the fields its type needs
   (show_id for show and episode events, episode_id for episode events, rating for ratings).
   Integers must be JSON integers (`"123"` or `1.5` are wrong types); `ts` must carry an offset.
3. `event_after_landing_day` / `arrived_too_late`: a valid event belongs to the UTC day of its `ts`,
   provided it landed on that day or within `late_arrival_days` after it.
4. `duplicate_event_id`: the app retries, so an event id seen again within its day keeps the copy
   that arrived first.

Ownership is what makes the counts add up across days: a line belongs to the partition of its
event day if it is a valid event that arrived in time, otherwise to the partition of the day it
landed. Each line is owned by exactly one partition, so over the days materialized
rows(app_events) + rows(quarantined_events) = non-empty lines landed.
"""

from __future__ import annotations

import datetime as dt

EVENT_TYPES = ("app_open", "show_viewed", "episode_watched", "episode_rated", "show_followed", "app_background")
SHOW_EVENT_TYPES = ("show_viewed", "show_followed", "episode_watched", "episode_rated")
EPISODE_EVENT_TYPES = ("episode_watched", "episode_rated")
PLATFORMS = ("ios", "android", "web", "tv")
DUPLICATE = "duplicate_event_id"
FIELDS = ("event_id", "event_type", "user_id", "ts", "platform", "country", "show_id", "episode_id", "rating")
_INTEGER = "('BIGINT', 'UBIGINT')"


def _values(items: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in items) + ")"


def _field(name: str) -> str:
    return f"j[{FIELDS.index(name) + 1}]"


def _required(name: str, json_type: str, when: str = "TRUE") -> list[str]:
    """CASE arms for a field that must be present (when `when` holds) with the given JSON type."""
    t = f"t_{name}"
    return [
        f"WHEN {when} AND ({t} IS NULL OR {t} = 'NULL') THEN 'missing_field:{name}'",
        f"WHEN {when} AND {t} NOT IN {json_type} THEN 'wrong_type:{name}'",
    ]


def _reason_sql() -> str:
    """The CASE expression naming the first broken rule of a parsed line, NULL for a valid one."""
    string, et = "('VARCHAR')", "j_event_type"
    arms = ["WHEN NOT is_object THEN 'malformed_json'"]
    for name in ("event_id", "event_type"):
        arms += _required(name, string)
    arms += _required("user_id", _INTEGER)
    arms += _required("ts", string)
    arms += _required("platform", string)
    arms += _required("country", string)
    arms += [
        f"WHEN {et} NOT IN {_values(EVENT_TYPES)} THEN 'invalid_value:event_type'",
        "WHEN length(j_event_id) = 0 THEN 'invalid_value:event_id'",
        "WHEN user_id IS NULL OR user_id <= 0 THEN 'invalid_value:user_id'",
        "WHEN ts IS NULL THEN 'invalid_value:ts'",
        f"WHEN j_platform NOT IN {_values(PLATFORMS)} THEN 'invalid_value:platform'",
        "WHEN NOT regexp_full_match(j_country, '[A-Z]{2}') THEN 'invalid_value:country'",
    ]
    arms += _required("show_id", _INTEGER, f"{et} IN {_values(SHOW_EVENT_TYPES)}")
    arms += [f"WHEN {et} IN {_values(SHOW_EVENT_TYPES)} AND (show_id IS NULL OR show_id <= 0) THEN 'invalid_value:show_id'"]
    arms += _required("episode_id", _INTEGER, f"{et} IN {_values(EPISODE_EVENT_TYPES)}")
    arms += [f"WHEN {et} IN {_values(EPISODE_EVENT_TYPES)} AND (episode_id IS NULL OR episode_id <= 0) THEN 'invalid_value:episode_id'"]
    arms += _required("rating", _INTEGER, f"{et} = 'episode_rated'")
    arms += [f"WHEN {et} = 'episode_rated' AND (rating IS NULL OR rating NOT BETWEEN 1 AND 5) THEN 'invalid_value:rating'"]
    return "CASE " + "\n        ".join(arms) + " END"


NO_LINES_SQL = "SELECT NULL::DATE AS landing_date, NULL::VARCHAR AS source_file, NULL::VARCHAR AS line WHERE false"


def read_lines_sql(files: list[str], landing_date: dt.date, names: dict[str, str] | None = None) -> str:
    """Every non-empty line of some landing files, whole and unparsed, with where it came from.

    Files are gzip or, when recovered from a truncated upload, plain text; `names` maps such a
    stand-in file to the landing file it reports as `source_file`.
    """
    paths = ", ".join(f"'{f}'" for f in files)
    source = "filename"
    if names:
        cases = " ".join(f"WHEN '{stand_in}' THEN '{name}'" for stand_in, name in names.items())
        source = f"CASE filename {cases} ELSE filename END"
    return f"""
    SELECT DATE '{landing_date}' AS landing_date, {source} AS source_file, line
    FROM read_csv([{paths}], columns = {{'line': 'VARCHAR'}}, header = false, delim = '\\x1e', quote = '',
                  escape = '', auto_detect = false, strict_mode = false, compression = 'auto', filename = true)
    WHERE trim(line) <> ''"""


def parse_sql(lines_sql: str) -> str:
    """Typed fields and the schema verdict of each line (`schema_reason` NULL when it passes)."""
    paths = ", ".join(f"'$.{f}'" for f in FIELDS)
    return f"""
    WITH objects AS (
        SELECT *, CASE WHEN json_valid(line) THEN json_type(line) = 'OBJECT' ELSE false END AS is_object FROM ({lines_sql})
    ), extracted AS (
        SELECT *, json_extract(CASE WHEN is_object THEN line ELSE '{{}}' END, [{paths}]) AS j FROM objects
    ), json_types AS (
        SELECT *, {", ".join(f"json_type({_field(f)}) AS t_{f}" for f in FIELDS)} FROM extracted
    ), typed AS (
        SELECT *,
            {_field("event_id")} ->> '$' AS j_event_id,
            {_field("event_type")} ->> '$' AS j_event_type,
            {_field("platform")} ->> '$' AS j_platform,
            {_field("country")} ->> '$' AS j_country,
            CASE WHEN t_user_id IN {_INTEGER} THEN TRY_CAST({_field("user_id")} AS BIGINT) END AS user_id,
            CASE WHEN t_show_id IN {_INTEGER} THEN TRY_CAST({_field("show_id")} AS BIGINT) END AS show_id,
            CASE WHEN t_episode_id IN {_INTEGER} THEN TRY_CAST({_field("episode_id")} AS BIGINT) END AS episode_id,
            CASE WHEN t_rating IN {_INTEGER} THEN TRY_CAST({_field("rating")} AS BIGINT) END AS rating,
            CASE WHEN regexp_matches({_field("ts")} ->> '$', '(Z|z|[+-]\\d\\d(:?\\d\\d)?)$')
                 THEN TRY_CAST({_field("ts")} ->> '$' AS TIMESTAMPTZ) END AS ts
        FROM json_types
    )
    SELECT landing_date, source_file, line, j_event_id AS event_id, j_event_type AS event_type, user_id, ts,
           j_platform AS platform, j_country AS country, show_id, episode_id, rating,
           CAST(ts AS DATE) AS event_date,
           {_reason_sql()} AS schema_reason
    FROM typed"""


def late_candidates_sql(lines_sql: str, day: dt.date) -> str:
    """Lines landed after `day` whose ts falls on `day`: cheap prefilter before the full parse."""
    return f"""
    SELECT * FROM ({lines_sql})
    WHERE CAST(TRY_CAST(json_extract_string(CASE WHEN json_valid(line) THEN line ELSE '{{}}' END, '$.ts') AS TIMESTAMPTZ) AS DATE) = DATE '{day}'"""


def owned_sql(parsed_source: str, day: dt.date, late_arrival_days: int) -> str:
    """The parsed lines (a Parquet file written from `parse_sql`) that partition `day` owns, with their reason.

    `row` is the line's position in the staged file: a cheap identity that lets the few duplicate
    copies be ranked apart from the millions of other rows.
    """
    in_time = f"(schema_reason IS NULL AND event_date <= landing_date AND landing_date - event_date <= {late_arrival_days})"
    return f"""
    SELECT * EXCLUDE (schema_reason, file_row_number), file_row_number AS row,
        coalesce(schema_reason, CASE WHEN event_date > landing_date THEN 'event_after_landing_day'
                                     WHEN NOT {in_time} THEN 'arrived_too_late' END) AS reason
    FROM read_parquet('{parsed_source}', file_row_number = true)
    WHERE CASE WHEN {in_time} THEN event_date ELSE landing_date END = DATE '{day}'"""


def later_copies_sql(owned: str) -> str:
    """Rows that repeat an event id already seen, with their copy number (2, 3, ...) in arrival order and landing day."""
    return f"""
    WITH repeated AS (
        SELECT event_id FROM {owned} WHERE reason IS NULL GROUP BY event_id HAVING count(*) > 1
    ), ranked AS (
        SELECT row, landing_date, row_number() OVER (PARTITION BY event_id ORDER BY landing_date, source_file, row) AS copy_number
        FROM {owned} WHERE reason IS NULL AND event_id IN (SELECT event_id FROM repeated)
    )
    SELECT row, landing_date, copy_number FROM ranked WHERE copy_number > 1"""


EVENT_COLUMNS = """event_id, event_type, user_id, ts, platform, country,
    CASE WHEN event_type IN {shows} THEN show_id END AS show_id,
    CASE WHEN event_type IN {episodes} THEN episode_id END AS episode_id,
    CASE WHEN event_type = 'episode_rated' THEN CAST(rating AS TINYINT) END AS rating,
    landing_date""".format(shows=_values(SHOW_EVENT_TYPES), episodes=_values(EPISODE_EVENT_TYPES))


def kept_sql(owned: str, later_copies: str) -> str:
    """The partition's events: valid, in time, first copy of each event id; fields a type does not use are dropped."""
    return f"""
    SELECT {EVENT_COLUMNS} FROM {owned}
    WHERE reason IS NULL AND row NOT IN (SELECT row FROM {later_copies})
    ORDER BY user_id, ts, event_id"""


def quarantined_sql(owned: str, later_copies: str) -> str:
    """Every owned line that was not kept, with its reason and the raw line as it landed."""
    return f"""
    SELECT landing_date, source_file, coalesce(reason, '{DUPLICATE}') AS reason, event_id, event_date, line AS raw_line
    FROM {owned} WHERE reason IS NOT NULL OR row IN (SELECT row FROM {later_copies})"""

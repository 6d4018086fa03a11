"""Validation of landed event lines: every non-blank line becomes a typed event or a quarantine row.

Rules, in the order a line is judged (the first that fails is its `reason`):

1. The line's own, judged by the reader (`transforms/landed_lines.py`) before any engine parses it:
   `unreadable_file`, `invalid_utf8`, `line_too_long`, `malformed_json` (not RFC 8259 JSON, or not
   an object), `repeated_field:<f>`.
2. `missing_field:<f>` / `wrong_type:<f>` / `invalid_value:<f>` for the fields every event has
   (event_id, event_type, user_id, ts, platform, country), then for the fields its type needs
   (show_id for show and episode events, episode_id for episode events, rating for ratings).
   Integers are JSON numbers whose exact value is integral, as JSON Schema defines them (`4`,
   `4.0` and `1e2` are integers; `"123"`, `1.5` and `4.000000000000000001` are wrong types; `1e400`
   is an invalid value); `ts` is an RFC 3339 date-time with an offset (`TS_PATTERN`).
3. `event_after_landing_day` / `arrived_too_late`: a valid event belongs to the UTC day of its `ts`,
   provided it landed on that day or within `late_arrival_days` after it.
4. `duplicate_event_id`: the app retries, so an event id seen again within its day keeps the copy
   that arrived first.

Ownership is what makes the counts add up across days: a line belongs to the partition of its
event day if it is a valid event that arrived in time, otherwise to the partition of the day it
landed. Each line is owned by exactly one partition, so over the days materialized
rows(app_events) + rows(quarantined_events) = non-blank lines landed.

The plan's values (the day, the late window) are its `params`, bound by each engine.
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from tvtime_platform.transforms.columns import columns
from tvtime_platform.transforms.landed_lines import TRUNCATED
from tvtime_platform.transforms.plan import NUMBERED, TABLE, VIEW, Plan, Step

EVENT_TYPES = ("app_open", "show_viewed", "episode_watched", "episode_rated", "show_followed", "app_background")
SHOW_EVENT_TYPES = ("show_viewed", "show_followed", "episode_watched", "episode_rated")
EPISODE_EVENT_TYPES = ("episode_watched", "episode_rated")
PLATFORMS = ("ios", "android", "web", "tv")
DUPLICATE = "duplicate_event_id"
FIELDS = ("event_id", "event_type", "user_id", "ts", "platform", "country", "show_id", "episode_id", "rating")
INTEGER_FIELDS = ("user_id", "show_id", "episode_id", "rating")

APP_EVENTS_COLUMNS = columns(
    ("event_id", "VARCHAR", "the event's id as the app sent it; unique in the day (later copies are quarantined)"),
    ("event_type", "VARCHAR", "app_open, show_viewed, episode_watched, episode_rated, show_followed or app_background"),
    ("user_id", "BIGINT", "the user, a positive integer"),
    (
        "ts",
        "TIMESTAMP WITH TIME ZONE",
        "when it happened, in UTC (sent as RFC 3339 with its offset); its day is the partition",
    ),
    ("platform", "VARCHAR", "ios, android, web or tv"),
    ("country", "VARCHAR", "two capital letters, as the app sent them"),
    ("show_id", "BIGINT", "the show, for show and episode events (else null)"),
    ("episode_id", "BIGINT", "the episode, for episode_watched and episode_rated (else null)"),
    ("rating", "TINYINT", "1 to 5, for episode_rated (else null)"),
    ("landing_date", "DATE", "the day the line's file landed (the event's day, or a later one for a late arrival)"),
)
QUARANTINED_EVENTS_COLUMNS = columns(
    ("landing_date", "DATE", "the day the line's file landed"),
    ("source_file", "VARCHAR", "the landing file, by its full name"),
    ("line_number", "BIGINT", "the line's number in its file, from 1 (null for a file that could not be read)"),
    (
        "reason",
        "VARCHAR",
        "why the line was not kept: unreadable_file, invalid_utf8, malformed_json, "
        "missing_field:<f>, wrong_type:<f>, invalid_value:<f>, arrived_too_late, duplicate_event_id, ...",
    ),
    ("event_id", "VARCHAR", "the line's event_id, where it has a readable one"),
    ("event_date", "DATE", "the UTC day of the line's ts, where it has a valid one"),
    ("raw_line", "VARCHAR", "the line as landed (bytes that are not UTF-8 shown as \\xNN)"),
    ("raw_bytes", "BLOB", "the line's exact bytes, where it is not UTF-8 or was cut (else null)"),
)


def _values(items: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in items) + ")"


def _field(name: str) -> str:
    return f"j[{FIELDS.index(name) + 1}]"


def _is_integer(name: str) -> str:
    """Whether a field's JSON value is an integer: an integer literal, or a number whose fraction is zero.

    (Engines differ in how they keep `4.0`, as a double or as the integer 4; judging the value
    rather than the literal makes them agree.)
    """
    t, value = f"t_{name}", _field(name)
    return f"({t} IN ('BIGINT', 'UBIGINT') OR ({t} = 'DOUBLE' AND TRY_CAST({value} AS DOUBLE) % 1 = 0))"


def _required(name: str, well_typed: str, when: str = "TRUE") -> list[str]:
    """CASE arms for a field that must be present (when `when` holds) with a value for which `well_typed` holds."""
    t = f"t_{name}"
    return [
        f"WHEN {when} AND ({t} IS NULL OR {t} = 'NULL') THEN 'missing_field:{name}'",
        f"WHEN {when} AND NOT {well_typed} THEN 'wrong_type:{name}'",
    ]


def _reason_sql() -> str:
    """The CASE expression naming the first broken rule of a parsed line, NULL for a valid one."""
    et = "j_event_type"
    arms = ["WHEN document IS NULL THEN 'malformed_json'"]
    for name in ("event_id", "event_type", "user_id", "ts", "platform", "country"):
        arms += _required(name, f"i_{name}" if name in INTEGER_FIELDS else f"t_{name} = 'VARCHAR'")
    arms += [
        f"WHEN {et} NOT IN {_values(EVENT_TYPES)} THEN 'invalid_value:event_type'",
        "WHEN length(j_event_id) = 0 THEN 'invalid_value:event_id'",
        "WHEN user_id IS NULL OR user_id <= 0 THEN 'invalid_value:user_id'",
        "WHEN ts IS NULL THEN 'invalid_value:ts'",
        f"WHEN j_platform NOT IN {_values(PLATFORMS)} THEN 'invalid_value:platform'",
        "WHEN NOT regexp_full_match(j_country, '[A-Z]{2}') THEN 'invalid_value:country'",
    ]
    arms += _required("show_id", "i_show_id", f"{et} IN {_values(SHOW_EVENT_TYPES)}")
    arms += [
        f"WHEN {et} IN {_values(SHOW_EVENT_TYPES)} AND (show_id IS NULL OR show_id <= 0) THEN 'invalid_value:show_id'"
    ]
    arms += _required("episode_id", "i_episode_id", f"{et} IN {_values(EPISODE_EVENT_TYPES)}")
    arms += [
        f"WHEN {et} IN {_values(EPISODE_EVENT_TYPES)} AND (episode_id IS NULL OR episode_id <= 0) THEN "
        f"'invalid_value:episode_id'"
    ]
    arms += _required("rating", "i_rating", f"{et} = 'episode_rated'")
    arms += [
        f"WHEN {et} = 'episode_rated' AND (rating IS NULL OR rating NOT BETWEEN 1 AND 5) THEN 'invalid_value:rating'"
    ]
    return "CASE " + "\n        ".join(arms) + " END"


# RFC 3339 date-times with an offset, to the microsecond (what both engines store), hours 00-23 (DuckDB would
# read 24:00 as the next midnight), offsets within ±17:59 (what both accept); "T" and "Z" in either case (section 5.6,
# its note), cast upper-cased (what both engines read).
TS_PATTERN = (
    "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,6})?"
    "([Zz]|[+-](0[0-9]|1[0-7]):[0-5][0-9])"
)
# Each line's JSON document: the reader's plain form of it when it made one, else the line itself, which it vouched for;
# none for a line it refused.
DOCUMENT = "TRY_CAST(CASE WHEN line_reason IS NULL THEN coalesce(doc, line) END AS JSON)"


def _timestamp(text: str) -> str:
    return f"CASE WHEN regexp_full_match({text}, '{TS_PATTERN}') THEN TRY_CAST(upper({text}) AS TIMESTAMPTZ) END"


def candidates_sql(lines: str) -> str:
    """The day's own lines, and the lines landed after it whose ts falls on it (a cheap prefilter before the full
    parse)."""
    return f"""
    SELECT * FROM {lines}
    WHERE CASE WHEN landing_date = CAST($day AS DATE) THEN true
               ELSE CAST({_timestamp(f"{DOCUMENT} ->> '$.ts'")} AS DATE) = CAST($day AS DATE) END"""


def parse_sql(lines: str) -> str:
    """Typed fields and the verdict of each line (`schema_reason` NULL when it passes).

    Lines arrive from `transforms.landed_lines`, already judged against the grammar: a refused line
    keeps the reader's reason; the others are parsed once into a JSON document and their fields
    taken from it in one extraction, with their JSON types. The reader hands on objects only (any
    other JSON value is `malformed_json` there), so a document is an object; one the engine cannot
    parse is `malformed_json` too. (Asking the document's own type would cost Spark the schema of
    the whole object, a line at a time.)
    """
    paths = ", ".join(f"'$.{f}'" for f in FIELDS)
    return f"""
    WITH documents AS (
        SELECT landing_date, source_file, line_number, line, line_reason, raw_bytes, {DOCUMENT} AS document FROM {lines}
    ), extracted AS (
        SELECT landing_date, source_file, line_number, line, line_reason, raw_bytes, document,
            json_extract(document, [{paths}]) AS j
        FROM documents
    ), json_types AS (
        SELECT *, {", ".join(f"json_type({_field(f)}) AS t_{f}" for f in FIELDS)} FROM extracted
    ), integers AS (
        SELECT *, {", ".join(f"{_is_integer(f)} AS i_{f}" for f in INTEGER_FIELDS)} FROM json_types
    ), typed AS (
        SELECT *,
            {_field("event_id")} ->> '$' AS j_event_id,
            {_field("event_type")} ->> '$' AS j_event_type,
            {_field("platform")} ->> '$' AS j_platform,
            {_field("country")} ->> '$' AS j_country,
            CASE WHEN i_user_id THEN TRY_CAST({_field("user_id")} AS BIGINT) END AS user_id,
            CASE WHEN i_show_id THEN TRY_CAST({_field("show_id")} AS BIGINT) END AS show_id,
            CASE WHEN i_episode_id THEN TRY_CAST({_field("episode_id")} AS BIGINT) END AS episode_id,
            CASE WHEN i_rating THEN TRY_CAST({_field("rating")} AS BIGINT) END AS rating,
            CASE WHEN t_ts = 'VARCHAR' THEN {_timestamp(f"{_field('ts')} ->> '$'")} END AS ts
        FROM integers
    )
    SELECT landing_date, source_file, line_number, line, raw_bytes, j_event_id AS event_id, j_event_type AS event_type,
    user_id,
           ts, j_platform AS platform, j_country AS country, show_id, episode_id, rating,
           CAST(ts AS DATE) AS event_date,
           coalesce(line_reason, {_reason_sql()}) AS schema_reason
    FROM typed"""


# Whether a parsed line is a valid event that landed on its event day or within the late window after it.
IN_TIME = "(schema_reason IS NULL AND date_diff('day', event_date, landing_date) BETWEEN 0 AND $late_arrival_days)"


def owned_sql(parsed: str) -> str:
    """The parsed lines that partition `day` owns, with their reason (NULL for a valid event in time).

    `row` (the staged step's row identity) lets the few duplicate copies be ranked apart from the
    millions of other rows.
    """
    return f"""
    SELECT landing_date, source_file, line_number, line, raw_bytes, event_id, event_type, user_id, ts, platform,
    country, show_id, episode_id, rating,
        event_date, row,
        coalesce(schema_reason, CASE WHEN event_date > landing_date THEN 'event_after_landing_day'
                                     WHEN NOT {IN_TIME} THEN 'arrived_too_late' END) AS reason
    FROM {parsed}
    WHERE CASE WHEN {IN_TIME} THEN event_date ELSE landing_date END = CAST($day AS DATE)"""


# An event id as 16 bytes: the day's kept ids are scanned by it when new files are appended (a string scan of the day is
# several times slower). Distinct ids share one only by an MD5 collision, which nobody can aim at an id they did not
# choose.
EVENT_HASH = "md5_number(event_id)"


def later_copies_sql(owned: str, earlier: str | None = None) -> str:
    """Rows that repeat an event id already seen, with their copy number (2, 3, ...) in arrival order and landing day.

    Arrival order is landing day, then file, then line number in the file. With `earlier` (`event_hash`: the 128-bit
    MD5 of each event id the day already kept from files that arrived before all of `owned`'s), a row repeating one of
    those is a later copy too. (DuckDB only: a day grows by appending on DuckDB alone.)
    """
    # The earlier ids the new rows repeat, found in one pass over them (the day's, millions) and used twice.
    seen = (
        f"""seen AS MATERIALIZED (
        SELECT DISTINCT event_id FROM {owned}
        WHERE reason IS NULL AND {EVENT_HASH} IN (SELECT event_hash FROM {earlier})
    ), """
        if earlier
        else ""
    )
    also_seen = "UNION SELECT event_id FROM seen" if earlier else ""
    after_seen = " + CASE WHEN event_id IN (SELECT event_id FROM seen) THEN 1 ELSE 0 END" if earlier else ""
    return f"""
    WITH {seen}repeated AS (
        SELECT event_id FROM {owned} WHERE reason IS NULL GROUP BY event_id HAVING count(*) > 1 {also_seen}
    ), ranked AS (
        SELECT row, landing_date, row_number() OVER (PARTITION BY event_id ORDER BY landing_date, source_file,
        line_number){after_seen} AS copy_number
        FROM {owned} WHERE reason IS NULL AND event_id IN (SELECT event_id FROM repeated)
    )
    SELECT row, landing_date, copy_number FROM ranked WHERE copy_number > 1"""


EVENT_COLUMNS = f"""event_id, event_type, user_id, ts, platform, country,
    CASE WHEN event_type IN {_values(SHOW_EVENT_TYPES)} THEN show_id END AS show_id,
    CASE WHEN event_type IN {_values(EPISODE_EVENT_TYPES)} THEN episode_id END AS episode_id,
    CASE WHEN event_type = 'episode_rated' THEN CAST(rating AS TINYINT) END AS rating,
    landing_date"""


def kept_sql(owned: str, later_copies: str) -> str:
    """The partition's events: valid, in time, first copy of each event id; fields a type does not use are dropped."""
    return f"""
    SELECT {EVENT_COLUMNS} FROM {owned}
    WHERE reason IS NULL AND row NOT IN (SELECT row FROM {later_copies})
    ORDER BY user_id, ts, event_id"""


def quarantined_sql(owned: str, later_copies: str) -> str:
    """Every owned line that was not kept, with its reason and the raw line as it landed (and its exact bytes where
    the line is not UTF-8 or was cut)."""
    return f"""
    SELECT landing_date, source_file, line_number, coalesce(reason, '{DUPLICATE}') AS reason, event_id, event_date,
           line AS raw_line, raw_bytes
    FROM {owned} WHERE reason IS NOT NULL OR row IN (SELECT row FROM {later_copies})
    ORDER BY source_file, line_number"""


# One row: how the lines landed for the day (counted apart from the reader) and the lines the partition owns were
# accounted for.
ACCOUNTING_SQL = f"""
    SELECT c.landed_lines, c.unreadable_files, c.truncated_files, h.handed, o.valid, o.late_in, u.distinct_users,
    o.rejected,
           d.duplicates, d.late_duplicates
    FROM (SELECT coalesce(sum(lines), 0) AS landed_lines,
                 count(*) FILTER (WHERE problem IS NOT NULL AND problem <> $truncated) AS unreadable_files,
                 count(*) FILTER (WHERE problem = $truncated) AS truncated_files
          FROM landed_counts WHERE landing_date = CAST($day AS DATE)) c,
         (SELECT count(*) AS handed FROM parsed
          WHERE landing_date = CAST($day AS DATE) AND {IN_TIME} AND event_date < landing_date) h,
         (SELECT count(*) FILTER (WHERE reason IS NULL) AS valid,
                 count(*) FILTER (WHERE landing_date > CAST($day AS DATE)) AS late_in,
                 count(*) FILTER (WHERE reason IS NOT NULL) AS rejected
          FROM owned) o,
         (SELECT count(DISTINCT user_id) AS distinct_users FROM owned
          WHERE reason IS NULL AND row NOT IN (SELECT row FROM later_copies)) u,
         (SELECT count(*) AS duplicates, count(*) FILTER (WHERE landing_date > CAST($day AS DATE)) AS late_duplicates
         FROM later_copies) d"""


# What the two tables must hold: the lines landed on the day, counted apart from the reader, less the ones that belong
# to earlier days, plus the late arrivals that belong to this one (the accounting's terms, without its costlier ones).
BALANCE_SQL = f"""
    SELECT (SELECT coalesce(sum(lines), 0) FROM landed_counts WHERE landing_date = CAST($day AS DATE))
         - (SELECT count(*) FROM parsed WHERE landing_date = CAST($day AS DATE) AND {IN_TIME} AND event_date <
         landing_date)
         + (SELECT count(*) FROM owned WHERE landing_date > CAST($day AS DATE))"""


# The check that nothing was lost between the lines the partition owns and the two tables written.
LINES_ACCOUNTED_FOR = "every_line_accounted_for"
REASONS_SQL = "SELECT reason, count(*) AS lines FROM owned WHERE reason IS NOT NULL GROUP BY reason ORDER BY reason"


def app_events_plan(day: dt.date, late_arrival_days: int, parsed_parts: bool = False, appending: bool = False) -> Plan:
    """Validation of a day: input `landed_lines` (the day's and the late window's), outputs events and quarantine.

    With `parsed_parts`, the input is `parsed_lines` instead: the same files' lines already through `parse_sql`, each
    with a `row` identity (`resources/parsed_landing.py` keeps them, a file's once). `appending`: those are only the
    files that arrived after the ones the day already holds, whose kept event ids are the input `earlier_event_hashes`;
    the outputs and facts are then what the new files add.
    """
    parsed = (
        Step(
            "parsed",
            "SELECT * FROM parsed_lines WHERE landing_date = CAST($day AS DATE) OR event_date = CAST($day AS DATE)",
        )
        if parsed_parts
        else Step("parsed", parse_sql(f"({candidates_sql('landed_lines')})"), NUMBERED)
    )
    return Plan(
        inputs=(
            "parsed_lines" if parsed_parts else "landed_lines",
            "landed_counts",
            *(("earlier_event_hashes",) if appending else ()),
        ),
        steps=(
            parsed,
            Step("owned", owned_sql("parsed"), TABLE if appending else VIEW),
            Step("later_copies", later_copies_sql("owned", "earlier_event_hashes" if appending else None), TABLE),
        ),
        outputs={
            "app_events": kept_sql("owned", "later_copies"),
            "quarantined_events": quarantined_sql("owned", "later_copies"),
        },
        facts={"accounting": ACCOUNTING_SQL, "reasons": REASONS_SQL, LINES_ACCOUNTED_FOR: BALANCE_SQL},
        balances={LINES_ACCOUNTED_FOR: ("app_events", "quarantined_events")},
        params={"day": day.isoformat(), "late_arrival_days": int(late_arrival_days), "truncated": TRUNCATED},
    )


class Accounting(NamedTuple):
    """The one row of the plan's `accounting` fact (ACCOUNTING_SQL's columns, in order)."""

    landed: int
    unreadable_files: int
    truncated_files: int
    handed: int
    valid: int
    late_in: int
    users: int
    rejected: int
    duplicates: int
    late_duplicates: int


def accounting_metadata(facts: dict[str, list[list]]) -> dict[str, object]:
    """The accounting the UI plots per partition, from the plan's facts (whichever engine computed them)."""
    landed, unreadable_files, truncated_files, handed, valid, late_in, users, rejected, duplicates, late_duplicates = (
        Accounting(*facts["accounting"][0])
    )
    by_reason = {reason: lines for reason, lines in facts["reasons"]}
    if duplicates:
        by_reason[DUPLICATE] = duplicates
    kept = valid - duplicates
    return {
        "landed_lines": landed,
        "kept": kept,
        "quarantined": rejected + duplicates,
        "duplicates": duplicates,
        "late_arrivals_in": late_in - late_duplicates,
        "handed_to_earlier_days": handed,
        "quarantine_rate": round(rejected / max(kept + rejected, 1), 6),
        "distinct_users": users,
        "quarantine_reasons": dict(sorted(by_reason.items())),
        "unreadable_files": unreadable_files,
        "truncated_files": truncated_files,
    }

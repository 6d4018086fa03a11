"""`app_events` and `quarantined_events`: a day of landed lines, split into typed events and rejects.

The rules live in `tvtime_platform.transforms.app_events`; this asset finds the files (the day's
own and the late window after it), survives unreadable files, and reports the accounting.
"""

import datetime as dt
import time

import dagster as dg
import duckdb as duckdb_api

from tvtime_platform.assets import LAKE_KINDS, SERVICE_RETRIES
from tvtime_platform.partitions import daily_partitions
from tvtime_platform.resources.duckdb_engine import DuckDBEngine
from tvtime_platform.resources.lake import Lake
from tvtime_platform.resources.landing import TRUNCATED, LandingZone, gzip_problem, salvage
from tvtime_platform.transforms import app_events as rules

UNREADABLE = "unreadable_file"
# What DuckDB raises for a file it cannot decompress or decode; anything else is a bug to surface.
UNREADABLE_ERRORS = (duckdb_api.IOException, duckdb_api.InvalidInputException)
QUARANTINE_COLUMNS = "landing_date DATE, source_file VARCHAR, reason VARCHAR, event_id VARCHAR, event_date DATE, raw_line VARCHAR"


@dg.multi_asset(
    outs={
        "app_events": dg.AssetOut(
            io_manager_key="lake", description="Typed, validated, deduplicated app events of a UTC day (by event time).",
            kinds=LAKE_KINDS, owners=["team:data-engineering"], code_version="1", is_required=False,
        ),
        "quarantined_events": dg.AssetOut(
            io_manager_key="lake", description="Every landed line that was not kept, with its reason and the raw line.",
            kinds=LAKE_KINDS, owners=["team:data-engineering"], code_version="1", is_required=False,
        ),
    },
    partitions_def=daily_partitions,
    group_name="ingestion",
    can_subset=True,
    retry_policy=SERVICE_RETRIES,
)
def app_events(context: dg.AssetExecutionContext, landing: LandingZone, duckdb: DuckDBEngine, lake_storage: Lake):
    """Validate one day of landing files; late arrivals from the following days join their event day.

    The two tables are one computation and are always written together, even when a run selects
    only one of them: a day's events without its quarantine would break the accounting.
    """
    day = dt.date.fromisoformat(context.partition_key)
    began = time.perf_counter()
    own_files = landing.event_files(day)
    later = {day + dt.timedelta(days=k): landing.event_files(day + dt.timedelta(days=k)) for k in range(1, landing.late_arrival_days + 1)}
    if not own_files and not any(later.values()):
        raise dg.Failure(f"No event files landed for {day} (looked in {landing.day_url(day)} and the "
                         f"{landing.late_arrival_days} day(s) after). Nothing to materialize; check the collectors.", allow_retries=False)
    own, own_empty = _non_empty(own_files)
    sources = {day: own} | {d: _non_empty(files)[0] for d, files in later.items()}
    con = duckdb.connect()
    con.execute(f"CREATE TEMP TABLE unreadable ({QUARANTINE_COLUMNS})")
    with duckdb.scratch_folder() as scratch:
        # Parsed lines go to a Parquet file rather than memory: the raw lines alone are ~170 bytes
        # an event, and only the few rejected ones are ever read back.
        parsed = f"{scratch}/parsed.parquet"
        recovered = _stage_parsed(context, con, day, sources, scratch, parsed)
        con.execute(f"CREATE TEMP VIEW owned AS {rules.owned_sql(parsed, day, landing.late_arrival_days)}")
        con.execute(f"CREATE TEMP TABLE later_copies AS {rules.later_copies_sql('owned')}")
        accounting = _accounting(con, day, parsed, len(own_files), own_empty, recovered, time.perf_counter() - began)
        tables = {
            "app_events": con.sql(rules.kept_sql("owned", "later_copies")),
            "quarantined_events": con.sql(
                f"SELECT * FROM ({rules.quarantined_sql('owned', 'later_copies')} UNION ALL SELECT * FROM unreadable) "
                "ORDER BY source_file, reason, event_id"
            ),
        }
        for name, relation in tables.items():
            metadata = accounting if name == "app_events" else {}
            key = dg.AssetKey(name)
            if key in context.selected_asset_keys:
                yield dg.Output(relation, output_name=name, metadata=metadata)
            else:
                written = lake_storage.write(relation, key, context.partition_key)
                yield dg.AssetMaterialization(key, partition=context.partition_key, metadata={**metadata, **written})


def _set_aside(con: duckdb_api.DuckDBPyConnection, day: dt.date, file: str, problem: str) -> None:
    """One quarantine row for a file that cannot be read at all, naming what is wrong with it."""
    con.execute("INSERT INTO unreadable VALUES (?, ?, ?, NULL, NULL, ?)", [day, file, UNREADABLE, problem])


def _non_empty(files: dict[str, int]) -> tuple[list[str], int]:
    """Zero-byte files hold no lines (gzip cannot even open them); count them instead of reading them."""
    kept = [f for f, size in files.items() if size > 0]
    return kept, len(files) - len(kept)


def _stage_parsed(context: dg.AssetExecutionContext, con: duckdb_api.DuckDBPyConnection, day: dt.date,
                  sources: dict[dt.date, list[str]], scratch: str, target: str) -> int:
    """Parse every candidate line into the Parquet file `target`; returns how many of the day's files were truncated.

    All files are read in one pass. Only if DuckDB refuses one are they probed one by one: a
    truncated file is read from a plain copy of what could be decompressed (under its own name),
    any other unreadable file is set aside with what is wrong with it, never fatal.
    """
    def write(files_by_day: dict[dt.date, list[str]], names: dict[str, str]) -> None:
        con.execute(f"COPY ({_parsed_sql(day, files_by_day, names)}) TO '{target}' (FORMAT parquet, COMPRESSION zstd)")

    try:
        write(sources, {})
        return 0
    except UNREADABLE_ERRORS as error:
        context.log.warning(f"Reading the landing files failed ({error}); probing them one by one.")
    readable: dict[dt.date, list[str]] = {}
    stand_ins: dict[str, str] = {}
    truncated = 0
    for landed_on, files in sources.items():
        readable[landed_on] = []
        for f in files:
            try:
                con.execute(f"SELECT count(*) FROM ({rules.read_lines_sql([f], landed_on)})").fetchall()
                readable[landed_on].append(f)
                continue
            except UNREADABLE_ERRORS as error:
                problem = gzip_problem(f) or str(error)
            context.log.warning(f"Landing file {f}: {problem}")
            if problem == TRUNCATED:
                stand_in = f"{scratch}/recovered-{len(stand_ins)}.jsonl"
                salvage(f, stand_in)
                stand_ins[stand_in] = f
                readable[landed_on].append(stand_in)
                truncated += landed_on == day
            elif landed_on == day:  # the file's own day quarantines it; a later day's file is that day's to report
                _set_aside(con, day, f, problem)
    write(readable, stand_ins)
    return truncated


def _parsed_sql(day: dt.date, sources: dict[dt.date, list[str]], names: dict[str, str]) -> str:
    parts = []
    for landed_on, files in sources.items():
        if not files:
            continue
        lines = rules.read_lines_sql(files, landed_on, names)
        parts.append(rules.parse_sql(lines if landed_on == day else rules.late_candidates_sql(lines, day)))
    return " UNION ALL ".join(f"SELECT * FROM ({part})" for part in parts) if parts else rules.parse_sql(rules.NO_LINES_SQL)


def _accounting(con: duckdb_api.DuckDBPyConnection, day: dt.date, parsed: str, files: int, empty_files: int, truncated: int,
                seconds: float) -> dict:
    """How every line landed for the day was accounted for; the UI plots these per partition."""
    landed = con.execute(f"SELECT count(*) FROM read_parquet('{parsed}') WHERE landing_date = ?", [day]).fetchall()[0][0]
    valid, late_in, own_owned, users, rejected = con.execute(
        """SELECT count(*) FILTER (WHERE reason IS NULL),
                  count(*) FILTER (WHERE reason IS NULL AND landing_date > ?),
                  count(*) FILTER (WHERE landing_date = ?),
                  count(DISTINCT user_id) FILTER (WHERE reason IS NULL),
                  count(*) FILTER (WHERE reason IS NOT NULL)
           FROM owned""",
        [day, day],
    ).fetchall()[0]
    duplicates, late_duplicates = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE landing_date > ?) FROM later_copies", [day]
    ).fetchall()[0]
    unreadable = con.execute("SELECT count(*) FROM unreadable").fetchall()[0][0]
    by_reason = dict(con.execute("SELECT reason, count(*) FROM owned WHERE reason IS NOT NULL GROUP BY reason ORDER BY reason").fetchall())
    if duplicates:
        by_reason[rules.DUPLICATE] = duplicates
    kept = valid - duplicates
    return {
        "landed_lines": landed,
        "kept": kept,
        "quarantined": rejected + duplicates,
        "duplicates": duplicates,
        "late_arrivals_in": late_in - late_duplicates,
        "handed_to_earlier_days": landed - own_owned,
        "quarantine_rate": round(rejected / max(kept + rejected, 1), 6),
        "distinct_users": users,
        "files": files,
        "empty_files": empty_files,
        "unreadable_files": unreadable,
        "truncated_files": truncated,
        "quarantine_reasons": dg.MetadataValue.json(dict(sorted(by_reason.items()))),
        "parse_seconds": round(seconds, 3),
    }

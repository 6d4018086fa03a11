"""`app_events` and `quarantined_events`: a day of landed lines, split into typed events and rejects.

The rules live in `tvtime_platform.transforms.app_events`; this asset finds the files (the day's
own and the late window after it), runs the rules on DuckDB or Spark (`assets/set_based.py`), and
reports the accounting. On DuckDB it also survives unreadable files: a truncated upload is read as
far as it decompresses, anything else is quarantined as `unreadable_file`. Spark fails the day on
such a file, naming it, and the day can be re-run on DuckDB.
"""

import datetime as dt
import time
from collections.abc import Iterator

import dagster as dg
import duckdb as duckdb_api

from tvtime_platform.assets import SERVICE_RETRIES, SET_BASED_KINDS
from tvtime_platform.assets.set_based import EngineConfig, PlanRun, judged_balances, on_spark, run_on_spark
from tvtime_platform.partitions import daily_partitions
from tvtime_platform.resources.duckdb_engine import DuckDBEngine
from tvtime_platform.resources.lake import Lake, StagedFiles
from tvtime_platform.resources.landing import TRUNCATED, LandingZone, gzip_problem, salvage
from tvtime_platform.resources.spark import SparkJobs
from tvtime_platform.transforms import app_events as rules
from tvtime_platform.transforms.plan import Plan

UNREADABLE = "unreadable_file"
# What DuckDB raises for a file it cannot decompress or decode; anything else is a bug to surface.
UNREADABLE_ERRORS = (duckdb_api.IOException, duckdb_api.InvalidInputException)
TABLES = ("app_events", "quarantined_events")


@dg.multi_asset(
    outs={
        "app_events": dg.AssetOut(
            io_manager_key="lake", description="Typed, validated, deduplicated app events of a UTC day (by event time).",
            kinds=SET_BASED_KINDS, owners=["team:data-engineering"], code_version="1", is_required=False,
        ),
        "quarantined_events": dg.AssetOut(
            io_manager_key="lake", description="Every landed line that was not kept, with its reason and the raw line.",
            kinds=SET_BASED_KINDS, owners=["team:data-engineering"], code_version="1", is_required=False,
        ),
    },
    check_specs=[dg.AssetCheckSpec(
        rules.LINES_ACCOUNTED_FOR, asset="app_events", blocking=True,
        description="Blocking: the rows written to app_events and quarantined_events number the lines the partition owns "
                    "(nothing lost between validation and the lake). Judged by the engine that ran: Spark's job reports it.",
    )],
    partitions_def=daily_partitions,
    group_name="ingestion",
    can_subset=True,
    retry_policy=SERVICE_RETRIES,
)
def app_events(context: dg.AssetExecutionContext, config: EngineConfig, landing: LandingZone, duckdb: DuckDBEngine,
               spark: SparkJobs, lake_storage: Lake):
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
    plan = rules.app_events_plan(day, landing.late_arrival_days)
    files = {"files": len(own_files), "empty_files": own_empty}
    if on_spark(config, spark):
        lines = {"format": "lines", "files": {str(d): paths for d, paths in sources.items()}}
        result = run_on_spark(context, spark, lake_storage, plan, {"landed_lines": lines})
        yield from _emit(context, lake_storage, plan, result, {**files, "unreadable_files": 0, "truncated_files": 0}, began)
        return
    con = duckdb.connect()
    con.execute(f"CREATE TEMP TABLE unreadable ({rules.QUARANTINE_COLUMNS})")
    with duckdb.scratch_folder() as scratch:
        # The parsed lines go to a Parquet file in scratch (the plan's numbered step) rather than
        # memory: the raw lines alone are ~170 bytes an event, and only the rejected ones are read back.
        result, truncated = _run_reading_files(context, con, duckdb, plan, day, sources, scratch)
        result.outputs["quarantined_events"] = con.sql(
            f"SELECT * FROM ({plan.outputs['quarantined_events']}) UNION ALL SELECT * FROM unreadable "
            "ORDER BY source_file, reason, event_id"
        )
        unreadable = con.execute("SELECT count(*) FROM unreadable").fetchall()[0][0]
        yield from _emit(context, lake_storage, plan, result, {**files, "unreadable_files": unreadable, "truncated_files": truncated},
                         began)


def _emit(context: dg.AssetExecutionContext, lake: Lake, plan: Plan, result: PlanRun, file_counts: dict[str, int],
          began: float) -> Iterator:
    """Both tables: an output for each selected one, a write straight to the lake for the other; then the balance."""
    accounting = rules.accounting_metadata(result.facts)
    accounting["quarantine_reasons"] = dg.MetadataValue.json(accounting["quarantine_reasons"])
    metadata = {**accounting, **file_counts, "parse_seconds": round(time.perf_counter() - began, 3), **result.metadata}
    for name in TABLES:
        table = result.outputs[name]
        own_metadata = metadata if name == "app_events" else {}
        key = dg.AssetKey(name)
        if key in context.selected_asset_keys:
            yield dg.Output(table, output_name=name, metadata=own_metadata)
        else:
            written = (lake.adopt(table, key, context.partition_key) if isinstance(table, StagedFiles)
                       else lake.write(table, key, context.partition_key))
            yield dg.AssetMaterialization(key, partition=context.partition_key, metadata={**own_metadata, **written})
    # Outputs are stored as they are yielded, so the partition's files are in the lake by now.
    yield from judged_balances(context, lake, plan, result, added=file_counts["unreadable_files"])


def _set_aside(con: duckdb_api.DuckDBPyConnection, day: dt.date, file: str, problem: str) -> None:
    """One quarantine row for a file that cannot be read at all, naming what is wrong with it."""
    con.execute("INSERT INTO unreadable VALUES (?, ?, ?, NULL, NULL, ?)", [day, file, UNREADABLE, problem])


def _non_empty(files: dict[str, int]) -> tuple[list[str], int]:
    """Zero-byte files hold no lines (gzip cannot even open them); count them instead of reading them."""
    kept = [f for f, size in files.items() if size > 0]
    return kept, len(files) - len(kept)


def _run_reading_files(context: dg.AssetExecutionContext, con: duckdb_api.DuckDBPyConnection, duckdb: DuckDBEngine, plan: Plan,
                       day: dt.date, sources: dict[dt.date, list[str]], scratch: str) -> tuple[PlanRun, int]:
    """Run the plan on DuckDB over the landing files; returns its result and how many of the day's files were truncated.

    All files are read in one pass. Only if DuckDB refuses one are they probed one by one: a
    truncated file is read from a plain copy of what could be decompressed (under its own name),
    any other unreadable file is set aside with what is wrong with it, never fatal.
    """
    def run(files_by_day: dict[dt.date, list[str]], names: dict[str, str]) -> PlanRun:
        parts = [rules.read_lines_sql(files, landed_on, names) for landed_on, files in files_by_day.items() if files]
        con.execute(f"CREATE OR REPLACE TEMP VIEW landed_lines AS {' UNION ALL '.join(parts) or rules.NO_LINES_SQL}")
        outputs, facts = duckdb.run_plan(con, plan, scratch)
        return PlanRun(dict(outputs), facts, {})

    try:
        return run(sources, {}), 0
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
    return run(readable, stand_ins), truncated

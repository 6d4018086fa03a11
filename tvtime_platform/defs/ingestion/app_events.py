"""`app_events` and `quarantined_events`: a day of landed lines, split into typed events and rejects; their checks.

The rules live in `tvtime_platform.transforms`: `landed_lines` reads the files (bytes to lines, the
grammar), `app_events` holds the rules. This asset finds the files (the day's own and the late
window after it), runs them on DuckDB or Spark (the `set_based` resource), and reports the accounting.
Whatever a file holds or is named, it never fails the day: an unreadable file is a quarantine row,
a cut one keeps its complete lines, and a line that is not UTF-8 or too long is quarantined by itself.
"""

import datetime as dt
import os
import time
from collections.abc import Iterator

import dagster as dg

from tvtime_platform.lib.attributes import SERVICE_RETRIES, column_schema, role
from tvtime_platform.lib.failures import deterministic_failures_not_retried
from tvtime_platform.lib.partitions import daily_partitions
from tvtime_platform.resources.duckdb_engine import DuckDBEngine
from tvtime_platform.resources.lake import COLUMN_SCHEMA, Lake, LakeTable
from tvtime_platform.resources.landing import LandedFile, LandingZone
from tvtime_platform.resources.parsed_landing import ParsedLanding
from tvtime_platform.resources.set_based import EngineConfig, PlanRun, SetBasedEngine, judged_balances
from tvtime_platform.transforms import app_events as rules
from tvtime_platform.transforms.plan import Plan

TABLES = ("app_events", "quarantined_events")


@dg.multi_asset(
    outs={
        "app_events": dg.AssetOut(
            io_manager_key="lake",
            description="Typed, validated, deduplicated app events of a UTC day (by event time).",
            metadata=column_schema(rules.APP_EVENTS_COLUMNS),
            tags=role("set_based"),
            code_version="1",
            is_required=False,
        ),
        "quarantined_events": dg.AssetOut(
            io_manager_key="lake",
            description="Every landed line that was not kept, with its reason and the raw line.",
            metadata=column_schema(rules.QUARANTINED_EVENTS_COLUMNS),
            tags=role("set_based"),
            code_version="1",
            is_required=False,
        ),
    },
    check_specs=[
        dg.AssetCheckSpec(
            rules.LINES_ACCOUNTED_FOR,
            asset="app_events",
            blocking=True,
            description="Blocking: the rows written to app_events and quarantined_events number the lines the "
            "partition owns "
            "(nothing lost between validation and the lake). Judged by the engine that ran: Spark's job reports it.",
        )
    ],
    partitions_def=daily_partitions,
    group_name="ingestion",
    can_subset=True,
    retry_policy=SERVICE_RETRIES,
)
def app_events(
    context: dg.AssetExecutionContext,
    config: EngineConfig,
    landing: LandingZone,
    set_based: SetBasedEngine,
    lake_storage: Lake,
):
    """Validate one day of landing files; late arrivals from the following days join their event day.

    The two tables are one computation and are always written together, even when a run selects
    only one of them: a day's events without its quarantine would break the accounting.
    """
    with deterministic_failures_not_retried():
        day = dt.date.fromisoformat(context.partition_key)
        began = time.perf_counter()
        own_files = landing.event_files(day)
        later = {
            day + dt.timedelta(days=k): landing.event_files(day + dt.timedelta(days=k))
            for k in range(1, landing.late_arrival_days + 1)
        }
        if not own_files and not any(later.values()):
            raise dg.Failure(
                f"No event files landed for {day} (looked in {landing.day_url(day)} and the "
                f"{landing.late_arrival_days} day(s) after). Nothing to materialize; check the collectors.",
                allow_retries=False,
            )
        own, own_empty = _non_empty(own_files)
        sources = {day: own} | {d: _non_empty(files)[0] for d, files in later.items()}
        files: dict[str, object] = {"files": len(own_files), "empty_files": own_empty}
        landed_bytes = sum(f.size for listed in (own_files, *later.values()) for f in listed.values())
        choice = set_based.choose(config, [day], landed_bytes)
        context.log.info(f"Running on {choice.engine} ({choice.reason})")
        files |= choice.metadata()
        if choice.engine == "spark":
            plan = rules.app_events_plan(day, landing.late_arrival_days)
            landed = {str(d): list(paths) for d, paths in sources.items()}
            inputs = {
                "landed_lines": {"format": "lines", "files": landed, "fields": list(rules.FIELDS)},
                "landed_counts": {"format": "line_counts", "files": landed},
            }
            result = set_based.run_on_spark(context, plan, inputs)
            yield from _emit(context, lake_storage, plan, result, files, began)
            return
        plan = rules.app_events_plan(day, landing.late_arrival_days, parsed_parts=True)
        duckdb = set_based.duckdb
        con = duckdb.connect()
        cache = ParsedLanding(lake_storage.url, lake_storage.sweep_after_seconds)
        with duckdb.scratch_folder() as scratch:
            # Each landing file is read and judged once, by the first run that lists it; its lines are kept in the lake
            # (`resources/parsed_landing.py`), and a day is assembled from its files' parts and its late window's.
            parts = cache.parts(sources)
            parsed = cache.parse_missing(parts, con, scratch, duckdb.threads or os.cpu_count() or 1, context.log.info)
            files |= {"files_parsed": parsed, "files_parsed_before": len(parts) - parsed}
            counts = cache.load(con, parts, "parsed_lines")
            for problem in counts.filter(counts.column("problem").is_valid()).to_pylist():
                if problem["landing_date"] == day:
                    context.log.warning(f"Landing file {problem['source_file']}: {problem['problem']}")
            con.register("landed_counts", counts)
            outputs, facts = duckdb.run_plan(con, plan, scratch, context.log.info)
            yield from _emit(context, lake_storage, plan, PlanRun(dict(outputs), facts, {}), files, began)


def _emit(
    context: dg.AssetExecutionContext,
    lake: Lake,
    plan: Plan,
    result: PlanRun,
    file_counts: dict[str, object],
    began: float,
) -> Iterator:
    """Both tables written as new versions, the balance judged on them, then both committed in one record (readers see
    both new or both old); a materialization for each selected table, an event for the other, then the balance."""
    accounting = rules.accounting_metadata(result.facts)
    accounting["quarantine_reasons"] = dg.MetadataValue.json(accounting["quarantine_reasons"])
    metadata = {**accounting, **file_counts, "parse_seconds": round(time.perf_counter() - began, 3), **result.metadata}
    declared = {key.to_user_string(): m.get(COLUMN_SCHEMA) for key, m in context.assets_def.metadata_by_key.items()}
    versions = [
        lake.stage(result.outputs[name], dg.AssetKey(name), context.partition_key, declared[name]) for name in TABLES
    ]
    for version in versions:
        context.log.info(version.summary())
    balances = judged_balances(context, plan, result, {v.key.to_user_string(): v for v in versions})
    written = lake.commit(context.partition_key, versions)
    for version in versions:
        own_metadata = {**(metadata if version.key == dg.AssetKey("app_events") else {}), **written[version.key]}
        if version.key in context.selected_asset_keys:
            yield dg.MaterializeResult(asset_key=version.key, metadata=own_metadata)
        else:
            yield dg.AssetMaterialization(version.key, partition=context.partition_key, metadata=own_metadata)
    yield from balances


def _non_empty(files: dict[str, LandedFile]) -> tuple[dict[str, LandedFile], int]:
    """Zero-byte files hold no lines (gzip cannot even open them); count them instead of reading them."""
    kept = {url: f for url, f in files.items() if f.size > 0}
    return kept, len(files) - len(kept)


MAX_QUARANTINE_RATE = 0.02


@dg.asset_check(
    asset="app_events",
    partitions_def=daily_partitions,
    blocking=True,
    additional_ins={"quarantined_events": dg.AssetIn()},
    description=f"Blocking: at most {MAX_QUARANTINE_RATE:.0%} of a day's lines may be rejected (duplicates, being "
    f"retries, do not count).",
)
def quarantine_rate_below_threshold(
    app_events: LakeTable, quarantined_events: LakeTable, duckdb: DuckDBEngine
) -> dg.AssetCheckResult:
    kept = app_events.row_count()
    rejected = duckdb.fetch_one(
        "SELECT count(*) FILTER (WHERE reason <> ?) FROM quarantined_events",
        {"quarantined_events": quarantined_events},
        [rules.DUPLICATE],
    )[0]
    rate = rejected / max(kept + rejected, 1)
    return dg.AssetCheckResult(
        passed=rate <= MAX_QUARANTINE_RATE,
        severity=dg.AssetCheckSeverity.ERROR,
        description=None
        if rate <= MAX_QUARANTINE_RATE
        else f"{rate:.2%} of lines rejected (limit {MAX_QUARANTINE_RATE:.0%}); see quarantined_events for the reasons",
        metadata={"quarantine_rate": rate, "rejected": rejected, "kept": kept, "limit": MAX_QUARANTINE_RATE},
    )

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
from collections.abc import Callable, Iterator

import dagster as dg

from tvtime_platform.defs.ingestion.app_events_segments import (
    ASSEMBLY_RULES,
    EVENT_HASHES,
    Segment,
    day_facts,
    earlier_days_to_run,
    held_segments,
    late_window,
    record_segment,
)
from tvtime_platform.lake import Lake, LakeTable, Recorded, StalePartition, Version
from tvtime_platform.lib.attributes import SERVICE_RETRIES, column_schema, declared_columns, role
from tvtime_platform.lib.failures import deterministic_failures_not_retried
from tvtime_platform.lib.partitions import daily_partitions, run_day
from tvtime_platform.resources.duckdb_engine import DuckDBEngine
from tvtime_platform.resources.landing import LandedFile, LandingZone
from tvtime_platform.resources.parsed_landing import ParsedLanding, part_key
from tvtime_platform.resources.set_based import EngineConfig, PlanRun, SetBasedEngine, judged_balances
from tvtime_platform.resources.storage import join
from tvtime_platform.transforms import app_events as rules
from tvtime_platform.transforms.plan import Plan

TABLES = ("app_events", "quarantined_events")
# Metadata naming the days before this one that need a run now (lines of its files are theirs and their rows lack
# them): the landing sensor requests them.
EARLIER_DAYS_TO_RUN = "earlier_days_to_run"


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
            partitions_def=daily_partitions,  # a day's failure holds back that day, not the others
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
    only one of them: a day's events without its quarantine would break the accounting. A run plans
    against the day's record as it read it at its start and commits only if that is still current:
    when another run of the day committed meanwhile (from a newer listing, say), it plans again from
    a fresh listing instead of replacing the newer version with an older one.
    """
    run_day(context)
    with deterministic_failures_not_retried():
        for attempt in range(1, PLANS + 1):
            try:
                events = list(_attempt(context, config, landing, set_based, lake_storage))
            except StalePartition as stale:
                if attempt == PLANS:
                    raise dg.Failure(
                        f"{stale} Runs of {context.partition_key} kept committing while this one planned {PLANS} "
                        "times; their versions hold the day. Nothing is lost: run the day again once they are done.",
                        allow_retries=False,
                    ) from stale
                context.log.warning(f"{stale} Planning again from a fresh listing (attempt {attempt + 1} of {PLANS}).")
                continue
            yield from events
            return


# How many times a run of a day plans, when other runs of the day keep committing before it.
PLANS = 3


def _attempt(
    context: dg.AssetExecutionContext,
    config: EngineConfig,
    landing: LandingZone,
    set_based: SetBasedEngine,
    lake_storage: Lake,
) -> Iterator:
    """One plan of the day: list its files, read the day's record, build both tables and commit them against it."""
    day = dt.date.fromisoformat(context.partition_key)
    began = time.perf_counter()
    # What the day holds, read before the listing: a commit after this read makes this run's commit stale.
    recorded = lake_storage.recorded(dg.AssetKey("app_events"), context.partition_key)
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
        # Spark assembles the whole day each run: the days before it may have read a file since removed.
        window = late_window(day, landing.late_arrival_days)
        yield from _emit(context, lake_storage, recorded, plan, result, files, began, window)
        return
    yield from _on_duckdb(
        context, day, landing.late_arrival_days, sources, files, set_based, lake_storage, recorded, began
    )


def _on_duckdb(
    context: dg.AssetExecutionContext,
    day: dt.date,
    late_arrival_days: int,
    sources: dict[dt.date, dict[str, LandedFile]],
    file_counts: dict[str, object],
    set_based: SetBasedEngine,
    lake: Lake,
    recorded: Recorded,
    began: float,
) -> Iterator:
    """The day on DuckDB, from its files' parts (`resources/parsed_landing.py`: each file read and judged once, by the
    first run that lists it). When the files the day already holds are, in arrival order, the first of the listed ones
    and the rules and late window are the same, only the files after them are assembled and appended (a new version
    keeps the current files and adds the new rows); otherwise the whole day is assembled again."""
    duckdb = set_based.duckdb
    con = duckdb.connect()
    cache = ParsedLanding(lake.url, lake.sweep_after_seconds)
    with duckdb.scratch_folder() as scratch:
        parts = cache.parts(sources)
        parsed = cache.parse_missing(parts, con, scratch, duckdb.threads or os.cpu_count() or 1, context.log.info)
        file_counts |= {"files_parsed": parsed, "files_parsed_before": len(parts) - parsed}
        # What the day holds, as read once: the segments, the files to carry and the ids kept agree even when another
        # run of the day commits meanwhile (whose commit then makes this one's stale).
        current = recorded.tables
        held = held_segments(lake, current.get("app_events", []), late_arrival_days)
        covered = [key for segment in held or [] for key in segment.parts]
        keys = [part_key(p) for p in parts]
        # (Nothing new, e.g. a zero-byte file landed: an append of no parts, not a rebuild.)
        appending = held is not None and 0 < len(covered) <= len(keys) and keys[: len(covered)] == covered
        earlier = earlier_days_to_run(lake, cache, day, late_arrival_days, parts, held, appending, bool(current))
        new = parts[len(covered) :] if appending else parts
        carried = {name: current[name] for name in TABLES} if appending else {}
        # What the held versions' files count, as their segments recorded it: their footers need not be read again.
        counted = {f: tuple(rb) for segment in held or [] for f, rb in segment.files.items()}
        if appending:
            hashes = [join(lake.url, segment.folder, EVENT_HASHES) for segment in held]
            con.read_parquet(hashes).create_view("earlier_event_hashes")
            context.log.info(f"Appending the rows of {len(new)} landing file(s) to the {len(covered)} the day holds")
        damaged = cache.damaged(new)
        if damaged:
            gone = ", ".join(p.source_file for p in damaged[:3])
            context.log.warning(f"The parsed lines of {len(damaged)} landing file(s) are gone ({gone}); parsing again")
            reparsed = cache.parse_missing(
                damaged, con, scratch, duckdb.threads or os.cpu_count() or 1, context.log.info
            )
            file_counts |= {"files_parsed": parsed + reparsed, "files_parsed_before": len(parts) - parsed - reparsed}
        counts = cache.load(con, new, "parsed_lines")
        for problem in counts.filter(counts.column("problem").is_valid()).to_pylist():
            if problem["landing_date"] == day:
                context.log.warning(f"Landing file {problem['source_file']}: {problem['problem']}")
        con.register("landed_counts", counts)
        plan = rules.app_events_plan(day, late_arrival_days, parsed_parts=True, appending=appending)
        outputs, facts = duckdb.run_plan(con, plan, scratch, context.log.info)
        segment = Segment(
            rules=ASSEMBLY_RULES,
            late_arrival_days=late_arrival_days,
            parts=[part_key(p) for p in new],
            own_parts=[part_key(p) for p in new if p.landing_date == day],  # of the files landed on the day itself
            facts=facts,
        )
        file_counts["files_appended" if appending else "files_assembled"] = len(new)

        def facts_of_the_day(versions: list[Version]) -> dict:
            kept = {f for files in carried.values() for f in files}
            segment.files = {f: list(rb) for v in versions for f, rb in v.rows_and_bytes.items() if f not in kept}
            record_segment(con, lake, versions[0], segment, scratch, held if appending else [])
            return day_facts(held if appending else [], segment)

        yield from _emit(
            context,
            lake,
            recorded,
            plan,
            PlanRun(dict(outputs), facts, {}),
            file_counts,
            began,
            earlier,
            carried,
            facts_of_the_day,
            counted,
        )


def _emit(
    context: dg.AssetExecutionContext,
    lake: Lake,
    recorded: Recorded,
    plan: Plan,
    result: PlanRun,
    file_counts: dict[str, object],
    began: float,
    earlier: list[str],
    carried: dict[str, list[str]] | None = None,
    facts_of_the_day: Callable[[list[Version]], dict] | None = None,
    counted: dict[str, tuple[int, int]] | None = None,
) -> Iterator:
    """Both tables written as new versions (keeping the `carried` files of each, with the rows and bytes `counted` of
    them), the balance judged on them, then both committed in one record (readers see both new or both old) if it is
    still the `recorded` one the run planned against (`StalePartition` otherwise); a
    materialization for each selected table, an event for the other, then the balance. `facts_of_the_day` turns the
    run's facts into the day's, once the versions are staged. `earlier`: the days before this one that need a run
    (`EARLIER_DAYS_TO_RUN`)."""
    parse_seconds = round(time.perf_counter() - began, 3)
    declared = declared_columns(context)
    versions = [
        lake.stage(
            result.outputs[name],
            dg.AssetKey(name),
            context.partition_key,
            declared[dg.AssetKey(name)],
            (carried or {}).get(name, ()),
            counted,
        )
        for name in TABLES
    ]
    for version in versions:
        context.log.info(version.summary())
    if facts_of_the_day is not None:
        result.facts = facts_of_the_day(versions)
    accounting = rules.accounting_metadata(result.facts)
    accounting["quarantine_reasons"] = dg.MetadataValue.json(accounting["quarantine_reasons"])
    accounting[EARLIER_DAYS_TO_RUN] = dg.MetadataValue.json(earlier)
    metadata = {**accounting, **file_counts, "parse_seconds": parse_seconds, **result.metadata}
    balances = judged_balances(context, plan, result, {v.key.to_user_string(): v for v in versions})
    written = lake.commit(context.partition_key, versions, recorded)
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

"""`app_events` and `quarantined_events`: a day of landed lines, split into typed events and rejects; their checks.

The rules live in `tvtime_platform.transforms`: `landed_lines` reads the files (bytes to lines, the
grammar), `app_events` holds the rules. This asset finds the files (the day's own and the late
window after it), runs them on DuckDB or Spark (the `set_based` resource), and reports the accounting.
Whatever a file holds or is named, it never fails the day: an unreadable file is a quarantine row,
a cut one keeps its complete lines, and a line that is not UTF-8 or too long is quarantined by itself.
"""

import datetime as dt
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator

import dagster as dg

from tvtime_platform.lib.attributes import SERVICE_RETRIES, column_schema, role
from tvtime_platform.lib.failures import deterministic_failures_not_retried
from tvtime_platform.lib.partitions import daily_partitions, run_day
from tvtime_platform.resources.duckdb_engine import DuckDBEngine
from tvtime_platform.resources.lake import COLUMN_SCHEMA, Lake, LakeTable, Recorded, StalePartition, Version
from tvtime_platform.resources.landing import LandedFile, LandingZone
from tvtime_platform.resources.parsed_landing import RULES, ParsedLanding, Part, part_key
from tvtime_platform.resources.set_based import EngineConfig, PlanRun, SetBasedEngine, judged_balances
from tvtime_platform.resources.storage import join, move_in, read_files, replace_json
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
        window = _window(day, landing.late_arrival_days)
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
        # What the day holds, from one read of its record: the segments, the files to carry and the ids kept agree even
        # when another run of the day commits meanwhile (whose commit then makes this one's stale).
        current = recorded.tables
        held = _held_segments(lake, current.get("app_events", []), late_arrival_days)
        covered = [key for segment in held or [] for key in segment["parts"]]
        keys = [part_key(p) for p in parts]
        # (Nothing new, e.g. a zero-byte file landed: an append of no parts, not a rebuild.)
        appending = held is not None and 0 < len(covered) <= len(keys) and keys[: len(covered)] == covered
        earlier = _earlier_days_to_run(lake, cache, day, late_arrival_days, parts, held, appending, bool(current))
        new = parts[len(covered) :] if appending else parts
        carried = {name: current[name] for name in TABLES} if appending else {}
        # What the held versions' files count, as their segments recorded it: their footers need not be read again.
        counted = {f: tuple(rb) for segment in held or [] for f, rb in segment.get("files", {}).items()}
        if appending:
            hashes = [join(lake.url, segment["folder"], EVENT_HASHES) for segment in held]
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
        segment = {
            "rules": ASSEMBLY_RULES,
            "late_arrival_days": late_arrival_days,
            "parts": [part_key(p) for p in new],
            "own_parts": [part_key(p) for p in new if p.landing_date == day],  # of the files landed on the day itself
        }
        segment["facts"] = facts
        file_counts["files_appended" if appending else "files_assembled"] = len(new)

        def day_facts(versions: list[Version]) -> dict:
            kept = {f for files in carried.values() for f in files}
            segment["files"] = {f: list(rb) for v in versions for f, rb in v.rows_and_bytes.items() if f not in kept}
            _record_segment(con, lake, versions[0], segment, scratch, held if appending else [])
            return _day_facts(held if appending else [], segment)

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
            day_facts,
            counted,
        )


# In each app_events version folder: the parts its rows come from and their facts, and the hashes of the event ids kept.
SEGMENT, EVENT_HASHES = "segment.json", "event_hashes.parquet"
# Beside them: the distinct users of the day's kept events so far (this version's and those it carries), so that an
# append counts the day's users from one file instead of every version's.
DAY_USERS, DAY_USERS_COUNTED = "day_users.parquet", "day_users"
# The rules a segment was assembled by: its parts' (the reader and the parsing) and the plan's statements (the day and
# the late window are parameters, not in the text). Segments assembled otherwise are not added to.
_PLAN = rules.app_events_plan(dt.date(2024, 1, 1), 1, parsed_parts=True, appending=True)
ASSEMBLY_RULES = hashlib.sha1(repr((RULES, _PLAN.steps, _PLAN.outputs, _PLAN.facts)).encode()).hexdigest()[:12]


def _earlier_days_to_run(
    lake: Lake,
    cache: ParsedLanding,
    day: dt.date,
    late_arrival_days: int,
    parts: list[Part],
    held: list[dict] | None,
    appending: bool,
    held_rows: bool,
) -> list[str]:
    """The days before `day` that need a run: those for which one of the day's own files holds valid lines and whose
    current rows do not come from that file's part (read from their segments: a run of theirs that failed, was never
    made, or whose request was lost is made up for by the next run of this day). All of the late window when this day
    is rebuilt over rows it held after one of its own files was removed or rewritten (the days before may hold its
    lines)."""
    window = _window(day, late_arrival_days)
    lost_own = held is None or not {k for s in held for k in s["own_parts"]} <= {part_key(p) for p in parts}
    if not appending and held_rows and lost_own:
        return window
    holds = cache.event_days([p for p in parts if p.landing_date == day])
    needed = []
    for earlier in window:
        current = lake.current_tables(dg.AssetKey("app_events"), earlier) or {}
        segments = _held_segments(lake, current.get("app_events", []), late_arrival_days) or []
        covered = {key for segment in segments for key in segment["parts"]}
        if any(earlier in days and key not in covered for key, days in holds.items()):
            needed.append(earlier)
    return needed


def _held_segments(lake: Lake, files: list[str], late_arrival_days: int) -> list[dict] | None:
    """What the day's current app_events `files` come from, version folder by version folder, in the order they were
    written; None when the day holds nothing, or files written otherwise (by Spark, before parts, under other rules
    or another late window)."""
    if not files:
        return None
    folders = list(dict.fromkeys(f.rsplit("/", 1)[0] for f in files))
    try:
        found = read_files([join(lake.url, f, SEGMENT) for f in folders])
        segments = [json.loads(segment) | {"folder": folder} for folder, segment in zip(folders, found, strict=True)]
    except FileNotFoundError:
        return None
    if any(s["rules"] != ASSEMBLY_RULES or s["late_arrival_days"] != late_arrival_days for s in segments):
        return None
    return sorted(segments, key=lambda s: s["written"])


def _record_segment(con, lake: Lake, events: Version, segment: dict, scratch: str, held: list[dict]) -> None:
    """The new segment beside its app_events file, staged and not yet committed: the hashes of the event ids it kept,
    the day's distinct users so far (those of the version it appends to and of its new events; every carried file's
    when that version kept none), then `segment.json` (last: a segment that has it has the others)."""
    folder = join(lake.url, events.files[0].rsplit("/", 1)[0])
    new_events = con.read_parquet(join(lake.url, events.files[0]))
    local = f"{scratch}/{EVENT_HASHES}"
    new_events.project(f"{rules.EVENT_HASH} AS event_hash").to_parquet(local, compression="zstd")
    move_in(local, join(folder, EVENT_HASHES))
    # The version this one appends to wrote the first file it carries (a new version's files come first); its segment
    # counted the users of every version before it. (Not the latest `written`: runs stamp it by their own clocks.)
    appended_to = events.files[1].rsplit("/", 1)[0] if held else None
    before = next((s for s in held if s["folder"] == appended_to), {})
    if not held:
        earlier = []
    elif DAY_USERS_COUNTED in before:
        earlier = [join(lake.url, appended_to, DAY_USERS)]
    else:  # written before the day's users were kept: count them on the files carried
        earlier = [join(lake.url, f) for f in events.files[1:]]
    users = new_events.project("user_id")
    if earlier:
        users = users.union(con.read_parquet(earlier).project("user_id"))
    local = f"{scratch}/{DAY_USERS}"
    users.distinct().order("user_id").to_parquet(local, compression="zstd")
    segment[DAY_USERS_COUNTED] = con.execute("SELECT count(*) FROM read_parquet($f)", {"f": local}).fetchall()[0][0]
    move_in(local, join(folder, DAY_USERS))
    segment["written"] = dt.datetime.now(dt.UTC).isoformat()
    replace_json(join(folder, SEGMENT), segment)


def _day_facts(held: list[dict], segment: dict) -> dict:
    """The day's facts: what the held segments and the new one counted, added up, but distinct users as the new segment
    counted them on the whole day."""
    if not held:
        return segment["facts"]
    segments = [*held, segment]
    accounting = [
        sum(s["facts"]["accounting"][0][k] for s in segments) for k in range(len(segment["facts"]["accounting"][0]))
    ]
    accounting[6] = segment[DAY_USERS_COUNTED]
    reasons: dict[str, int] = {}
    for s in segments:
        for reason, lines in s["facts"]["reasons"]:
            reasons[reason] = reasons.get(reason, 0) + lines
    balance = sum(s["facts"][rules.LINES_ACCOUNTED_FOR][0][0] for s in segments)
    return {
        "accounting": [accounting],
        "reasons": sorted(map(list, reasons.items())),
        rules.LINES_ACCOUNTED_FOR: [[balance]],
    }


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
    day_facts: Callable[[list[Version]], dict] | None = None,
    counted: dict[str, tuple[int, int]] | None = None,
) -> Iterator:
    """Both tables written as new versions (keeping the `carried` files of each, with the rows and bytes `counted` of
    them), the balance judged on them, then both committed in one record (readers see both new or both old) if it is
    still the `recorded` one the run planned against (`StalePartition` otherwise); a
    materialization for each selected table, an event for the other, then the balance. `day_facts` turns the run's
    facts into the day's, once the versions are staged. `earlier`: the days before this one that need a run
    (`EARLIER_DAYS_TO_RUN`)."""
    parse_seconds = round(time.perf_counter() - began, 3)
    declared = {key.to_user_string(): m.get(COLUMN_SCHEMA) for key, m in context.assets_def.metadata_by_key.items()}
    versions = [
        lake.stage(
            result.outputs[name],
            dg.AssetKey(name),
            context.partition_key,
            declared[name],
            (carried or {}).get(name, ()),
            counted,
        )
        for name in TABLES
    ]
    for version in versions:
        context.log.info(version.summary())
    if day_facts is not None:
        result.facts = day_facts(versions)
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


def _window(day: dt.date, late_arrival_days: int) -> list[str]:
    """The earlier days whose late window holds `day`'s files."""
    return [(day - dt.timedelta(days=k)).isoformat() for k in range(1, late_arrival_days + 1)]


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

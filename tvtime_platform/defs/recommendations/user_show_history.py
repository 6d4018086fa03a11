"""`user_show_history`: the shows each viewer watched, rated or followed up to the day, as state that grows by the day.

A day's partition is the day before's and the day's own `app_events` touches
(`transforms/user_show_history.py`): a run reads one day of events and one earlier state, however long
the history. Each version records what it folded in (`folded.json` beside its file: the version of the
day's `app_events` and of the day before's state it was built from); a day of the week before whose
`app_events` or earlier state changed since (a late file, a day rebuilt) is folded again first, oldest
first, so the state follows late arrivals as they land. Without the day before's state (the first day,
or a lake that had none) the day is built once from every day of `app_events` up to it. A day of
`app_events` rebuilt by hand more than a week back: backfill `user_show_history` from that day on (the
UI marks those partitions stale).
"""

import datetime as dt
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import dagster as dg
import duckdb as duckdb_api

from tvtime_platform.lake import Lake, LakeTable, Version
from tvtime_platform.lib.attributes import SERVICE_RETRIES, column_schema, declared_columns, role
from tvtime_platform.lib.conditions import follow_upstream
from tvtime_platform.lib.failures import deterministic_failures_not_retried
from tvtime_platform.lib.partitions import daily_partitions, run_day
from tvtime_platform.resources.duckdb_engine import DuckDBEngine
from tvtime_platform.resources.storage import join, read_small_file, replace_json
from tvtime_platform.transforms.user_show_history import USER_SHOW_HISTORY_COLUMNS, user_show_history_sql

KEY, EVENTS = dg.AssetKey("user_show_history"), dg.AssetKey("app_events")
FOLDED = "folded.json"  # beside a version's file: what it was built from
# Days before the one built that are checked against their inputs (as far back as automation follows changes).
CHECKED_DAYS = 7
PREVIOUS_DAY = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1, allow_nonexistent_upstream_partitions=True)


@dg.asset(
    io_manager_key="lake",
    partitions_def=daily_partitions,
    deps=[dg.AssetDep(EVENTS), dg.AssetDep(KEY, partition_mapping=PREVIOUS_DAY)],
    group_name="recommendations",
    tags=role("lake"),
    code_version="1",
    automation_condition=follow_upstream(),
    retry_policy=SERVICE_RETRIES,
    metadata=column_schema(USER_SHOW_HISTORY_COLUMNS),
)
def user_show_history(context: dg.AssetExecutionContext, lake_storage: Lake, duckdb: DuckDBEngine) -> Iterator:
    """Every (viewer, show) the viewer watched, rated or followed on the day or before: what recommendations exclude."""
    with deterministic_failures_not_retried():
        day = run_day(context)
        declared = declared_columns(context)
        days, base = _days_to_fold(lake_storage, day)
        if len(days) > 1:
            context.log.info(f"Folding {len(days) - 1} earlier day(s) again first, their inputs changed: {days[:-1]}")
        con = duckdb.connect()
        for folded in days:
            base, metadata = _fold(con, lake_storage, folded, base, declared)
            if folded == day:
                yield dg.MaterializeResult(metadata=metadata)
            else:
                yield dg.AssetMaterialization(KEY, partition=folded, metadata=metadata)


@dataclass(frozen=True)
class Folded:
    """What a committed state was built from: the versions of its day's app_events and of the day before's state."""

    app_events: str | None
    previous: str | None


def _folded(lake: Lake, day: str) -> tuple[Version | None, Folded | None]:
    """The day's committed state (None if it has none) and what it folded in (None without a record of it)."""
    version = lake.current_version(KEY, day)
    if version is None:
        return None, None
    try:
        recorded = json.loads(read_small_file(join(lake.url, version.folder, FOLDED)))
    except FileNotFoundError:
        return version, None
    return version, Folded(recorded["app_events"], recorded["previous"])


def _days_to_fold(lake: Lake, day: str) -> tuple[list[str], Version | None]:
    """The days to write, oldest first and ending with `day`, and the state the first builds on (None: build it from
    every day of app_events up to it). The `CHECKED_DAYS` before the day are checked, each against its inputs now: the
    oldest whose day's app_events, or the state before it, is not the version it folded in starts the chain. Each
    day's state is read once."""
    states: dict[str, tuple[Version | None, Folded | None]] = {}

    def state(of: str) -> tuple[Version | None, Folded | None]:
        if of not in states:
            states[of] = _folded(lake, of)
        return states[of]

    earlier = _previous(day)
    if earlier is None or state(earlier)[1] is None:
        return [day], None
    days, oldest_stale = [day], None
    for _ in range(CHECKED_DAYS):
        if earlier is None or (folded := state(earlier)[1]) is None:
            break
        events, before = lake.current_version(EVENTS, earlier), _previous(earlier)
        state_before = state(before)[0] if before else None
        if folded != Folded(events.name if events else None, state_before.name if state_before else None):
            oldest_stale = earlier
        days.insert(0, earlier)
        earlier = before
    start = oldest_stale or day
    before = _previous(start)
    return days[days.index(start) :], state(before)[0] if before else None


def _fold(
    con: duckdb_api.DuckDBPyConnection,
    lake: Lake,
    day: str,
    base: Version | None,
    declared: Mapping[dg.AssetKey, dg.TableSchema | None],
) -> tuple[Version, dict]:
    """Write and commit the day's state: `base` (the day before's) and the day's touches, or every day's touches up to
    the day when there is no base; its `folded.json` first. Returns the version committed and the metadata to report."""
    events = lake.current_version(EVENTS, day)
    if events is None:
        raise dg.Failure(
            f"app_events has no version for {day} in the lake; materialize it first (the daily_pipeline job).",
            allow_retries=False,
        )
    if base is None:
        _every_day(lake, day).view(con, "history_events")
    else:
        lake.version_table(events).view(con, "history_events")
        lake.version_table(base).view(con, "history_before")
    relation = con.sql(user_show_history_sql("history_events", None if base is None else "history_before"))
    record = {"app_events": events.name, "previous": base.name if base else None}

    def record_what_it_folded(versions: list[Version]) -> None:
        replace_json(join(lake.url, versions[0].folder, FOLDED), record)

    [version] = lake.replace(day, {KEY: relation}, declared, record_what_it_folded)
    built_from = "the day before's state and the day's app_events" if base else "every day of app_events up to it"
    return version, version.metadata | {"built_from": built_from}


def _every_day(lake: Lake, day: str) -> LakeTable:
    """Every day of app_events from its first to `day`, or a failure naming the days missing (a history with holes
    would let recommendations name shows back)."""
    present = set(lake.partitions_through(EVENTS, day))
    first = dt.date.fromisoformat(min(present)) if present else dt.date.fromisoformat(day)
    span = (dt.date.fromisoformat(day) - first).days + 1
    missing = [d for d in ((first + dt.timedelta(days=k)).isoformat() for k in range(span)) if d not in present]
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise dg.Failure(
            f"app_events must hold every day from {first} to {day} to build user_show_history, but these days are not "
            f"in the lake: {shown}. Materialize them first (the daily_pipeline job).",
            allow_retries=False,
        )
    return lake.table(EVENTS, sorted(present))


def _previous(day: str) -> str | None:
    """The day before, if it is a partition."""
    before = (dt.date.fromisoformat(day) - dt.timedelta(days=1)).isoformat()
    return before if before >= daily_partitions.start.strftime("%Y-%m-%d") else None

"""`user_sessions`: each day's events cut into sessions by inactivity (rules in `transforms.user_sessions`); its checks,
which a schedule also runs every 15 minutes (`session_checks.py`), as the old subDAG did."""

import datetime as dt
import statistics

import dagster as dg
from pydantic import Field

from tvtime_platform.lake import ROW_COUNT, LakeTable
from tvtime_platform.lib.attributes import column_schema, derived_day_table
from tvtime_platform.lib.failures import deterministic_failures_not_retried
from tvtime_platform.lib.partitions import daily_partitions, run_day
from tvtime_platform.resources.duckdb_engine import DuckDBEngine
from tvtime_platform.resources.set_based import EngineConfig, SetBasedEngine
from tvtime_platform.transforms.user_sessions import DEFAULT_GAP_SECONDS, USER_SESSIONS_COLUMNS, user_sessions_plan


class SessionsConfig(EngineConfig):
    # At least a second: the plan counts the gap in whole seconds, and a smaller one would round to none.
    gap_minutes: float = Field(
        default=DEFAULT_GAP_SECONDS / 60,
        ge=1 / 60,
        le=1440,
        description="inactivity that ends a session, in minutes (at least 1/60: a second)",
    )


@dg.asset(**derived_day_table("activity"), metadata=column_schema(USER_SESSIONS_COLUMNS))
def user_sessions(
    context: dg.AssetExecutionContext, config: SessionsConfig, app_events: LakeTable, set_based: SetBasedEngine
):
    """One row per session: start, end, duration, events, episodes watched, platform and country."""
    with deterministic_failures_not_retried():
        plan = user_sessions_plan(round(config.gap_minutes * 60))
        day = dt.date.fromisoformat(run_day(context))
        result = set_based.run_plan(context, config, plan, {"app_events": app_events}, [day])
        _, users, events, median = result.facts["summary"][0]
        metadata = {
            "distinct_users": users,
            "events": int(events),
            "median_duration_seconds": float(median or 0.0),
            "gap_minutes": config.gap_minutes,
            **result.metadata,
        }
        # Launching Pipes makes Dagster expect explicit outputs, so the value comes wrapped.
        return dg.Output(result.outputs["user_sessions"], metadata=metadata)


HISTORY_DAYS = 14
MIN_HISTORY_DAYS = 3
LOWEST_RATIO, HIGHEST_RATIO = 0.5, 2.0
SESSIONS = dg.AssetKey("user_sessions")


def _trailing_counts(instance: dg.DagsterInstance, day: dt.date) -> dict[str, int]:
    """Session counts of the previous days, from each day's latest materialization (days re-run hourly count once)."""
    counts: dict[str, int] = {}
    for k in range(1, HISTORY_DAYS + 1):
        partition = (day - dt.timedelta(days=k)).isoformat()
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=SESSIONS, asset_partitions=[partition]), limit=1
        ).records
        materialization = records[0].asset_materialization if records else None
        metadata = materialization.metadata if materialization else {}
        row_count = metadata.get(ROW_COUNT, metadata.get("dagster/row_count"))  # the latter: written before
        if row_count is not None:
            counts[partition] = int(row_count.value)
    return counts


@dg.asset_check(
    asset=SESSIONS,
    partitions_def=daily_partitions,
    description=f"The day's session count stays within {LOWEST_RATIO}x..{HIGHEST_RATIO}x of the median of the "
    f"previous {HISTORY_DAYS} days.",
)
def sensible_number_of_sessions(
    context: dg.AssetCheckExecutionContext, user_sessions: LakeTable
) -> dg.AssetCheckResult:
    day = dt.date.fromisoformat(run_day(context))
    today = user_sessions.row_count()
    history = _trailing_counts(context.instance, day)
    if len(history) < MIN_HISTORY_DAYS:
        return dg.AssetCheckResult(
            passed=True,
            metadata={"sessions": today, "history_days": len(history)},
            description=f"Only {len(history)} earlier day(s) materialized; need {MIN_HISTORY_DAYS} to judge.",
        )
    median = statistics.median(history.values())
    ratio = today / median if median else float("inf")
    passed = LOWEST_RATIO <= ratio <= HIGHEST_RATIO
    return dg.AssetCheckResult(
        passed=passed,
        metadata={"sessions": today, "trailing_median": median, "ratio": round(ratio, 4), "history_days": len(history)},
        description=None
        if passed
        else f"{today} sessions is {ratio:.2f}x the trailing median {median:.0f}: an implausible "
        f"{'drop' if ratio < 1 else 'spike'}",
    )


@dg.asset_check(asset=SESSIONS, partitions_def=daily_partitions, description="No two sessions share a session_id.")
def session_ids_unique(user_sessions: LakeTable, duckdb: DuckDBEngine) -> dg.AssetCheckResult:
    repeated = duckdb.fetch_one(
        "SELECT count(*) - count(DISTINCT session_id) FROM user_sessions", {"user_sessions": user_sessions}
    )[0]
    return dg.AssetCheckResult(passed=repeated == 0, metadata={"repeated_ids": repeated})


@dg.asset_check(
    asset=SESSIONS, partitions_def=daily_partitions, description="Every session ends at or after its start."
)
def session_durations_non_negative(user_sessions: LakeTable, duckdb: DuckDBEngine) -> dg.AssetCheckResult:
    negative = duckdb.fetch_one(
        "SELECT count(*) FILTER (WHERE duration_seconds < 0 OR session_end < session_start) FROM user_sessions",
        {"user_sessions": user_sessions},
    )[0]
    return dg.AssetCheckResult(passed=negative == 0, metadata={"negative_durations": negative})


@dg.asset_check(
    asset=SESSIONS,
    partitions_def=daily_partitions,
    additional_ins={"app_events": dg.AssetIn()},
    description="Sessions account for every kept event of the day: sum(event_count) = rows(app_events).",
)
def sessions_cover_events(user_sessions: LakeTable, app_events: LakeTable, duckdb: DuckDBEngine) -> dg.AssetCheckResult:
    in_sessions = duckdb.fetch_one(
        "SELECT coalesce(sum(event_count), 0) FROM user_sessions", {"user_sessions": user_sessions}
    )[0]
    events = app_events.row_count()
    return dg.AssetCheckResult(
        passed=int(in_sessions) == events, metadata={"events_in_sessions": int(in_sessions), "events": events}
    )

"""`user_sessions`: each day's events cut into sessions by inactivity (rules in `transforms.user_sessions`)."""

import dagster as dg
from pydantic import Field

from tvtime_platform.assets import derived_day_table
from tvtime_platform.assets.set_based import EngineConfig, run_plan
from tvtime_platform.resources.duckdb_engine import DuckDBEngine
from tvtime_platform.resources.lake import Lake, LakeTable
from tvtime_platform.resources.spark import SparkJobs
from tvtime_platform.transforms.user_sessions import DEFAULT_GAP_SECONDS, user_sessions_plan


class SessionsConfig(EngineConfig):
    gap_minutes: float = Field(default=DEFAULT_GAP_SECONDS / 60, gt=0, description="inactivity that ends a session, in minutes")


@dg.asset(**derived_day_table("activity"))
def user_sessions(context: dg.AssetExecutionContext, config: SessionsConfig, app_events: LakeTable, duckdb: DuckDBEngine,
                  spark: SparkJobs, lake_storage: Lake):
    """One row per session: start, end, duration, events, episodes watched, platform and country."""
    plan = user_sessions_plan(round(config.gap_minutes * 60))
    result = run_plan(context, config, plan, {"app_events": app_events}, duckdb, spark, lake_storage)
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

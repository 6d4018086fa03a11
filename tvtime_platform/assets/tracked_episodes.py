"""`tracked_episodes`: episode_watched events joined to the catalog, one row per user, episode and day."""

import dagster as dg

from tvtime_platform.assets import derived_day_table
from tvtime_platform.assets.set_based import EngineConfig, run_plan
from tvtime_platform.resources.duckdb_engine import DuckDBEngine
from tvtime_platform.resources.lake import Lake, LakeTable
from tvtime_platform.resources.spark import SparkJobs
from tvtime_platform.transforms.tracked_episodes import tracked_episodes_plan


@dg.asset(**derived_day_table("activity"))
def tracked_episodes(context: dg.AssetExecutionContext, config: EngineConfig, app_events: LakeTable, show_catalog: LakeTable,
                     duckdb: DuckDBEngine, spark: SparkJobs, lake_storage: Lake):
    """Who watched which episode that day; episodes unknown to the catalog are kept and flagged."""
    result = run_plan(context, config, tracked_episodes_plan(), {"app_events": app_events, "show_catalog": show_catalog},
                      duckdb, spark, lake_storage)
    users, shows, orphans = result.facts["summary"][0]
    metadata = {"distinct_users": users, "distinct_shows": shows, "not_in_catalog": orphans, **result.metadata}
    # Launching Pipes makes Dagster expect explicit outputs, so the value comes wrapped.
    return dg.Output(result.outputs["tracked_episodes"], metadata=metadata)

"""Warehouse marts: `daily_active_users` and `show_popularity`, small daily tables for analysts.

They are computed in DuckDB over the lake and handed to the warehouse IO manager as pandas frames
(at most a row per show, or per platform and country, a day), which replaces the day's rows in the
warehouse table.
"""

import datetime as dt

import dagster as dg
import pandas as pd

from tvtime_platform.automation.conditions import follow_upstream
from tvtime_platform.partitions import daily_partitions
from tvtime_platform.resources.duckdb_engine import DuckDBEngine
from tvtime_platform.resources.lake import LakeTable
from tvtime_platform.transforms.marts import daily_active_users_sql, show_popularity_sql

MART = dict(
    io_manager_key="warehouse",
    partitions_def=daily_partitions,
    group_name="marts",
    kinds={"duckdb", "table"},
    owners=["team:analytics"],
    code_version="1",
    metadata={"partition_expr": "dt"},
    automation_condition=follow_upstream(),
    # Analysts read the marts in the morning: by 06:00 UTC each must have been refreshed within the last day.
    freshness_policy=dg.FreshnessPolicy.cron(deadline_cron="0 6 * * *", lower_bound_delta=dt.timedelta(hours=24)),
)


@dg.asset(**MART)
def daily_active_users(context: dg.AssetExecutionContext, app_events: LakeTable, user_sessions: LakeTable, duckdb: DuckDBEngine) -> pd.DataFrame:
    """Active users, events and sessions per platform and country for the day."""
    day = dt.date.fromisoformat(context.partition_key)
    frame = duckdb.frame(daily_active_users_sql(day, app_events.sql(), user_sessions.sql()))
    context.add_output_metadata({"dagster/row_count": len(frame), "events": int(frame["events"].sum())})
    return frame


@dg.asset(**MART)
def show_popularity(
    context: dg.AssetExecutionContext, tracked_episodes: LakeTable, app_events: LakeTable, show_catalog: LakeTable, duckdb: DuckDBEngine
) -> pd.DataFrame:
    """Viewers, episodes tracked and new followers per show for the day, ranked by viewers."""
    day = dt.date.fromisoformat(context.partition_key)
    frame = duckdb.frame(show_popularity_sql(day, tracked_episodes.sql(), app_events.sql(), show_catalog.sql()))
    top = frame.head(10)[["rank_by_viewers", "title", "viewers"]]
    context.add_output_metadata({"dagster/row_count": len(frame), "top_shows": dg.MetadataValue.md(top.to_markdown(index=False) if len(top) else "none")})
    return frame

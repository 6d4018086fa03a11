"""`user_sessions`: each day's events cut into sessions by inactivity (rules in `transforms.user_sessions`)."""

import dagster as dg
import duckdb as duckdb_api
from pydantic import Field

from tvtime_platform.assets import derived_day_table
from tvtime_platform.resources.duckdb_engine import DuckDBEngine
from tvtime_platform.resources.lake import LakeTable
from tvtime_platform.transforms.user_sessions import DEFAULT_GAP_SECONDS, sessionize_sql


class SessionsConfig(dg.Config):
    gap_minutes: float = Field(default=DEFAULT_GAP_SECONDS / 60, gt=0, description="inactivity that ends a session, in minutes")


@dg.asset(**derived_day_table("activity"))
def user_sessions(context: dg.AssetExecutionContext, config: SessionsConfig, app_events: LakeTable, duckdb: DuckDBEngine) -> duckdb_api.DuckDBPyRelation:
    """One row per session: start, end, duration, events, episodes watched, platform and country."""
    con = duckdb.connect()
    con.execute(f"CREATE TEMP TABLE sessions AS {sessionize_sql(app_events.sql(), round(config.gap_minutes * 60))}")
    sessions, users, events, median = con.execute(
        "SELECT count(*), count(DISTINCT user_id), coalesce(sum(event_count), 0), median(duration_seconds) FROM sessions"
    ).fetchall()[0]
    context.add_output_metadata({
        "distinct_users": users,
        "events": int(events),
        "median_duration_seconds": float(median or 0.0),
        "gap_minutes": config.gap_minutes,
    })
    return con.table("sessions")

"""`tracked_episodes`: episode_watched events joined to the catalog, one row per user, episode and day."""

import dagster as dg
import duckdb as duckdb_api

from tvtime_platform.assets import derived_day_table
from tvtime_platform.resources.duckdb_engine import DuckDBEngine
from tvtime_platform.resources.lake import LakeTable
from tvtime_platform.transforms.tracked_episodes import tracked_episodes_sql


@dg.asset(**derived_day_table("activity"))
def tracked_episodes(context: dg.AssetExecutionContext, app_events: LakeTable, show_catalog: LakeTable, duckdb: DuckDBEngine) -> duckdb_api.DuckDBPyRelation:
    """Who watched which episode that day; episodes unknown to the catalog are kept and flagged."""
    con = duckdb.connect()
    con.execute(f"CREATE TEMP TABLE tracked AS {tracked_episodes_sql(app_events.sql(), show_catalog.sql())}")
    users, shows, orphans = con.execute("SELECT count(DISTINCT user_id), count(DISTINCT show_id), count(*) FILTER (WHERE NOT in_catalog) FROM tracked").fetchall()[0]
    context.add_output_metadata({"distinct_users": users, "distinct_shows": shows, "not_in_catalog": orphans})
    return con.table("tracked")

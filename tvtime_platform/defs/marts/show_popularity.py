"""`show_popularity`: each show's viewers and rank for the day, staged, audited and published to the warehouse."""

import dagster as dg
import duckdb as duckdb_api

from tvtime_platform.lib.write_audit_publish import Publication, mart_definitions, sql_build
from tvtime_platform.transforms.marts import SHOW_POPULARITY, show_popularity_sql

INPUTS = ("tracked_episodes", "app_events", "show_catalog")


def _summary(con: duckdb_api.DuckDBPyConnection, day_table: str) -> dict:
    top = con.execute(
        f"SELECT rank_by_viewers, title, viewers FROM {day_table} ORDER BY rank_by_viewers, show_id LIMIT 10"
    ).fetchall()
    rows = "\n".join(f"| {rank} | {title} | {viewers} |" for rank, title, viewers in top)
    return {"top_shows": dg.MetadataValue.md(f"| rank | title | viewers |\n|---|---|---|\n{rows}" if top else "none")}


PUBLICATION = Publication(SHOW_POPULARITY)
defs = mart_definitions(PUBLICATION, INPUTS, sql_build(show_popularity_sql, INPUTS), _summary, __file__)

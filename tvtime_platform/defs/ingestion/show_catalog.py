"""`show_catalog`: shows, seasons and episodes from the landing zone, one row per episode, in the lake."""

import dagster as dg
import duckdb as duckdb_api

from tvtime_platform.lib.attributes import SERVICE_RETRIES, column_schema, role
from tvtime_platform.lib.failures import deterministic_failures_not_retried
from tvtime_platform.resources.duckdb_engine import DuckDBEngine
from tvtime_platform.resources.landing import LandingZone
from tvtime_platform.transforms.show_catalog import (
    CATALOG_FILES,
    SHOW_CATALOG_COLUMNS,
    SHOW_CATALOG_SQL,
    broken_rows_sql,
    show_catalog_params,
)


@dg.asset(
    io_manager_key="lake",
    group_name="ingestion",
    tags=role("lake"),
    code_version="1",
    retry_policy=SERVICE_RETRIES,
    metadata=column_schema(SHOW_CATALOG_COLUMNS),
)
def show_catalog(
    context: dg.AssetExecutionContext, landing: LandingZone, duckdb: DuckDBEngine
) -> duckdb_api.DuckDBPyRelation:
    """Every episode with its season and show; `tracked_episodes` and the marts join to it."""
    with deterministic_failures_not_retried():
        folder = landing.catalog_url()
        present = landing.catalog_files()
        missing = [name for name in CATALOG_FILES if name not in present]
        if missing:
            raise dg.Failure(
                f"Show catalog incomplete: {', '.join(missing)} not found in {folder}. "
                "Land the catalog export there (or run `tvtime generate`).",
                allow_retries=False,
            )
        con = duckdb.connect()
        con.execute(f"CREATE TEMP TABLE catalog AS {SHOW_CATALOG_SQL}", show_catalog_params(folder))
        broken = con.execute(broken_rows_sql("catalog")).df().iloc[0].to_dict()
        if any(broken.values()):
            raise dg.Failure(
                f"Show catalog in {folder} is inconsistent: {broken}. Fix the export; joins would be wrong.",
                metadata={k: int(v) for k, v in broken.items()},
                allow_retries=False,
            )
        shows, episodes = con.execute("SELECT count(DISTINCT show_id), count(*) FROM catalog").fetchall()[0]
        context.add_output_metadata({"shows": shows, "episodes": episodes})
        return con.table("catalog")

"""Warehouse marts, `daily_active_users` and `show_popularity`, published by write-audit-publish.

Each mart is two assets and its audits:
- `<mart>_staged` computes the day in DuckDB from the lake, writes it to the lake as Parquet and
  loads those files into the day's staging table in the warehouse;
- blocking audit checks on it (`tvtime_platform.checks.marts`) judge the staging table;
- `<mart>` swaps the staged day into the published table, keeping the previous version as backup.
A failing audit stops the run before `<mart>`, and automation does not publish it either, so
analysts keep the last good table.
"""


import datetime as dt
from collections.abc import Callable

import dagster as dg
import duckdb as duckdb_api

from tvtime_platform.assets import LAKE_KINDS, SERVICE_RETRIES, WAREHOUSE_KINDS
from tvtime_platform.automation.conditions import follow_upstream
from tvtime_platform.partitions import daily_partitions
from tvtime_platform.resources.duckdb_engine import DuckDBEngine
from tvtime_platform.resources.lake import Lake, LakeTable, create_views
from tvtime_platform.resources.warehouse import Audit, Warehouse
from tvtime_platform.transforms.marts import DAILY_ACTIVE_USERS, SHOW_POPULARITY, MartTable, daily_active_users_sql, show_popularity_sql

# Concurrency pools (the old Airflow pools), limited by the instance: loads into the warehouse's
# staging tables, and publications, which rebuild a table and so must not overlap (one at a time).
LOAD_POOL, PUBLISH_POOL = "warehouse_load", "warehouse_publish"
# Analysts read the marts in the morning: by 06:00 UTC each must have been refreshed within the last day.
MORNING = dg.FreshnessPolicy.cron(deadline_cron="0 6 * * *", lower_bound_delta=dt.timedelta(hours=24))


def staged_key(mart: MartTable) -> dg.AssetKey:
    return dg.AssetKey(f"{mart.name}_staged")


def audit_staged_day(mart: MartTable, partition: str, lake_storage: Lake, warehouse: Warehouse) -> tuple[int, Audit]:
    """The day's staging table audited against the rows its lake files hold; those rows, and the audit."""
    lake_rows = LakeTable((lake_storage.folder(staged_key(mart), partition),), False).row_count()
    return lake_rows, warehouse.audit(mart, partition, lake_rows)


# How a mart's day is computed: from a connection, the day and the input tables, a relation of its rows.
Build = Callable[[duckdb_api.DuckDBPyConnection, dt.date, dict[str, LakeTable]], duckdb_api.DuckDBPyRelation]


def sql_build(day_sql: Callable[..., str], inputs: tuple[str, ...]) -> Build:
    """A mart computed by one query, `day_sql(*input names)` with the day bound to `$day`, each input a view of that name."""
    def build(con: duckdb_api.DuckDBPyConnection, day: dt.date, tables: dict[str, LakeTable]) -> duckdb_api.DuckDBPyRelation:
        create_views(con, {name: tables[name] for name in inputs})
        return con.sql(day_sql(*inputs), params={"day": day.isoformat()})
    return build


def mart_assets(mart: MartTable, inputs: tuple[str, ...], build: Build, summary: Callable[[duckdb_api.DuckDBPyConnection, str], dict],
                group: str = "marts", owners: tuple[str, ...] = ("team:analytics",)) -> list[dg.AssetsDefinition]:
    """The staged and published assets of a mart whose day `build` computes from the `inputs` lake tables."""

    @dg.asset(
        key=staged_key(mart),
        ins={name: dg.AssetIn(input_manager_key="lake") for name in inputs},
        partitions_def=daily_partitions,
        group_name=group,
        kinds=LAKE_KINDS,
        owners=list(owners),
        code_version="1",
        automation_condition=follow_upstream(),
        retry_policy=SERVICE_RETRIES,
        pool=LOAD_POOL,
        description=f"A day of {mart.name}, in the lake and in its warehouse staging table, awaiting audit.",
    )
    def staged(context: dg.AssetExecutionContext, duckdb: DuckDBEngine, lake_storage: Lake, warehouse: Warehouse,
               **tables: LakeTable) -> dg.MaterializeResult:
        day = dt.date.fromisoformat(context.partition_key)
        con = duckdb.connect()
        build(con, day, tables).create_view("day_rows")
        relation = con.sql(mart.typed_sql("SELECT * FROM day_rows"))
        written = lake_storage.write(relation, context.asset_key, context.partition_key)
        day_files = LakeTable((lake_storage.folder(context.asset_key, context.partition_key),), False)
        load = warehouse.load_stage(mart, context.partition_key, day_files.files(), lake_storage.url)
        if load.rejected:
            context.log.error(f"{load.rejected} row(s) of {mart.name} rejected by the warehouse: {load.errors}")
        day_files.view(con, "written_day")
        return dg.MaterializeResult(metadata={**written, **load.metadata(), **summary(con, "written_day")})

    @dg.asset(
        name=mart.name,
        deps=[staged],
        partitions_def=daily_partitions,
        group_name=group,
        kinds=WAREHOUSE_KINDS,
        owners=list(owners),
        code_version="1",
        pool=PUBLISH_POOL,
        automation_condition=follow_upstream(),
        retry_policy=SERVICE_RETRIES,
        freshness_policy=MORNING,
        description=f"The published {mart.name} table analysts query; the previous version is kept as {mart.name}__backup.",
    )
    def published(context: dg.AssetExecutionContext, warehouse: Warehouse, lake_storage: Lake) -> dg.MaterializeResult:
        # The audits ran as blocking checks; they are repeated here so that no way of launching this
        # asset (a hand-picked selection, say) can publish a day that would fail them.
        _, audit = audit_staged_day(mart, context.partition_key, lake_storage, warehouse)
        if not audit.passed:
            raise dg.Failure(f"Not publishing {mart.name} for {context.partition_key}: the staging table fails its audit "
                             f"({audit.failures()}); the published table is unchanged.", metadata=audit.counts, allow_retries=False)
        return dg.MaterializeResult(metadata=warehouse.publish(mart, context.partition_key))

    return [staged, published]


def _active_users_summary(con: duckdb_api.DuckDBPyConnection, day_table: str) -> dict:
    users, events = con.execute(f"SELECT sum(active_users), sum(events) FROM {day_table}").fetchall()[0]
    return {"active_users_summed_over_platforms": int(users or 0), "events": int(events or 0)}


def _popularity_summary(con: duckdb_api.DuckDBPyConnection, day_table: str) -> dict:
    top = con.execute(f"SELECT rank_by_viewers, title, viewers FROM {day_table} ORDER BY rank_by_viewers, show_id LIMIT 10").fetchall()
    rows = "\n".join(f"| {rank} | {title} | {viewers} |" for rank, title, viewers in top)
    return {"top_shows": dg.MetadataValue.md(f"| rank | title | viewers |\n|---|---|---|\n{rows}" if top else "none")}


DAU_INPUTS, POPULARITY_INPUTS = ("app_events", "user_sessions"), ("tracked_episodes", "app_events", "show_catalog")
daily_active_users_assets = mart_assets(DAILY_ACTIVE_USERS, DAU_INPUTS, sql_build(daily_active_users_sql, DAU_INPUTS), _active_users_summary)
show_popularity_assets = mart_assets(SHOW_POPULARITY, POPULARITY_INPUTS, sql_build(show_popularity_sql, POPULARITY_INPUTS), _popularity_summary)

"""Write-audit-publish: how a warehouse table (the marts, the recommendations) is published, day by day.

Each table is two assets and an audit, built by `mart_definitions` from its `MartTable` declaration:
- `<mart>_staged` computes the day in DuckDB from the lake, writes it to the lake as Parquet and
  loads those files into the day's staging table in the warehouse;
- the blocking check `staging_table_passes_audit` on it judges the staging table;
- `<mart>` swaps the staged day into the published table, keeping the previous version as backup.
A failing audit stops the run before `<mart>`, and automation does not publish it either, so
analysts keep the last good table.
"""

import datetime as dt
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg
import duckdb as duckdb_api

from tvtime_platform.lake import Lake, LakeTable, Version, create_views
from tvtime_platform.lib.attributes import SERVICE_RETRIES, column_schema, declared_columns, role
from tvtime_platform.lib.conditions import follow_upstream
from tvtime_platform.lib.failures import deterministic_failures_not_retried
from tvtime_platform.lib.partitions import daily_partitions, run_day
from tvtime_platform.resources.duckdb_engine import DuckDBEngine
from tvtime_platform.resources.warehouse import Audit, Load, Warehouse
from tvtime_platform.transforms.marts import MartTable

# Concurrency pools (the old Airflow pools), limited by the instance: loads into the warehouse's
# staging tables, and publications, which rebuild a table and so must not overlap (one at a time).
LOAD_POOL, PUBLISH_POOL = "warehouse_load", "warehouse_publish"
# Analysts read the marts in the morning: by 06:00 UTC each must have been refreshed within the last day.
MORNING = dg.FreshnessPolicy.cron(deadline_cron="0 6 * * *", lower_bound_delta=dt.timedelta(hours=24))


def staged_key(mart: MartTable) -> dg.AssetKey:
    return dg.AssetKey(f"{mart.name}_staged")


# How a mart's day is computed: from a connection, the day and the input tables, a relation of its rows.
Build = Callable[[duckdb_api.DuckDBPyConnection, dt.date, dict[str, LakeTable]], duckdb_api.DuckDBPyRelation]
# Rules a day's rows must keep that need more than the row (the viewer's history, say): from a connection holding the
# view `day_rows` (the staged day, from its lake files) and the publication's rule tables (their day), a count per rule
# (all must be zero).
LakeRules = Callable[[duckdb_api.DuckDBPyConnection, dict[str, LakeTable]], dict[str, int]]


@dataclass(frozen=True)
class Publication:
    """A warehouse table published by write-audit-publish: its declaration, and the rules its rows must keep against
    lake tables of the same day (`rule_tables`, read by the audit and the publish step's repeat of it)."""

    mart: MartTable
    rule_tables: tuple[str, ...] = ()
    lake_rules: LakeRules | None = None


# Every mart's publication, by its published table's key, as `mart_definitions` made them (the definitions import every
# mart's module): what `rebuild_warehouse` publishes again.
PUBLICATIONS: dict[dg.AssetKey, Publication] = {}


def staged_version(lake_storage: Lake, publication: Publication, partition: str) -> Version:
    """The staged day's committed version; a failure says to stage it if there is none (or none with a staging table:
    written before versions)."""
    version = lake_storage.current_version(staged_key(publication.mart), partition)
    if version is None:
        name = staged_key(publication.mart).to_user_string()
        raise dg.Failure(
            f"{name} has no staged version for {partition} in the lake; materialize {name} for that day first.",
            allow_retries=False,
        )
    return version


def audit_staged_day(
    publication: Publication, partition: str, lake_storage: Lake, warehouse: Warehouse, duckdb: DuckDBEngine
) -> tuple[Version, int, Audit]:
    """The staged version of the day: its staging table audited against the rows its lake files hold, and those rows
    against the lake rules; the version, the rows, and the audit."""
    version = staged_version(lake_storage, publication, partition)
    day_files = lake_storage.version_table(version, partitioned=False)  # the rows carry their day
    lake_rows = day_files.row_count()
    audit = warehouse.audit(publication.mart, partition, version.name, lake_rows)
    if publication.lake_rules is None or not lake_rows:
        return version, lake_rows, audit
    con = duckdb.connect()
    day_files.view(con, "day_rows")
    tables = {name: lake_storage.table(dg.AssetKey(name), [partition]) for name in publication.rule_tables}
    return version, lake_rows, Audit({**audit.counts, **publication.lake_rules(con, tables)})


def publish_audited(
    publication: Publication, partition: str, lake_storage: Lake, warehouse: Warehouse, duckdb: DuckDBEngine
) -> dict:
    """Publish the staged version of the day if it passes its audit (repeated here, so that no way of launching a
    publication can publish a day that would fail it); the publication's metadata. One warehouse session for both."""
    mart = publication.mart
    with warehouse.session():
        version, _, audit = audit_staged_day(publication, partition, lake_storage, warehouse, duckdb)
        if not audit.passed:
            raise dg.Failure(
                f"Not publishing {mart.name} for {partition}: the staging table fails its audit ({audit.failures()}); "
                "the published table is unchanged."
                + (
                    f" Re-stage the day ({staged_key(mart).to_user_string()})."
                    if "staging_missing" in audit.counts
                    else ""
                ),
                metadata=audit.counts,
                allow_retries=False,
            )
        return warehouse.publish(mart, partition, version.name) | {"lake_version": version.name}


def refuse_lost_history(context: dg.AssetExecutionContext, warehouse: Warehouse, mart: MartTable) -> None:
    """Fail, naming the command that rebuilds it, when the warehouse lacks days this instance published: its file (or
    database) was lost or replaced, and publishing into it would present one day as the whole table."""
    published = context.instance.get_materialized_partitions(context.asset_key) - {context.partition_key}
    missing = sorted(published - warehouse.published_days(mart))
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise dg.Failure(
            f"The warehouse's {mart.name} lacks {len(missing)} day(s) that were published: {shown}. The warehouse "
            "was lost or replaced; publishing into it would leave a table with holes. Rebuild every published day "
            "from the lake first: `make rebuild-warehouse` (the rebuild_warehouse job).",
            metadata={"days_missing": len(missing)},
            allow_retries=False,
        )


def sql_build(day_sql: Callable[..., str], inputs: tuple[str, ...]) -> Build:
    """A mart computed by one query, `day_sql(*input names)` with the day bound to `$day`, each input a view of that
    name."""

    def build(
        con: duckdb_api.DuckDBPyConnection, day: dt.date, tables: dict[str, LakeTable]
    ) -> duckdb_api.DuckDBPyRelation:
        create_views(con, {name: tables[name] for name in inputs})
        return con.sql(day_sql(*inputs), params={"day": day.isoformat()})

    return build


def declared_in(module_file: str) -> dict:
    """Metadata linking a factory-built asset to the module that declares it (the UI also links the factory)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=dg.BetaWarning)  # code references: Dagster's documented, beta, way
        reference = dg.LocalFileCodeReference(file_path=module_file, line_number=1)
        return {"dagster/code_references": dg.CodeReferencesMetadataValue(code_references=[reference])}


def mart_definitions(
    publication: Publication,
    inputs: tuple[str, ...],
    build: Build,
    summary: Callable[[duckdb_api.DuckDBPyConnection, str], dict],
    declared_in_file: str,
    group: str = "marts",
) -> dg.Definitions:
    """The staged and published assets of a mart whose day `build` computes from the `inputs` lake tables, and its
    audit; `declared_in_file` is the domain module that calls this, which the UI links to."""
    mart = publication.mart
    PUBLICATIONS[dg.AssetKey(mart.name)] = publication

    @dg.asset(
        key=staged_key(mart),
        ins={name: dg.AssetIn(input_manager_key="lake") for name in inputs},
        partitions_def=daily_partitions,
        group_name=group,
        tags=role("lake"),
        code_version="1",
        automation_condition=follow_upstream(),
        retry_policy=SERVICE_RETRIES,
        pool=LOAD_POOL,
        description=f"A day of {mart.name}, in the lake and in its warehouse staging table, awaiting audit.",
        metadata={**declared_in(declared_in_file), **column_schema(mart.described())},
    )
    def staged(
        context: dg.AssetExecutionContext,
        duckdb: DuckDBEngine,
        lake_storage: Lake,
        warehouse: Warehouse,
        **tables: LakeTable,
    ) -> dg.MaterializeResult:
        with deterministic_failures_not_retried():
            day = dt.date.fromisoformat(run_day(context))
            con = duckdb.connect()
            build(con, day, tables).create_view("day_rows")
            relation = con.sql(mart.typed_sql("SELECT * FROM day_rows"))
            loads: list[Load] = []

            def load_staging_table(versions: list[Version]) -> None:  # a committed version always has its staging table
                [staged] = versions
                files = lake_storage.version_table(staged, partitioned=False).files()
                loads.append(warehouse.load_stage(mart, context.partition_key, staged.name, files, lake_storage.url))

            sources, declared = {context.asset_key: relation}, declared_columns(context)
            [version] = lake_storage.replace(context.partition_key, sources, declared, load_staging_table)
            [load] = loads
            if load.rejected:
                context.log.error(f"{load.rejected} row(s) of {mart.name} rejected by the warehouse: {load.errors}")
            lake_storage.version_table(version, partitioned=False).view(con, "written_day")
            return dg.MaterializeResult(metadata={**version.metadata, **load.metadata(), **summary(con, "written_day")})

    @dg.asset(
        name=mart.name,
        deps=[staged],
        partitions_def=daily_partitions,
        group_name=group,
        tags=role("warehouse"),
        code_version="1",
        pool=PUBLISH_POOL,
        automation_condition=follow_upstream(),
        retry_policy=SERVICE_RETRIES,
        freshness_policy=MORNING,
        description=f"The published {mart.name} table analysts query; the version it replaces is kept as a backup.",
        metadata={**declared_in(declared_in_file), **column_schema(mart.described())},
    )
    def published(
        context: dg.AssetExecutionContext, warehouse: Warehouse, lake_storage: Lake, duckdb: DuckDBEngine
    ) -> dg.MaterializeResult:
        with deterministic_failures_not_retried():
            run_day(context)
            refuse_lost_history(context, warehouse, mart)
            return dg.MaterializeResult(
                metadata=publish_audited(publication, context.partition_key, lake_storage, warehouse, duckdb)
            )

    @dg.asset_check(
        asset=staged,
        name="staging_table_passes_audit",
        partitions_def=daily_partitions,
        blocking=True,
        description=f"Blocking: {mart.name}'s staging table has all the day's lake rows (none rejected), "
        f"unique ({', '.join(mart.key)}), and every row keeps: {', '.join(mart.rules)}"
        + (f"; and {publication.lake_rules.__doc__}" if publication.lake_rules else "."),
    )
    def audit(
        context: dg.AssetCheckExecutionContext, warehouse: Warehouse, lake_storage: Lake, duckdb: DuckDBEngine
    ) -> dg.AssetCheckResult:
        _, lake_rows, result = audit_staged_day(publication, run_day(context), lake_storage, warehouse, duckdb)
        return dg.AssetCheckResult(
            passed=result.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=None if result.passed else f"{result.failures()}; {mart.name} stays as published",
            metadata={"lake_rows": lake_rows, **result.counts},
        )

    return dg.Definitions(assets=[staged, published], asset_checks=[audit])

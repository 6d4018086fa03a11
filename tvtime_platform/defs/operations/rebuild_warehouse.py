"""`rebuild_warehouse`: every day the instance has published, published again from the lake into the warehouse.

Run it after the warehouse was lost or replaced (the marts' publication refuses to write into a
warehouse that lacks published days, and names this job). Each day's staged version in the lake is
loaded into its staging table if the warehouse lacks it, audited as a publication is, and published.
"""

import dagster as dg

from tvtime_platform.lake import Lake
from tvtime_platform.lib.write_audit_publish import PUBLICATIONS, PUBLISH_POOL, publish_audited, staged_key
from tvtime_platform.resources.duckdb_engine import DuckDBEngine
from tvtime_platform.resources.warehouse import Warehouse, WarehouseUnusable


@dg.op(out={}, pool=PUBLISH_POOL, description="Publish again, from the lake, every day the instance has published.")
def republish_every_published_day(
    context: dg.OpExecutionContext, warehouse: Warehouse, lake_storage: Lake, duckdb: DuckDBEngine
):
    if not PUBLICATIONS:  # filled as the definitions' mart modules are loaded: never empty in a code location
        raise dg.Failure("No mart's definitions are loaded: run rebuild_warehouse from the code location.")
    refused = []
    for publication in sorted(PUBLICATIONS.values(), key=lambda p: p.mart.name):  # every mart the definitions make
        mart = publication.mart
        days = sorted(context.instance.get_materialized_partitions(dg.AssetKey(mart.name)))
        for day in days:
            version = lake_storage.current_version(staged_key(mart), day)
            if version is None:
                refused.append(f"{mart.name} {day}: no staged version in the lake")
                continue
            try:
                with warehouse.session():  # the warehouse opened once for the day's load, audit and publication
                    if not warehouse.has_table(warehouse.staging_table(mart, day, version.name)):
                        files = lake_storage.version_table(version).files()
                        warehouse.load_stage(mart, day, version.name, files, lake_storage.url)
                    metadata = publish_audited(publication, day, lake_storage, warehouse, duckdb)
            except WarehouseUnusable:  # the whole warehouse, not this day: what to do about it, once
                raise
            except dg.Failure as failure:
                refused.append(f"{mart.name} {day}: {failure.description}")
                continue
            yield dg.AssetMaterialization(dg.AssetKey(mart.name), partition=day, metadata={**metadata, "rebuilt": True})
        context.log.info(f"{mart.name}: {len(days)} published day(s) gone over")
    if refused:
        raise dg.Failure(
            f"{len(refused)} published day(s) could not be rebuilt: " + "; ".join(refused[:5]),
            metadata={"refused": dg.MetadataValue.json(refused)},
            allow_retries=False,
        )


@dg.job(description="Rebuild the warehouse's marts from the lake: every day this instance has published, again.")
def rebuild_warehouse():
    republish_every_published_day()

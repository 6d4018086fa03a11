"""Audits of the marts' staging tables: blocking, so a day that fails them is never published."""


import dagster as dg

from tvtime_platform.assets.marts import staged_key
from tvtime_platform.partitions import daily_partitions
from tvtime_platform.resources.lake import Lake, LakeTable
from tvtime_platform.resources.warehouse import Warehouse
from tvtime_platform.transforms.marts import DAILY_ACTIVE_USERS, SHOW_POPULARITY, MartTable


def staging_audit(mart: MartTable) -> dg.AssetChecksDefinition:
    """One blocking check: the staging table holds every lake row of the day, no key twice, every rule kept."""

    @dg.asset_check(
        asset=staged_key(mart),
        name="staging_table_passes_audit",
        partitions_def=daily_partitions,
        blocking=True,
        description=f"Blocking: {mart.name}'s staging table has all the day's lake rows (none rejected), "
                    f"unique ({', '.join(mart.key)}), and every row keeps: {', '.join(mart.rules)}.",
    )
    def audit(context: dg.AssetCheckExecutionContext, warehouse: Warehouse, lake_storage: Lake) -> dg.AssetCheckResult:
        partition = context.partition_key
        expected = LakeTable((lake_storage.folder(staged_key(mart), partition),), False).row_count()
        result = warehouse.audit(mart, partition, expected)
        return dg.AssetCheckResult(
            passed=result.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=None if result.passed else f"{result.failures()}; {mart.name} stays as published",
            metadata={"lake_rows": expected, **result.counts},
        )

    return audit


mart_audits = [staging_audit(DAILY_ACTIVE_USERS), staging_audit(SHOW_POPULARITY)]

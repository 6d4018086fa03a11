"""Audits of the marts' staging tables: blocking, so a day that fails them is never published."""

import dagster as dg

from tvtime_platform.assets.marts import audit_staged_day, staged_key
from tvtime_platform.partitions import daily_partitions
from tvtime_platform.resources.lake import Lake
from tvtime_platform.resources.warehouse import Warehouse
from tvtime_platform.transforms.marts import DAILY_ACTIVE_USERS, SHOW_POPULARITY, SHOW_RECOMMENDATIONS, MartTable


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
        lake_rows, result = audit_staged_day(mart, context.partition_key, lake_storage, warehouse)
        return dg.AssetCheckResult(
            passed=result.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=None if result.passed else f"{result.failures()}; {mart.name} stays as published",
            metadata={"lake_rows": lake_rows, **result.counts},
        )

    return audit


mart_audits = [staging_audit(mart) for mart in (DAILY_ACTIVE_USERS, SHOW_POPULARITY, SHOW_RECOMMENDATIONS)]

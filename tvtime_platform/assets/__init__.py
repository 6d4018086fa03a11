"""Assets, one module per table (the marts share one): find a table's code from its name."""

from tvtime_platform.automation.conditions import follow_upstream
from tvtime_platform.partitions import daily_partitions


def derived_day_table(group: str) -> dict:
    """Decorator arguments shared by the day-partitioned lake tables derived from app_events."""
    return dict(
        io_manager_key="lake",
        partitions_def=daily_partitions,
        group_name=group,
        kinds={"duckdb", "parquet"},
        owners=["team:data-engineering"],
        code_version="1",
        automation_condition=follow_upstream(),
    )

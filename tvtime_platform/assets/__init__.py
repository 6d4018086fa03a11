"""Assets, one module per table (the marts share one): find a table's code from its name."""

import dagster as dg

from tvtime_platform.automation.conditions import follow_upstream
from tvtime_platform.partitions import daily_partitions

# Every asset reads or writes a store that can hiccup in staging and prod (S3, Snowflake, AWS Batch):
# a failed step is tried again 3 times, after about 15 s, 30 s and 60 s. Failures that retrying
# cannot mend (no files landed, a failed audit) are raised with `allow_retries=False`.
SERVICE_RETRIES = dg.RetryPolicy(max_retries=3, delay=15, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


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
        retry_policy=SERVICE_RETRIES,
    )

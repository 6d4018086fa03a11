"""Assets, one module per table (the marts share one): find a table's code from its name."""

import dagster as dg

from tvtime_platform.automation.conditions import follow_upstream
from tvtime_platform.partitions import daily_partitions
from tvtime_platform.resources.deployment import deployment, set_based_engine

# Kinds say in the UI what computes a table and where it lives, which depends on the deployment.
CLOUD = deployment() != "local"
LAKE_KINDS = {"duckdb", "parquet", "s3"} if CLOUD else {"duckdb", "parquet"}
# The set-based tables (app_events, user_sessions, tracked_episodes, user_show_interactions): DuckDB or Spark.
SET_BASED_KINDS = LAKE_KINDS - {"duckdb"} | {set_based_engine(deployment())}
WAREHOUSE_KINDS = {"snowflake", "table"} if CLOUD else {"duckdb", "table"}
TRAINING_KINDS = {"python", "aws", "s3"} if CLOUD else {"python", "parquet"}  # the batch image: AWS Batch, or a process

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
        kinds=SET_BASED_KINDS,
        owners=["team:data-engineering"],
        code_version="1",
        automation_condition=follow_upstream(),
        retry_policy=SERVICE_RETRIES,
    )

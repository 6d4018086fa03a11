"""What every asset shares, set once: kinds by role and deployment, owners by group, the retry policy.

An asset declares its role (a tag); `definitions.defs` maps every spec through `shared_attributes`
with the running deployment, so the UI says what computes each table and where it lives there.
"""

from __future__ import annotations

from typing import Literal

import dagster as dg

from tvtime_platform.lake import COLUMN_SCHEMA
from tvtime_platform.lib.conditions import follow_upstream
from tvtime_platform.lib.partitions import daily_partitions
from tvtime_platform.transforms.columns import Columns

ROLE_TAG = "tvtime/role"
# lake: computed in DuckDB, Parquet in the lake; set_based: a plan on DuckDB or Spark, Parquet in the lake;
# warehouse: a published table; training: the batch image's output.
Role = Literal["lake", "set_based", "warehouse", "training"]
LAKE_ROLES = ("lake", "set_based", "training")  # the roles whose tables are in the lake
GROUP_OWNERS = {
    "ingestion": ["team:data-engineering"],
    "activity": ["team:data-engineering"],
    "marts": ["team:analytics"],
    "recommendations": ["team:data-science"],
}

# Every asset reads or writes a store that can hiccup in staging and prod (S3, Snowflake, AWS Batch):
# a failed step is tried again 3 times, after about 15 s, 30 s and 60 s. Failures that retrying
# cannot mend (no files landed, a failed audit) are raised with `allow_retries=False`.
SERVICE_RETRIES = dg.RetryPolicy(max_retries=3, delay=15, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


def column_schema(declared: Columns) -> dict[str, dg.TableSchema]:
    """Definition metadata: the table's columns as the code declares them, so the catalog shows them before a run."""
    return {
        COLUMN_SCHEMA: dg.TableSchema(
            columns=[dg.TableColumn(c.name, c.type, description=c.description) for c in declared]
        )
    }


def declared_columns(context: dg.AssetExecutionContext) -> dict[dg.AssetKey, dg.TableSchema | None]:
    """The columns each asset of the running step declares (its definition metadata), which its lake files are
    described by."""
    return {key: metadata.get(COLUMN_SCHEMA) for key, metadata in context.assets_def.metadata_by_key.items()}


def role(name: Role) -> dict[str, str]:
    """The tags that declare an asset's role."""
    return {ROLE_TAG: name}


def in_the_lake(spec: dg.AssetSpec) -> bool:
    """Whether an asset's table is in the lake, by its role."""
    return spec.tags.get(ROLE_TAG) in LAKE_ROLES


def derived_day_table(group: str) -> dict:
    """Decorator arguments shared by the day-partitioned set-based tables derived from app_events."""
    return dict(
        io_manager_key="lake",
        partitions_def=daily_partitions,
        group_name=group,
        tags=role("set_based"),
        code_version="1",
        automation_condition=follow_upstream(),
        retry_policy=SERVICE_RETRIES,
    )


def kinds(name: Role, cloud: bool, engine: str) -> set[str]:
    """What computes a table of this role and where it lives: locally folders and DuckDB; S3, Snowflake and AWS in the
    cloud."""
    lake = {"parquet", "s3"} if cloud else {"parquet"}
    if name == "lake":
        return lake | {"duckdb"}
    if name == "set_based":
        return lake | ({"duckdb", "spark"} if engine == "auto" else {engine})
    if name == "warehouse":
        return {"snowflake" if cloud else "duckdb", "table"}
    return {"python", "aws", "s3"} if cloud else {"python", "parquet"}  # training: AWS Batch, or a local process


def shared_attributes(spec: dg.AssetSpec, cloud: bool, engine: str) -> dg.AssetSpec:
    """The spec with its role's kinds in this deployment and its group's owners."""
    name = spec.tags.get(ROLE_TAG)
    if name is None or spec.group_name not in GROUP_OWNERS:
        raise ValueError(
            f"asset {spec.key.to_user_string()} needs a role tag ({ROLE_TAG}) and a group of {sorted(GROUP_OWNERS)}"
        )
    return spec.replace_attributes(kinds=kinds(name, cloud, engine), owners=GROUP_OWNERS[spec.group_name])

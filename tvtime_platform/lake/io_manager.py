"""The lake's IO manager: what an asset returns becomes a committed version; what it reads is a `LakeTable`."""

from __future__ import annotations

import dagster as dg
import duckdb

from tvtime_platform.lake.lake import Lake
from tvtime_platform.lake.tables import LakeTable
from tvtime_platform.lake.versions import COLUMN_SCHEMA, StagedFiles


class LakeIOManager(dg.ConfigurableIOManager):
    """Stores the DuckDB relations assets return in the lake, and hands readers a `LakeTable`."""

    lake: Lake

    def handle_output(self, context: dg.OutputContext, obj: duckdb.DuckDBPyRelation | StagedFiles) -> None:
        declared = {context.asset_key: context.definition_metadata.get(COLUMN_SCHEMA)}
        [version] = self.lake.replace(_single_partition(context), {context.asset_key: obj}, declared)
        context.log.info(version.summary())
        context.add_output_metadata(version.metadata)

    def load_input(self, context: dg.InputContext) -> LakeTable:
        partitions = context.asset_partition_keys if context.has_asset_partitions else [None]
        return self.lake.table(context.asset_key, partitions)


def _single_partition(context: dg.OutputContext) -> str | None:
    if not context.has_asset_partitions:
        return None
    keys = context.asset_partition_keys
    if len(keys) != 1:
        raise dg.Failure(
            f"{context.asset_key.to_user_string()}: one partition per run is supported, got {len(keys)}; "
            "backfill with one run per partition",
            allow_retries=False,
        )
    return keys[0]

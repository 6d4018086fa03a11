"""The lake: hive-style Parquet tables in a folder, `<base>/<asset>/dt=YYYY-MM-DD/*.parquet`.

Assets hand the IO manager a DuckDB relation and get back a `LakeTable` naming the files to read,
so a day's data streams from Parquet to Parquet inside DuckDB and never passes through pandas.
A partition is written beside the old one and swapped in, so re-materializing a day replaces it
exactly and readers never see half a day.
"""

from __future__ import annotations

import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq
from pydantic import Field

PARTITION_COLUMN = "dt"


@dataclass(frozen=True)
class LakeTable:
    """Some partitions of a lake table (all of it, if unpartitioned), ready to scan in DuckDB."""

    folders: tuple[str, ...]
    partitioned: bool

    def sql(self) -> str:
        """A table expression over the Parquet files; in a partitioned table the day is the `dt` column."""
        globs = ", ".join(f"'{folder}/*.parquet'" for folder in self.folders)
        if not self.partitioned:
            return f"read_parquet([{globs}])"
        return f"read_parquet([{globs}], hive_partitioning = true, hive_types = {{'{PARTITION_COLUMN}': DATE}})"

    def row_count(self) -> int:
        """Rows from the Parquet footers alone, without reading data."""
        return sum(pq.read_metadata(f).num_rows for folder in self.folders for f in sorted(Path(folder).glob("*.parquet")))


class Lake(dg.ConfigurableResource):
    """The lake's folder: where each asset's partitions live, and how a partition is replaced."""

    base_dir: str = Field(description="root folder of the lake")
    compression: str = Field(default="zstd", description="Parquet compression codec")

    def folder(self, asset_key: dg.AssetKey, partition_key: str | None) -> Path:
        table = Path(self.base_dir, *asset_key.path)
        return table / f"{PARTITION_COLUMN}={partition_key}" if partition_key else table

    def write(self, relation: duckdb.DuckDBPyRelation, asset_key: dg.AssetKey, partition: str | None) -> dict[str, dg.MetadataValue]:
        """Write a relation as the asset's partition, replacing it whole; returns the metadata to report."""
        target = self.folder(asset_key, partition)
        staging = target.with_name(f".{target.name}.staging-{uuid.uuid4().hex}")
        staging.mkdir(parents=True)
        began = time.perf_counter()
        try:
            relation.to_parquet(str(staging / "part-0.parquet"), compression=self.compression)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _swap_in(staging, target)
        written = next(target.glob("*.parquet"))
        meta = pq.read_metadata(written)
        return {
            "dagster/row_count": dg.MetadataValue.int(meta.num_rows),
            "bytes": dg.MetadataValue.int(written.stat().st_size),
            "write_seconds": dg.MetadataValue.float(round(time.perf_counter() - began, 3)),
            "path": dg.MetadataValue.path(str(target)),
            "dagster/column_schema": dg.MetadataValue.table_schema(
                dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in meta.schema.to_arrow_schema()])
            ),
        }


class LakeIOManager(dg.ConfigurableIOManager):
    """Stores the DuckDB relations assets return in the lake, and hands readers a `LakeTable`."""

    lake: Lake

    def handle_output(self, context: dg.OutputContext, obj: duckdb.DuckDBPyRelation) -> None:
        if not isinstance(obj, duckdb.DuckDBPyRelation):
            raise TypeError(f"{context.asset_key.to_user_string()} returned {type(obj).__name__}; lake assets return a DuckDB relation")
        context.add_output_metadata(self.lake.write(obj, context.asset_key, _single_partition(context)))

    def load_input(self, context: dg.InputContext) -> LakeTable:
        key = context.asset_key
        partitions = context.asset_partition_keys if context.has_asset_partitions else [None]
        folders = [self.lake.folder(key, p) for p in partitions]
        missing = [str(f) for f in folders if not f.is_dir()]
        if missing:
            raise dg.Failure(
                f"Lake table {key.to_user_string()} is missing {len(missing)} partition folder(s), first {missing[0]}. "
                f"Materialize {key.to_user_string()} for those partitions first."
            )
        return LakeTable(tuple(str(f) for f in folders), context.has_asset_partitions)


def _single_partition(context: dg.OutputContext) -> str | None:
    if not context.has_asset_partitions:
        return None
    keys = context.asset_partition_keys
    if len(keys) != 1:
        raise dg.Failure(f"{context.asset_key.to_user_string()}: one partition per run is supported, got {len(keys)}; backfill with one run per partition")
    return keys[0]


def _swap_in(staging: Path, target: Path) -> None:
    """Replace `target` by `staging` with two renames; the old copy is removed only once the new one is in place."""
    retired = target.with_name(f".{target.name}.retired-{uuid.uuid4().hex}")
    if target.exists():
        target.rename(retired)
    staging.rename(target)
    shutil.rmtree(retired, ignore_errors=True)

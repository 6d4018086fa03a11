"""The lake: hive-style Parquet tables under one URL, `<lake>/<asset>/dt=YYYY-MM-DD/*.parquet`.

The lake is a local folder (`data/lake`) or an S3 prefix (`s3://bucket/lake`); both behave the same.
Assets hand the IO manager a DuckDB relation (or `StagedFiles`, the Parquet files a Spark job
wrote) and get back a `LakeTable` naming the files to read, so a day's data streams from Parquet
to Parquet and never passes through pandas.
Re-materializing a day replaces it exactly. In a folder the new partition is written beside the
old one and swapped in with renames, so readers never see half a day; S3 has no rename, so the new
file is uploaded first and the old ones deleted after it (a reader listing in between sees both).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem
from pydantic import Field

from tvtime_platform.resources.storage import filesystem, full_url, is_remote, join

PARTITION_COLUMN = "dt"


def parquet_files(fs: AbstractFileSystem, folder: str) -> list[str]:
    """The Parquet files directly in a folder, sorted: listed, not globbed, so a folder named with `[`, `*` or `?` is
    the folder it names."""
    try:
        entries = fs.ls(folder, detail=True)
    except FileNotFoundError:
        return []
    return sorted(e["name"] for e in entries if e["type"] == "file" and e["name"].endswith(".parquet"))


@dataclass(frozen=True)
class LakeTable:
    """Some partitions of a lake table (all of it, if unpartitioned), ready to scan in DuckDB."""

    folders: tuple[str, ...]
    partitioned: bool

    def relation(self, con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyRelation:
        """A relation over the Parquet files, listed and passed to DuckDB as a bound list (no path is spliced into SQL);
        in a partitioned table the day is the `dt` column."""
        hive = f", hive_partitioning = true, hive_types = {{'{PARTITION_COLUMN}': DATE}}" if self.partitioned else ""
        return con.sql(f"SELECT * FROM read_parquet($files{hive})", params={"files": self.files()})

    def view(self, con: duckdb.DuckDBPyConnection, name: str) -> None:
        """The files as a view `name` on `con`, for SQL to read by that name."""
        self.relation(con).create_view(name)

    def files(self) -> list[str]:
        """Every Parquet file of these partitions, as URLs."""
        found = []
        for folder in self.folders:
            fs, path = filesystem(folder)
            found += [full_url(fs, f) for f in parquet_files(fs, path)]
        return found

    def spark_input(self, table_url: str) -> dict:
        """How a Spark job reads these partitions (`spark_jobs/plan_runner.py`): `dt` comes from the folder names."""
        return {"format": "parquet", "paths": list(self.folders), "base_path": table_url}

    def row_count(self) -> int:
        """Rows from the Parquet footers alone, without reading data."""
        total = 0
        for url in self.files():
            fs, path = filesystem(url)
            with fs.open(path, "rb") as f:
                total += pq.read_metadata(f).num_rows
        return total


def create_views(con: duckdb.DuckDBPyConnection, tables: dict[str, LakeTable]) -> None:
    """Each lake table as a view of its name on `con`."""
    for name, table in tables.items():
        table.view(con, name)


@dataclass(frozen=True)
class StagedFiles:
    """A folder of Parquet files written outside the lake (by a Spark job) for the IO manager to move into a
    partition."""

    folder: str


class Lake(dg.ConfigurableResource):
    """The lake's root: where each asset's partitions live, and how a partition is replaced."""

    url: str = Field(description="root of the lake: a folder, or an S3 prefix such as s3://bucket/lake")
    compression: str = Field(default="zstd", description="Parquet compression codec")

    def folder(self, asset_key: dg.AssetKey, partition_key: str | None) -> str:
        table = join(self.url, *asset_key.path)
        return join(table, f"{PARTITION_COLUMN}={partition_key}") if partition_key else table

    def partitions_through(self, asset_key: dg.AssetKey, last: str) -> list[str]:
        """The folders of the partitions up to and including `last` (YYYY-MM-DD) that hold files, oldest first."""
        fs, table = filesystem(self.folder(asset_key, None))
        try:
            names = sorted(
                e["name"].rstrip("/").rsplit("/", 1)[-1] for e in fs.ls(table, detail=True) if e["type"] == "directory"
            )
        except FileNotFoundError:
            return []
        days = [n.removeprefix(f"{PARTITION_COLUMN}=") for n in names if n.startswith(f"{PARTITION_COLUMN}=")]
        folders = [self.folder(asset_key, day) for day in days if day <= last]
        return [folder for folder in folders if self.has(folder)]

    def has(self, folder: str) -> bool:
        """Whether a table or partition folder holds any Parquet file."""
        fs, path = filesystem(folder)
        return bool(parquet_files(fs, path))

    def write(
        self, relation: duckdb.DuckDBPyRelation, asset_key: dg.AssetKey, partition: str | None
    ) -> dict[str, dg.MetadataValue]:
        """Write a relation as the asset's partition, replacing it whole; returns the metadata to report."""
        target = self.folder(asset_key, partition)
        began = time.perf_counter()
        if is_remote(target):
            with tempfile.TemporaryDirectory(prefix="tvtime-lake-") as scratch:
                local = Path(scratch, "part.parquet")
                relation.to_parquet(str(local), compression=self.compression)
                metadata = _file_metadata(local)
                _upload_replacing(local, target)
        else:
            metadata = _file_metadata(_write_beside_and_swap(relation, Path(target), self.compression))
        return metadata | {
            "write_seconds": dg.MetadataValue.float(round(time.perf_counter() - began, 3)),
            "path": dg.MetadataValue.path(target),
        }

    def adopt(self, staged: StagedFiles, asset_key: dg.AssetKey, partition: str | None) -> dict[str, dg.MetadataValue]:
        """Move the Parquet files of a staged folder in as the asset's partition, replacing it whole; the folder is
        removed.

        The files are moved, never rewritten: a day Spark wrote is not read back by this process.
        """
        target = self.folder(asset_key, partition)
        fs, folder = filesystem(staged.folder)
        files = sorted(f for f in fs.find(folder) if f.endswith(".parquet"))
        if not files:
            raise dg.Failure(
                f"The job wrote no Parquet file to {staged.folder} for {asset_key.to_user_string()}",
                allow_retries=False,
            )
        began = time.perf_counter()
        if is_remote(target):
            _move_replacing(fs, files, target)
        else:
            _swap_in(Path(target), [Path(f) for f in files])
        fs.rm(folder, recursive=True)
        return _files_metadata(target) | {
            "move_seconds": dg.MetadataValue.float(round(time.perf_counter() - began, 3)),
            "path": dg.MetadataValue.path(target),
        }


def _write_beside_and_swap(relation: duckdb.DuckDBPyRelation, target: Path, compression: str) -> Path:
    """Write into a hidden sibling folder, then swap it in with two renames; returns the written file."""
    staging = target.with_name(f".{target.name}.staging-{uuid.uuid4().hex}")
    staging.mkdir(parents=True)
    try:
        relation.to_parquet(str(staging / "part-0.parquet"), compression=compression)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _swap(staging, target)
    return target / "part-0.parquet"


def _swap_in(target: Path, files: list[Path]) -> None:
    """Move files into a hidden sibling folder (same filesystem: renames), then swap it in."""
    staging = target.with_name(f".{target.name}.staging-{uuid.uuid4().hex}")
    staging.mkdir(parents=True)
    for k, f in enumerate(files):
        f.rename(staging / f"part-{k}.parquet")
    _swap(staging, target)


def _swap(staging: Path, target: Path) -> None:
    """Replace `target` by `staging` with two renames, so readers never see half a partition."""
    retired = target.with_name(f".{target.name}.retired-{uuid.uuid4().hex}")
    if target.exists():
        target.rename(retired)
    staging.rename(target)
    shutil.rmtree(retired, ignore_errors=True)


def _upload_replacing(local: Path, target: str) -> None:
    """Upload a file into an object-store partition, then delete whatever the partition held before."""
    fs, path = filesystem(target)
    new = f"{path}/part-{uuid.uuid4().hex}.parquet"
    fs.put_file(str(local), new)
    old = [f for f in fs.find(path) if f != new]
    if old:
        fs.rm(old)


def _move_replacing(fs, files: list[str], target: str) -> None:
    """Move files into an object-store partition (server-side copies), then delete whatever it held before."""
    _, path = filesystem(target)
    batch = uuid.uuid4().hex
    moved = [f"{path}/part-{batch}-{k}.parquet" for k in range(len(files))]
    for source, destination in zip(files, moved, strict=True):
        fs.mv(source, destination)
    old = [f for f in fs.find(path) if f not in moved]
    if old:
        fs.rm(old)


def _files_metadata(folder: str) -> dict[str, dg.MetadataValue]:
    """Rows, bytes and columns of a partition's files, from their footers."""
    fs, path = filesystem(folder)
    files = parquet_files(fs, path)
    footers = []
    for f in files:
        with fs.open(f, "rb") as handle:
            footers.append(pq.read_metadata(handle))
    return _metadata(footers, sum(fs.size(f) for f in files))


def _file_metadata(written: Path) -> dict[str, dg.MetadataValue]:
    return _metadata([pq.read_metadata(written)], os.path.getsize(written))


def _metadata(footers: list[pq.FileMetaData], size: int) -> dict[str, dg.MetadataValue]:
    return {
        "dagster/row_count": dg.MetadataValue.int(sum(f.num_rows for f in footers)),
        "bytes": dg.MetadataValue.int(size),
        "dagster/column_schema": dg.MetadataValue.table_schema(
            dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in footers[0].schema.to_arrow_schema()])
        ),
    }


class LakeIOManager(dg.ConfigurableIOManager):
    """Stores the DuckDB relations assets return in the lake, and hands readers a `LakeTable`."""

    lake: Lake

    def handle_output(self, context: dg.OutputContext, obj: duckdb.DuckDBPyRelation | StagedFiles) -> None:
        if isinstance(obj, StagedFiles):
            context.add_output_metadata(self.lake.adopt(obj, context.asset_key, _single_partition(context)))
            return
        if not isinstance(obj, duckdb.DuckDBPyRelation):
            raise TypeError(
                f"{context.asset_key.to_user_string()} returned {type(obj).__name__}; "
                "lake assets return a DuckDB relation or StagedFiles"
            )
        context.add_output_metadata(self.lake.write(obj, context.asset_key, _single_partition(context)))

    def load_input(self, context: dg.InputContext) -> LakeTable:
        key = context.asset_key
        partitions = context.asset_partition_keys if context.has_asset_partitions else [None]
        folders = [self.lake.folder(key, p) for p in partitions]
        missing = [f for f in folders if not self.lake.has(f)]
        if missing:
            raise dg.Failure(
                f"Lake table {key.to_user_string()} is missing {len(missing)} partition folder(s), first {missing[0]}. "
                f"Materialize {key.to_user_string()} for those partitions first.",
                allow_retries=False,
            )
        return LakeTable(tuple(folders), context.has_asset_partitions)


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

"""Versions: a table's new files for a partition, written (or moved in) where no reader looks until a commit."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from tvtime_platform.resources.scratch import scratch_folder
from tvtime_platform.resources.storage import filesystem, is_remote, join

# Dagster's name for a partition's rows (`dagster/row_count` is a whole table's).
ROW_COUNT = "dagster/partition_row_count"
COLUMN_SCHEMA = "dagster/column_schema"
VERSION_TIME = "%Y%m%dT%H%M%S%f"


@dataclass(frozen=True)
class StagedFiles:
    """A folder of Parquet files written outside the lake (by a Spark job) for the IO manager to move into a
    partition."""

    folder: str


@dataclass(frozen=True)
class Version:
    """A table's files for a partition as a write stages them (its new files first, then those of the current version it
    keeps), in a version folder no reader looks at until a commit makes them the partition's files."""

    key: dg.AssetKey
    partition: str | None
    files: tuple[str, ...]  # relative to the lake's root
    metadata: dict[str, dg.MetadataValue] = field(default_factory=dict)
    rows_and_bytes: dict[str, tuple[int, int]] = field(default_factory=dict)  # of each file, as staged
    # The footers staging read (of its own files; not of those a caller counted before), for the commit's statistics.
    footers: dict[str, pq.FileMetaData] = field(default_factory=dict, compare=False, repr=False)

    @property
    def name(self) -> str:
        """The version folder's name, `v<UTC time>-<id>`."""
        return version_name(self.files[0])

    @property
    def folder(self) -> str:
        """The version folder (of its own files, which come first), relative to the lake's root: where what a step
        keeps beside a version's files goes."""
        return self.files[0].rsplit("/", 1)[0]

    def summary(self) -> str:
        """What writing it did, for the run's log."""
        rows = self.metadata.get(ROW_COUNT) or self.metadata.get("dagster/row_count")
        seconds = self.metadata.get("write_seconds") or self.metadata.get("move_seconds")
        return (
            f"{self.key.to_user_string()}: {rows.value if rows else '?':,} rows written to version {self.name} in "
            f"{seconds.value if seconds else 0:.1f}s"
        )


def version_time(name: str) -> dt.datetime | None:
    """When a version folder was made, from its name (`v<UTC time>-<id>`); None for any other folder."""
    if not name.startswith("v"):
        return None
    try:
        return dt.datetime.strptime(name[1:].split("-", 1)[0], VERSION_TIME).replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def version_name(file: str) -> str:
    """The version folder a lake file is in."""
    return file.rsplit("/", 2)[-2]


def write_relation(relation: duckdb.DuckDBPyRelation, folder: str, compression: str) -> list[str]:
    target = join(folder, "part-0.parquet")
    if not is_remote(folder):
        Path(folder).mkdir(parents=True)
        relation.to_parquet(target, compression=compression)
        return [target]
    with scratch_folder() as scratch:
        local = str(Path(scratch, "part-0.parquet"))
        relation.to_parquet(local, compression=compression)
        fs, path = filesystem(target)
        fs.put_file(local, path)
    return [target]


def move_staged_in(staged: StagedFiles, folder: str, asset_key: dg.AssetKey) -> list[str]:
    """Move a staged folder's Parquet files into a version folder (renames in a folder, server-side copies on S3)."""
    fs, source = filesystem(staged.folder)
    files = sorted(f for f in fs.find(source) if f.endswith(".parquet"))
    if not files:
        raise dg.Failure(
            f"The job wrote no Parquet file to {staged.folder} for {asset_key.to_user_string()}", allow_retries=False
        )
    moved = [join(folder, f"part-{k}.parquet") for k in range(len(files))]
    if not is_remote(folder):
        Path(folder).mkdir(parents=True)
    for file, destination in zip(files, moved, strict=True):
        fs.mv(file, filesystem(destination)[1])
    fs.rm(source, recursive=True)
    return moved


def count_rows_and_bytes(
    files: list[str], known: Mapping[str, tuple[int, int]]
) -> tuple[dict[str, tuple[int, int]], pa.Schema, dict[str, pq.FileMetaData]]:
    """Each file's rows (from its footer) and bytes (as the open file knows them: asking the store again is a request),
    in order, the `known` ones as given; the columns of the first file, whose footer is always read; and the footers
    read."""
    counted, schema, footers = {}, None, {}
    for url in files:
        if url in known and schema is not None:
            counted[url] = tuple(known[url])
            continue
        fs, path = filesystem(url)
        with fs.open(path, "rb") as handle:
            footer = pq.read_metadata(handle)
            counted[url] = (footer.num_rows, handle.seek(0, os.SEEK_END))
        footers[url] = footer
        schema = schema or footer.schema.to_arrow_schema()
    return counted, schema, footers


def files_metadata(
    counted: Mapping[str, tuple[int, int]], schema: pa.Schema, partitioned: bool, declared: dg.TableSchema | None
) -> dict[str, dg.MetadataValue]:
    """Rows, bytes and columns of a version's files; the columns' types spelled as the declarations spell them
    (DuckDB's names), their descriptions taken from the declaration by name."""
    descriptions = {c.name: c.description for c in (declared.columns if declared else [])}
    return {
        ROW_COUNT if partitioned else "dagster/row_count": dg.MetadataValue.int(sum(r for r, _ in counted.values())),
        "bytes": dg.MetadataValue.int(sum(b for _, b in counted.values())),
        COLUMN_SCHEMA: dg.MetadataValue.table_schema(
            dg.TableSchema(
                columns=[dg.TableColumn(f.name, sql_type(f.type), description=descriptions.get(f.name)) for f in schema]
            )
        ),
    }


# Arrow's types as DuckDB (and the column declarations) spell them; a type not listed keeps Arrow's name.
_SQL_TYPES = {
    pa.bool_(): "BOOLEAN",
    pa.int8(): "TINYINT",
    pa.int16(): "SMALLINT",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.uint8(): "UTINYINT",
    pa.uint16(): "USMALLINT",
    pa.uint32(): "UINTEGER",
    pa.uint64(): "UBIGINT",
    pa.float32(): "FLOAT",
    pa.float64(): "DOUBLE",
    pa.string(): "VARCHAR",
    pa.large_string(): "VARCHAR",
    pa.string_view(): "VARCHAR",
    pa.binary(): "BLOB",
    pa.large_binary(): "BLOB",
    pa.date32(): "DATE",
}


def sql_type(arrow: pa.DataType) -> str:
    """`timestamp[us, tz=UTC]` → `TIMESTAMP WITH TIME ZONE`, `list<item: float>` → `FLOAT[]`, and so on."""
    if arrow in _SQL_TYPES:
        return _SQL_TYPES[arrow]
    if pa.types.is_timestamp(arrow):
        return "TIMESTAMP WITH TIME ZONE" if arrow.tz else "TIMESTAMP"
    if pa.types.is_decimal(arrow):
        return f"DECIMAL({arrow.precision},{arrow.scale})"
    if pa.types.is_list(arrow) or pa.types.is_large_list(arrow):
        return f"{sql_type(arrow.value_type)}[]"
    return str(arrow)

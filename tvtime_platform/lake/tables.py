"""A lake table's current files as a reader gets them: `LakeTable`, ready to scan in DuckDB or Spark."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem

from tvtime_platform.resources.storage import filesystem

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
    """Some partitions of a lake table (all of it, if unpartitioned), as the files their snapshot names, ready to scan
    in DuckDB or Spark. The files are resolved once, when the table is handed out: a reader keeps reading the version it
    was given even if a write commits another meanwhile."""

    urls: tuple[str, ...]
    partitioned: bool
    table_url: str
    rows: tuple[int, ...] | None = None  # each file's rows, as counted when it was staged (None: not known)

    def relation(self, con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyRelation:
        """A relation over the Parquet files, passed to DuckDB as a bound list (no path is spliced into SQL); in a
        partitioned table the day is the `dt` column, from the `dt=` folder of each file."""
        hive = f", hive_partitioning = true, hive_types = {{'{PARTITION_COLUMN}': DATE}}" if self.partitioned else ""
        return con.sql(f"SELECT * FROM read_parquet($files{hive})", params={"files": self.files()})

    def view(self, con: duckdb.DuckDBPyConnection, name: str) -> None:
        """The files as a view `name` on `con`, for SQL to read by that name."""
        self.relation(con).create_view(name)

    def files(self) -> list[str]:
        """Every Parquet file of these partitions, as URLs."""
        return list(self.urls)

    def spark_input(self) -> dict:
        """How a Spark job reads these partitions (`spark_jobs/plan_runner.py`): `dt` comes from the folder names."""
        return {"format": "parquet", "paths": self.files(), "base_path": self.table_url}

    def row_count(self) -> int:
        """Rows as counted when the files were staged (the catalog keeps each file's count), else from the Parquet
        footers alone, without reading data."""
        if self.rows is not None:
            return sum(self.rows)
        total = 0
        for url in self.urls:
            fs, path = filesystem(url)
            with fs.open(path, "rb") as f:
                total += pq.read_metadata(f).num_rows
        return total


def create_views(con: duckdb.DuckDBPyConnection, tables: dict[str, LakeTable]) -> None:
    """Each lake table as a view of its name on `con`."""
    for name, table in tables.items():
        table.view(con, name)

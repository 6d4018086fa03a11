"""The lake: Apache Iceberg tables of Parquet files, partitioned by day, in a catalog any Iceberg reader reads.

What the assets use of it is small: `Lake.table` (the current files of some days, as a `LakeTable` to scan),
`Lake.stage` (a table's new files for a day, seen by no reader yet) and `Lake.commit` (the staged versions of tables
computed together made current, compare-and-swap against what the write read with `Lake.recorded`); the IO manager does
both for an asset that returns its rows. The modules hold the parts: `lake` the resource, `catalog` the Iceberg side,
`tables` what a reader gets, `versions` what a write stages, `commits` what a commit builds on, `io_manager` Dagster's
side, `migration` the move from commit records (docs/lake.md).
"""

from tvtime_platform.lake.commits import LakeDamaged, Recorded, StalePartition
from tvtime_platform.lake.io_manager import LakeIOManager
from tvtime_platform.lake.lake import JOURNAL, Lake
from tvtime_platform.lake.tables import PARTITION_COLUMN, LakeTable, create_views, parquet_files
from tvtime_platform.lake.versions import COLUMN_SCHEMA, ROW_COUNT, StagedFiles, Version

__all__ = [
    "COLUMN_SCHEMA",
    "JOURNAL",
    "PARTITION_COLUMN",
    "ROW_COUNT",
    "Lake",
    "LakeDamaged",
    "LakeIOManager",
    "LakeTable",
    "Recorded",
    "StagedFiles",
    "StalePartition",
    "Version",
    "create_views",
    "parquet_files",
]

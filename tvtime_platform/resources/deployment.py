"""Resources of the local deployment: everything embedded under one data folder, `TVTIME_DATA_DIR`."""

from __future__ import annotations

import os
from pathlib import Path

from dagster_duckdb_pandas import DuckDBPandasIOManager

from tvtime_platform.resources.duckdb_engine import DuckDBEngine
from tvtime_platform.resources.lake import Lake, LakeIOManager
from tvtime_platform.resources.landing import LandingZone

DATA_DIR_VARIABLE = "TVTIME_DATA_DIR"


def data_dir() -> Path:
    """`$TVTIME_DATA_DIR`, default `./data`, as an absolute path (runs may start in other folders)."""
    return Path(os.environ.get(DATA_DIR_VARIABLE) or "data").resolve()


def local_resources(root: Path | None = None) -> dict[str, object]:
    root = root or data_dir()
    lake = Lake(url=str(root / "lake"))
    return {
        "landing": LandingZone(url=str(root / "landing")),
        "lake_storage": lake,
        "lake": LakeIOManager(lake=lake),
        "warehouse": DuckDBPandasIOManager(database=str(root / "warehouse.duckdb"), schema="marts"),
        "duckdb": DuckDBEngine(temp_directory=str(root / "tmp" / "duckdb")),
    }

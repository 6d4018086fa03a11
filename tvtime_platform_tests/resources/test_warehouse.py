"""The DuckDB warehouse: rows that do not fit are counted and block the audit; another process's lock is waited out."""

import subprocess
import sys

import duckdb

from tvtime_platform.resources.warehouse import DuckDBWarehouse
from tvtime_platform.transforms.marts import MartTable

SCORES = MartTable(
    name="scores",
    columns={"dt": "DATE", "team": "VARCHAR", "score": "BIGINT"},
    key=("dt", "team"),
    rules={"score_not_negative": "score >= 0"},
)
VERSION = "v20240301T120000000000-0a1b2c3d"  # a lake version's name


def test_rows_that_do_not_fit_are_rejected_counted_and_fail_the_audit(tmp_path):
    lake_file = tmp_path / "day.parquet"
    duckdb.sql(
        "SELECT DATE '2024-03-01' AS dt, * FROM (VALUES ('a', '3'), ('b', 'many'), ('c', '5')) v(team, score)"
    ).to_parquet(str(lake_file))
    warehouse = DuckDBWarehouse(database=str(tmp_path / "w.duckdb"))
    load = warehouse.load_stage(SCORES, "2024-03-01", VERSION, [str(lake_file)], str(tmp_path))
    assert (load.rows_loaded, load.rejected) == (2, 1) and "many" in load.errors[0]
    audit = warehouse.audit(SCORES, "2024-03-01", VERSION, expected_rows=3)
    assert not audit.passed and audit.counts["rows_missing"] == 1


def test_a_file_held_by_another_process_is_waited_for(tmp_path):
    database = str(tmp_path / "w.duckdb")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({database!r}); print('held', flush=True); time.sleep(1)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    assert DuckDBWarehouse(database=database).run(["SELECT 42"]) == [(42,)]
    holder.wait(10)

"""The DuckDB warehouse: rows that do not fit are counted and block the audit; another process's lock is waited out; a
damaged or read-only file fails saying what to do, and is not retried."""

import os
import subprocess
import sys

import duckdb
import pytest

from tvtime_platform.resources.warehouse import DuckDBWarehouse, WarehouseUnusable
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


def published_day(tmp_path) -> DuckDBWarehouse:
    """A warehouse with a day of `scores` published, then a large table written last (its blocks end the file)."""
    lake_file = tmp_path / "day.parquet"
    duckdb.sql("SELECT DATE '2024-03-01' AS dt, 'a' AS team, 3 AS score").to_parquet(str(lake_file))
    warehouse = DuckDBWarehouse(database=str(tmp_path / "w.duckdb"))
    warehouse.load_stage(SCORES, "2024-03-01", VERSION, [str(lake_file)], str(tmp_path))
    warehouse.publish(SCORES, "2024-03-01", VERSION)
    warehouse.run(["CREATE TABLE marts.wide AS SELECT range AS x, md5(range::VARCHAR) AS y FROM range(300000)"])
    return warehouse


def test_a_warehouse_file_cut_short_is_refused_before_anything_runs_on_it(tmp_path):
    warehouse = published_day(tmp_path)
    with open(warehouse.database, "r+b") as file:
        file.truncate(os.path.getsize(warehouse.database) // 2)
    with duckdb.connect(warehouse.database) as con:  # DuckDB itself still opens it and reads `scores`
        assert con.execute("SELECT count(*) FROM marts.scores").fetchall() == [(1,)]
    for use in (lambda: warehouse.publish(SCORES, "2024-03-01", VERSION), lambda: warehouse.run(["SELECT 1"])):
        with pytest.raises(WarehouseUnusable, match="is damaged .*bytes; the .* blocks .* need.*rebuild") as e:
            use()
        assert not e.value.allow_retries


def test_a_block_that_does_not_read_back_is_a_damaged_warehouse_not_retried(tmp_path):
    warehouse = published_day(tmp_path)
    with open(warehouse.database, "r+b") as file:
        file.seek(os.path.getsize(warehouse.database) // 2)
        file.write(bytes(range(256)) * 64)  # within the wide table's blocks
    with pytest.raises(WarehouseUnusable, match="is damaged .*checksum.*make rebuild-warehouse") as e:
        warehouse.run(["SELECT sum(length(y)) FROM marts.wide"])
    assert not e.value.allow_retries


def test_an_immutable_warehouse_says_to_give_write_access(tmp_path):
    warehouse = published_day(tmp_path)
    if subprocess.run(["chattr", "+i", warehouse.database], capture_output=True).returncode != 0:
        pytest.skip("this filesystem has no immutable flag (chattr +i)")
    try:
        with pytest.raises(WarehouseUnusable, match="may not be written by this user .*chattr -i") as e:
            warehouse.publish(SCORES, "2024-03-01", VERSION)
    finally:
        subprocess.run(["chattr", "-i", warehouse.database], check=True)
    assert not e.value.allow_retries


@pytest.mark.parametrize("shape", ["zeroed tail", "a folder"])
def test_a_warehouse_of_another_shape_is_damaged_and_says_to_rebuild(tmp_path, shape):
    warehouse = published_day(tmp_path)
    path = warehouse.database
    if shape == "a folder":
        os.remove(path)
        os.mkdir(path)
    else:
        size = os.path.getsize(path)
        with open(path, "r+b") as file:
            file.seek(size // 2)
            file.write(bytes(size - size // 2))
    with pytest.raises(WarehouseUnusable, match="is damaged .*make rebuild-warehouse"):
        warehouse.run(["SELECT sum(length(y)) FROM marts.wide"])

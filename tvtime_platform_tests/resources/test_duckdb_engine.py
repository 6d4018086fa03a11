"""The DuckDB engine: work larger than its memory limit spills to its temp folder instead of failing; connections share
the database of their settings, not their tables."""

import gc

import duckdb
import pyarrow as pa
import pytest

from tvtime_platform.resources.duckdb_engine import DuckDBEngine


def test_a_sort_beyond_the_memory_limit_spills_into_a_fresh_nested_folder(tmp_path):
    spill = tmp_path / "not" / "yet" / "there"
    engine = DuckDBEngine(memory_limit="64MB", threads=1, temp_directory=str(spill))
    with engine.connect() as con:
        con.execute("CREATE TEMP TABLE t AS SELECT range AS i, md5(range::VARCHAR) AS s FROM range(3000000)")
        ordered = con.execute("SELECT s FROM t ORDER BY s LIMIT 1").fetchall()[0][0]
        assert len(ordered) == 32
        assert con.execute("SELECT current_setting('TimeZone')").fetchall()[0][0] == "UTC"
    assert spill.is_dir()


def test_connections_share_the_process_database_of_their_settings_and_nothing_else():
    engine = DuckDBEngine(memory_limit="96MB", threads=1)
    with engine.connect() as first, engine.connect() as second:
        first.execute("CREATE TEMP TABLE held AS SELECT 1 AS x")
        first.sql("SELECT 2 AS y").create_view("seen")
        first.register("registered", pa.table({"z": [3]}))
        for name in ("held", "seen", "registered"):
            assert first.execute(f"SELECT count(*) FROM {name}").fetchall() == [(1,)]
            with pytest.raises(duckdb.CatalogException):
                second.execute(f"SELECT count(*) FROM {name}")
        assert second.execute("SELECT current_setting('TimeZone')").fetchall() == [("UTC",)]
        assert second.execute("SELECT current_setting('memory_limit')").fetchall()[0][0] == "91.5 MiB"
    with DuckDBEngine(memory_limit="200MB", threads=1).connect() as other:
        assert other.execute("SELECT current_setting('memory_limit')").fetchall()[0][0] == "190.7 MiB"


def test_a_connection_gone_leaves_no_catalog_behind():
    engine = DuckDBEngine(memory_limit="97MB", threads=1)

    def attached() -> int:
        with engine.connect() as con:
            return con.execute("SELECT count(*) FROM duckdb_databases() WHERE NOT internal").fetchall()[0][0]

    before = attached()
    for _ in range(5):
        con = engine.connect()
        con.sql("SELECT 1 AS x").create_view("left_behind")
        del con
        gc.collect()
    assert attached() == before

"""The DuckDB engine: work larger than its memory limit spills to its temp folder instead of failing."""

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

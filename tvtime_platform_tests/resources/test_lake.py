"""The lake IO manager, in a folder and on S3 (moto): what readers get, exact replacement, a clear error for a
partition never written."""

import dagster as dg
import pytest

from tvtime_platform.resources.duckdb_engine import DuckDBEngine
from tvtime_platform.resources.lake import Lake, LakeIOManager, LakeTable
from tvtime_platform.resources.storage import filesystem
from tvtime_platform_tests.emulators import new_bucket


@pytest.fixture(params=["folder", "s3"])
def lake_url(request, tmp_path) -> str:
    if request.param == "folder":
        return str(tmp_path / "lake")
    request.getfixturevalue("s3_endpoint")
    return f"s3://{new_bucket()}/lake"


def test_written_partitions_are_read_back_typed_with_their_day(lake_url):
    lake = Lake(url=lake_url)
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    for day, n in (("2024-03-01", 3), ("2024-03-02", 2)):
        metadata = lake.write(
            con.sql(f"SELECT range AS x, 'v' || range AS label FROM range({n})"), dg.AssetKey("t"), day
        )
        assert metadata["dagster/row_count"].value == n and metadata["bytes"].value > 0
        assert [(c.name, c.type) for c in metadata["dagster/column_schema"].value.columns] == [
            ("x", "int64"),
            ("label", "string"),
        ]
    table = LakeTable((lake.folder(dg.AssetKey("t"), "2024-03-01"), lake.folder(dg.AssetKey("t"), "2024-03-02")), True)
    assert table.row_count() == 5
    table.view(con, "t")
    assert con.sql("SELECT CAST(dt AS VARCHAR), count(*) FROM t GROUP BY dt ORDER BY dt").fetchall() == [
        ("2024-03-01", 3),
        ("2024-03-02", 2),
    ]
    assert con.sql("SELECT typeof(x), typeof(label) FROM t LIMIT 1").fetchall() == [("BIGINT", "VARCHAR")]


def test_rewriting_a_partition_replaces_it_exactly(lake_url):
    lake = Lake(url=lake_url)
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    key = dg.AssetKey("t")
    lake.write(con.sql("SELECT range AS x FROM range(10)"), key, "2024-03-01")
    lake.write(con.sql("SELECT range AS x FROM range(4)"), key, "2024-03-01")
    table = LakeTable((lake.folder(key, "2024-03-01"),), True)
    assert len(table.files()) == 1 and table.row_count() == 4
    fs, root = filesystem(lake_url)
    assert [p for p in fs.find(root) if "staging" in p or "retired" in p] == []  # nothing left beside it


def test_a_missing_partition_names_what_to_materialize(lake_url):
    manager = LakeIOManager(lake=Lake(url=lake_url))
    context = dg.build_input_context(
        asset_key=dg.AssetKey("app_events"),
        partition_key="2024-03-01",
        asset_partitions_def=dg.DailyPartitionsDefinition(start_date="2024-01-01"),
    )
    with pytest.raises(dg.Failure, match="Materialize app_events for those partitions first"):
        manager.load_input(context)

"""The lake IO manager: what readers get, and a clear error for a partition never written."""

import dagster as dg
import duckdb
import pytest

from tvtime_platform.resources.lake import Lake, LakeIOManager, LakeTable


def test_written_partitions_are_read_back_with_their_day(tmp_path):
    lake = Lake(url=str(tmp_path))
    con = duckdb.connect()
    for day, n in (("2024-03-01", 3), ("2024-03-02", 2)):
        metadata = lake.write(con.sql(f"SELECT range AS x FROM range({n})"), dg.AssetKey("t"), day)
        assert metadata["dagster/row_count"].value == n
    table = LakeTable((str(lake.folder(dg.AssetKey("t"), "2024-03-01")), str(lake.folder(dg.AssetKey("t"), "2024-03-02"))), True)
    assert table.row_count() == 5
    assert con.sql(f"SELECT CAST(dt AS VARCHAR), count(*) FROM {table.sql()} GROUP BY dt ORDER BY dt").fetchall() == [("2024-03-01", 3), ("2024-03-02", 2)]


def test_a_missing_partition_names_what_to_materialize(tmp_path):
    manager = LakeIOManager(lake=Lake(url=str(tmp_path)))
    context = dg.build_input_context(asset_key=dg.AssetKey("app_events"), partition_key="2024-03-01",
                                     asset_partitions_def=dg.DailyPartitionsDefinition(start_date="2024-01-01"))
    with pytest.raises(dg.Failure, match="Materialize app_events for those partitions first"):
        manager.load_input(context)

"""A day's files in the manifests: a day appended to many times, between other days' appends and a rebuild, is planned
from one manifest, which Iceberg readers read as the platform does, and whose entries say which files each snapshot
added."""

import datetime as dt
from collections import Counter

import dagster as dg
from pyiceberg.expressions import EqualTo

from tvtime_platform.lake.catalog import TABLE_PROPERTIES
from tvtime_platform.lake.manifests import files_by_day, partition_day
from tvtime_platform.resources.duckdb_engine import DuckDBEngine
from tvtime_platform_tests.support import lake_at, write_partition

KEY = dg.AssetKey("t")


def _append(lake, con, day: str, value: int) -> None:
    """One more file in the day, the day's current files kept (as `app_events` appends)."""
    carried = lake.current_version(KEY, day)
    version = lake.stage(con.sql(f"SELECT {value}::BIGINT AS x"), KEY, day, carried=carried.files if carried else ())
    lake.commit(day, [version])


def _manifests_of(lake, day: str) -> list:
    """The manifests of the current snapshot that hold files of the day."""
    table = lake.iceberg_table(KEY)
    return [
        m
        for m in table.current_snapshot().manifests(table.io)
        if any(partition_day(e.data_file.partition[0]) == day for e in m.fetch_manifest_entry(table.io))
    ]


def _read_by_pyiceberg(lake, day: str) -> list[int]:
    table = lake.iceberg_table(KEY)
    return sorted(table.scan(row_filter=EqualTo("dt", day)).to_arrow()["x"].to_pylist())


def test_a_day_appended_to_many_times_is_planned_from_one_manifest(lake_url):
    lake = lake_at(lake_url)
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    first, second = "2024-03-01", "2024-03-02"
    for value in range(8):
        _append(lake, con, first, value)
        if value % 3 == 0:
            _append(lake, con, second, 100 + value)
    table = lake.iceberg_table(KEY)
    live = [m for m in table.current_snapshot().manifests(table.io) if m.added_files_count or m.existing_files_count]
    assert len(live) == 2  # one a day, however often each was appended to
    assert [len(_manifests_of(lake, day)) for day in (first, second)] == [1, 1]
    assert _read_by_pyiceberg(lake, first) == list(range(8)) and lake.table(KEY, [first]).row_count() == 8
    assert _read_by_pyiceberg(lake, second) == [100, 103, 106]

    # What each snapshot added stays what it added: a day's earlier files are carried into its manifest as existing.
    entries = table.inspect.entries().to_pylist()
    statuses = Counter((str(e["data_file"]["partition"]["dt"]), e["status"]) for e in entries)
    assert statuses == {(first, 1): 1, (first, 0): 7, (second, 1): 1, (second, 0): 2}  # 1: added, 0: existing
    newest = table.current_snapshot()
    assert [e["snapshot_id"] for e in entries if e["status"] == 1][0] == newest.snapshot_id
    assert newest.summary["added-data-files"] == "1" and newest.summary["total-data-files"] == "11"

    # An earlier snapshot still reads the day as it was.
    earlier = table.history()[-3].snapshot_id
    assert sorted(f.record_count for f in files_by_day(table, [first], earlier)[first]) == [1] * 7


def test_a_rebuilt_day_appended_to_again_is_still_one_manifest(lake_url):
    lake = lake_at(lake_url)
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    day = "2024-03-01"
    for value in range(3):
        _append(lake, con, day, value)
    write_partition(lake, con.sql("SELECT range + 10 AS x FROM range(2)"), KEY, day)  # the day rebuilt whole
    _append(lake, con, day, 20)
    _append(lake, con, day, 21)
    assert len(_manifests_of(lake, day)) == 1
    assert _read_by_pyiceberg(lake, day) == [10, 11, 20, 21]
    assert lake.table(KEY, [day]).row_count() == 4


def test_a_table_made_with_other_settings_takes_the_lakes_at_its_next_commit(lake_url):
    """A table made by an earlier release (column statistics in its manifests, old metadata deleted at each commit)."""
    lake = lake_at(lake_url)
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    _append(lake, con, "2024-03-01", 1)
    earlier = {"write.metadata.metrics.default": "truncate(16)", "write.metadata.delete-after-commit.enabled": "true"}
    with lake.iceberg_table(KEY).transaction() as setting:
        setting.set_properties(**earlier)
    _append(lake, con, "2024-03-01", 2)
    table = lake.iceberg_table(KEY)
    assert {k: table.properties[k] for k in earlier} == {k: v for k, v in TABLE_PROPERTIES.items() if k in earlier}
    [newest] = [e for e in table.inspect.entries().to_pylist() if e["status"] == 1]
    assert newest["data_file"]["record_count"] == 1 and not newest["data_file"]["lower_bounds"]


def test_the_days_of_a_month_before_last_are_merged_into_one_manifest(lake_url):
    """The manifest list every run reads grows by a manifest a month of the past, not a day; every day reads as it did,
    also a day of a merged month rebuilt afterwards."""
    lake = lake_at(lake_url)
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    days = [(dt.date(2024, 1, 1) + dt.timedelta(days=n)).isoformat() for n in range(0, 100, 2)]  # Jan 1 to Apr 8
    for n, day in enumerate(days):
        _append(lake, con, day, n)
    table = lake.iceberg_table(KEY)
    live = [m for m in table.current_snapshot().manifests(table.io) if m.added_files_count or m.existing_files_count]
    held = [{partition_day(e.data_file.partition[0]) for e in m.fetch_manifest_entry(table.io)} for m in live]
    months = sorted(min(held_days)[:7] for held_days in held if len(held_days) > 1)
    assert months == ["2024-01", "2024-02"]  # merged; March (last month) and April stay a manifest a day
    assert len(live) == 2 + len([d for d in days if d >= "2024-03"])
    assert [_read_by_pyiceberg(lake, day) for day in days] == [[n] for n in range(len(days))]
    write_partition(lake, con.sql("SELECT 99::BIGINT AS x"), KEY, days[3])  # a January day rebuilt
    _append(lake, con, days[-1], 100)
    assert _read_by_pyiceberg(lake, days[3]) == [99] and lake.table(KEY, days).row_count() == len(days) + 1
    assert lake.iceberg_table(KEY).current_snapshot().summary["total-data-files"] == str(len(days) + 1)

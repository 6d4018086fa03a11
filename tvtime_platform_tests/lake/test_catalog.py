"""The lake's Iceberg catalog: what it builds where PyIceberg would build the same another way."""

from __future__ import annotations

import dagster as dg
from pyiceberg.table import Transaction
from pyiceberg.table.update import update_table_metadata

from tvtime_platform.lake.catalog import updated_metadata
from tvtime_platform.lake.manifests import files_by_day
from tvtime_platform.resources.duckdb_engine import DuckDBEngine
from tvtime_platform_tests.support import lake_at, write_partition


def test_a_commits_next_metadata_is_pyicebergs_sharing_what_did_not_change(lake_url):
    con = DuckDBEngine().connect()
    lake = lake_at(lake_url)
    key = dg.AssetKey("t")
    for day in ("2024-03-01", "2024-03-02", "2024-03-03"):
        write_partition(lake, con.sql("SELECT 1 AS x"), key, day)
    table = lake.iceberg_table(key)
    [file] = files_by_day(table, ["2024-03-01"])["2024-03-01"]
    transaction = Transaction(table)
    transaction.set_properties(owner="analytics")
    transaction.remove_properties("write.metadata.previous-versions-max")
    with transaction.update_snapshot().overwrite() as overwrite:
        overwrite.delete_data_file(file)
    base, updates = table.metadata, transaction._updates

    ours = updated_metadata(base, updates, table.metadata_location)
    theirs = update_table_metadata(base, updates, metadata_location=table.metadata_location)

    assert ours == theirs and len(ours.snapshots) == 4 and len(ours.metadata_log) == len(base.metadata_log) + 1
    assert ours.snapshots[0] is base.snapshots[0]  # not copied
    assert ours.properties["owner"] == "analytics" and "owner" not in base.properties

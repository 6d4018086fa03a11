"""The whole graph for generated days with `staging` resources: landing and lake on S3 (moto), marts in Snowflake
(fakesnow)."""

import os

import dagster as dg
import duckdb
import fsspec
import pytest
from pyiceberg.catalog.glue import GlueCatalog

from tvtime_platform.resources.deployment import Deployment
from tvtime_platform.resources.storage import protocol_filesystem
from tvtime_platform.transforms.marts import DAILY_ACTIVE_USERS, SHOW_POPULARITY
from tvtime_platform_tests.emulators import snowflake_query
from tvtime_platform_tests.support import lake_at, lake_files, lake_scan, materialize_all, non_empty_landed_lines

pytestmark = pytest.mark.slow


def test_the_graph_runs_on_s3_and_snowflake_and_reruns_replace_exactly(
    staging_environment, snowflake_settings, generated_landing, tmp_path
):
    s3 = fsspec.filesystem("s3", use_listings_cache=False)
    landing, lake = os.environ["TVTIME_LANDING_URL"], os.environ["TVTIME_LAKE_URL"]
    s3.put(f"{generated_landing}/", landing.removeprefix("s3://"), recursive=True)
    days = sorted(p.rsplit("=", 1)[1] for p in s3.ls(landing.removeprefix("s3://")) if "dt=" in p)
    instance = dg.DagsterInstance.ephemeral()

    results = materialize_all(tmp_path, instance, days, resources=Deployment.from_environment().resources())
    assert all(r.success for r in results)

    con = duckdb.connect()
    con.register_filesystem(protocol_filesystem("s3"))
    kept = con.execute(f"SELECT count(*) FROM {lake_scan(lake, 'app_events')}").fetchall()[0][0]
    quarantined = con.execute(f"SELECT count(*) FROM {lake_scan(lake, 'quarantined_events')}").fetchall()[0][0]
    assert kept + quarantined == non_empty_landed_lines(generated_landing)
    database = os.environ["SNOWFLAKE_DATABASE"]
    published = snowflake_query(
        snowflake_settings, database, "MARTS", "SELECT sum(events), count(DISTINCT dt) FROM daily_active_users"
    )
    assert published == [(kept, len(days))]
    warehouse = Deployment.from_environment().resources()["warehouse"]
    tables = {r[1].lower() for r in snowflake_query(snowflake_settings, database, "MARTS", "SHOW TABLES")}
    assert {"daily_active_users", "daily_active_users__backup", "show_popularity", "show_popularity__backup"} <= tables
    lake_storage = lake_at(lake)
    current = {
        warehouse.staging_table(mart, day, lake_storage.current_version(dg.AssetKey(f"{mart.name}_staged"), day).name)
        for mart in (DAILY_ACTIVE_USERS, SHOW_POPULARITY)
        for day in days
    }
    assert {t for t in tables if t.startswith(("daily_active_users__stage_", "show_popularity__stage_"))} == current

    # PyIceberg alone reads every lake table from the Glue Data Catalog: the rows the lake counted, no records.
    glue = GlueCatalog("tvtime", **{"s3.endpoint": os.environ["AWS_ENDPOINT_URL"], "s3.region": "us-east-1"})
    namespace = os.environ["TVTIME_LAKE_NAMESPACE"]
    names = sorted(name for _, name in glue.list_tables(namespace))
    assert {"app_events", "quarantined_events", "user_sessions", "show_catalog"} <= set(names)
    for name in names:
        key = dg.AssetKey(name)
        rows = glue.load_table((namespace, name)).scan().to_arrow().num_rows
        assert rows == lake_storage.counted_rows(key, lake_storage.partitions_through(key, "9999-12-31") or [None])
    assert not [p for p in s3.find(lake.removeprefix("s3://")) if "/_commits/" in p]

    marts = snowflake_query(snowflake_settings, database, "MARTS", "SELECT * FROM show_popularity ORDER BY dt, show_id")
    events_before = lake_files(lake, "app_events", days[0])
    rows_before = con.execute(f"SELECT * FROM {lake_scan(lake, 'app_events', days[0])} ORDER BY ALL").fetchall()
    assert all(
        r.success
        for r in materialize_all(tmp_path, instance, days[:1], resources=Deployment.from_environment().resources())
    )
    events_after = lake_files(lake, "app_events", days[0])
    assert events_after != events_before and all(s3.exists(f) for f in events_before)  # kept for readers still on it
    assert con.execute(f"SELECT * FROM {lake_scan(lake, 'app_events', days[0])} ORDER BY ALL").fetchall() == rows_before
    assert (
        snowflake_query(snowflake_settings, database, "MARTS", "SELECT * FROM show_popularity ORDER BY dt, show_id")
        == marts
    )

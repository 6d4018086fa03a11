"""The whole graph on generated days: the counts add up, sessions cover events, re-runs change nothing."""

import hashlib

import dagster as dg
import duckdb
import pytest

from tvtime_platform_tests.support import (
    lake_at,
    lake_scan,
    landed_days,
    materialize_all,
    non_empty_landed_lines,
    schemas_unlike_declared,
)

pytestmark = pytest.mark.slow


def lake_digest(data_dir) -> dict[str, str]:
    """Content hash per lake table, independent of file names and row order."""
    digests = {}
    for key in lake_at(data_dir / "lake").tables():
        name = key.to_user_string()
        rows = duckdb.sql(f"SELECT * FROM {lake_scan(data_dir / 'lake', name, hive=True)} ORDER BY ALL").fetchall()
        digests[name] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return digests


def test_whole_graph_invariants_and_idempotency(data_dir):
    instance = dg.DagsterInstance.ephemeral()
    results = materialize_all(data_dir, instance)
    assert all(r.success for r in results)
    failed = [
        (e.asset_key.to_user_string(), e.check_name)
        for r in results
        for e in r.get_asset_check_evaluations()
        if not e.passed
    ]
    assert failed == []
    materialized = {e.asset_key.to_user_string() for r in results for e in r.get_asset_materialization_events()}
    assert {"app_events", "user_sessions", "daily_active_users_staged"} <= materialized
    # Each materialization's columns are the declared ones: names, types as declared, descriptions.
    assert schemas_unlike_declared(results) == {}
    lake = data_dir / "lake"
    kept = duckdb.sql(f"SELECT count(*) FROM {lake_scan(lake, 'app_events')}").fetchall()[0][0]
    quarantined = duckdb.sql(f"SELECT count(*) FROM {lake_scan(lake, 'quarantined_events')}").fetchall()[0][0]
    assert kept + quarantined == non_empty_landed_lines(data_dir / "landing")
    assert quarantined > 0 and kept > 10_000
    # Every kept event belongs to exactly one session of its day.
    per_day = duckdb.sql(f"""
        SELECT e.dt, e.n, s.n FROM
          (SELECT dt, count(*) n FROM {lake_scan(lake, "app_events", hive=True)} GROUP BY dt) e
          JOIN (SELECT dt, sum(event_count) n FROM {lake_scan(lake, "user_sessions", hive=True)} GROUP BY dt) s
          USING (dt)""").fetchall()
    assert len(per_day) == len(landed_days(data_dir)) and all(
        events == in_sessions for _, events, in_sessions in per_day
    )
    # The marts are in the warehouse, one set of rows per day.
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        dau_events = con.execute("SELECT sum(events) FROM marts.daily_active_users").fetchall()[0][0]
        assert dau_events == kept
        assert con.execute("SELECT count(DISTINCT dt) FROM marts.show_popularity").fetchall()[0][0] == len(
            landed_days(data_dir)
        )

    before = lake_digest(data_dir)
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        marts_before = con.execute("SELECT * FROM marts.daily_active_users ORDER BY ALL").fetchall()
    assert all(r.success for r in materialize_all(data_dir, instance))
    assert lake_digest(data_dir) == before
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT * FROM marts.daily_active_users ORDER BY ALL").fetchall() == marts_before

"""Each check fails on data made bad on purpose (and passes on the generated data, see test_pipeline)."""

import datetime as dt

import dagster as dg
import duckdb

from tvtime_platform.defs.activity.user_sessions import session_durations_non_negative, session_ids_unique
from tvtime_platform.lib.attributes import SERVICE_RETRIES
from tvtime_platform.resources.deployment import local_resources
from tvtime_platform.resources.duckdb_engine import DuckDBEngine
from tvtime_platform_tests.support import (
    ASSETS,
    CHECKS,
    defs,
    event,
    lake_at,
    lake_scan,
    lake_write,
    write_landing_file,
)


def evaluations(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_quarantine_rate_blocks_a_bad_day_from_flowing_downstream(tmp_path):
    write_landing_file(
        tmp_path / "landing", "2024-03-01", 9, [event(f"ok-{i}") for i in range(10)] + ['{"truncated'] * 5
    )
    result = dg.materialize(
        [*ASSETS, *CHECKS],
        selection=dg.AssetSelection.assets("app_events", "quarantined_events", "user_sessions"),
        partition_key="2024-03-01",
        resources=local_resources(tmp_path),
        raise_on_error=False,
    )
    assert evaluations(result)["quarantine_rate_below_threshold"] is False
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"app_events", "quarantined_events"}  # user_sessions never ran
    check = next(e for e in result.get_asset_check_evaluations() if e.check_name == "quarantine_rate_below_threshold")
    assert round(check.metadata["quarantine_rate"].value, 4) == round(5 / 15, 4)


def test_an_implausible_drop_in_sessions_fails(tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    resources = local_resources(tmp_path)
    days = [dt.date(2024, 3, d) for d in range(1, 6)]
    for day in days:
        users = 20 if day < days[-1] else 3
        write_landing_file(
            tmp_path / "landing",
            f"{day}",
            12,
            [event(f"{day}-{u}", user_id=u, ts=f"{day}T12:00:00Z") for u in range(1, users + 1)],
        )
    results = {}
    for day in days:
        result = dg.materialize(
            [*ASSETS, *CHECKS],
            selection=dg.AssetSelection.assets("app_events", "quarantined_events", "user_sessions"),
            partition_key=f"{day}",
            instance=instance,
            resources=resources,
            raise_on_error=False,
        )
        results[day] = evaluations(result)
    assert results[days[0]]["sensible_number_of_sessions"]  # too little history to judge: passes, and says so
    assert results[days[3]]["sensible_number_of_sessions"]
    assert results[days[4]]["sensible_number_of_sessions"] is False


def _write_sessions(tmp_path, rows: str) -> None:
    con = duckdb.connect()
    sessions = con.sql(f"""SELECT * FROM (VALUES {rows}) t(session_id, user_id, session_start, session_end,
        duration_seconds, event_count)""")
    lake_write(tmp_path / "lake", "user_sessions", "2024-03-01", sessions)


def _run_session_checks(tmp_path) -> dict[str, bool]:
    """The two checks invoked directly on a lake holding only the handmade sessions."""
    table = lake_at(str(tmp_path / "lake")).table(dg.AssetKey("user_sessions"), ["2024-03-01"])
    engine = DuckDBEngine()
    return {
        check.node_def.name.removeprefix("user_sessions_"): check(user_sessions=table, duckdb=engine).passed
        for check in (session_ids_unique, session_durations_non_negative)
    }


def test_repeated_session_ids_and_negative_durations_fail(tmp_path):
    _write_sessions(
        tmp_path,
        """('1-1', 1, TIMESTAMP '2024-03-01 10:00', TIMESTAMP '2024-03-01 10:05', 300.0, 2),
                                 ('1-1', 1, TIMESTAMP '2024-03-01 11:00', TIMESTAMP '2024-03-01 10:59', -60.0, 1)""",
    )
    assert _run_session_checks(tmp_path) == {"session_ids_unique": False, "session_durations_non_negative": False}


def test_clean_sessions_pass_the_same_checks(tmp_path):
    _write_sessions(
        tmp_path,
        """('1-1', 1, TIMESTAMP '2024-03-01 10:00', TIMESTAMP '2024-03-01 10:05', 300.0, 2),
                                 ('1-2', 1, TIMESTAMP '2024-03-01 11:00', TIMESTAMP '2024-03-01 11:00', 0.0, 1)""",
    )
    assert _run_session_checks(tmp_path) == {"session_ids_unique": True, "session_durations_non_negative": True}


def test_episodes_unknown_to_the_catalog_fail_referential_integrity(tmp_path, generated_landing):
    import shutil

    shutil.copytree(generated_landing / "catalog", tmp_path / "landing" / "catalog")
    write_landing_file(
        tmp_path / "landing",
        "2024-03-01",
        20,
        [event(f"known-{i}", show_id=1, episode_id=1, user_id=i + 1) for i in range(10)]
        + [event(f"unknown-{i}", show_id=1, episode_id=99_999_999, user_id=i + 1) for i in range(3)],
    )
    resources = local_resources(tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    dg.materialize(ASSETS, selection=["show_catalog"], resources=resources, instance=instance)
    result = dg.materialize(
        [*ASSETS, *CHECKS],
        selection=dg.AssetSelection.assets("app_events", "quarantined_events", "tracked_episodes"),
        partition_key="2024-03-01",
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )
    check = next(e for e in result.get_asset_check_evaluations() if e.check_name == "tracked_episodes_in_catalog")
    assert check.passed is False and check.metadata["unknown_episodes"].value == 3
    # The orphans are kept in the table, flagged, not dropped.
    episodes = lake_scan(tmp_path / "lake", "tracked_episodes", "2024-03-01")
    assert duckdb.sql(f"SELECT count(*) FILTER (WHERE NOT in_catalog) FROM {episodes}").fetchall()[0][0] == 3


def test_marts_carry_a_freshness_policy():
    for key in ("daily_active_users", "show_popularity"):
        spec = defs.get_assets_def(key).specs_by_key[dg.AssetKey(key)]
        assert spec.freshness_policy is not None


def test_session_history_counts_each_day_once_however_often_it_ran():
    from tvtime_platform.defs.activity.user_sessions import _trailing_counts

    with dg.instance_for_test() as instance:
        for day, count in (("2024-03-01", 100), ("2024-03-02", 110), ("2024-03-03", 90)):
            for rerun in range(60):  # many re-runs of each day: only the latest counts
                instance.report_runless_asset_event(
                    dg.AssetMaterialization(
                        "user_sessions", partition=day, metadata={"dagster/partition_row_count": count + rerun}
                    )
                )
        assert _trailing_counts(instance, dt.date(2024, 3, 4)) == {
            "2024-03-01": 159,
            "2024-03-02": 169,
            "2024-03-03": 149,
        }


def test_every_asset_retries_with_backoff():
    """Every asset talks to a store that can hiccup in staging and prod (S3, Snowflake, AWS Batch)."""
    for assets_def in defs.assets:
        assert assets_def.op.retry_policy == SERVICE_RETRIES, assets_def.keys
    assert SERVICE_RETRIES.max_retries == 3 and SERVICE_RETRIES.backoff == dg.Backoff.EXPONENTIAL

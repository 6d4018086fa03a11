"""Downstream assets follow new events of the last week, and not past a failed blocking check."""

import datetime as dt
import shutil

import dagster as dg

from tvtime_platform.resources.deployment import local_resources
from tvtime_platform_tests.support import ASSETS, CHECKS, DAY_SHAPED, defs, event, write_landing_file

NOW = dt.datetime(2024, 3, 3, 12, tzinfo=dt.UTC)
EVENTS = dg.AssetSelection.assets("app_events", "quarantined_events")


def requested_partitions(instance: dg.DagsterInstance, key: str, cursor=None) -> tuple[set[str], object]:
    result = dg.evaluate_automation_conditions(defs, instance, evaluation_time=NOW, cursor=cursor)
    return {p for p in result.get_requested_partitions(dg.AssetKey(key))}, result.cursor


def ingest(tmp_path, instance, day: str, lines: list) -> None:
    write_landing_file(tmp_path / "landing", day, 10, lines)
    dg.materialize(
        [*ASSETS, *CHECKS],
        selection=EVENTS,
        partition_key=day,
        instance=instance,
        resources=local_resources(tmp_path),
        raise_on_error=False,
    )


def test_sessions_follow_good_days_and_wait_on_bad_ones(tmp_path):
    with dg.instance_for_test() as instance:
        _, cursor = requested_partitions(instance, "user_sessions")
        ingest(tmp_path, instance, "2024-03-02", [event(f"g{i}", ts="2024-03-02T10:00:00Z") for i in range(20)])
        ingest(
            tmp_path,
            instance,
            "2024-03-01",
            [event(f"b{i}", ts="2024-03-01T10:00:00Z") for i in range(5)] + ["{broken"] * 5,
        )
        ingest(tmp_path, instance, "2024-01-02", [event("old", ts="2024-01-02T10:00:00Z")])
        requested, _ = requested_partitions(instance, "user_sessions", cursor)
        # 03-02 passed its blocking check; 03-01 failed it (a third of its lines broken); 01-02 is older than a week.
        assert requested == {"2024-03-02"}


def test_a_recheck_run_does_not_set_off_the_marts(tmp_path, generated_landing):
    shutil.copytree(generated_landing / "catalog", tmp_path / "landing" / "catalog")
    with dg.instance_for_test() as instance:
        ingest(tmp_path, instance, "2024-03-02", [event(f"g{i}", ts="2024-03-02T10:00:00Z") for i in range(20)])
        resources = local_resources(tmp_path)
        day = dict(partition_key="2024-03-02", instance=instance, resources=resources)
        dg.materialize(ASSETS, selection=["show_catalog"], instance=instance, resources=resources)
        dg.materialize([*ASSETS, *CHECKS], selection=DAY_SHAPED, **day)
        _, cursor = requested_partitions(instance, "daily_active_users")
        recheck = dg.Definitions(
            assets=defs.assets, asset_checks=defs.asset_checks, jobs=defs.jobs, resources=resources
        )
        assert (
            recheck.resolve_job_def("session_checks")
            .execute_in_process(partition_key="2024-03-02", instance=instance)
            .success
        )
        after_recheck, cursor = requested_partitions(instance, "daily_active_users", cursor)
        assert after_recheck == set()
        dg.materialize([*ASSETS, *CHECKS], selection=dg.AssetSelection.assets("user_sessions"), **day)  # a real update
        after_update, _ = requested_partitions(instance, "daily_active_users", cursor)
        assert after_update == {"2024-03-02"}

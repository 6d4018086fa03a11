"""The landing sensor requests exactly the partitions whose input files are new or changed."""

import datetime
import json
import os

import dagster as dg

from tvtime_platform.defs.activity.session_checks import session_checks_schedule
from tvtime_platform.defs.ingestion.landing_sensor import landing_sensor
from tvtime_platform.resources.landing import LandingZone
from tvtime_platform_tests.conftest import write_landing_file
from tvtime_platform_tests.defs.ingestion.test_app_events import event


def evaluate(landing, cursor=None, instance=None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        cursor=cursor,
        instance=instance or dg.DagsterInstance.ephemeral(),
        resources={"landing": LandingZone(url=str(landing))},
    )
    return landing_sensor(context)


def requested(result: dg.SensorResult) -> list[tuple[str, str | None]]:
    return sorted((r.job_name, r.partition_key) for r in result.run_requests)


def test_new_files_request_their_partitions_once(tmp_path):
    landing = tmp_path / "landing"
    write_landing_file(landing, "2024-03-01", 10, [event("a")])
    write_landing_file(landing, "2024-03-02", 3, [event("b")])
    first = evaluate(landing)
    # Files landed on the 2nd also feed the 1st (late arrivals), files of the 1st also the 29th.
    assert requested(first) == [
        ("ingest_events", "2024-02-29"),
        ("ingest_events", "2024-03-01"),
        ("ingest_events", "2024-03-02"),
    ]
    assert requested(evaluate(landing, first.cursor)) == []


def test_a_changed_day_requests_itself_and_the_days_it_is_late_for(tmp_path):
    landing = tmp_path / "landing"
    for day in ("2024-03-01", "2024-03-02", "2024-03-03"):
        write_landing_file(landing, day, 10, [event(day)])
    cursor = evaluate(landing).cursor
    write_landing_file(landing, "2024-03-02", 11, [event("new")], name="part-later.jsonl.gz")
    again = evaluate(landing, cursor)
    assert requested(again) == [("ingest_events", "2024-03-01"), ("ingest_events", "2024-03-02")]
    # The run key names the input fingerprints, so a restart that lost the cursor requests the same keys.
    keys = {r.run_key for r in again.run_requests}
    assert keys <= {r.run_key for r in evaluate(landing).run_requests}


def test_the_catalog_is_refreshed_when_its_files_change(tmp_path):
    landing = tmp_path / "landing"
    (landing / "catalog").mkdir(parents=True)
    shows = landing / "catalog" / "shows.jsonl.gz"
    shows.write_bytes(b"x")
    first = evaluate(landing)
    assert requested(first) == [("refresh_show_catalog", None)]
    assert requested(evaluate(landing, first.cursor)) == []
    os.utime(shows, ns=(1, 1))
    assert requested(evaluate(landing, first.cursor)) == [("refresh_show_catalog", None)]
    assert "catalog" in json.loads(first.cursor)


def test_days_before_the_first_partition_are_skipped(tmp_path):
    landing = tmp_path / "landing"
    write_landing_file(landing, "2023-06-01", 10, [event("old", ts="2023-06-01T10:00:00Z")])
    assert requested(evaluate(landing)) == []


def test_session_checks_schedule_targets_the_newest_sessions():
    with dg.instance_for_test() as instance:
        assert isinstance(session_checks_schedule(dg.build_schedule_context(instance=instance)), dg.SkipReason)
        instance.report_runless_asset_event(dg.AssetMaterialization("user_sessions", partition="2024-03-02"))
        tick = datetime.datetime(2024, 3, 2, 10, 15, tzinfo=datetime.UTC)
        request = session_checks_schedule(dg.build_schedule_context(instance=instance, scheduled_execution_time=tick))
        assert request.partition_key == "2024-03-02"
    assert session_checks_schedule.cron_schedule == "*/15 * * * *"

"""The landing sensor requests exactly the partitions whose input files are new or changed, and the days before them
once their files are known to hold those days' events."""

import datetime
import json
import os
import unittest.mock

import dagster as dg
import duckdb

from tvtime_platform.defs.activity.session_checks import session_checks_schedule
from tvtime_platform.defs.ingestion import landing_sensor as landing_sensor_module
from tvtime_platform.defs.ingestion.app_events import EARLIER_DAYS_TO_RUN
from tvtime_platform.defs.ingestion.landing_sensor import PAGE
from tvtime_platform.resources.deployment import local_resources
from tvtime_platform.resources.landing import LandingZone
from tvtime_platform_tests.defs.ingestion.test_app_events import EVENTS
from tvtime_platform_tests.support import evaluate_landing_sensor as evaluate
from tvtime_platform_tests.support import event, lake_scan, record_runs, requested, write_landing_file


def test_new_files_request_their_partitions_once(tmp_path):
    landing = tmp_path / "landing"
    write_landing_file(landing, "2024-03-01", 10, [event("a")])
    write_landing_file(landing, "2024-03-02", 3, [event("b")])
    first = evaluate(landing)
    # The days the files landed on; the days before them only once their lines are known to be theirs (below).
    assert requested(first) == [("ingest_events", "2024-03-01"), ("ingest_events", "2024-03-02")]
    assert requested(evaluate(landing, first.cursor)) == []


def test_a_changed_day_requests_itself(tmp_path):
    landing = tmp_path / "landing"
    for day in ("2024-03-01", "2024-03-02", "2024-03-03"):
        write_landing_file(landing, day, 10, [event(day)])
    cursor = evaluate(landing).cursor
    write_landing_file(landing, "2024-03-02", 11, [event("new")], name="part-later.jsonl.gz")
    again = evaluate(landing, cursor)
    assert requested(again) == [("ingest_events", "2024-03-02")]
    # The run key names the input fingerprints, so a restart that lost the cursor requests the same keys.
    keys = {r.run_key for r in again.run_requests}
    assert keys <= {r.run_key for r in evaluate(landing).run_requests}


def run_requests(landing, data_dir, instance, result: dg.SensorResult, done: set[str]) -> list[str]:
    """Run what the sensor requested, as the daemon would: a run key used before is not run again."""
    ran = []
    for request in result.run_requests:
        if request.job_name == "ingest_events" and request.run_key not in done:
            done.add(request.run_key)
            dg.materialize(
                EVENTS, partition_key=request.partition_key, resources=local_resources(data_dir), instance=instance
            )
            ran.append(request.partition_key)
    return ran


def test_the_day_before_runs_when_new_files_hold_its_events(tmp_path):
    """Late events request their day once the files are read; files without any request nothing more; a day
    rebuilt over rows it held (a file removed) requests the day before too, which then drops the file's lines."""
    landing, done = tmp_path / "landing", set()
    write_landing_file(landing, "2024-03-01", 10, [event("d1")])
    with dg.instance_for_test() as instance:
        tick = evaluate(landing, instance=instance)
        assert run_requests(landing, tmp_path, instance, tick, done) == ["2024-03-01"]
        tick = evaluate(landing, tick.cursor, instance)
        assert run_requests(landing, tmp_path, instance, tick, done) == []

        write_landing_file(landing, "2024-03-02", 0, [event("d2-own", ts="2024-03-02T00:10:00Z")], name="a.jsonl.gz")
        tick = evaluate(landing, tick.cursor, instance)
        assert run_requests(landing, tmp_path, instance, tick, done) == ["2024-03-02"]
        tick = evaluate(landing, tick.cursor, instance)
        assert run_requests(landing, tmp_path, instance, tick, done) == [], "no event of the 1st in the new file"

        late = write_landing_file(
            landing, "2024-03-02", 1, [event("d1-late", ts="2024-03-01T23:50:00Z")], name="b.jsonl.gz"
        )
        tick = evaluate(landing, tick.cursor, instance)
        assert run_requests(landing, tmp_path, instance, tick, done) == ["2024-03-02"]
        tick = evaluate(landing, tick.cursor, instance)
        assert run_requests(landing, tmp_path, instance, tick, done) == ["2024-03-01"]
        assert ("d1-late",) in read_ids(tmp_path, "2024-03-01")

        # The late file removed (another lands, so the files differ from any set run before): the 2nd is rebuilt, and
        # the 1st must let the late line go.
        late.unlink()
        write_landing_file(landing, "2024-03-02", 2, [event("d2-more", ts="2024-03-02T02:00:00Z")], name="c.jsonl.gz")
        tick = evaluate(landing, tick.cursor, instance)
        assert run_requests(landing, tmp_path, instance, tick, done) == ["2024-03-02"]
        tick = evaluate(landing, tick.cursor, instance)
        assert run_requests(landing, tmp_path, instance, tick, done) == ["2024-03-01"]
        assert read_ids(tmp_path, "2024-03-01") == [("d1",)]
        assert run_requests(landing, tmp_path, instance, evaluate(landing, tick.cursor, instance), done) == []


def read_ids(data_dir, day: str) -> list[tuple]:
    return duckdb.sql(f"SELECT event_id FROM {lake_scan(data_dir / 'lake', 'app_events', day)} ORDER BY 1").fetchall()


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
    assert requested(evaluate(landing, today=datetime.date(2023, 6, 2))) == []  # open, before the first partition


def test_session_checks_schedule_targets_the_newest_sessions():
    with dg.instance_for_test() as instance:
        assert isinstance(session_checks_schedule(dg.build_schedule_context(instance=instance)), dg.SkipReason)
        instance.report_runless_asset_event(dg.AssetMaterialization("user_sessions", partition="2024-03-02"))
        tick = datetime.datetime(2024, 3, 2, 10, 15, tzinfo=datetime.UTC)
        request = session_checks_schedule(dg.build_schedule_context(instance=instance, scheduled_execution_time=tick))
        assert request.partition_key == "2024-03-02"
    assert session_checks_schedule.cron_schedule == "*/15 * * * *"


def test_every_materialization_since_the_cursor_is_read_past_one_page(tmp_path):
    """More materializations between two evaluations than one fetch returns: the days each names are all requested,
    once, and the cursor moves past them."""
    landing = tmp_path / "landing"
    for day in ("2024-03-01", "2024-03-02", "2024-03-03"):
        write_landing_file(landing, day, 10, [event(day)])
    with dg.instance_for_test() as instance:
        cursor = evaluate(landing, instance=instance).cursor
        for k in range(PAGE + 20):
            named = ["2024-03-01"] if k == PAGE + 10 else (["2024-03-02"] if k == 3 else [])
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    "app_events", partition="2024-03-03", metadata={EARLIER_DAYS_TO_RUN: dg.MetadataValue.json(named)}
                )
            )
        tick = evaluate(landing, cursor, instance)
        assert requested(tick) == [("ingest_events", "2024-03-01"), ("ingest_events", "2024-03-02")]
        assert requested(evaluate(landing, tick.cursor, instance)) == []


def test_a_day_before_whose_run_was_lost_is_named_again_by_the_next_run(tmp_path):
    """The run of the 1st that the 2nd's late line asked for never happens (failed, dropped): the 2nd's next run, for a
    file with no line of the 1st, names the 1st again, since its rows still lack that file."""
    landing, done = tmp_path / "landing", set()
    write_landing_file(landing, "2024-03-01", 10, [event("d1")])
    with dg.instance_for_test() as instance:
        tick = evaluate(landing, instance=instance)
        assert run_requests(landing, tmp_path, instance, tick, done) == ["2024-03-01"]
        write_landing_file(landing, "2024-03-02", 0, [event("d1-late", ts="2024-03-01T23:50:00Z")], name="x.jsonl.gz")
        tick = evaluate(landing, tick.cursor, instance)
        assert run_requests(landing, tmp_path, instance, tick, done) == ["2024-03-02"]
        tick = evaluate(landing, tick.cursor, instance)
        assert requested(tick) == [("ingest_events", "2024-03-01")]
        done |= {r.run_key for r in tick.run_requests}  # its run is lost

        write_landing_file(landing, "2024-03-02", 1, [event("d2", ts="2024-03-02T01:00:00Z")], name="y.jsonl.gz")
        tick = evaluate(landing, tick.cursor, instance)
        assert run_requests(landing, tmp_path, instance, tick, done) == ["2024-03-02"]
        tick = evaluate(landing, tick.cursor, instance)
        assert run_requests(landing, tmp_path, instance, tick, done) == ["2024-03-01"]
        assert read_ids(tmp_path, "2024-03-01") == [("d1",), ("d1-late",)]
        assert run_requests(landing, tmp_path, instance, evaluate(landing, tick.cursor, instance), done) == []


def test_an_empty_file_appends_nothing_and_names_no_day_before(tmp_path):
    landing, done = tmp_path / "landing", set()
    write_landing_file(landing, "2024-03-01", 10, [event("d1")])
    write_landing_file(landing, "2024-03-02", 0, [event("d1-late", ts="2024-03-01T23:50:00Z")], name="x.jsonl.gz")
    with dg.instance_for_test() as instance:
        tick = evaluate(landing, instance=instance)
        assert run_requests(landing, tmp_path, instance, tick, done) == ["2024-03-01", "2024-03-02"]
        tick = evaluate(landing, tick.cursor, instance)
        assert run_requests(landing, tmp_path, instance, tick, done) == [], "the 1st read the 2nd's file itself"
        empty = landing / "dt=2024-03-02" / "hour=02" / "empty.jsonl.gz"
        empty.parent.mkdir(parents=True)
        empty.touch()
        tick = evaluate(landing, tick.cursor, instance)
        assert run_requests(landing, tmp_path, instance, tick, done) == ["2024-03-02"]
        [materialization] = instance.fetch_materializations(
            dg.AssetRecordsFilter(dg.AssetKey("app_events"), asset_partitions=["2024-03-02"]), limit=1
        ).records
        metadata = materialization.asset_materialization.metadata
        assert metadata["files_appended"].value == 0 and metadata[EARLIER_DAYS_TO_RUN].value == []
        assert run_requests(landing, tmp_path, instance, evaluate(landing, tick.cursor, instance), done) == []


def test_a_materialization_naming_days_badly_is_skipped_with_a_warning(tmp_path, capfd):
    landing = tmp_path / "landing"
    write_landing_file(landing, "2024-03-01", 10, [event("d1")])
    with dg.instance_for_test() as instance:
        cursor = evaluate(landing, instance=instance).cursor
        for named in (3, "2024-03-01", ["not a day"], ["2024-03-01"]):
            value = named if isinstance(named, int | str) else dg.MetadataValue.json(named)
            instance.report_runless_asset_event(
                dg.AssetMaterialization("app_events", partition="2024-03-02", metadata={EARLIER_DAYS_TO_RUN: value})
            )
        tick = evaluate(landing, cursor, instance)
        assert requested(tick) == [("ingest_events", "2024-03-01")]
        assert capfd.readouterr().err.count("not a list of dates") == 3


def reconcile(landing, cursor, instance, today) -> dg.SensorResult:
    return evaluate(landing, cursor, instance, today, sensor="landing_reconciliation")


def test_a_tick_lists_the_open_days_only_and_closed_days_are_reconciled_once(tmp_path):
    landing, today = tmp_path / "landing", datetime.date(2024, 3, 3)
    days = [datetime.date(2024, 2, 1) + datetime.timedelta(days=k) for k in range(32)]  # to 2024-03-03
    for day in days:
        write_landing_file(landing, day.isoformat(), 10, [event(f"e-{day}", ts=f"{day}T10:00:00Z")])
    instance = dg.DagsterInstance.ephemeral()
    zone = LandingZone(url=str(landing))
    with unittest.mock.patch.object(landing_sensor_module, "utc_today", return_value=today):
        history = dg.build_sensor_context(instance=instance, resources={"landing": zone})
        # What earlier ticks ran while those days were open.
        record_runs(instance, landing_sensor_module.ingest_requests(history, zone, {str(d) for d in days[:-3]}, {}))

    tick = evaluate(landing, instance=instance, today=today)
    assert requested(tick) == [("ingest_events", d) for d in ("2024-03-01", "2024-03-02", "2024-03-03")]
    assert sorted(k for k in json.loads(tick.cursor) if k[:1] == "2") == ["2024-03-01", "2024-03-02", "2024-03-03"]
    record_runs(instance, tick.run_requests)
    first = reconcile(landing, None, instance, today)
    assert requested(first) == []  # every closed day as its last run read it

    write_landing_file(landing, "2024-02-10", 23, [event("late")], name="late.jsonl.gz")  # a closed day
    assert requested(evaluate(landing, tick.cursor, instance, today)) == []  # not listed on the 60 s path
    found = reconcile(landing, first.cursor, instance, today)
    assert requested(found) == [("ingest_events", "2024-02-10")]
    record_runs(instance, found.run_requests)
    assert requested(reconcile(landing, found.cursor, instance, today)) == []
    assert requested(reconcile(landing, None, instance, today)) == []  # a lost cursor runs nothing again

    # A file in a closed day that landing_sensor already ran (a later day named it): not run again.
    write_landing_file(landing, "2024-02-12", 23, [event("late-2")], name="late.jsonl.gz")
    with unittest.mock.patch.object(landing_sensor_module, "utc_today", return_value=today):
        record_runs(instance, landing_sensor_module.ingest_requests(history, zone, {"2024-02-12"}, {}))
    assert requested(reconcile(landing, found.cursor, instance, today)) == []
    # Folders that are not days are skipped; the days beside them are still reconciled.
    for odd in ("2024-02-03.tmp", "2024-2-4", "20240205"):
        write_landing_file(landing, odd, 1, [event(f"odd-{odd}")])
    write_landing_file(landing, "2024-02-14", 23, [event("late-3")], name="late.jsonl.gz")
    found = reconcile(landing, found.cursor, instance, today)
    assert requested(found) == [("ingest_events", "2024-02-14")]
    record_runs(instance, found.run_requests)

    later = datetime.date(2024, 3, 5)  # 2024-03-01 and 2024-03-02 close, as their runs read them
    assert requested(reconcile(landing, found.cursor, instance, later)) == []
    assert "2024-03-01" not in json.loads(evaluate(landing, tick.cursor, instance, later).cursor)

"""app_events / quarantined_events on hand-made landing files: every rule, late arrivals, unreadable files."""

import datetime as dt
import gzip
import json

import dagster as dg
import duckdb

from tvtime_platform.resources.deployment import local_resources
from tvtime_platform.transforms import app_events as rules
from tvtime_platform_tests.support import defs, event, lake_files, lake_scan, write_landing_file

EVENTS = [defs.get_assets_def("app_events")]


def run_day(data_dir, day: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        EVENTS, partition_key=day, resources=local_resources(data_dir), instance=dg.DagsterInstance.ephemeral()
    )


def read(data_dir, table: str, day: str) -> list[tuple]:
    columns = (
        "event_id, user_id, CAST(ts AS VARCHAR), landing_date"
        if table == "app_events"
        else "reason, event_id, raw_line"
    )
    return duckdb.sql(f"SELECT {columns} FROM {lake_scan(data_dir / 'lake', table, day)} ORDER BY ALL").fetchall()


def test_every_rule_quarantines_with_its_reason(tmp_path):
    landing = tmp_path / "landing"
    lines = [
        event("ok-1"),
        event(
            "ok-2", event_type="app_open", show_id=None, episode_id=None, ts="2024-03-01T21:00:00.000+01:00", rating=3
        ),
        '{"event_id": "broken", "user_id": 7',
        "[1, 2, 3]",
        "",
        "   ",
        event("no-user", user_id=None),
        event("str-user", user_id="7"),
        event("float-user", user_id=7.5),
        event("neg-user", user_id=-3),
        event("bad-type", event_type="episode_deleted"),
        event("bad-platform", platform="smart-fridge"),
        event("bad-country", country="usa"),
        event("no-offset", ts="2024-03-01T20:15:03"),
        event("bad-ts", ts="yesterday"),
        event("no-episode", episode_id=None),
        event("bad-rating", event_type="episode_rated", rating=9),
        event("no-rating", event_type="episode_rated"),
        event("ok-1"),  # a retry
        event("future", ts="2024-03-02T10:00:00Z"),
        event("too-late", ts="2024-02-20T10:00:00Z"),
    ]
    write_landing_file(landing, "2024-03-01", 20, lines)
    result = run_day(tmp_path, "2024-03-01")
    assert result.success
    assert read(tmp_path, "app_events", "2024-03-01") == [
        ("ok-1", 7, "2024-03-01 20:15:03.12+00", dt.date(2024, 3, 1)),
        ("ok-2", 7, "2024-03-01 20:00:00+00", dt.date(2024, 3, 1)),
    ]
    reasons = {(reason, eid) for reason, eid, _ in read(tmp_path, "quarantined_events", "2024-03-01")}
    assert reasons == {
        ("malformed_json", None),
        ("malformed_json", None),
        ("missing_field:user_id", "no-user"),
        ("wrong_type:user_id", "str-user"),
        ("wrong_type:user_id", "float-user"),
        ("invalid_value:user_id", "neg-user"),
        ("invalid_value:event_type", "bad-type"),
        ("invalid_value:platform", "bad-platform"),
        ("invalid_value:country", "bad-country"),
        ("invalid_value:ts", "no-offset"),
        ("invalid_value:ts", "bad-ts"),
        ("missing_field:episode_id", "no-episode"),
        ("invalid_value:rating", "bad-rating"),
        ("missing_field:rating", "no-rating"),
        ("duplicate_event_id", "ok-1"),
        ("event_after_landing_day", "future"),
        ("arrived_too_late", "too-late"),
    }
    raw = {r for _, _, r in read(tmp_path, "quarantined_events", "2024-03-01")}
    assert '{"event_id": "broken", "user_id": 7' in raw and "[1, 2, 3]" in raw
    # 21 lines, 2 blank: 19 non-empty = 2 kept + 17 quarantined (the two malformed rows are distinct lines).
    assert len(read(tmp_path, "quarantined_events", "2024-03-01")) == 17
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["landed_lines"].value == 19 and metadata["kept"].value == 2 and metadata["duplicates"].value == 1


def test_late_arrivals_join_their_event_day_and_are_counted_once(tmp_path):
    landing = tmp_path / "landing"
    write_landing_file(landing, "2024-03-01", 23, [event("d1"), event("d1-dup")])
    write_landing_file(
        landing,
        "2024-03-02",
        1,
        [
            event("late", ts="2024-03-01T23:59:59Z"),
            event("d2", ts="2024-03-02T00:30:00Z"),
            event("d1-dup"),
            '{"not": "closed"',
        ],
    )
    run_day(tmp_path, "2024-03-01")
    run_day(tmp_path, "2024-03-02")
    assert [r[0] for r in read(tmp_path, "app_events", "2024-03-01")] == ["d1", "d1-dup", "late"]
    assert [r[0] for r in read(tmp_path, "app_events", "2024-03-02")] == ["d2"]
    # The retry of d1-dup arrived on the 2nd but belongs to the 1st, so the 1st quarantines it; the 2nd
    # keeps its own malformed line.
    assert [(r[0], r[1]) for r in read(tmp_path, "quarantined_events", "2024-03-01")] == [
        ("duplicate_event_id", "d1-dup")
    ]
    assert [r[0] for r in read(tmp_path, "quarantined_events", "2024-03-02")] == ["malformed_json"]


def test_unreadable_empty_and_truncated_files_are_reported_not_fatal(tmp_path):
    landing = tmp_path / "landing"
    good = write_landing_file(landing, "2024-03-01", 10, [event("a")])
    corrupt = good.with_name("part-corrupt.jsonl.gz")
    corrupt.write_bytes(b"PK\x03\x04 a zip archive, not gzip")
    (good.parent / "part-empty.jsonl.gz").write_bytes(b"")
    whole = write_landing_file(
        landing, "2024-03-01", 11, [event(f"t{i}") for i in range(400)], name="part-cut.jsonl.gz"
    )
    whole.write_bytes(whole.read_bytes()[: len(whole.read_bytes()) // 2])  # an interrupted upload
    result = run_day(tmp_path, "2024-03-01")
    kept = [r[0] for r in read(tmp_path, "app_events", "2024-03-01")]
    assert "a" in kept and "t0" in kept and "t399" not in kept  # the complete lines of the cut file are kept
    quarantined = duckdb.sql(
        f"SELECT reason, source_file, raw_line FROM {lake_scan(tmp_path / 'lake', 'quarantined_events', '2024-03-01')}"
    ).fetchall()
    assert [(r[0], r[1]) for r in quarantined if r[0] == "unreadable_file"] == [("unreadable_file", str(corrupt))]
    assert next(r[2] for r in quarantined if r[0] == "unreadable_file").startswith("not gzip data")
    assert {r[0] for r in quarantined} <= {"unreadable_file", "malformed_json"}  # at most the one line cut in half
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert (
        metadata["unreadable_files"].value == 1
        and metadata["empty_files"].value == 1
        and metadata["truncated_files"].value == 1
    )


def test_a_day_without_files_fails_with_the_folder_named(tmp_path):
    (tmp_path / "landing").mkdir()
    result = dg.materialize(
        EVENTS, partition_key="2024-03-05", resources=local_resources(tmp_path), raise_on_error=False
    )
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "No event files landed for 2024-03-05" in failure and "dt=2024-03-05" in failure


def test_rematerializing_a_day_replaces_it(tmp_path):
    landing = tmp_path / "landing"
    write_landing_file(landing, "2024-03-01", 10, [event("a"), event("b")])
    run_day(tmp_path, "2024-03-01")
    write_landing_file(landing, "2024-03-01", 10, [event("a")])
    run_day(tmp_path, "2024-03-01")
    assert [r[0] for r in read(tmp_path, "app_events", "2024-03-01")] == ["a"]
    assert len(lake_files(tmp_path / "lake", "app_events", "2024-03-01")) == 1


def test_a_line_that_is_not_utf8_is_quarantined_by_itself_and_its_file_goes_on(tmp_path):
    landing = tmp_path / "landing"
    latin = landing / "dt=2024-03-01" / "hour=11" / "part-latin1.jsonl.gz"
    latin.parent.mkdir(parents=True)
    bad = b'{"event_id": "caf\xe9", "event_type": "app_open"}'  # a Latin-1 byte: not UTF-8
    good = [json.dumps(event(f"e{k}")).encode() for k in range(100)]
    latin.write_bytes(gzip.compress(b"\n".join(good[:50] + [bad] + good[50:]) + b"\n"))
    result = run_day(tmp_path, "2024-03-01")
    assert len(read(tmp_path, "app_events", "2024-03-01")) == 100
    quarantined = duckdb.sql(
        f"SELECT reason, source_file, line_number, raw_line, raw_bytes "
        f"FROM {lake_scan(tmp_path / 'lake', 'quarantined_events', '2024-03-01')}"
    ).fetchall()
    assert quarantined == [("invalid_utf8", str(latin), 51, '{"event_id": "caf\\xe9", "event_type": "app_open"}', bad)]
    [balance] = result.get_asset_check_evaluations()
    assert balance.passed and balance.metadata["rows_expected"].value == 101


def test_integers_are_judged_by_value_as_json_schema_does(tmp_path):
    lines = [
        event("int-4", event_type="episode_rated", rating=4),
        event("zero-fraction", event_type="episode_rated", rating=4.0),
        '{"event_id": "exponent", "event_type": "app_open", "user_id": 1e2, "ts": "2024-03-01T20:15:03Z", '
        '"platform": "tv", "country": "US"}',
        event("fraction", event_type="episode_rated", rating=4.5),
        event("too-big", user_id=99999999999999999999),
    ]
    write_landing_file(tmp_path / "landing", "2024-03-01", 20, lines)
    assert run_day(tmp_path, "2024-03-01").success
    assert sorted(row[:2] for row in read(tmp_path, "app_events", "2024-03-01")) == [
        ("exponent", 100),
        ("int-4", 7),
        ("zero-fraction", 7),
    ]
    assert [row[:2] for row in read(tmp_path, "quarantined_events", "2024-03-01")] == [
        ("invalid_value:user_id", "too-big"),
        ("wrong_type:rating", "fraction"),
    ]


def test_rows_lost_between_validation_and_the_lake_fail_the_balance(tmp_path, monkeypatch):
    lines = [event(f"e{k}") for k in range(20)] + ["not json"]
    write_landing_file(tmp_path / "sound" / "landing", "2024-03-01", 9, lines)
    assert run_day(tmp_path / "sound", "2024-03-01").get_asset_check_evaluations()[0].passed
    # A defect that drops a valid event on its way out: the balance catches it.
    write_landing_file(tmp_path / "landing", "2024-03-01", 9, lines)
    keeping = rules.kept_sql
    monkeypatch.setattr(
        rules,
        "kept_sql",
        lambda owned, later: keeping(owned, later).replace(
            "WHERE reason IS NULL", "WHERE event_id <> 'e7' AND reason IS NULL"
        ),
    )
    result = dg.materialize(
        EVENTS, partition_key="2024-03-01", resources=local_resources(tmp_path), raise_on_error=False
    )
    [balance] = result.get_asset_check_evaluations()
    assert balance.check_name == "every_line_accounted_for" and not balance.passed
    assert balance.metadata["rows_written"].value == 20 and balance.metadata["rows_expected"].value == 21
    assert balance.metadata["judged_by"].value == "the asset, on the lake's files"


def test_the_run_log_says_what_each_engine_step_and_each_write_did(tmp_path):
    write_landing_file(tmp_path / "landing", "2024-03-01", 10, [event("a"), event("b"), "{not json"])
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(EVENTS, partition_key="2024-03-01", resources=local_resources(tmp_path), instance=instance)
    messages = [r.user_message for r in instance.all_logs(result.run_id) if r.user_message]
    steps = [m for m in messages if m.startswith("DuckDB step ")]
    assert steps and all(" rows in " in m for m in steps)
    assert any(m.startswith("app_events: 2 rows written to version v") for m in messages)
    assert any(m.startswith("quarantined_events: 1 rows written to version v") for m in messages)

"""Landing files parsed once: a day assembled from its files' parts has the rows of one pass over the whole day,
whatever order the files land in; a rewritten file is parsed again, a removed one leaves the day, and a killed run's
unfinished part is parsed again."""

import datetime as dt
import json
import os
import random
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from tvtime_platform.resources.deployment import local_resources
from tvtime_platform.resources.parsed_landing import PARSED, READ
from tvtime_platform_tests.support import defs, event, lake_at, lake_scan, write_landing_file

EVENTS = [defs.get_assets_def("app_events")]
TABLES = ("app_events", "quarantined_events")
ACCOUNTING = (
    "landed_lines",
    "kept",
    "quarantined",
    "duplicates",
    "late_arrivals_in",
    "handed_to_earlier_days",
    "quarantine_rate",
    "distinct_users",
    "quarantine_reasons",
    "unreadable_files",
    "truncated_files",
    "dagster/partition_row_count",
)


def run_day(data_dir: Path, day: str, sweep_after_seconds: float = 3600) -> dict:
    """`app_events` for the day; its metadata."""
    resources = local_resources(data_dir)
    resources["lake_storage"] = lake_at(str(data_dir / "lake"), sweep_after_seconds=sweep_after_seconds)
    result = dg.materialize(EVENTS, partition_key=day, resources=resources, instance=dg.DagsterInstance.ephemeral())
    assert result.success
    [materialization] = [
        e.materialization for e in result.get_asset_materialization_events() if e.asset_key.path == ["app_events"]
    ]
    return {k: v.value for k, v in materialization.metadata.items()}


def rows(data_dir: Path, table: str, day: str) -> str:
    """The table's rows of the day, with the landing folder left out of file names (runs read different folders)."""
    scan = lake_scan(data_dir / "lake", table, day)
    if table == "quarantined_events":
        return f"(SELECT * REPLACE (replace(source_file, '{data_dir}', '') AS source_file) FROM {scan})"
    return scan


def same_rows(a: str, b: str) -> bool:
    con = duckdb.connect()
    return all(
        con.execute(f"SELECT count(*) FROM (SELECT * FROM {x} EXCEPT ALL SELECT * FROM {y})").fetchall()[0][0] == 0
        for x, y in ((a, b), (b, a))
    )


@pytest.mark.slow
@pytest.mark.parametrize("order", ["arrival", "reversed", "shuffled"])
def test_each_file_is_parsed_once_and_the_days_match_one_pass_whatever_the_landing_order(
    tmp_path, generated_landing, order
):
    """Files land in batches, in the order given; after each batch the days reading them run, as the landing sensor
    requests them. The days end as one pass over every file makes them, and each file was parsed once."""
    whole, hourly = tmp_path / "whole", tmp_path / "hourly"
    shutil.copytree(generated_landing, whole / "landing")
    days = sorted(p.name.removeprefix("dt=") for p in generated_landing.glob("dt=*"))[:2]
    once = {day: run_day(whole, day) for day in days}

    files = sorted(p.relative_to(generated_landing) for p in generated_landing.glob("dt=*/hour=*/*.jsonl.gz"))
    if order == "reversed":
        files.reverse()
    elif order == "shuffled":
        random.Random(5).shuffle(files)
    parsed, last, appended = 0, {}, 0
    for k in range(0, len(files), 8):
        landed_now = set()
        for rel in files[k : k + 8]:
            (hourly / "landing" / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(generated_landing / rel, hourly / "landing" / rel)
            landed_now.add(dt.date.fromisoformat(rel.parts[0].removeprefix("dt=")))
        # The sensor's requests: a file landed on L is read by L's partition and the day before (the late window).
        requested = sorted({str(d - dt.timedelta(days=j)) for d in landed_now for j in (0, 1)} & set(days))
        for day in requested:
            last[day] = run_day(hourly, day)
            parsed += last[day]["files_parsed"]
            appended += "files_appended" in last[day]
    # Every non-empty file (the two days' and the late window's) was parsed by exactly one run.
    assert parsed == sum(1 for rel in files if (generated_landing / rel).stat().st_size)
    if order == "arrival":
        assert appended > 0  # files landing in arrival order are appended, not assembled again
    for day in days:
        # The day's accounting as its last run reported it (added up over appends) is what one pass counts.
        assert {k: last[day][k] for k in ACCOUNTING} == {k: once[day][k] for k in ACCOUNTING}, (order, day)
        final = run_day(hourly, day)
        assert final["files_parsed"] == 0 and final["files_parsed_before"] > 0
        for table in TABLES:
            assert same_rows(rows(whole, table, day), rows(hourly, table, day)), (order, day, table)


def test_a_rewritten_file_is_parsed_again_and_a_removed_one_leaves_the_day(tmp_path):
    landing, day = tmp_path / "landing", "2024-03-01"
    first = write_landing_file(landing, day, 10, [event("a-1"), event("a-2")], name="part-a.jsonl.gz")
    second = write_landing_file(landing, day, 11, [event("b-1"), "not json"], name="part-b.jsonl.gz")
    ran = run_day(tmp_path, day, sweep_after_seconds=0)
    assert (ran["files_parsed"], ran["files_parsed_before"], ran["kept"], ran["quarantined"]) == (2, 0, 3, 1)
    again = run_day(tmp_path, day, sweep_after_seconds=0)
    assert (again["files_parsed"], again["files_parsed_before"], again["kept"]) == (0, 2, 3)

    write_landing_file(landing, day, 10, [event("a-1"), event("a-3"), event("a-4")], name=first.name)
    rewritten = run_day(tmp_path, day, sweep_after_seconds=0)
    assert (rewritten["files_parsed"], rewritten["files_parsed_before"], rewritten["kept"]) == (1, 1, 4)
    kept = duckdb.sql(f"SELECT event_id FROM {lake_scan(tmp_path / 'lake', 'app_events', day)} ORDER BY 1").fetchall()
    assert [k for (k,) in kept] == ["a-1", "a-3", "a-4", "b-1"]

    second.unlink()
    removed = run_day(tmp_path, day, sweep_after_seconds=0)
    assert (removed["files_parsed"], removed["kept"], removed["quarantined"], removed["landed_lines"]) == (0, 3, 0, 3)
    # The parts no listed file names (the first file's old one, the removed file's) are gone.
    assert len(list((tmp_path / "lake" / PARSED / f"dt={day}").iterdir())) == 1


def test_a_part_a_killed_run_left_unfinished_is_parsed_again(tmp_path):
    landing, day = tmp_path / "landing", "2024-03-01"
    write_landing_file(landing, day, 10, [event("a-1"), event("a-2")])
    run_day(tmp_path, day)
    [part] = (tmp_path / "lake" / PARSED / f"dt={day}").iterdir()
    (part / READ).unlink()  # killed before it renamed read.json into place; what it wrote before is ignored
    (part / f".{READ}.0123abcd.tmp").write_text('{"lines": 2, "pro')
    for lines in part.glob("lines-*.parquet"):
        lines.write_bytes(b"cut short")
    ran = run_day(tmp_path, day)
    assert (ran["files_parsed"], ran["kept"]) == (1, 2)


@pytest.mark.parametrize("loss", ["deleted", "cut short"])
def test_a_part_whose_lines_are_gone_is_parsed_again_instead_of_failing_every_run(tmp_path, loss):
    landing, day = tmp_path / "landing", "2024-03-01"
    write_landing_file(landing, day, 10, [event("a-1"), event("a-2")], name="a.jsonl.gz")
    run_day(tmp_path, day)
    [part] = (tmp_path / "lake" / PARSED / f"dt={day}").iterdir()
    for lines in part.glob("lines-*.parquet"):  # its read.json still names it
        lines.unlink() if loss == "deleted" else lines.write_bytes(lines.read_bytes()[:100])
    write_landing_file(landing, day, 9, [event("b-1")], name="b.jsonl.gz")  # arrived earlier: the day is rebuilt
    ran = run_day(tmp_path, day)
    assert (ran["files_parsed"], ran["files_parsed_before"], ran["kept"]) == (2, 0, 3)


def test_a_copy_appended_later_counts_as_what_one_pass_counts(tmp_path):
    """An event id kept earlier and repeated by a file that lands later, under another user: the appended day counts
    what one pass over both files counts (the copy quarantined, its user not among the day's)."""
    day = "2024-03-01"
    once, grown = tmp_path / "once", tmp_path / "grown"
    first, later = [event("x", user_id=1), event("y", user_id=3)], [event("x", user_id=2), event("z", user_id=3)]
    write_landing_file(grown / "landing", day, 1, first, name="p.jsonl.gz")
    run_day(grown, day)
    write_landing_file(grown / "landing", day, 2, later, name="p.jsonl.gz")
    appended = run_day(grown, day)
    write_landing_file(once / "landing", day, 1, first, name="p.jsonl.gz")
    write_landing_file(once / "landing", day, 2, later, name="p.jsonl.gz")
    whole = run_day(once, day)
    assert appended["files_appended"] == 1
    assert {k: appended[k] for k in ACCOUNTING} == {k: whole[k] for k in ACCOUNTING}
    assert (whole["kept"], whole["duplicates"], whole["distinct_users"]) == (3, 1, 2)
    for table in TABLES:
        assert same_rows(rows(once, table, day), rows(grown, table, day)), table


def test_a_file_rewritten_to_the_same_size_with_its_old_mtime_is_parsed_again(tmp_path):
    landing, day = tmp_path / "landing", "2024-03-01"
    path = write_landing_file(landing, day, 10, [event("b-1"), event("c-1")])
    run_day(tmp_path, day)
    before = path.stat()
    write_landing_file(landing, day, 10, [event("b-2"), event("c-2")])  # same length, other ids
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # as `cp -p` or `rsync -t` would leave it
    assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns
    ran = run_day(tmp_path, day)
    kept = duckdb.sql(f"SELECT event_id FROM {lake_scan(tmp_path / 'lake', 'app_events', day)} ORDER BY 1").fetchall()
    assert ran["files_parsed"] == 1 and [k for (k,) in kept] == ["b-2", "c-2"]


def test_the_days_users_are_counted_from_the_newest_segment_or_from_every_file_before_it_kept_them(tmp_path):
    """An append counts the day's distinct users from the newest segment's `day_users.parquet` (one file, not every
    version's); a segment written before those files were kept has its users counted on the files carried."""
    day = "2024-03-01"
    batches = [[event("a", user_id=1), event("b", user_id=2)], [event("c", user_id=2)], [event("d", user_id=3)]]
    for n, batch in enumerate(batches):
        write_landing_file(tmp_path / "landing", day, n, batch, name=f"p{n}.jsonl.gz")
        ran = run_day(tmp_path, day)
        if n == 0:  # the first segment as written before: no day_users.parquet, no count in segment.json
            [segment] = (tmp_path / "lake" / "app_events" / f"dt={day}").glob("v*/segment.json")
            record = json.loads(segment.read_text())
            del record["day_users"]
            segment.write_text(json.dumps(record))
            (segment.parent / "day_users.parquet").unlink()
    assert (ran["files_appended"], ran["distinct_users"], ran["kept"]) == (1, 3, 4)
    newest = max((tmp_path / "lake" / "app_events" / f"dt={day}").glob("v*/day_users.parquet"))
    assert duckdb.sql(f"SELECT list(user_id ORDER BY user_id) FROM '{newest}'").fetchall() == [([1, 2, 3],)]


def test_the_days_users_follow_the_record_not_the_runs_clocks(tmp_path):
    """The version an append builds on is the one the record names first, whatever time its run's clock wrote into the
    segment: a run that appended nothing, stamped earlier than the one before it, does not lose that one's users."""
    day, folder = "2024-03-01", tmp_path / "lake" / "app_events" / "dt=2024-03-01"
    write_landing_file(tmp_path / "landing", day, 0, [event("a", user_id=1)], name="p0.jsonl.gz")
    run_day(tmp_path, day)
    run_day(tmp_path, day)  # nothing new: a version that appends no part
    write_landing_file(tmp_path / "landing", day, 1, [event("b", user_id=2)], name="p1.jsonl.gz")
    run_day(tmp_path, day)
    segments = sorted(folder.glob("v*/segment.json"))  # by version folder: the runs' order
    empty, newest = (json.loads(segment.read_text()) for segment in segments[1:])
    # The newest run's clock a moment behind the run before it: the order of the parts the day holds is unchanged.
    newest["written"] = (dt.datetime.fromisoformat(empty["written"]) - dt.timedelta(microseconds=1)).isoformat()
    segments[-1].write_text(json.dumps(newest))
    write_landing_file(tmp_path / "landing", day, 2, [event("c", user_id=3)], name="p2.jsonl.gz")
    ran = run_day(tmp_path, day)
    assert (ran["files_appended"], ran["kept"], ran["distinct_users"]) == (1, 3, 3)


def test_a_segment_written_before_it_named_its_own_parts_is_rebuilt_not_added_to(tmp_path):
    """A segment of an older lake (no `own_parts`), the day's or one of its late window's: the next run assembles the
    day again instead of failing on it."""
    day, before = "2024-03-02", "2024-03-01"
    write_landing_file(tmp_path / "landing", before, 3, [event("x", ts=f"{before}T03:00:00Z")], name="p.jsonl.gz")
    write_landing_file(tmp_path / "landing", day, 0, [event("a", ts=f"{day}T00:10:00Z")], name="p0.jsonl.gz")
    run_day(tmp_path, before)
    run_day(tmp_path, day)
    for segment in (tmp_path / "lake" / "app_events").glob("dt=*/v*/segment.json"):
        record = json.loads(segment.read_text())
        del record["own_parts"]
        segment.write_text(json.dumps(record))
    write_landing_file(tmp_path / "landing", day, 1, [event("b", ts=f"{day}T01:10:00Z")], name="p1.jsonl.gz")
    ran = run_day(tmp_path, day)
    assert (ran["files_assembled"], ran["kept"]) == (2, 2)

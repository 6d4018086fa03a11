"""The lake, in a folder (SQLite catalog) and on S3 (moto's S3 and Glue): what readers get, exact replacement, versions
invisible until committed, tables committed together, compare-and-swap commits, the sweep of leftovers and expired
snapshots, concurrent writers, the move from commit records, a clear error for a partition never written."""

import json
import multiprocessing
import time
import unittest.mock
from collections.abc import Callable

import dagster as dg
import pyarrow as pa
import pytest

from tvtime_platform.lake import JOURNAL, Lake, LakeDamaged, LakeIOManager, Recorded, StalePartition, Version
from tvtime_platform.resources.duckdb_engine import DuckDBEngine
from tvtime_platform.resources.storage import basename, filesystem, join
from tvtime_platform_tests.emulators import new_bucket
from tvtime_platform_tests.support import commit_killed_before_the_first_table, lake_at, write_partition


def test_written_partitions_are_read_back_typed_with_their_day(lake_url):
    lake = lake_at(lake_url)
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    for day, n in (("2024-03-01", 3), ("2024-03-02", 2)):
        metadata = write_partition(
            lake, con.sql(f"SELECT range AS x, 'v' || range AS label FROM range({n})"), dg.AssetKey("t"), day
        )
        assert metadata["dagster/partition_row_count"].value == n and metadata["bytes"].value > 0
        assert [(c.name, c.type) for c in metadata["dagster/column_schema"].value.columns] == [
            ("x", "BIGINT"),
            ("label", "VARCHAR"),
        ]  # DuckDB's names, as the column declarations spell them
    table = lake.table(dg.AssetKey("t"), ["2024-03-01", "2024-03-02"])
    assert table.row_count() == 5
    table.view(con, "t")
    assert con.sql("SELECT CAST(dt AS VARCHAR), count(*) FROM t GROUP BY dt ORDER BY dt").fetchall() == [
        ("2024-03-01", 3),
        ("2024-03-02", 2),
    ]
    assert con.sql("SELECT typeof(x), typeof(label) FROM t LIMIT 1").fetchall() == [("BIGINT", "VARCHAR")]


def test_a_tables_rows_are_counted_from_the_catalog_without_opening_its_files(lake_url):
    lake = lake_at(lake_url)
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    key, day = dg.AssetKey("t"), "2024-03-01"
    first = lake.stage(con.sql("SELECT range AS x FROM range(3)"), key, day)
    lake.commit(day, [first])
    appended = lake.stage(con.sql("SELECT 7 AS x"), key, day, carried=first.files)
    assert lake.version_table(appended).row_count() == 4  # as staged
    lake.commit(day, [appended])
    for file in appended.files:  # (never done to a lake file: here it shows the files are not opened)
        fs, path = filesystem(join(lake_url, file))
        fs.pipe_file(path, b"not Parquet")
    assert lake.table(key, [day]).row_count() == 4


def test_rewriting_a_partition_replaces_it_exactly(lake_url):
    lake = lake_at(lake_url)
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    key = dg.AssetKey("t")
    write_partition(lake, con.sql("SELECT range AS x FROM range(10)"), key, "2024-03-01")
    write_partition(lake, con.sql("SELECT range AS x FROM range(4)"), key, "2024-03-01")
    table = lake.table(key, ["2024-03-01"])
    assert len(table.files()) == 1 and table.row_count() == 4


def test_a_missing_partition_names_what_to_materialize(lake_url):
    manager = LakeIOManager(lake=lake_at(lake_url))
    context = dg.build_input_context(
        asset_key=dg.AssetKey("app_events"),
        partition_key="2024-03-01",
        asset_partitions_def=dg.DailyPartitionsDefinition(start_date="2024-01-01"),
    )
    with pytest.raises(dg.Failure, match="Materialize app_events for those partitions first"):
        manager.load_input(context)


def full_url(fs, path: str) -> str:
    """A path as a filesystem lists it, made into a URL again (`bucket/key` -> `s3://bucket/key`)."""
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return path if protocol in ("file", "local") else fs.unstrip_protocol(path)


def _rows(lake: Lake, table: str, day: str | None = "2024-03-01") -> list[tuple]:
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    files = lake.table(dg.AssetKey(table), [day]).files()
    return con.execute(
        "SELECT * EXCLUDE (dt) FROM read_parquet(?, hive_partitioning = true) ORDER BY ALL", [files]
    ).fetchall()


def test_a_version_is_invisible_until_committed_and_replaces_the_old_one_whole(lake_url):
    lake = lake_at(lake_url)
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    key = dg.AssetKey("t")
    write_partition(lake, con.sql("SELECT range AS x FROM range(3)"), key, "2024-03-01")
    staged = lake.stage(con.sql("SELECT range + 100 AS x FROM range(5)"), key, "2024-03-01")
    assert _rows(lake, "t") == [(0,), (1,), (2,)]  # the new files are written, no reader sees them
    lake.commit("2024-03-01", [staged])
    assert _rows(lake, "t") == [(100 + k,) for k in range(5)]
    fs, root = filesystem(lake_url)
    folders = {p.rsplit("/", 2)[-2] for p in fs.find(root) if p.endswith(".parquet")}
    assert len(folders) == 2  # the replaced version stays for readers still on it, until its snapshot expires


def test_an_appended_version_counts_its_carried_files_as_they_were_counted(lake_url):
    """A table that grows by appending keeps its earlier files; what their first stage counted (rows, bytes) is taken as
    counted, without opening them again (on S3, requests that grow with every append)."""
    lake = lake_at(lake_url)
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    key, day = dg.AssetKey("t"), "2024-03-01"
    first = lake.stage(con.sql("SELECT range AS x FROM range(3)"), key, day)
    lake.commit(day, [first])
    [(carried, counted)] = first.rows_and_bytes.items()
    fs, path = filesystem(join(lake_url, carried))
    assert counted == (3, fs.size(path))

    def append(**known) -> Version:
        return lake.stage(con.sql("SELECT 7 AS x"), key, day, carried=[carried], **known)

    from_footers = append()
    fs.pipe_file(path, b"not Parquet")  # (never done to a lake file: here it shows the file is not opened again)
    as_counted = append(carried_rows_and_bytes={carried: counted})
    for version in (from_footers, as_counted):
        assert version.metadata["dagster/partition_row_count"].value == 4
        assert version.files[1] == carried and version.rows_and_bytes[carried] == counted
    assert from_footers.metadata["bytes"] == as_counted.metadata["bytes"]
    with pytest.raises(pa.ArrowInvalid):  # without the count, the file is opened
        append()


def test_an_append_whose_carried_file_is_gone_commits_nothing_and_says_how_to_rebuild(lake_url):
    lake = lake_at(lake_url)
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    key, day = dg.AssetKey("t"), "2024-03-01"
    first = lake.stage(con.sql("SELECT 1 AS x"), key, day)
    lake.commit(day, [first])
    [carried] = first.files
    appended = lake.stage(con.sql("SELECT 2 AS x"), key, day, carried=[carried])
    fs, path = filesystem(join(lake_url, carried))
    fs.rm_file(path)  # deleted by something other than the lake's sweep
    with pytest.raises(LakeDamaged, match="current version that this write keeps, is gone.*Roll the day back") as e:
        lake.commit(day, [appended])
    assert not e.value.allow_retries  # no retry brings the file back
    assert lake.committed(key, day) == [join(lake.root(), carried)]  # the snapshot still names what it named


def test_a_commit_built_on_what_another_commit_replaced_commits_nothing(lake_url):
    """Compare-and-swap: of two writes that read the same day, the second to commit is refused, on a day written before
    and on a new one; a whole rebuild commits over what is current."""
    lake = lake_at(lake_url)
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    key = dg.AssetKey("t")
    lake.commit("2024-03-01", [lake.stage(con.sql("SELECT 1 AS x"), key, "2024-03-01")])
    for day in ("2024-03-01", "2024-03-02"):
        seen = lake.recorded(key, day)
        newer, stale = (lake.stage(con.sql(f"SELECT {x} AS x"), key, day) for x in (2, 3))
        lake.commit(day, [newer], seen)
        with pytest.raises(StalePartition, match="another run committed the day"):
            lake.commit(day, [stale], seen)
        assert _rows(lake, "t", day) == [(2,)]
        lake.commit(day, [lake.stage(con.sql("SELECT 4 AS x"), key, day)])  # a whole rebuild commits over what is
        assert _rows(lake, "t", day) == [(4,)]


@pytest.mark.parametrize("catalog", ["sqlite", "postgresql"])
def test_a_commit_that_lost_the_race_to_another_day_is_made_again_over_it(tmp_path, monkeypatch, request, catalog):
    """Two writers of different days load the table at the same snapshot: the catalog refuses the second commit (the
    table moved: a compare-and-swap in SQLite and in PostgreSQL), and the lake commits it again over the first: both
    days kept, no writer's files lost."""
    import uuid

    from pyiceberg.exceptions import CommitFailedException

    import tvtime_platform.lake.catalog as iceberg

    settings = {}
    if catalog == "postgresql":
        pg = request.getfixturevalue("postgres")
        settings = {
            "catalog": f"postgresql+psycopg2://dagster@127.0.0.1:{pg['DAGSTER_PG_PORT']}/dagster",
            "namespace": f"lake_{uuid.uuid4().hex[:8]}",
        }
    lake = lake_at(tmp_path / "lake", **settings)
    con = DuckDBEngine().connect()
    key = dg.AssetKey("t")
    write_partition(lake, con.sql("SELECT 0 AS x"), key, "2024-02-29")
    stale = lake.iceberg_table(key)
    write_partition(lake, con.sql("SELECT 9 AS x"), key, "2024-02-28")
    with pytest.raises(CommitFailedException):  # the catalog itself refuses a commit from a snapshot no longer current
        iceberg.commit_day(stale, "2024-02-27", [], [], {})

    commit_day, raced = iceberg.commit_day, []

    def another_writer_first(table, partition, removed, added, properties):
        if not raced:  # the other writer commits its day between this one's load and its commit
            raced.append(partition)
            write_partition(lake_at(tmp_path / "lake", **settings), con.sql("SELECT 1 AS x"), key, "2024-03-01")
        return commit_day(table, partition, removed, added, properties)

    monkeypatch.setattr(iceberg, "commit_day", another_writer_first)
    write_partition(lake, con.sql("SELECT 2 AS x"), key, "2024-03-02")
    assert raced == ["2024-03-02"]
    days = ("2024-02-28", "2024-02-29", "2024-03-01", "2024-03-02")
    assert [_rows(lake, "t", d) for d in days] == [[(9,)], [(0,)], [(1,)], [(2,)]]


def test_a_lake_url_spelled_with_a_double_slash_still_commits(s3_endpoint):
    """The commit's listing spells such paths otherwise; the files it did not show are asked for one by one."""
    lake = lake_at(f"s3://{new_bucket()}//lake")
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    write_partition(lake, con.sql("SELECT 1 AS x"), dg.AssetKey("t"), "2024-03-01")
    assert lake.table(dg.AssetKey("t"), ["2024-03-01"]).row_count() == 1


def test_tables_committed_together_change_together(lake_url, monkeypatch):
    """The first table's commit names the others' snapshots, and readers read those: a write killed between the
    commits leaves both tables as they were, to readers, until the next commit of the day mends it."""
    lake = lake_at(lake_url)
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    events, quarantine = dg.AssetKey("events"), dg.AssetKey("quarantine")

    def write(n: int) -> list:
        return [lake.stage(con.sql(f"SELECT {n} AS x"), key, "2024-03-01") for key in (events, quarantine)]

    lake.commit("2024-03-01", write(1))
    second = write(2)
    assert (_rows(lake, "events"), _rows(lake, "quarantine")) == ([(1,)], [(1,)])
    lake.commit("2024-03-01", second)
    assert (_rows(lake, "events"), _rows(lake, "quarantine")) == ([(2,)], [(2,)])
    with monkeypatch.context() as in_step:
        in_step.setattr(Lake, "commit", lambda *args: pytest.fail("a day in step, a file a table, is left alone"))
        assert lake.compact(events, "2024-03-01") == []

    commit_killed_before_the_first_table(lake, "2024-03-01", write(3))
    quarantine_table = lake.iceberg_table(quarantine)
    newest = quarantine_table.scan().to_arrow().column("x").to_pylist()
    assert newest == [3]  # the quarantine's own newest snapshot holds the killed write's rows ...
    assert (_rows(lake, "events"), _rows(lake, "quarantine")) == ([(2,)], [(2,)])  # ... which no reader of ours sees
    lake.commit("2024-03-02", [lake.stage(con.sql("SELECT 5 AS x"), key, "2024-03-02") for key in (events, quarantine)])
    for key in (events, quarantine):  # expiry keeps what the day out of step is read by
        lake_at(lake_url, keep_snapshots_days=0).expire(key)
    assert (_rows(lake, "events"), _rows(lake, "quarantine")) == ([(2,)], [(2,)])
    [healed, _] = lake.compact(events, "2024-03-01")  # no run comes: the daily sweep puts the day back in step
    assert sorted(quarantine_table.refresh().scan().to_arrow().column("x").to_pylist()) == [2, 5]  # 03-01 in step
    assert healed.files == tuple(lake.recorded(events, "2024-03-01").tables["events"])
    lake.commit("2024-03-01", write(4))  # the next commit of the day
    assert (_rows(lake, "events"), _rows(lake, "quarantine")) == ([(4,)], [(4,)])


def test_an_append_adding_no_rows_to_a_table_committed_with_another_leaves_that_table_alone(lake_url):
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    lake = lake_at(lake_url)
    events, quarantine, day = dg.AssetKey("events"), dg.AssetKey("quarantine"), "2024-03-01"
    lake.replace(day, {events: con.sql("SELECT 1 AS x"), quarantine: con.sql("SELECT 'a' AS reason")})
    quarantined_before = lake.iceberg_table(quarantine).current_snapshot().snapshot_id
    seen = lake.recorded(events, day)
    _append_with_no_quarantined_rows(lake, day, seen)
    assert lake.iceberg_table(quarantine).current_snapshot().snapshot_id == quarantined_before  # no commit of its own
    assert lake.recorded(events, day).tables["quarantine"] == seen.tables["quarantine"]
    assert (_rows(lake, "events"), _rows(lake, "quarantine")) == ([(1,), (2,)], [("a",)])
    nothing = con.sql("SELECT 'b' AS reason WHERE false")
    lake.replace("2024-03-02", {events: con.sql("SELECT 3 AS x"), quarantine: nothing})  # a new day: its file, empty
    assert len(lake.recorded(events, "2024-03-02").tables["quarantine"]) == 1
    assert _rows(lake, "quarantine", "2024-03-02") == []


def _append_with_no_quarantined_rows(lake: Lake, day: str, seen: Recorded) -> None:
    """An append of the day over what it read (`seen`): a new events row, a new quarantine file of no rows."""
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    events, quarantine = dg.AssetKey("events"), dg.AssetKey("quarantine")
    lake.commit(
        day,
        [
            lake.stage(con.sql("SELECT 2 AS x"), events, day, carried=seen.tables["events"]),
            lake.stage(con.sql("SELECT 'b' AS reason WHERE false"), quarantine, day, carried=seen.tables["quarantine"]),
        ],
        seen,
    )


def _kill_a_write_of(
    lake: Lake, day: str, kill: Callable[[Lake, str, list], None] = commit_killed_before_the_first_table
) -> None:
    """A write of the day (events 9, quarantine 'w') killed after its quarantine's commit, before the events' (by
    `kill`)."""
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    written = (("SELECT 9 AS x", dg.AssetKey("events")), ("SELECT 'w' AS reason", dg.AssetKey("quarantine")))
    kill(lake, day, [lake.stage(con.sql(sql), key, day) for sql, key in written])


def _append_leaving_the_quarantine_alone_after_a_killed_write(
    lake: Lake, day: str, kill: Callable[[Lake, str, list], None] = commit_killed_before_the_first_table
) -> None:
    """The day written, read by an append; a write of the day killed after its quarantine's commit (by `kill`); then
    the append, which adds no quarantined rows (so leaves that table alone) and pins the quarantine as it read it."""
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    events, quarantine = dg.AssetKey("events"), dg.AssetKey("quarantine")
    lake.replace(day, {events: con.sql("SELECT 1 AS x"), quarantine: con.sql("SELECT 'a' AS reason")})
    seen = lake.recorded(events, day)
    _kill_a_write_of(lake, day, kill)
    _append_with_no_quarantined_rows(lake, day, seen)


@pytest.mark.parametrize("order", [("events", "quarantine"), ("quarantine", "events")])
def test_an_append_that_left_a_table_alone_while_another_writes_commit_of_it_came_keeps_the_day_in_step(
    lake_url, order
):
    """The day is out of step (the quarantine's own current snapshot holds the killed write's rows): expiry keeps what
    readers read it by, however often it comes and in whichever order it goes over the tables, while the snapshots that
    put the quarantine ahead expire; compaction mends the day; then what was kept for it expires too."""
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    lake = lake_at(lake_url)
    events, quarantine, day = dg.AssetKey("events"), dg.AssetKey("quarantine"), "2024-03-01"
    _append_leaving_the_quarantine_alone_after_a_killed_write(lake, day)
    assert (_rows(lake, "events"), _rows(lake, "quarantine")) == ([(1,), (2,)], [("a",)])
    expiring = lake_at(lake_url, keep_snapshots_days=0)
    for n in (1, 2):  # two daily passes, another day written before each
        lake.replace(
            "2024-03-02", {events: con.sql(f"SELECT {4 + n} AS x"), quarantine: con.sql("SELECT 'c' AS reason")}
        )
        for name in order:
            expiring.expire(dg.AssetKey(name))
        assert (_rows(lake, "events"), _rows(lake, "quarantine")) == ([(1,), (2,)], [("a",)])
    lake.compact(events, day)
    assert (_rows(lake, "events"), _rows(lake, "quarantine")) == ([(1,), (2,)], [("a",)])
    quarantined = lake.iceberg_table(quarantine).scan(row_filter=f"dt == '{day}'").to_arrow()
    assert quarantined.column("reason").to_pylist() == ["a"]  # its own current snapshot in step again
    for name in [*order, *order]:  # (a table whose snapshots the other's pin goes at the next pass)
        expiring.expire(dg.AssetKey(name))
    assert [len(lake.iceberg_table(key).metadata.snapshots) for key in (events, quarantine)] == [1, 1]


def test_a_day_out_of_step_is_kept_so_whatever_the_writers_clocks(lake_url):
    """Snapshots are ordered by their sequence numbers, not their times: the killed write's host clock a minute behind,
    its quarantine snapshot is still the later one."""
    import pyiceberg.table.snapshots

    clock = pyiceberg.table.snapshots.time
    behind = type("Clock", (), {"time": staticmethod(lambda: clock.time() - 60)})

    def killed_on_a_host_behind(lake: Lake, day: str, versions: list) -> None:
        with unittest.mock.patch.object(pyiceberg.table.snapshots, "time", behind):
            commit_killed_before_the_first_table(lake, day, versions)

    lake = lake_at(lake_url)
    _append_leaving_the_quarantine_alone_after_a_killed_write(lake, "2024-03-01", killed_on_a_host_behind)
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    lake.replace(
        "2024-03-02",
        {dg.AssetKey("events"): con.sql("SELECT 5 AS x"), dg.AssetKey("quarantine"): con.sql("SELECT 'c' AS reason")},
    )
    for key in (dg.AssetKey("events"), dg.AssetKey("quarantine")):
        lake_at(lake_url, keep_snapshots_days=0).expire(key)
    assert (_rows(lake, "events"), _rows(lake, "quarantine")) == ([(1,), (2,)], [("a",)])


def test_a_day_is_read_by_its_newest_run_after_expiry_whatever_the_writers_clocks(lake_url):
    """A run of another day from a host whose clock is ahead: the day's older snapshot does not outlive its newer one
    (readers would read the day by its older pin)."""
    import pyiceberg.table.snapshots

    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    lake = lake_at(lake_url)
    events, quarantine, day = dg.AssetKey("events"), dg.AssetKey("quarantine"), "2024-03-01"
    clock = pyiceberg.table.snapshots.time
    ahead = type("Clock", (), {"time": staticmethod(lambda: clock.time() + 60)})
    lake.replace(day, {events: con.sql("SELECT 1 AS x"), quarantine: con.sql("SELECT 'a' AS reason")})
    with unittest.mock.patch.object(pyiceberg.table.snapshots, "time", ahead):
        lake.replace("2024-03-02", {events: con.sql("SELECT 5 AS x"), quarantine: con.sql("SELECT 'c' AS reason")})
    lake.replace(day, {events: con.sql("SELECT 2 AS x"), quarantine: con.sql("SELECT 'b' AS reason")})
    lake.replace("2024-03-03", {events: con.sql("SELECT 7 AS x"), quarantine: con.sql("SELECT 'e' AS reason")})
    for key in (events, quarantine):
        lake_at(lake_url, keep_snapshots_days=0).expire(key)
    assert (_rows(lake, "events"), _rows(lake, "quarantine")) == ([(2,)], [("b",)])


def test_the_sweep_keeps_a_days_files_whose_writing_snapshot_expired_after_an_older_one_was_kept(lake_url):
    """Expiry can keep an old snapshot (pinned by a day out of step) and expire a later one that wrote another day:
    the day's current files are named by the current snapshot, which did not change that day."""
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    lake = lake_at(lake_url)
    events, quarantine = dg.AssetKey("events"), dg.AssetKey("quarantine")
    first, second, third = "2024-03-01", "2024-03-02", "2024-03-03"
    lake.replace(first, {events: con.sql("SELECT 1 AS x"), quarantine: con.sql("SELECT 'a' AS reason")})
    lake.replace(second, {events: con.sql("SELECT 2 AS x"), quarantine: con.sql("SELECT 'b' AS reason")})
    _kill_a_write_of(lake, first)
    lake.replace(third, {events: con.sql("SELECT 3 AS x"), quarantine: con.sql("SELECT 'c' AS reason")})
    later = lake_at(lake_url, keep_snapshots_days=0, sweep_after_seconds=0)
    for key in (events, quarantine):
        later.expire(key)
    for key in (events, quarantine):
        later.sweep(key, second)
    assert (_rows(lake, "events", second), _rows(lake, "quarantine", second)) == ([(2,)], [("b",)])


def test_a_day_is_rolled_back_to_one_of_its_snapshots_with_the_tables_committed_with_it(tmp_path, capsys):
    """`tvtime lake snapshots` lists the snapshots that changed a day; `tvtime lake rollback` makes the day what it was
    at one of them, the tables committed with it too, as a new commit that can itself be rolled back."""
    from tvtime_platform.cli import main

    lake = lake_at(tmp_path / "lake")
    con = DuckDBEngine().connect()
    events, quarantine = dg.AssetKey("events"), dg.AssetKey("quarantine")
    for n in (1, 2):
        lake.replace("2024-03-01", {events: con.sql(f"SELECT {n} AS x"), quarantine: con.sql(f"SELECT {n} AS x")})
    lake.replace("2024-03-02", {events: con.sql("SELECT 7 AS x"), quarantine: con.sql("SELECT 7 AS x")})
    assert main(["lake", "snapshots", "events", "2024-03-01", "--lake", str(tmp_path / "lake")]) == 0
    listed = json.loads(capsys.readouterr().out)
    # Newest first: the second commit, the first, and the one that made the pins of a new day fresh before it.
    assert [s["rows"] for s in listed] == [1, 1, 0]
    first = listed[1]["snapshot"]
    assert main(["lake", "rollback", "events", "2024-03-01", str(first), "--lake", str(tmp_path / "lake")]) == 0
    assert (_rows(lake, "events"), _rows(lake, "quarantine")) == ([(1,)], [(1,)])
    assert (_rows(lake, "events", "2024-03-02"), _rows(lake, "quarantine", "2024-03-02")) == ([(7,)], [(7,)])
    assert main(["lake", "rollback", "events", "2024-03-01", "12345", "--lake", str(tmp_path / "lake")]) == 1
    assert "events has no snapshot 12345: `tvtime lake snapshots events 2024-03-01`" in capsys.readouterr().err
    alone = lake.snapshots(quarantine, "2024-03-01")[-1]["snapshot"]
    assert main(["lake", "rollback", "quarantine", "2024-03-01", str(alone), "--lake", str(tmp_path / "lake")]) == 1
    assert "quarantine is committed together with events: roll back events's day" in capsys.readouterr().err
    assert main(["lake", "snapshots", "nosuch", "2024-03-01", "--lake", str(tmp_path / "lake")]) == 1
    assert "holds no table 'nosuch'" in capsys.readouterr().err


def test_a_write_that_read_the_day_before_another_commits_it_with_a_new_table_is_refused(lake_url):
    """The commit starts from the tables its read loaded; another write committing the day (with a table committed
    with it for the first time, which sets a property on both) in between is found, not written over."""
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    first, other, day = dg.AssetKey("h"), dg.AssetKey("o"), "2024-03-01"
    reader, writer = lake_at(lake_url), lake_at(lake_url)
    reader.commit(day, [reader.stage(con.sql("SELECT 1 AS x"), first, day)])
    seen = reader.recorded(first, day)
    writer.replace(day, {first: con.sql("SELECT 2 AS x"), other: con.sql("SELECT 'writer' AS r")})
    held = reader.recorded(first, day).tables
    versions = [
        reader.stage(con.sql("SELECT 3 AS x"), first, day, carried=seen.tables["h"]),
        reader.stage(con.sql("SELECT 'reader' AS r"), other, day),
    ]
    with pytest.raises(StalePartition):
        reader.commit(day, versions, expected=seen)
    assert reader.recorded(first, day).tables == held and _rows(reader, "h") == [(2,)]


def test_a_write_whose_first_table_loses_a_race_after_the_other_committed_commits_over_it(lake_url, monkeypatch):
    """The tables committed together go first; when the first table's commit then loses to another day's commit, the
    write commits again, its own commit of the other table not taken for another write's."""
    import tvtime_platform.lake.catalog as iceberg

    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    first, other, day = dg.AssetKey("h"), dg.AssetKey("o"), "2024-03-01"
    lake, racing = lake_at(lake_url), lake_at(lake_url)
    lake.commit(day, [lake.stage(con.sql("SELECT 1 AS x"), first, day)])
    seen = lake.recorded(first, day)
    versions = [lake.stage(con.sql("SELECT 3 AS x"), first, day), lake.stage(con.sql("SELECT 'me' AS r"), other, day)]
    commit_day, raced = iceberg.commit_day, []

    def another_day_first(table, partition, removed, added, properties):
        if iceberg.PINS in properties and not raced:  # the first table's commit, the other table's made
            raced.append(partition)
            racing.commit("2024-03-02", [racing.stage(con.sql("SELECT 9 AS x"), first, "2024-03-02")])
        return commit_day(table, partition, removed, added, properties)

    monkeypatch.setattr(iceberg, "commit_day", another_day_first)
    lake.commit(day, versions, expected=seen)
    assert raced == [day]
    assert lake.recorded(first, day).tables == {"h": list(versions[0].files), "o": list(versions[1].files)}


def test_writes_of_two_days_read_before_either_adds_a_column_both_commit(lake_url):
    """A commit whose table got a column from another write since it was loaded loads it again and commits."""
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    key = dg.AssetKey("t")
    lake = lake_at(lake_url)
    write_partition(lake, con.sql("SELECT 1 AS x"), key, "2024-03-01")
    seen = {day: lake.recorded(key, day) for day in ("2024-03-02", "2024-03-03")}
    for n, day in enumerate(seen, start=2):
        rows = con.sql(f"SELECT * FROM (VALUES ({n}, 'new'), ({n + 3}, NULL)) v(x, y)")  # y: a nullable column
        version = lake.stage(rows, key, day)
        lake.commit(day, [version], expected=seen[day])
    assert _rows(lake, "t", "2024-03-03") == [(3, "new"), (6, None)]
    assert [f.name for f in lake.iceberg_table(key).schema().fields] == ["x", "dt", "y"]


def test_the_sweep_deletes_what_no_kept_snapshot_names_once_old_enough(lake_url):
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    key = dg.AssetKey("t")
    keeping = lake_at(lake_url)
    write_partition(keeping, con.sql("SELECT 1 AS x"), key, "2024-03-01")
    keeping.stage(con.sql("SELECT 2 AS x"), key, "2024-03-01")  # a write killed before its commit
    write_partition(keeping, con.sql("SELECT 3 AS x"), key, "2024-03-01")
    fs, _ = filesystem(lake_url)
    _, folder = filesystem(keeping.folder(key, "2024-03-01"))
    assert keeping.sweep(key, "2024-03-01") == [] and len(fs.ls(folder)) == 3  # younger than the hour
    assert keeping.expire(key) == 0  # and the replaced snapshot younger than the week
    impatient = lake_at(lake_url, sweep_after_seconds=0)
    assert len(impatient.sweep(key, "2024-03-01")) == 1  # the killed write's: no snapshot names it
    assert len(fs.ls(folder)) == 2  # the replaced version: its snapshot is kept, and readers or a rollback may need it
    expiring = lake_at(lake_url, sweep_after_seconds=0, keep_snapshots_days=0)
    assert expiring.expire(key) == 1
    assert len(expiring.sweep(key, "2024-03-01")) == 1
    assert len(fs.ls(folder)) == 1 and _rows(keeping, "t") == [(3,)]


def test_the_sweep_deletes_the_metadata_files_the_metadata_log_no_longer_names(lake_url):
    """A commit leaves the table's older metadata files; the sweep deletes those its metadata log (10) does not name."""
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    key = dg.AssetKey("t")
    lake = lake_at(lake_url, sweep_after_seconds=0)
    for value in range(14):
        write_partition(lake, con.sql(f"SELECT {value} AS x"), key, "2024-03-01")
    fs, metadata = filesystem(join(lake.table_url(key), "metadata"))

    def metadata_files() -> list[str]:
        return [p for p in fs.ls(metadata) if p.endswith(".metadata.json")]

    assert len(metadata_files()) == 15  # the table's creation, then one per commit
    lake.expire(key)
    table = lake.iceberg_table(key)
    kept = {
        filesystem(f)[1] for f in [table.metadata_location, *(e.metadata_file for e in table.metadata.metadata_log)]
    }
    assert set(metadata_files()) == kept and len(kept) == 11
    assert _rows(lake, "t") == [(13,)]


def test_a_lake_kept_by_commit_records_moves_to_iceberg_in_place(tmp_path):
    """`tvtime lake migrate`: each table's current files, as its records name them (or right in a partition folder
    written before records), registered without being rewritten; tables committed together pinned; records retired;
    PyIceberg alone reads the rows; a second run does nothing again."""
    from pyiceberg.catalog.sql import SqlCatalog

    from tvtime_platform.cli import main
    from tvtime_platform.lake.migration import migrate

    root = tmp_path / "lake"
    con = DuckDBEngine().connect()

    def parquet(path: str, sql: str) -> str:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        con.sql(sql).to_parquet(str(root / path))
        return path

    current = parquet("events/dt=2024-03-01/v2/part-0.parquet", "SELECT 1 AS x UNION ALL SELECT 2")
    parquet("events/dt=2024-03-01/v1/part-0.parquet", "SELECT 9 AS x")  # a replaced version no record names
    quarantined = parquet("quarantine/dt=2024-03-01/v2/part-0.parquet", "SELECT 'bad' AS reason")
    parquet("events/dt=2024-02-29/part-0.parquet", "SELECT 3 AS x")  # written before records
    whole = parquet("catalog/v1/part-0.parquet", "SELECT 'show' AS title")
    records = {
        "events/_commits/dt=2024-03-01.json": {"tables": {"events": [current], "quarantine": [quarantined]}},
        "quarantine/_commits/dt=2024-03-01.json": {"committed_with": "events"},
        "catalog/_commits/table.json": {"tables": {"catalog": [whole]}},
    }
    for path, record in records.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(json.dumps(record))
    import tvtime_platform.lake.catalog as iceberg

    commit_day = iceberg.commit_day

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed")  # after the first table was made in the catalog, before its files' commit

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(iceberg, "commit_day", killed)
        with pytest.raises(KeyboardInterrupt):
            list(migrate(lake_at(root)))
    assert iceberg.commit_day is commit_day and list(root.rglob("_commits"))  # nothing retired
    assert main(["lake", "migrate", "--lake", str(root)]) == 0  # run again: the tables made empty are registered
    assert not list(root.rglob("_commits"))
    lake = lake_at(root)
    assert _rows(lake, "events") == [(1,), (2,)] and _rows(lake, "events", "2024-02-29") == [(3,)]
    assert lake.recorded(dg.AssetKey("events"), "2024-03-01").tables == {
        "events": [current],
        "quarantine": [quarantined],
    }
    catalog = SqlCatalog("tvtime", uri=f"sqlite:///{root}/catalog.db")
    assert sorted(catalog.load_table("lake.events").scan().to_arrow().column("x").to_pylist()) == [1, 2, 3]
    assert catalog.load_table("lake.catalog").scan().to_arrow().column("title").to_pylist() == ["show"]
    assert (root / "events/dt=2024-03-01/v2/part-0.parquet").stat().st_size > 0  # registered, not rewritten
    assert main(["lake", "migrate", "--lake", str(root)]) == 0
    assert _rows(lake, "events") == [(1,), (2,)]


def test_a_day_registered_by_the_migration_and_left_out_of_step_is_kept_by_expiry(tmp_path):
    """The migration's snapshot pins every day; a run of one of them killed between its commits leaves that day out of
    step, and expiry keeps what readers read it by, and for the other days what they read now."""
    from tvtime_platform.lake.migration import migrate

    root = tmp_path / "lake"
    con = DuckDBEngine().connect()
    events, quarantine, day = dg.AssetKey("events"), dg.AssetKey("quarantine"), "2024-03-01"
    for d, x, reason in ((day, 1, "a"), ("2024-03-02", 5, "c")):
        tables = {}
        for name, sql in (("events", f"SELECT {x} AS x"), ("quarantine", f"SELECT '{reason}' AS reason")):
            (root / name / f"dt={d}" / "v1").mkdir(parents=True)
            con.sql(sql).to_parquet(str(root / name / f"dt={d}" / "v1" / "part-0.parquet"))
            tables[name] = [f"{name}/dt={d}/v1/part-0.parquet"]
        for name, record in (("events", {"tables": tables}), ("quarantine", {"committed_with": "events"})):
            (root / name / "_commits").mkdir(exist_ok=True)
            (root / name / "_commits" / f"dt={d}.json").write_text(json.dumps(record))
    list(migrate(lake_at(root)))
    lake = lake_at(root)
    _kill_a_write_of(lake, day)
    lake.replace("2024-03-02", {events: con.sql("SELECT 6 AS x"), quarantine: con.sql("SELECT 'd' AS reason")})
    for later in ("2024-03-03", "2024-03-04"):  # two daily passes, each after a run of a later day
        lake.replace(later, {events: con.sql("SELECT 7 AS x"), quarantine: con.sql("SELECT 'e' AS reason")})
        for key in (events, quarantine):
            lake_at(root, keep_snapshots_days=0).expire(key)
        assert (_rows(lake, "events"), _rows(lake, "quarantine")) == ([(1,)], [("a",)])
        # The migration's snapshot, kept for the day out of step, is older than the other day's run: not read by.
        assert (_rows(lake, "events", "2024-03-02"), _rows(lake, "quarantine", "2024-03-02")) == ([(6,)], [("d",)])


def test_a_table_kept_by_commit_records_is_neither_read_nor_written_before_its_migration(tmp_path):
    records = tmp_path / "lake" / "t" / "_commits"
    records.mkdir(parents=True)
    (records / "dt=2024-03-01.json").write_text('{"tables": {"t": []}}')
    lake = lake_at(tmp_path / "lake")
    con = DuckDBEngine().connect()
    for attempt in (
        lambda: write_partition(lake, con.sql("SELECT 1 AS x"), dg.AssetKey("t"), "2024-03-02"),
        lambda: lake.table(dg.AssetKey("t"), ["2024-03-01"]),
    ):
        with pytest.raises(LakeDamaged, match="holds commit records .* run `tvtime lake migrate`"):
            attempt()
    assert lake.iceberg_table(dg.AssetKey("t")) is None


@pytest.mark.parametrize("record", ["", "[]", '{"tables": {"t": "not a list"}}', '{"committed_with": 3}'], ids=repr)
def test_a_malformed_record_stops_the_migration_saying_what_to_do(tmp_path, record):
    from tvtime_platform.lake.migration import migrate

    (tmp_path / "lake" / "t" / "_commits").mkdir(parents=True)
    (tmp_path / "lake" / "t" / "_commits" / "dt=2024-03-01.json").write_text(record)
    with pytest.raises(LakeDamaged, match="dt=2024-03-01.json is malformed.*run `tvtime lake migrate` again"):
        list(migrate(lake_at(tmp_path / "lake")))
    assert (tmp_path / "lake" / "t" / "_commits" / "dt=2024-03-01.json").exists()  # nothing retired


def _write_many(lake_url: str, worker: int, writes: int) -> list[str]:
    """Rewrite one partition again and again, reading it back after each write; the errors met."""
    lake = lake_at(lake_url)
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    errors = []
    for k in range(writes):
        try:
            write_partition(
                lake,
                con.sql(f"SELECT {worker} AS worker, range AS x FROM range({k % 5 + 1})"),
                dg.AssetKey("t"),
                "2024-03-01",
            )
            rows = _rows(lake, "t")
            workers = {row[0] for row in rows}
            if len(workers) != 1 or [row[1] for row in rows] != list(range(len(rows))):
                errors.append(f"mixed or partial version read: {rows}")
        except Exception as error:  # noqa: BLE001 - every failure is the finding
            errors.append(repr(error))
    return errors


def test_two_processes_rewriting_one_partition_never_fail_nor_show_a_mix(tmp_path):
    lake_url = str(tmp_path / "lake")
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.starmap(_write_many, [(lake_url, 1, 60), (lake_url, 2, 60)])
    assert results == [[], []]
    rows = _rows(lake_at(lake_url), "t")
    assert len({row[0] for row in rows}) == 1 and [row[1] for row in rows] == list(range(len(rows)))


def test_a_killed_jobs_hand_over_folder_is_swept_by_the_next_once_old_enough(lake_url):
    fs, _ = filesystem(lake_url)
    left = lake_at(lake_url).scratch("spark-killed-run")
    fs.makedirs(filesystem(f"{left}/out")[1], exist_ok=True)
    fs.pipe_file(filesystem(f"{left}/out/part-0.parquet")[1], b"half a job's output")
    fresh = lake_at(lake_url).scratch("spark-next-run")
    assert fs.exists(filesystem(f"{left}/out/part-0.parquet")[1])  # younger than the hour: it may be a live job's
    assert fresh != left and fresh.startswith(f"{lake_url}/_scratch/spark-next-run-")
    lake_at(lake_url, sweep_after_seconds=0).scratch("spark-later-run")
    assert not fs.exists(filesystem(left)[1])


def test_a_replaced_version_is_kept_for_its_readers_until_its_snapshot_expires(lake_url):
    """The sweep counts from when a snapshot stopped being kept, not from when its files were made: a reader that
    resolved a day just before a rewrite can still read it, however old the files were."""
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    key = dg.AssetKey("t")
    lake = lake_at(lake_url, sweep_after_seconds=0)
    write_partition(lake, con.sql("SELECT 1 AS x"), key, "2024-03-01")
    reader = lake.table(key, ["2024-03-01"])
    write_partition(lake, con.sql("SELECT 2 AS x"), key, "2024-03-01")
    assert lake.sweep(key, "2024-03-01") == []
    assert con.execute("SELECT x FROM read_parquet(?)", [reader.files()]).fetchall() == [(1,)]
    expiring = lake_at(lake_url, sweep_after_seconds=0, keep_snapshots_days=0)
    expiring.expire(key)
    assert len(expiring.sweep(key, "2024-03-01")) == 1
    fs, _ = filesystem(lake_url)
    assert not any(fs.exists(filesystem(f)[1]) for f in reader.files())


def test_a_version_swept_before_its_commit_is_not_committed(lake_url):
    """A writer slower than the sweep's age, whose version the sweep took, commits nothing and says why."""
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    key = dg.AssetKey("t")
    lake = lake_at(lake_url, sweep_after_seconds=0)
    write_partition(lake, con.sql("SELECT 1 AS x"), key, "2024-03-01")
    slow = lake.stage(con.sql("SELECT 2 AS x"), key, "2024-03-01")
    time.sleep(0.01)
    assert len(lake.sweep(key, "2024-03-01")) == 1  # the slow writer's version
    with pytest.raises(FileNotFoundError, match="was deleted before its commit"):
        lake.commit("2024-03-01", [slow])
    assert _rows(lake, "t") == [(1,)]


def test_sweeping_everything_leaves_exactly_what_the_current_snapshots_name(lake_url):
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    lake = lake_at(lake_url, sweep_after_seconds=0.5, keep_snapshots_days=0)
    for day in ("2024-03-01", "2024-03-02"):
        write_partition(lake, con.sql("SELECT 1 AS x"), dg.AssetKey("t"), day)
        write_partition(lake, con.sql("SELECT 2 AS x"), dg.AssetKey("t"), day)  # replaces the first
    lake.stage(con.sql("SELECT 3 AS x"), dg.AssetKey("t"), "2024-03-02")  # a killed write
    write_partition(lake, con.sql("SELECT 4 AS x"), dg.AssetKey("catalog"), None)
    write_partition(lake, con.sql("SELECT 5 AS x"), dg.AssetKey("catalog"), None)
    time.sleep(0.6)
    assert len(lake.sweep_everything()) == 4
    fs, root = filesystem(lake_url)
    left = sorted(full_url(fs, f) for f in fs.find(root) if f.endswith(".parquet"))
    named = sorted(
        lake.table(dg.AssetKey("t"), ["2024-03-01", "2024-03-02"]).files()
        + lake.committed(dg.AssetKey("catalog"), None)
    )
    assert left == [full_url(fs, filesystem(f)[1]) for f in named]
    metadata = [f for f in fs.find(root) if "/metadata/" in f and f.endswith(".avro")]
    table = lake.iceberg_table(dg.AssetKey("t"))
    assert {s.manifest_list for s in table.metadata.snapshots} <= {full_url(fs, f) for f in metadata} | {
        f for f in metadata
    }
    assert len(table.metadata.snapshots) == 1  # only the current one is kept


def test_the_daily_sweep_compacts_a_day_that_grew_by_appending_with_the_tables_committed_with_it(lake_url):
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    lake = lake_at(lake_url, sweep_after_seconds=0, keep_snapshots_days=0)
    events, quarantine, day = dg.AssetKey("events"), dg.AssetKey("quarantine"), "2024-03-01"
    lake.replace(day, {events: con.sql("SELECT 1 AS x"), quarantine: con.sql("SELECT 'a' AS reason")})
    for n in (2, 3):  # two appends, each keeping the files before it
        seen = lake.recorded(events, day)
        lake.commit(
            day,
            [
                lake.stage(con.sql(f"SELECT {n} AS x"), events, day, carried=seen.tables["events"]),
                lake.stage(con.sql("SELECT 'b' AS reason"), quarantine, day, carried=seen.tables["quarantine"]),
            ],
            seen,
        )
    lake.replace("2024-03-02", {events: con.sql("SELECT 9 AS x"), quarantine: con.sql("SELECT 'c' AS reason")})
    assert [len(f) for f in lake.recorded(events, day).tables.values()] == [3, 3]
    fs, journal = filesystem(join(lake_url, JOURNAL))
    [today] = fs.ls(journal, detail=False)
    for marker in fs.find(today):  # as if written long ago
        moved = marker.replace(basename(today), "date=2020-01-01")
        fs.makedirs(moved.rsplit("/", 1)[0], exist_ok=True)
        fs.pipe_file(moved, b"")
    lake.sweep_written()
    assert [len(f) for f in lake.recorded(events, day).tables.values()] == [1, 1]  # one file per table
    assert (_rows(lake, "events"), _rows(lake, "quarantine")) == ([(1,), (2,), (3,)], [("a",), ("b",), ("b",)])
    assert [len(f) for f in lake.recorded(events, "2024-03-02").tables.values()] == [1, 1]
    assert lake.compact(events, day) == [] and lake.compact(quarantine, day) == []  # nothing more to do


def test_the_daily_sweep_goes_over_the_partitions_written_since_and_no_others(lake_url):
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    lake = lake_at(lake_url, sweep_after_seconds=0.5, keep_snapshots_days=0)
    key = dg.AssetKey("t")
    for day in ("2024-03-01", "2024-03-02"):
        write_partition(lake, con.sql("SELECT 1 AS x"), key, day)
        write_partition(lake, con.sql("SELECT 2 AS x"), key, day)  # replaces the first, which waits for the sweep
    fs, journal = filesystem(join(lake_url, JOURNAL))
    [today] = fs.ls(journal, detail=False)
    time.sleep(0.6)
    assert lake.sweep_written() == []  # today's writes: their date is not over, nothing is gone over yet
    for marker in fs.find(today):  # as if written long ago
        moved = marker.replace(basename(today), "date=2020-01-01")
        fs.makedirs(moved.rsplit("/", 1)[0], exist_ok=True)
        fs.pipe_file(moved, b"")
    fs.rm(today, recursive=True)
    killed = lake.stage(con.sql("SELECT 3 AS x"), key, "2024-03-05")  # a write killed before its commit, today
    time.sleep(0.6)
    swept = lake.sweep_written()
    assert len(swept) == 2 and all("dt=2024-03-01" in f or "dt=2024-03-02" in f for f in swept)  # the replaced ones
    assert [basename(f) for f in fs.ls(journal, detail=False)] == [basename(today)]  # 2020-01-01 is done with
    assert _rows(lake, "t", "2024-03-01") == [(2,)] and _rows(lake, "t", "2024-03-02") == [(2,)]
    assert fs.exists(filesystem(lake.folder(key, "2024-03-05"))[1])  # today's: gone over once its date is over
    assert [basename(f) for f in lake.sweep_everything()] == [killed.name]  # the full pass goes over everything

"""The lake, in a folder and on S3 (moto): what readers get, exact replacement, versions invisible until committed,
tables committed together, the sweep of leftovers, concurrent writers, a clear error for a partition never written."""

import json
import multiprocessing
import time
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from tvtime_platform.lake import JOURNAL, Lake, LakeDamaged, LakeIOManager, StalePartition, Version
from tvtime_platform.resources.duckdb_engine import DuckDBEngine
from tvtime_platform.resources.storage import basename, filesystem, full_url, join
from tvtime_platform_tests.emulators import new_bucket
from tvtime_platform_tests.support import write_partition


def test_written_partitions_are_read_back_typed_with_their_day(lake_url):
    lake = Lake(url=lake_url)
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


def test_rewriting_a_partition_replaces_it_exactly(lake_url):
    lake = Lake(url=lake_url)
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    key = dg.AssetKey("t")
    write_partition(lake, con.sql("SELECT range AS x FROM range(10)"), key, "2024-03-01")
    write_partition(lake, con.sql("SELECT range AS x FROM range(4)"), key, "2024-03-01")
    table = lake.table(key, ["2024-03-01"])
    assert len(table.files()) == 1 and table.row_count() == 4


def test_a_missing_partition_names_what_to_materialize(lake_url):
    manager = LakeIOManager(lake=Lake(url=lake_url))
    context = dg.build_input_context(
        asset_key=dg.AssetKey("app_events"),
        partition_key="2024-03-01",
        asset_partitions_def=dg.DailyPartitionsDefinition(start_date="2024-01-01"),
    )
    with pytest.raises(dg.Failure, match="Materialize app_events for those partitions first"):
        manager.load_input(context)


def _rows(lake: Lake, table: str, day: str | None = "2024-03-01") -> list[tuple]:
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    files = lake.table(dg.AssetKey(table), [day]).files()
    return con.execute(
        "SELECT * EXCLUDE (dt) FROM read_parquet(?, hive_partitioning = true) ORDER BY ALL", [files]
    ).fetchall()


def test_a_version_is_invisible_until_committed_and_replaces_the_old_one_whole(lake_url):
    lake = Lake(url=lake_url)
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    key = dg.AssetKey("t")
    write_partition(lake, con.sql("SELECT range AS x FROM range(3)"), key, "2024-03-01")
    staged = lake.stage(con.sql("SELECT range + 100 AS x FROM range(5)"), key, "2024-03-01")
    assert _rows(lake, "t") == [(0,), (1,), (2,)]  # the new files are written, no reader sees them
    lake.commit("2024-03-01", [staged])
    assert _rows(lake, "t") == [(100 + k,) for k in range(5)]
    fs, root = filesystem(lake_url)
    folders = {p.rsplit("/", 2)[-2] for p in fs.find(root) if p.endswith(".parquet")}
    assert len(folders) == 2  # the replaced version stays for readers still on it, until it is older than the sweep


def test_an_appended_version_counts_its_carried_files_as_they_were_counted(lake_url):
    """A table that grows by appending keeps its earlier files; what their first stage counted (rows, bytes) is taken as
    counted, without opening them again (on S3, requests that grow with every append)."""
    lake = Lake(url=lake_url)
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
    lake = Lake(url=lake_url)
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    key, day = dg.AssetKey("t"), "2024-03-01"
    first = lake.stage(con.sql("SELECT 1 AS x"), key, day)
    lake.commit(day, [first])
    [carried] = first.files
    appended = lake.stage(con.sql("SELECT 2 AS x"), key, day, carried=[carried])
    fs, path = filesystem(join(lake_url, carried))
    fs.rm_file(path)  # deleted by something other than the lake's sweep
    with pytest.raises(LakeDamaged, match="current version that this write keeps, is gone.*delete the partition") as e:
        lake.commit(day, [appended])
    assert not e.value.allow_retries  # no retry brings the file back
    assert lake.committed(key, day) == [join(lake_url, carried)]  # the record still names what it named


def test_a_commit_built_on_a_record_another_commit_replaced_commits_nothing(lake_url):
    """Compare-and-swap: of two writes that read the same record, the second to commit is refused, on a partition
    written before and on a new one (on S3 by a conditional PUT, in a folder under the record's lock)."""
    lake = Lake(url=lake_url)
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    key = dg.AssetKey("t")
    lake.commit("2024-03-01", [lake.stage(con.sql("SELECT 1 AS x"), key, "2024-03-01")])
    for day in ("2024-03-01", "2024-03-02"):
        seen = lake.recorded(key, day)
        newer, stale = (lake.stage(con.sql(f"SELECT {x} AS x"), key, day) for x in (2, 3))
        lake.commit(day, [newer], seen)
        with pytest.raises(StalePartition, match="another run committed a new version"):
            lake.commit(day, [stale], seen)
        assert _rows(lake, "t", day) == [(2,)]
        lake.commit(day, [lake.stage(con.sql("SELECT 4 AS x"), key, day)])  # a whole rebuild commits over what is
        assert _rows(lake, "t", day) == [(4,)]


def test_a_lake_url_spelled_with_a_double_slash_still_commits(s3_endpoint):
    """The commit's listing spells such paths otherwise; the files it did not show are asked for one by one."""
    lake = Lake(url=f"s3://{new_bucket()}//lake")
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    write_partition(lake, con.sql("SELECT 1 AS x"), dg.AssetKey("t"), "2024-03-01")
    assert lake.table(dg.AssetKey("t"), ["2024-03-01"]).row_count() == 1


def test_tables_committed_together_change_together(lake_url):
    lake = Lake(url=lake_url)
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    events, quarantine = dg.AssetKey("events"), dg.AssetKey("quarantine")

    def write(n: int) -> list:
        return [lake.stage(con.sql(f"SELECT {n} AS x"), key, "2024-03-01") for key in (events, quarantine)]

    lake.commit("2024-03-01", write(1))
    second = write(2)
    assert (_rows(lake, "events"), _rows(lake, "quarantine")) == ([(1,)], [(1,)])
    lake.commit("2024-03-01", second)
    assert (_rows(lake, "events"), _rows(lake, "quarantine")) == ([(2,)], [(2,)])
    fs, _ = filesystem(lake_url)
    pointer = json.loads(fs.cat_file(filesystem(lake.record_url(quarantine, "2024-03-01"))[1]))
    assert pointer == {"committed_with": "events"}  # one record changes both tables


def test_the_next_write_sweeps_what_no_record_names_once_old_enough(lake_url):
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    key = dg.AssetKey("t")
    keeping = Lake(url=lake_url)
    write_partition(keeping, con.sql("SELECT 1 AS x"), key, "2024-03-01")
    keeping.stage(con.sql("SELECT 2 AS x"), key, "2024-03-01")  # a write killed before its commit
    write_partition(keeping, con.sql("SELECT 3 AS x"), key, "2024-03-01")
    fs, _ = filesystem(lake_url)
    _, folder = filesystem(keeping.folder(key, "2024-03-01"))
    assert len(fs.ls(folder)) == 3  # younger than the hour: a reader or a writer may still be on them
    swept = write_partition(Lake(url=lake_url, sweep_after_seconds=0), con.sql("SELECT 4 AS x"), key, "2024-03-01")
    assert swept["dagster/partition_row_count"].value == 1
    assert len(fs.ls(folder)) == 1 and _rows(keeping, "t") == [(4,)]


def test_a_partition_written_before_records_is_read_until_rewritten(tmp_path):
    folder = tmp_path / "lake" / "t" / "dt=2024-03-01"
    folder.mkdir(parents=True)
    con = DuckDBEngine().connect()
    con.sql("SELECT 7 AS x").to_parquet(str(folder / "part-0.parquet"))
    lake = Lake(url=str(tmp_path / "lake"), sweep_after_seconds=0)
    assert lake.partitions_through(dg.AssetKey("t"), "2024-12-31") == ["2024-03-01"] and _rows(lake, "t") == [(7,)]
    write_partition(lake, con.sql("SELECT 8 AS x"), dg.AssetKey("t"), "2024-03-01")
    assert _rows(lake, "t") == [(8,)] and not (folder / "part-0.parquet").exists()


def _write_many(lake_url: str, worker: int, writes: int) -> list[str]:
    """Rewrite one partition again and again, reading it back after each write; the errors met."""
    lake = Lake(url=lake_url)
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
    rows = _rows(Lake(url=lake_url), "t")
    assert len({row[0] for row in rows}) == 1 and [row[1] for row in rows] == list(range(len(rows)))


def test_a_killed_jobs_hand_over_folder_is_swept_by_the_next_once_old_enough(lake_url):
    fs, _ = filesystem(lake_url)
    left = Lake(url=lake_url).scratch("spark-killed-run")
    fs.makedirs(filesystem(f"{left}/out")[1], exist_ok=True)
    fs.pipe_file(filesystem(f"{left}/out/part-0.parquet")[1], b"half a job's output")
    fresh = Lake(url=lake_url).scratch("spark-next-run")
    assert fs.exists(filesystem(f"{left}/out/part-0.parquet")[1])  # younger than the hour: it may be a live job's
    assert fresh != left and fresh.startswith(f"{lake_url}/_scratch/spark-next-run-")
    Lake(url=lake_url, sweep_after_seconds=0).scratch("spark-later-run")
    assert not fs.exists(filesystem(left)[1])


def test_a_replaced_version_is_kept_for_its_readers_however_old_it_was(lake_url):
    """The sweep counts from when a version was replaced, not from when it was made: a reader that resolved a day just
    before a rewrite can still read it."""
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    key = dg.AssetKey("t")
    lake = Lake(url=lake_url, sweep_after_seconds=1)
    write_partition(lake, con.sql("SELECT 1 AS x"), key, "2024-03-01")
    time.sleep(1.5)  # the first version is older than the sweep's age ...
    reader = lake.table(key, ["2024-03-01"])
    write_partition(lake, con.sql("SELECT 2 AS x"), key, "2024-03-01")  # ... but was replaced only now
    assert con.execute("SELECT x FROM read_parquet(?)", [reader.files()]).fetchall() == [(1,)]
    time.sleep(1.5)
    write_partition(lake, con.sql("SELECT 3 AS x"), key, "2024-03-01")  # now it has been replaced long enough
    fs, _ = filesystem(lake_url)
    assert not any(fs.exists(filesystem(f)[1]) for f in reader.files())


def test_a_version_swept_before_its_commit_is_not_committed(lake_url):
    """A writer slower than the sweep's age, whose version another writer swept, commits nothing and says why."""
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    key = dg.AssetKey("t")
    lake = Lake(url=lake_url, sweep_after_seconds=0)
    write_partition(lake, con.sql("SELECT 1 AS x"), key, "2024-03-01")
    slow = lake.stage(con.sql("SELECT 2 AS x"), key, "2024-03-01")
    time.sleep(0.01)
    write_partition(lake, con.sql("SELECT 3 AS x"), key, "2024-03-01")  # its sweep takes the slow writer's version
    with pytest.raises(FileNotFoundError, match="was deleted before its commit"):
        lake.commit("2024-03-01", [slow])
    assert _rows(lake, "t") == [(3,)]


@pytest.mark.parametrize("record", ["", "[]", '{"tables": {"t": "not a list"}}', '{"committed_with": "t2"}'], ids=repr)
def test_a_malformed_record_fails_saying_what_to_do(tmp_path, record):
    lake = Lake(url=str(tmp_path / "lake"))
    (tmp_path / "lake" / "t2" / "_commits").mkdir(parents=True)
    (tmp_path / "lake" / "t2" / "_commits" / "dt=2024-03-01.json").write_text('{"committed_with": "t3"}')
    (tmp_path / "lake" / "t" / "_commits").mkdir(parents=True)
    (tmp_path / "lake" / "t" / "_commits" / "dt=2024-03-01.json").write_text(record)
    with pytest.raises(dg.Failure, match="is malformed: .* delete it and materialize the partition again"):
        lake.table(dg.AssetKey("t"), ["2024-03-01"])


def test_sweeping_everything_leaves_exactly_what_the_records_name(lake_url):
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    lake = Lake(url=lake_url, sweep_after_seconds=0.5)
    for day in ("2024-03-01", "2024-03-02"):
        write_partition(lake, con.sql("SELECT 1 AS x"), dg.AssetKey("t"), day)
        write_partition(lake, con.sql("SELECT 2 AS x"), dg.AssetKey("t"), day)  # replaces the first
    lake.stage(con.sql("SELECT 3 AS x"), dg.AssetKey("t"), "2024-03-02")  # a killed write
    write_partition(lake, con.sql("SELECT 4 AS x"), dg.AssetKey("catalog"), None)
    write_partition(lake, con.sql("SELECT 5 AS x"), dg.AssetKey("catalog"), None)
    left_record = Path(lake.record_url(dg.AssetKey("t"), "2024-03-01")).with_name(".dt=2024-03-01.json.0a1b.tmp")
    if "://" not in lake_url:  # a record's temporary file, as a process killed before its rename leaves it
        left_record.write_text("{}")
    time.sleep(0.6)
    assert len(lake.sweep_everything()) == (4 if "://" in lake_url else 5)
    assert not left_record.exists()
    fs, root = filesystem(lake_url)
    left = sorted(full_url(fs, f) for f in fs.find(root) if f.endswith(".parquet"))
    named = sorted(
        lake.table(dg.AssetKey("t"), ["2024-03-01", "2024-03-02"]).files()
        + lake.committed(dg.AssetKey("catalog"), None)
    )
    assert left == named


def test_the_daily_sweep_goes_over_the_partitions_written_since_and_no_others(lake_url):
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    lake = Lake(url=lake_url, sweep_after_seconds=0.5)
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

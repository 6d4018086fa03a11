"""The `tvtime` command: generate with clear argument errors, summary of what the platform holds."""

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tvtime_platform.cli import main
from tvtime_platform.lake import Version
from tvtime_platform_tests.support import lake_at, lake_files, lake_write, materialize_all


def test_generate_prints_what_it_wrote(tmp_path, capsys):
    assert (
        main(
            [
                "generate",
                "--start",
                "2024-03-01",
                "--users",
                "200",
                "--shows",
                "30",
                "--landing",
                str(tmp_path / "landing"),
            ]
        )
        == 0
    )
    printed = capsys.readouterr()
    report = json.loads(printed.out)
    progress = printed.err.splitlines()
    assert progress[0].startswith("catalog: 30 shows")  # progress on stderr, the report alone on stdout
    assert progress[-1].startswith(f"2024-03-01: 200/200 users, {report['events']:,} events so far")
    assert (
        report["events"] > 0
        and report["lines"] >= report["events"]
        and set(report["defects"]) >= {"malformed_json", "late"}
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--start", "03/01/2024", "--users", "10"], "expected a date as YYYY-MM-DD"),
        (["--start", "2024-03-01", "--users", "0"], "expected a positive whole number"),
    ],
)
def test_generate_rejects_bad_arguments_with_a_reason(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit):
        main(["generate", *args, "--landing", str(tmp_path)])
    assert message in capsys.readouterr().err


def test_summary_counts_lake_and_warehouse_and_pyiceberg_alone_reads_the_same_rows(data_dir, capsys):
    from pyiceberg.catalog.sql import SqlCatalog

    materialize_all(data_dir, dg.DagsterInstance.ephemeral(), days=["2024-03-01"])
    assert main(["summary", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "app_events" in out and "show_catalog" in out and "daily_active_users" in out
    lake_part = out.split("warehouse mart")[0].splitlines()
    summary = {line.split()[0]: int(line.split()[-1].replace(",", "")) for line in lake_part[3:] if line.strip()}
    catalog = SqlCatalog("tvtime", uri=f"sqlite:///{data_dir}/lake/catalog.db")  # no platform code reads it
    read = {
        name: catalog.load_table(("lake", name)).scan().to_arrow().num_rows for _, name in catalog.list_tables("lake")
    }
    assert read == summary and summary["app_events"] > 0
    assert not list((data_dir / "lake").rglob("_commits"))


def test_files_prints_the_current_files_of_a_day_and_says_when_there_are_none(tmp_path, capsys):
    lake = tmp_path / "lake"
    lake_write(lake, "app_events", "2024-03-01", duckdb.sql("SELECT 1 AS x"))
    lake_write(lake, "app_events", "2024-03-01", duckdb.sql("SELECT 2 AS x"))  # the first version is replaced
    assert main(["files", "app_events", "--day", "2024-03-01", "--lake", str(lake)]) == 0
    [listed] = capsys.readouterr().out.split()
    assert listed == lake_files(lake, "app_events", "2024-03-01")[0]
    assert duckdb.execute("SELECT x FROM read_parquet(?)", [listed]).fetchall() == [(2,)]
    assert main(["files", "app_events", "--day", "2024-03-02", "--lake", str(lake)]) == 1
    assert "Materialize app_events for those partitions first" in capsys.readouterr().err


@pytest.mark.parametrize(
    "day, message",
    [
        ("2024-3-1", "expected a date as YYYY-MM-DD, got '2024-3-1'"),
        ("2023-12-31", "2023-12-31 is not a day partition: they run from 2024-01-01 to "),
        ("2999-01-01", "2999-01-01 is not a day partition: they run from 2024-01-01 to "),
    ],
)
def test_files_names_the_format_and_the_range_of_days(tmp_path, capsys, day, message):
    with pytest.raises(SystemExit):
        main(["files", "app_events", "--day", day, "--lake", str(tmp_path)])
    assert message in capsys.readouterr().err


def test_fail_dead_runs_without_an_instance_says_which_to_name(monkeypatch, capsys):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert main(["fail-dead-runs"]) == 2
    assert "DAGSTER_HOME is not set" in capsys.readouterr().err


def test_files_into_a_pipe_closed_early_ends_quietly_as_unix_tools_do(tmp_path):
    lake = tmp_path / "lake"
    folder = lake / "app_events" / "dt=2024-03-01" / "v20240301T000000000000-0a0b0c0d"
    folder.mkdir(parents=True)
    names = [f"app_events/dt=2024-03-01/{folder.name}/part-{k}.parquet" for k in range(2000)]
    for name in names:  # 250 kB of names: more than a pipe holds
        pq.write_table(pa.table({"x": [1]}), lake / name)
    lake_at(lake).commit("2024-03-01", [Version(dg.AssetKey("app_events"), "2024-03-01", tuple(names))])
    tvtime = Path(sys.executable).with_name("tvtime")
    pipeline = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"'{tvtime}' files app_events --lake '{lake}' | head -c 1 >/dev/null"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (pipeline.stderr, pipeline.returncode) == ("", 141)


def test_summary_while_another_process_holds_the_warehouse_says_what_to_do(tmp_path, capsys):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_WAREHOUSE, str(tmp_path / "warehouse.duckdb")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        assert main(["summary", "--data-dir", str(tmp_path)]) == 1
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    assert "is held by another process" in err and "wait for that run or command to end" in err


def test_summary_of_a_damaged_warehouse_says_to_rebuild_it(tmp_path, capsys):
    (tmp_path / "warehouse.duckdb").write_bytes(b"\0" * 9000)
    assert main(["summary", "--data-dir", str(tmp_path)]) == 1
    assert "is damaged" in (err := capsys.readouterr().err) and "make rebuild-warehouse" in err


# A process holding a DuckDB file open for writing until killed (`python -c HOLD_WAREHOUSE <file>`).
HOLD_WAREHOUSE = (
    "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('holding', flush=True); time.sleep(600)"
)


def test_files_of_a_table_the_lake_does_not_hold_says_so(tmp_path, capsys):
    assert main(["files", "no_such_table", "--lake", str(tmp_path)]) == 1
    assert "holds no table 'no_such_table'" in capsys.readouterr().err


def test_days_names_what_is_wrong_with_a_count_too_large(capsys):
    with pytest.raises(SystemExit):
        main(["days", "2024-01-01", "--count", "99999999999"])
    assert "--count 99999999999 from 2024-01-01:" in capsys.readouterr().err


def test_summary_counts_rows_from_the_commit_records_without_opening_a_parquet_file(tmp_path, capsys):
    lake = tmp_path / "lake"
    for day, rows in (("2024-03-01", 3), ("2024-03-02", 5)):
        lake_write(lake, "app_events", day, duckdb.sql(f"SELECT range AS x FROM range({rows})"))
    lake_write(lake, "show_catalog", None, duckdb.sql("SELECT 1 AS x"))
    assert main(["summary", "--data-dir", str(tmp_path)]) == 0
    counted = capsys.readouterr().out
    for file in lake_files(lake, "app_events", "2024-03-01"):
        Path(file).write_bytes(b"not parquet any more")  # a reader would fail; the records counted at the commit
    assert main(["summary", "--data-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == counted
    assert [line.split() for line in counted.splitlines() if line.startswith(("app_events", "show_catalog"))] == [
        ["app_events", "2", "8"],
        ["show_catalog", "-", "1"],
    ]

"""The real CLI from the repo root, as the README and the Makefile use it: `dg check defs`, `dg list defs`,
`dg launch` of a partition, and a backfill queued for the daemon; none of them warns."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from tvtime_platform_tests.support import lake_files

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WARNINGS = (
    "SupersessionWarning",
    "BetaWarning",
    "PreviewWarning",
    "DeprecationWarning",
    "does not match the virtual environment",
)


def run(args: list[str], tmp_path: Path, data_dir: Path) -> subprocess.CompletedProcess:
    (tmp_path / "home").mkdir(exist_ok=True)
    env = {
        **os.environ,
        "TVTIME_DATA_DIR": str(data_dir),
        "DAGSTER_HOME": str(tmp_path / "home"),
        "VIRTUAL_ENV": str(BIN.parent),
    }
    result = subprocess.run(
        [str(BIN / args[0]), *args[1:]], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    said = result.stdout + result.stderr
    assert not [w for w in WARNINGS if w in said], said[-3000:]
    return result


def test_dg_checks_and_lists_the_definitions(tmp_path):
    result = run(["dg", "check", "defs"], tmp_path, tmp_path / "data")
    assert result.returncode == 0 and "All definitions loaded successfully" in result.stdout + result.stderr, (
        result.stderr[-3000:]
    )
    listed = json.loads(run(["dg", "list", "defs", "--json"], tmp_path, tmp_path / "data").stdout)
    assert {"app_events", "daily_active_users", "show_recommendations"} <= {
        asset["asset_key"] for asset in listed["assets"]
    }


def test_dg_launches_a_partition_on_each_engine(tmp_path, data_dir):
    result = run(["dg", "launch", "--assets", "app_events", "--partition", "2024-03-01"], tmp_path, data_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert lake_files(data_dir / "lake", "app_events", "2024-03-01")
    assert lake_files(data_dir / "lake", "quarantined_events", "2024-03-01")
    # A Pipes session (Spark in local mode, as docs/spark.md's example runs it) warns no more than the rest.
    engine = '{"ops": {"user_sessions": {"config": {"engine": "spark"}}}}'
    sessions = run(
        ["dg", "launch", "--assets", "user_sessions", "--partition", "2024-03-01", "--config-json", engine],
        tmp_path,
        data_dir,
    )
    assert sessions.returncode == 0, sessions.stderr[-3000:]
    assert "Spark" in sessions.stdout + sessions.stderr and lake_files(data_dir / "lake", "user_sessions", "2024-03-01")


def test_backfill_a_range_queues_one_run_per_day(tmp_path, data_dir, monkeypatch):
    result = run(
        [
            "dagster",
            "job",
            "backfill",
            "-m",
            "tvtime_platform.definitions",
            "-j",
            "daily_pipeline",
            "--from",
            "2024-03-01",
            "--to",
            "2024-03-02",
            "--noprompt",
        ],
        tmp_path,
        data_dir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
        assert sorted((r.job_name, r.tags["dagster/partition"]) for r in runs) == [
            ("daily_pipeline", "2024-03-01"),
            ("daily_pipeline", "2024-03-02"),
        ]
        assert {r.status for r in runs} == {dg.DagsterRunStatus.QUEUED}  # the daemon (make ui) runs them


@pytest.mark.parametrize("day", ["2024-3-1", "2023-12-31", "2999-01-01", ""])
def test_make_day_names_the_format_and_the_range_of_days(day):
    result = subprocess.run(
        ["make", "--no-print-directory", "day", f"DAY={day}"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "make day DAY=...: days as YYYY-MM-DD from 2024-01-01 to today (UTC)" in result.stdout
    assert f"got {day!r}" in result.stderr or f"{day} is not a day partition" in result.stderr


# Values that would run a command if a recipe spliced them into its shell text, quoted or not, or if make expanded them.
INJECTIONS = [
    '2024-03-02" ] || touch {marker}; [ "',
    "'; touch {marker}; '",
    "`touch {marker}`",
    "$$(touch {marker})",
    "$(shell touch {marker})",
    "2024-03-01$(shell touch {marker})",
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "target, variable",
    [
        ("day", "DAY"),
        ("backfill", "FROM"),
        ("backfill", "TO"),
        *(("demo", v) for v in ("DEMO_START", "DEMO_DAYS", "DEMO_USERS", "DEMO_SHOWS", "SEED")),
        ("summary", "TVTIME_DATA_DIR"),  # a folder may be named so: it is read, and holds nothing
        ("summary", "VENV"),  # the Makefile's own: a value given for it is ignored
    ],
)
def test_no_makefile_variable_reaches_a_shell_as_code(tmp_path, target, variable):
    marker = tmp_path / "ran"
    for injection in INJECTIONS:
        value = injection.format(marker=marker)
        others = {"FROM": "2024-03-01", "TO": "2024-03-01", "TVTIME_DATA_DIR": str(tmp_path / "data")}
        settings = [f"{name}={setting}" for name, setting in (others | {variable: value}).items()]
        for given in ("command line", "environment"):
            env = os.environ | (dict(s.split("=", 1) for s in settings) if given == "environment" else {})
            arguments = settings if given == "command line" else []
            result = subprocess.run(
                ["make", "--no-print-directory", target, *arguments],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert not marker.exists(), (value, given)
            if variable not in ("TVTIME_DATA_DIR", "VENV"):
                assert result.returncode != 0, (value, result.stdout[-2000:])  # refused, with the reason

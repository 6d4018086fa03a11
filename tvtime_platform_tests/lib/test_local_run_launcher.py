"""Run monitoring in the local instance: a run whose process was killed with SIGKILL is found dead and marked failed by
Dagster's own monitoring, with the launcher `.dagster_home/dagster.yaml` configures; without a daemon,
`tvtime fail-dead-runs` marks it failed and frees the pool slot it held."""

import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pytest
from dagster._daemon.monitoring.run_monitoring import monitor_started_run

from tvtime_platform.cli import main
from tvtime_platform.lib.local_run_launcher import LocalRunLauncher
from tvtime_platform_tests.support import REPO

pytestmark = pytest.mark.slow

CHILD = textwrap.dedent(
    """
    import time

    import dagster as dg

    @dg.asset(pool="warehouse_publish")  # a pool of one slot in the local instance
    def slow_table() -> None:
        print("running", flush=True)
        time.sleep(120)

    dg.materialize([slow_table], instance=dg.DagsterInstance.get())
    """
)


def killed_run(tmp_path, monkeypatch) -> tuple[dg.DagsterInstance, dg.DagsterRun, int]:
    """A run of the local instance (in a fresh DAGSTER_HOME) killed with SIGKILL while its step held a pool slot."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / ".dagster_home" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], cwd=tmp_path, start_new_session=True, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout.readline().strip() == "running"
    instance = dg.DagsterInstance.get()
    [record] = instance.get_run_records()
    assert record.dagster_run.status == dg.DagsterRunStatus.STARTED
    assert instance.run_launcher.check_run_worker_health(record.dagster_run).status.value == "RUNNING"
    os.killpg(child.pid, signal.SIGKILL)
    child.wait(30)
    return instance, record.dagster_run, child.pid


def test_a_killed_run_is_found_dead_and_marked_failed_by_run_monitoring(tmp_path, monkeypatch):
    instance, run, pid = killed_run(tmp_path, monkeypatch)
    with instance:
        assert isinstance(instance.run_launcher, LocalRunLauncher) and instance.run_monitoring_enabled
        health = instance.run_launcher.check_run_worker_health(run)
        assert health.status.value == "FAILED" and str(pid) in health.msg
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED  # until monitoring runs
        [record] = instance.get_run_records()
        monitor_started_run(instance, None, record, logging.getLogger("run_monitoring"))
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE


def test_without_a_daemon_fail_dead_runs_marks_it_failed_and_frees_its_pool_slot(tmp_path, monkeypatch, capsys):
    instance, run, _ = killed_run(tmp_path, monkeypatch)
    with instance:
        assert instance.event_log_storage.get_concurrency_info("warehouse_publish").claimed_slots  # held by the dead
        assert main(["fail-dead-runs"]) == 0
        assert f"run {run.run_id}" in capsys.readouterr().out
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
        assert instance.event_log_storage.get_concurrency_info("warehouse_publish").claimed_slots == []


def test_a_launch_warns_of_the_pool_slot_a_dead_run_holds_naming_what_frees_it(tmp_path, monkeypatch):
    _, run, _ = killed_run(tmp_path, monkeypatch)
    venv = Path(sys.executable).parents[1]
    launch = subprocess.run(
        [str(venv / "bin" / "dg"), "launch", "--job", "refresh_show_catalog"],
        cwd=REPO,
        env={**os.environ, "TVTIME_DATA_DIR": str(tmp_path / "data"), "VIRTUAL_ENV": str(venv)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    said = launch.stdout + launch.stderr
    assert f"Pool warehouse_publish: its slot is held by run {run.run_id}" in said
    assert "whose processes are gone" in said and "`tvtime fail-dead-runs`" in said

"""Run monitoring in the local instance: a run whose process was killed with SIGKILL is found dead and marked failed by
Dagster's own monitoring, with the launcher `.dagster_home/dagster.yaml` configures."""

import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import dagster as dg
import pytest
from dagster._daemon.monitoring.run_monitoring import monitor_started_run

from tvtime_platform.lib.local_run_launcher import LocalRunLauncher
from tvtime_platform_tests.conftest import REPO

pytestmark = pytest.mark.slow

CHILD = textwrap.dedent(
    """
    import time

    import dagster as dg

    @dg.asset
    def slow_table() -> None:
        print("running", flush=True)
        time.sleep(120)

    dg.materialize([slow_table], instance=dg.DagsterInstance.get())
    """
)


def test_a_killed_run_is_found_dead_and_marked_failed(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / ".dagster_home" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], cwd=tmp_path, start_new_session=True, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout.readline().strip() == "running"
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_launcher, LocalRunLauncher) and instance.run_monitoring_enabled
        [record] = instance.get_run_records()
        run = record.dagster_run
        assert run.status == dg.DagsterRunStatus.STARTED
        assert instance.run_launcher.check_run_worker_health(run).status.value == "RUNNING"

        os.killpg(child.pid, signal.SIGKILL)
        child.wait(30)
        time.sleep(0.2)
        health = instance.run_launcher.check_run_worker_health(run)
        assert health.status.value == "FAILED" and str(child.pid) in health.msg
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED  # until monitoring runs

        [record] = instance.get_run_records()
        monitor_started_run(instance, None, record, logging.getLogger("run_monitoring"))
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE

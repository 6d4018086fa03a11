"""The real dagster CLI from the repo root: definitions validate, and a partition materialized."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
DAGSTER = str(Path(sys.executable).with_name("dagster"))


def run(args: list[str], tmp_path: Path, data_dir: Path) -> subprocess.CompletedProcess:
    (tmp_path / "home").mkdir(exist_ok=True)
    env = {**os.environ, "TVTIME_DATA_DIR": str(data_dir), "DAGSTER_HOME": str(tmp_path / "home")}
    return subprocess.run([DAGSTER, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_definitions_validate(tmp_path):
    result = run(["definitions", "validate", "-w", "workspace.yaml"], tmp_path, tmp_path / "data")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Validation successful" in result.stderr + result.stdout


def test_materialize_one_partition_of_app_events(tmp_path, data_dir):
    result = run(["asset", "materialize", "-m", "tvtime_platform", "--select", "app_events", "--partition", "2024-03-01"], tmp_path, data_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert list((data_dir / "lake" / "app_events" / "dt=2024-03-01").glob("*.parquet"))
    assert list((data_dir / "lake" / "quarantined_events" / "dt=2024-03-01").glob("*.parquet"))


def test_backfill_a_range_queues_one_run_per_day(tmp_path, data_dir, monkeypatch):
    result = run(["job", "backfill", "-w", "workspace.yaml", "-j", "daily_pipeline", "--from", "2024-03-01", "--to", "2024-03-02", "--noprompt"],
                 tmp_path, data_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
        assert sorted((r.job_name, r.tags["dagster/partition"]) for r in runs) == [("daily_pipeline", "2024-03-01"), ("daily_pipeline", "2024-03-02")]
        assert {r.status for r in runs} == {dg.DagsterRunStatus.QUEUED}  # the daemon (make ui) runs them

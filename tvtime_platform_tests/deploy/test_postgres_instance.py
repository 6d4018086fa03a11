"""The production instance configuration (deploy/) against a real PostgreSQL server on 127.0.0.1.

A materialization runs with `deploy/dagster.yaml` as the instance, and the run, its events and the
concurrency pools are read back from PostgreSQL's tables.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
DAGSTER = str(Path(sys.executable).with_name("dagster"))


def test_a_run_is_stored_in_postgres_and_the_pools_are_set(postgres, tmp_path, data_dir):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        **postgres,
        "DAGSTER_HOME": str(home),
        "TVTIME_DATA_DIR": str(data_dir),
        "DAGSTER": DAGSTER,
        "VIRTUAL_ENV": str(Path(sys.executable).parents[1]),
    }
    run = subprocess.run(
        [str(Path(sys.executable).with_name("dg")), "launch", "--assets", "show_catalog"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    pools = subprocess.run(
        [str(REPO / "deploy" / "set_pool_limits.sh")], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert pools.returncode == 0, pools.stderr[-3000:]

    with psycopg2.connect(host="127.0.0.1", port=postgres["DAGSTER_PG_PORT"], user="dagster", dbname="dagster") as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT run_id, status FROM runs")
        [(run_id, status)] = cursor.fetchall()
        assert status == "SUCCESS"
        cursor.execute(
            "SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION' "
            "AND asset_key = %s",
            (run_id, '["show_catalog"]'),
        )
        assert cursor.fetchone()[0] == 1
        cursor.execute("SELECT concurrency_key, count(*) FROM concurrency_slots GROUP BY concurrency_key ORDER BY 1")
        assert cursor.fetchall() == [("aws_batch", 2), ("warehouse_load", 4), ("warehouse_publish", 1)]

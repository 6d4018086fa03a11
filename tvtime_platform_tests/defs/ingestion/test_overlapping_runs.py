"""Two runs of one day at once: a run that planned against a version another run has since replaced never commits over
it; it plans again from a fresh listing, so every landed file's rows stay. The slower run is held at its commit (a
named point it announces, then waits at) while a file lands and the other run commits."""

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg

from tvtime_platform.resources.duckdb_engine import DuckDBEngine
from tvtime_platform_tests.support import REPO, defs, event, lake_files, resources_for, write_landing_file

DAY = "2024-03-01"
EVENTS = [defs.get_assets_def("app_events")]


def run_day(data_dir: Path, lake_url: str) -> list[str]:
    """A run of the day (its lake at `lake_url`, an S3 prefix or a folder); what it logged."""
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(EVENTS, partition_key=DAY, resources=resources_for(data_dir, lake_url), instance=instance)
    assert result.success
    return [r.user_message for r in instance.all_logs(result.run_id) if r.user_message]


def event_ids(lake_url: str) -> list[str]:
    files = lake_files(lake_url, "app_events", DAY)
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    found = con.execute("SELECT event_id FROM read_parquet($files) ORDER BY 1", {"files": files}).fetchall()
    return [event_id for (event_id,) in found]


# The slower run, in a process of its own (two runs in threads of one interpreter race in CPython 3.11's compiler):
# `python -c HELD <data dir> <lake url> <day> <at commit> <go on>`. Its first commit touches `at commit`, then waits
# until `go on` exists; it prints what the run logged, as JSON.
HELD = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path

    import dagster as dg

    from tvtime_platform.lake import Lake
    from tvtime_platform_tests.support import defs, resources_for

    root, lake_url, day, at_commit, go_on = sys.argv[1:]
    commit = Lake.commit


    def held_at_first_commit(self, *args, **kwargs):
        if not Path(at_commit).exists():
            Path(at_commit).touch()
            while not Path(go_on).exists():
                time.sleep(0.02)
        return commit(self, *args, **kwargs)


    Lake.commit = held_at_first_commit
    instance = dg.DagsterInstance.ephemeral()
    resources = resources_for(Path(root), lake_url)
    events = [defs.get_assets_def("app_events")]
    result = dg.materialize(events, partition_key=day, resources=resources, instance=instance)
    print(json.dumps([r.user_message for r in instance.all_logs(result.run_id) if r.user_message]))
    sys.exit(0 if result.success else 1)
    """
)


def wait_for(path: Path, process: subprocess.Popen) -> None:
    """Until `path` exists (the process reached its named point), or the process ended without reaching it."""
    while not path.exists():
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)


def test_a_run_that_planned_before_another_committed_plans_again_and_keeps_every_file(tmp_path, lake_url):
    landing = tmp_path / "landing"
    write_landing_file(landing, DAY, 10, [event("first-1"), event("first-2")], name="first.jsonl.gz")
    at_commit, go_on = tmp_path / "at_commit", tmp_path / "go_on"
    arguments = [str(tmp_path), lake_url, DAY, str(at_commit), str(go_on)]
    slow = subprocess.Popen(
        [sys.executable, "-c", HELD, *arguments], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(at_commit, slow)  # the slow run listed one file and built its version on it
        write_landing_file(landing, DAY, 11, [event("second-1"), event("second-2")], name="second.jsonl.gz")
        run_day(tmp_path, lake_url)  # lists both files and commits them
        assert event_ids(lake_url) == ["first-1", "first-2", "second-1", "second-2"]
    finally:
        go_on.touch()
        out, err = slow.communicate(timeout=300)
    assert slow.returncode == 0, err[-3000:]
    assert event_ids(lake_url) == ["first-1", "first-2", "second-1", "second-2"]
    assert any("another run committed the day" in m and "Planning again" in m for m in json.loads(out))

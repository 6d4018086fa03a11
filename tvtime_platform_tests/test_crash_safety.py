"""Runs killed with SIGKILL (to their process group) at each stage of a partition write and of a publication, runs of
the same partition at once, and a warehouse file deleted: readers see the old state or the new one, never a mix; the
next run ends with the rows of an undisturbed run and sweeps what the killed one left."""

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from tvtime_platform.lake import Lake
from tvtime_platform.resources.deployment import local_resources
from tvtime_platform.resources.duckdb_engine import DuckDBEngine
from tvtime_platform_tests.emulators import new_bucket
from tvtime_platform_tests.support import (
    ASSETS,
    CHECKS,
    REPO,
    START,
    copy_data,
    copy_lake,
    defs,
    event,
    lake_files,
    resources_for,
    write_landing_file,
)

pytestmark = pytest.mark.slow
DAY = START.isoformat()
EVENTS = ["app_events", "quarantined_events"]
MART = ["daily_active_users_staged", "daily_active_users"]
UPSTREAM_OF_MART = ["app_events", "quarantined_events", "user_sessions"]

# A child run: `python -c CHILD <data dir> <stage> <selection> <day>`. It replaces one step of the lake or the
# warehouse by the same step followed (or preceded) by SIGKILL to its own process group, then materializes.
CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path

    import dagster as dg

    from tvtime_platform.lake import catalog, lake
    from tvtime_platform.resources import warehouse
    from tvtime_platform_tests.support import ASSETS, CHECKS
    from tvtime_platform_tests.support import resources_for

    root, stage, selection, day = Path(sys.argv[1]), sys.argv[2], sys.argv[3].split(","), sys.argv[4]
    lake_url = sys.argv[5] if len(sys.argv) > 5 else None


    def die(*args, **kwargs):
        os.killpg(0, signal.SIGKILL)


    def after(function):
        def wrapped(*args, **kwargs):
            function(*args, **kwargs)
            die()

        return wrapped


    def half_written(relation, folder, compression):
        Path(folder).mkdir(parents=True)
        Path(folder, "part-0.parquet").write_bytes(b"PAR1" + bytes(100))  # the start of a Parquet file
        die()


    run = warehouse.DuckDBWarehouse.run


    def until_commit(self, statements):
        statements = list(statements)
        if "COMMIT" not in statements:
            return run(self, statements)
        with self._connect() as con:  # the publication's transaction, killed before its COMMIT
            for statement in statements:
                if statement == "COMMIT":
                    die()
                con.execute(*warehouse.sql_and_params(statement))


    def commit_then_die_before_pinning(table, partition, removed, added, properties):
        if catalog.PINS in properties:  # the first table's commit, after the others'
            die()
        return commit(table, partition, removed, added, properties)


    commit = catalog.commit_day
    kills = {
        "writing": lambda: setattr(lake, "write_relation", half_written),
        "before_commit": lambda: setattr(catalog, "commit_day", die),  # no table's snapshot yet
        "between_commits": lambda: setattr(catalog, "commit_day", commit_then_die_before_pinning),
        "after_commit": lambda: setattr(lake.Lake, "commit", after(lake.Lake.commit)),  # every table's committed
        "after_load": lambda: setattr(
            warehouse.DuckDBWarehouse, "load_stage", after(warehouse.DuckDBWarehouse.load_stage)
        ),
        "in_transaction": lambda: setattr(warehouse.DuckDBWarehouse, "run", until_commit),
        "after_swap": lambda: setattr(warehouse.DuckDBWarehouse, "after_publish", die),
        "none": lambda: None,
    }
    kills[stage]()
    resources = resources_for(root, lake_url)
    result = dg.materialize(
        [*ASSETS, *CHECKS], selection=selection, partition_key=day, resources=resources, raise_on_error=False
    )
    print("success" if result.success else "failure", flush=True)
    sys.exit(0 if result.success else 1)
    """
)


def child(root: Path, stage: str, selection: list[str], lake_url: str | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), stage, ",".join(selection), DAY, *([lake_url] if lake_url else [])],
        cwd=REPO,
        start_new_session=True,  # its own process group, which the kill takes whole
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def materialize(root: Path, selection: list[str]) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*ASSETS, *CHECKS],
        selection=selection,
        partition_key=DAY,
        resources=local_resources(root),
        raise_on_error=False,
    )


def event_counts(root: Path) -> tuple[int, int]:
    """Rows of the day's app_events and quarantined_events, each read as the platform's readers read it."""
    return tuple(
        duckdb.execute("SELECT count(*) FROM read_parquet(?)", [lake_files(root / "lake", t, DAY)]).fetchall()[0][0]
        for t in EVENTS
    )


def event_ids(root: Path) -> list[str]:
    return [
        r[0]
        for r in duckdb.execute(
            "SELECT event_id FROM read_parquet(?) ORDER BY 1", [lake_files(root / "lake", "app_events", DAY)]
        ).fetchall()
    ]


def published(root: Path) -> list[tuple]:
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        return con.execute("SELECT * FROM marts.daily_active_users ORDER BY ALL").fetchall()


def land_more(root: Path) -> None:
    """A new file for the day: 1,000 good lines and 100 bad ones, so the next write differs from the last."""
    lines = [event(f"late-{k}") for k in range(1000)] + ["{not json"] * 100
    write_landing_file(root / "landing", DAY, 10, lines, name="part-more.jsonl.gz")


def age_unreferenced_versions(root: Path) -> list[Path]:
    """Rename every version folder no current snapshot names as if made years ago (the sweep spares younger ones)."""
    current = {Path(f).parent for table in EVENTS for f in lake_files(root / "lake", table)}
    aged = []
    for folder in (folder for table in EVENTS for folder in (root / "lake" / table).glob("dt=*/v*")):
        if folder not in current:
            old = folder.with_name("v20200101T000000000000-" + folder.name.rsplit("-", 1)[1])
            folder.rename(old)
            aged.append(old)
    return aged


@pytest.fixture(scope="module")
def before_and_after(tmp_path_factory, generated_landing) -> dict[str, Path]:
    """A data folder whose day is ingested and published (`before`), and an undisturbed copy after a new file landed
    and everything ran again (`after`)."""
    before = tmp_path_factory.mktemp("before")
    shutil.copytree(generated_landing, before / "landing")
    assert dg.materialize(ASSETS, selection=["show_catalog"], resources=local_resources(before)).success
    assert materialize(before, UPSTREAM_OF_MART + MART).success
    after = tmp_path_factory.mktemp("after")
    shutil.rmtree(after)
    copy_data(before, after)
    land_more(after)
    assert materialize(after, UPSTREAM_OF_MART + MART).success
    return {"before": before, "after": after}


def copy_of(folder: Path, tmp_path: Path) -> Path:
    copy_data(folder, tmp_path / "data")
    return tmp_path / "data"


@pytest.mark.parametrize("stage", ["writing", "before_commit", "between_commits", "after_commit"])
def test_a_partition_write_killed_at_any_stage_leaves_old_or_new_and_the_next_run_ends_right(
    stage, before_and_after, tmp_path
):
    root = copy_of(before_and_after["before"], tmp_path)
    land_more(root)
    old, new = event_counts(before_and_after["before"]), event_counts(before_and_after["after"])
    killed = child(root, stage, EVENTS)
    assert killed.wait(120) == -signal.SIGKILL, killed.stderr.read()[-2000:]
    assert event_counts(root) == (new if stage == "after_commit" else old)  # both tables, one version
    scratch = list((root / "tmp" / "duckdb").glob("tvtime-*"))
    assert scratch  # the killed run's scratch is left behind ...
    aged = age_unreferenced_versions(root)
    assert aged or stage == "after_commit"  # ... and so are its versions (or the one it replaced)

    assert materialize(root, EVENTS).success
    assert event_counts(root) == new and event_ids(root) == event_ids(before_and_after["after"])
    assert [folder for folder in scratch if folder.exists()] == []  # the next run swept the scratch
    expired = Lake(url=str(root / "lake"), keep_snapshots_days=0).sweep_everything()  # as sweep_lake, a week on
    assert [folder for folder in aged if folder.exists()] == [] and expired
    assert event_counts(root) == new


@pytest.mark.parametrize("stage", ["after_load", "in_transaction", "after_swap"])
def test_a_publication_killed_at_any_stage_leaves_old_or_new_and_the_next_run_ends_right(
    stage, before_and_after, tmp_path
):
    root = copy_of(before_and_after["before"], tmp_path)
    land_more(root)
    assert materialize(root, UPSTREAM_OF_MART).success
    old, new = published(before_and_after["before"]), published(before_and_after["after"])
    assert old != new
    killed = child(root, stage, MART)
    assert killed.wait(120) == -signal.SIGKILL, killed.stderr.read()[-2000:]
    assert published(root) == (new if stage == "after_swap" else old)

    result = materialize(root, MART)
    assert result.success
    assert published(root) == new
    backup = root / "warehouse.duckdb.backups" / "daily_active_users" / f"dt={DAY}.parquet"
    kept = duckdb.execute("SELECT * FROM read_parquet(?) ORDER BY ALL", [str(backup)]).fetchall()
    assert kept == (new if stage == "after_swap" else old)  # the version the last publication replaced


def test_two_runs_of_one_partition_at_once_both_succeed_and_leave_one_whole_version(before_and_after, tmp_path):
    root = copy_of(before_and_after["before"], tmp_path)
    land_more(root)
    runs = [child(root, "none", EVENTS) for _ in range(2)]
    outcomes = [(run.wait(180), run.stdout.read(), run.stderr.read()) for run in runs]
    assert [o[0] for o in outcomes] == [0, 0], [o[2][-2000:] for o in outcomes]
    assert event_counts(root) == event_counts(before_and_after["after"])


def test_two_publications_of_one_day_at_once_both_succeed_and_publish_it_once(before_and_after, tmp_path):
    root = copy_of(before_and_after["before"], tmp_path)
    land_more(root)
    assert materialize(root, UPSTREAM_OF_MART).success
    runs = [child(root, "none", MART) for _ in range(2)]
    outcomes = [(run.wait(180), run.stderr.read()) for run in runs]
    assert [o[0] for o in outcomes] == [0, 0], [o[1][-2000:] for o in outcomes]
    assert all("Traceback" not in o[1] for o in outcomes)
    assert published(root) == published(before_and_after["after"])


def test_a_deleted_warehouse_is_refused_then_rebuilt_by_the_job(before_and_after, tmp_path):
    root = copy_of(before_and_after["before"], tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    resources = local_resources(root)
    second = (START + dt.timedelta(days=1)).isoformat()
    for day in (DAY, second):
        assert dg.materialize(
            [*ASSETS, *CHECKS],
            selection=UPSTREAM_OF_MART + MART,
            partition_key=day,
            resources=resources,
            instance=instance,
        ).success
    whole = published(root)
    os.remove(root / "warehouse.duckdb")

    refused = dg.materialize(
        [*ASSETS, *CHECKS],
        selection=MART,
        partition_key=second,
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )
    assert not refused.success
    failure = refused.get_step_failure_events()[0].step_failure_data.error.message
    assert f"lacks 1 day(s) that were published: {DAY}" in failure and "make rebuild-warehouse" in failure
    assert not [e for e in refused.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]

    rebuilt = defs.resolve_job_def("rebuild_warehouse").execute_in_process(instance=instance, resources=resources)
    assert rebuilt.success and published(root) == whole
    assert {(e.asset_key.to_user_string(), e.partition) for e in rebuilt.get_asset_materialization_events()} >= {
        ("daily_active_users", DAY),
        ("daily_active_users", second),
    }


@pytest.mark.parametrize("stage", ["before_commit", "between_commits", "after_commit"])
def test_on_s3_a_killed_partition_write_leaves_old_or_new_and_the_next_run_ends_right(
    stage, before_and_after, tmp_path, s3_endpoint
):
    root = copy_of(before_and_after["before"], tmp_path)
    lake_url = f"s3://{new_bucket()}/lake"
    copy_lake(root / "lake", lake_url)
    land_more(root)
    con = DuckDBEngine(remote_protocols=["s3"]).connect()

    def counts() -> tuple[int, int]:
        return tuple(
            con.execute("SELECT count(*) FROM read_parquet(?)", [lake_files(lake_url, t, DAY)]).fetchall()[0][0]
            for t in EVENTS
        )

    old, new = event_counts(before_and_after["before"]), event_counts(before_and_after["after"])
    assert counts() == old
    killed = child(root, stage, EVENTS, lake_url)
    assert killed.wait(120) == -signal.SIGKILL, killed.stderr.read()[-2000:]
    assert counts() == (new if stage == "after_commit" else old)
    result = dg.materialize(
        [*ASSETS, *CHECKS], selection=EVENTS, partition_key=DAY, resources=resources_for(root, lake_url)
    )
    assert result.success and counts() == new


def test_the_daily_sweep_removes_what_a_killed_write_left_in_a_day_never_written_again(before_and_after, tmp_path):
    root = copy_of(before_and_after["before"], tmp_path)
    land_more(root)
    killed = child(root, "before_commit", EVENTS)
    assert killed.wait(120) == -signal.SIGKILL, killed.stderr.read()[-2000:]
    aged = age_unreferenced_versions(root)
    assert aged
    for k, written in enumerate(sorted((root / "lake" / "_written").glob("date=*"))):  # as if written years ago
        written.rename(written.with_name(f"date=2020-01-{k + 1:02d}"))
    swept = defs.resolve_job_def("sweep_lake").execute_in_process(resources=local_resources(root))
    assert swept.success and [folder for folder in aged if folder.exists()] == []
    assert list((root / "lake" / "_written").iterdir()) == []  # the dates gone over are done with
    assert event_counts(root) == event_counts(before_and_after["before"])

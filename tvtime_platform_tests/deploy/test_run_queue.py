"""Both instances' run queues hold runs of one day partition one at a time (any job), as Dagster reads their files."""

import shutil

import dagster as dg
import pytest
from dagster._core.instance.config import dagster_instance_config
from dagster._utils.tags import TagConcurrencyLimitsCounter

from tvtime_platform_tests.support import REPO

INSTANCES = {"local": REPO / ".dagster_home" / "dagster.yaml", "production": REPO / "deploy" / "dagster.yaml"}


def run(job: str, day: str | None) -> dg.DagsterRun:
    tags = {"dagster/job_name": job} | ({"dagster/partition": day} if day else {})
    return dg.DagsterRun(job_name=job, tags=tags)


@pytest.mark.parametrize("instance", INSTANCES)
def test_runs_of_one_day_wait_for_each_other_and_other_days_do_not(instance, tmp_path):
    shutil.copy(INSTANCES[instance], tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))  # validated against Dagster's schema
    limits = config["concurrency"]["runs"]["tag_concurrency_limits"]
    counter = TagConcurrencyLimitsCounter(limits, [run("ingest_events", "2024-03-01")])
    assert counter.is_blocked(run("ingest_events", "2024-03-01"))
    assert counter.is_blocked(run("daily_pipeline", "2024-03-01"))
    assert not counter.is_blocked(run("ingest_events", "2024-03-02"))
    assert not counter.is_blocked(run("refresh_show_catalog", None))

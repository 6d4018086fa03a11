"""The factors trained as an AWS Batch job: moto's Batch and S3 on 127.0.0.1, the job's container emulated locally.

moto runs the submitted job through the Docker API; `FakeDocker` answers it by running the job's
command and environment exactly as submitted, as a local process against moto's S3. The asset gets
the entrypoint's metadata and check result through Pipes, and the job's log lines.
"""

import datetime as dt
import time
import uuid

import boto3
import dagster as dg
import fsspec
import numpy as np
import pyarrow as pa
import pytest

from tvtime_platform.defs.recommendations.factors import factors
from tvtime_platform.resources.batch import BatchFactorization
from tvtime_platform.resources.duckdb_engine import DuckDBEngine
from tvtime_platform_tests.emulators import new_bucket
from tvtime_platform_tests.support import FACTORIZATION_IMAGE, lake_at, lake_files, lake_write

pytestmark = pytest.mark.slow
DAY = "2024-03-01"


@pytest.fixture
def batch_cloud(s3_endpoint) -> dict:
    """A Batch queue and a job definition of the factorization image, of the test's own, on moto; and a bucket."""
    iam, batch, suffix = boto3.client("iam"), boto3.client("batch"), uuid.uuid4().hex[:8]
    role = iam.create_role(RoleName=f"batch-{suffix}", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    environment = batch.create_compute_environment(
        computeEnvironmentName=f"cpu-{suffix}", type="UNMANAGED", state="ENABLED", serviceRole=role
    )
    batch.create_job_queue(
        jobQueueName=f"training-{suffix}",
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment["computeEnvironmentArn"]}],
    )
    batch.register_job_definition(
        jobDefinitionName=f"factorization-{suffix}",
        type="container",
        containerProperties={
            "image": FACTORIZATION_IMAGE,
            "command": ["python", "-m", "tvtime_platform.factorization.entrypoint"],
            "resourceRequirements": [{"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "4096"}],
        },
    )
    return {"bucket": new_bucket(), "queue": f"training-{suffix}", "definition": f"factorization-{suffix}"}


def two_tastes(lake: str, day: str = DAY) -> None:
    """Interactions of 600 users in two groups that never share a show."""
    rng = np.random.default_rng(1)
    users = np.repeat(np.arange(1, 601), 4)
    shows = (users % 2) * 50 + rng.integers(1, 51, len(users))
    table = pa.table(
        {
            "user_id": users,
            "show_id": shows,
            "confidence": rng.uniform(1, 3, len(users)),
            "last_interaction_at": pa.array(
                [
                    dt.datetime(2024, 3, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=int(m))
                    for m in rng.integers(0, 1440, len(users))
                ]
            ),
        }
    )
    lake_write(lake, "user_show_interactions", day, table)


def train(cloud: dict, instance: dg.DagsterInstance, day: str) -> dg.ExecuteInProcessResult:
    lake = lake_at(f"s3://{cloud['bucket']}/lake")
    resources = {
        "lake_storage": lake,
        "duckdb": DuckDBEngine(remote_protocols=["s3"]),
        "factorization": BatchFactorization(
            job_queue=cloud["queue"],
            job_definition=cloud["definition"],
            messages_bucket=cloud["bucket"],
            poll_seconds=0.5,
        ),
    }
    return dg.materialize(
        [factors],
        partition_key=day,
        resources=resources,
        instance=instance,
        raise_on_error=False,
        run_config={"ops": {"factors": {"config": {"factors": 4, "regularization": 0.1, "alpha": 5.0}}}},
    )


def test_the_job_runs_on_batch_and_its_report_reaches_the_asset(batch_cloud):
    lake = f"s3://{batch_cloud['bucket']}/lake"
    two_tastes(lake)
    instance = dg.DagsterInstance.ephemeral()
    result = train(batch_cloud, instance, DAY)
    assert result.success
    [check] = result.get_asset_check_evaluations()
    assert check.passed and check.metadata["model_ndcg_at_10"].value > check.metadata["popularity_ndcg_at_10"].value
    metadata = {
        e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()
    }
    assert (
        metadata["user_factors"]["library"].value == "implicit 0.7.3" and metadata["user_factors"]["users"].value == 600
    )
    assert metadata["show_factors"]["dagster/partition_row_count"].value == 100
    assert lake_files(lake, "user_factors", DAY) and lake_files(lake, "show_factors", DAY)
    [job] = boto3.client("batch").list_jobs(jobQueue=batch_cloud["queue"], jobStatus="SUCCEEDED")["jobSummaryList"]
    logs = [r.user_message for r in instance.all_logs(result.run_id) if r.user_message.startswith("[batch] ")]
    [interactions] = lake_files(lake, "user_show_interactions", DAY)
    assert f"[batch] factorization: reading 1 file(s), first {interactions}" in logs
    assert any(job["jobId"] in r.user_message for r in instance.all_logs(result.run_id))


def test_a_failed_job_fails_the_asset_with_its_reason_and_log(batch_cloud):
    lake = f"s3://{batch_cloud['bucket']}/lake"
    two_tastes(lake, "2024-03-02")
    [interactions] = lake_files(lake, "user_show_interactions", "2024-03-02")
    fsspec.filesystem("s3").pipe_file(interactions, b"not parquet at all")  # the job's read fails in the container
    result = train(batch_cloud, dg.DagsterInstance.ephemeral(), "2024-03-02")
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    # AWS's describe_jobs gives the container's exit code; moto's leaves it out, so "exit code None" here.
    assert "AWS Batch job factorization-2024-03-02" in message and " FAILED: " in message
    assert "Parquet magic bytes not found" in message  # the job's own last log lines


def test_a_cancelled_run_terminates_its_job(batch_cloud, monkeypatch):
    """The launcher in a step of its own: Dagster retries an interrupted step of an asset with a retry policy."""

    def cancelled(self) -> None:  # what Dagster raises in the step when the run is cancelled
        raise dg.DagsterExecutionInterruptedError()

    monkeypatch.setattr(BatchFactorization, "_pause", cancelled)

    @dg.asset(partitions_def=dg.DailyPartitionsDefinition(start_date="2024-01-01"))
    def training(context: dg.AssetExecutionContext, factorization: BatchFactorization) -> None:  # no retry policy
        factorization.run(context, {"interactions_files": ["s3://nowhere/x.parquet"], "output_url": "s3://nowhere/"})

    launcher = BatchFactorization(
        job_queue=batch_cloud["queue"],
        job_definition=batch_cloud["definition"],
        messages_bucket=batch_cloud["bucket"],
        poll_seconds=0.5,
    )
    result = dg.materialize([training], partition_key=DAY, resources={"factorization": launcher}, raise_on_error=False)
    assert not result.success
    batch = boto3.client("batch")
    [summary] = batch.list_jobs(
        jobQueue=batch_cloud["queue"], filters=[{"name": "JOB_NAME", "values": ["factorization-*"]}]
    )["jobSummaryList"]
    for _ in range(100):  # moto stops the job's container in the background
        job = batch.describe_jobs(jobs=[summary["jobId"]])["jobs"][0]
        if job["status"] == "FAILED":
            break
        time.sleep(0.2)
    assert job["status"] == "FAILED" and "was cancelled" in job["statusReason"]

"""Spark on EMR through Pipes, against moto's EMR and S3 on 127.0.0.1, with the steps run by the emulation.

The lake stays in local folders here: Spark reads and writes Parquet on S3 through Hadoop's S3
connector (EMRFS on EMR), which is not installable on this machine, so the emulated cluster writes
local files while the job's code, bootstrap script, Pipes messages and logs go through moto's S3.
Landing files are read by the job's Python workers (s3fs), so those can be on moto's S3.
"""

import json
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import dagster as dg
import duckdb
import pytest
from dagster_pipes import decode_param
from moto.server import ThreadedMotoServer
from s3fs import S3FileSystem

from tvtime_platform.lake import Lake
from tvtime_platform.resources.deployment import local_resources
from tvtime_platform.resources.emr import EmrSpark, InstanceGroup
from tvtime_platform.resources.landing import LandingZone
from tvtime_platform.resources.set_based import run_on_spark
from tvtime_platform.resources.spark import JOB_JAVA_OPTIONS, PLAN_RUNNER
from tvtime_platform.transforms.user_sessions import user_sessions_plan
from tvtime_platform_tests.defs.ingestion.test_landing_conformance import land_odd_names_on_s3, materialize_events
from tvtime_platform_tests.emr_emulator import SPARK_SUBMIT, EmrEmulator, cancel_steps_supported
from tvtime_platform_tests.emulators import AWS_TEST_ENVIRONMENT, free_port
from tvtime_platform_tests.support import ASSETS, CHECKS, START, lake_files, lake_scan, lake_write

DAY = START.isoformat()
BUCKET = "tvtime-emr"


@dataclass
class Emr:
    endpoint: str
    emulator: EmrEmulator

    def spark(self, kind: type[EmrSpark] = EmrSpark, **settings) -> EmrSpark:
        return kind(
            code_url=f"s3://{BUCKET}/code",
            messages_bucket=BUCKET,
            log_uri=f"s3://{BUCKET}/emr-logs/",
            poll_seconds=0.5,
            spark_conf={"spark.sql.shuffle.partitions": "4"},
            core=InstanceGroup(instance_type="r7g.4xlarge", instance_count=3),
            **settings,
        )


@pytest.fixture
def emr(monkeypatch, tmp_path) -> Iterator[Emr]:
    """moto's server in this process (so the emulation can run its steps), made the AWS endpoint."""
    cancel_steps_supported()
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    # The server keeps its state in this process's moto backends: start each test from none.
    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/moto-api/reset", method="POST")).close()
    aws = {**AWS_TEST_ENVIRONMENT, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    # botocore's EMR waiters (which PipesEMRClient uses) poll every 30 s; the same waiters, polling every second.
    waiters = Path(sys.modules["botocore"].__file__).parent / "data" / "emr" / "2009-03-31" / "waiters-2.json"
    model = json.loads(waiters.read_text())
    for waiter in model["waiters"].values():
        waiter["delay"] = 1
    data = tmp_path / "botocore-data" / "emr" / "2009-03-31"
    data.mkdir(parents=True)
    (data / "waiters-2.json").write_text(json.dumps(model))
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path / "botocore-data"))
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    # s3fs caches its clients, each bound to the endpoint it first saw: none may outlive this test's server.
    S3FileSystem.clear_instance_cache()
    try:
        with EmrEmulator({**aws, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}) as emulator:
            yield Emr(aws["AWS_ENDPOINT_URL"], emulator)
    finally:
        server.stop()
        S3FileSystem.clear_instance_cache()


def running_cluster() -> str:
    return boto3.client("emr").run_job_flow(
        Name="shared",
        ReleaseLabel="emr-spark-8.0.0",
        LogUri=f"s3://{BUCKET}/emr-logs/",
        Applications=[{"Name": "Spark"}],
        Instances={"KeepJobFlowAliveWhenNoSteps": True, "MasterInstanceType": "m7g.xlarge", "InstanceCount": 1},
        ServiceRole="EMR_DefaultRole",
        JobFlowRole="EMR_EC2_DefaultRole",
    )["JobFlowId"]


def day_tables(data_dir: Path, spark: EmrSpark, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """The day's events on DuckDB, then its sessions on EMR."""
    duckdb_resources = local_resources(data_dir)
    for selection in (["show_catalog"], ["app_events", "quarantined_events"]):
        assert dg.materialize(
            ASSETS,
            selection=selection,
            partition_key=None if selection == ["show_catalog"] else DAY,
            instance=instance,
            resources=duckdb_resources,
        ).success
    return dg.materialize(
        [*ASSETS, *CHECKS],
        selection=["user_sessions"],
        partition_key=DAY,
        instance=instance,
        resources=local_resources(data_dir, engine="spark", spark=spark),
        raise_on_error=False,
    )


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    [event] = [m for m in result.get_asset_materialization_events() if m.asset_key == dg.AssetKey(asset)]
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


def submitted_job(args: list[str]) -> bytes:
    """The job file a step's spark-submit arguments name, as staged on S3 (beside it, the zip of the platform modules
    it imports)."""
    job, modules = (
        [a for a in args if a.startswith("s3://") and a.endswith("/plan_runner.py")],
        args[args.index("--py-files") + 1],
    )
    [job] = job
    assert (
        modules.startswith("s3://")
        and modules.endswith("/tvtime_modules.zip")
        and modules.rsplit("/", 1)[0] == job.rsplit("/", 1)[0]
    )
    bucket, key = job.removeprefix("s3://").split("/", 1)
    assert key.startswith("code/") and key.endswith("/plan_runner.py")
    return boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


@pytest.mark.slow
def test_a_step_added_to_a_running_cluster_reports_back_through_pipes(emr, data_dir, capfd):
    cluster, instance = running_cluster(), dg.DagsterInstance.ephemeral()
    result = day_tables(data_dir, emr.spark(cluster_id=cluster), instance)
    assert result.success

    [step] = boto3.client("emr").list_steps(ClusterId=cluster)["Steps"]
    assert step["Status"]["State"] == "COMPLETED" and step["Name"].startswith(f"tvtime user_sessions {DAY} ")
    submitted = step["Config"]["Args"]
    assert step["Config"]["Jar"] == "command-runner.jar" and step["ActionOnFailure"] == "CONTINUE"
    job = next(k for k, arg in enumerate(submitted) if arg.endswith("/plan_runner.py"))
    assert submitted[:4] + submitted[5:job] == [
        "spark-submit",
        "--deploy-mode",
        "client",
        "--py-files",
        "--conf",
        "spark.sql.shuffle.partitions=4",
        "--conf",
        f"spark.driver.extraJavaOptions={JOB_JAVA_OPTIONS}",
        "--conf",
        f"spark.executor.extraJavaOptions={JOB_JAVA_OPTIONS}",
    ]
    assert submitted_job(submitted) == PLAN_RUNNER.read_bytes()
    assert submitted[job + 1] == "--dagster-pipes-context" and submitted[job + 3] == "--dagster-pipes-messages"
    assert decode_param(submitted[job + 4])["bucket"] == BUCKET
    assert "SELECT" in decode_param(submitted[job + 2])["data"]["extras"]["plan"]["steps"][0]["sql"]
    # The emulation ran exactly those arguments (with the staged files fetched and a local master): its own four
    # come first.
    [run] = emr.emulator.ran
    command = run["command"]
    assert command[:3] == [SPARK_SUBMIT, "--master", "local[2]"]
    assert command[5:8] + command[9 : job + 4] == submitted[1:4] + submitted[5:job]
    assert command[job + 5 :] == submitted[job + 1 :]
    assert Path(command[8]).name == "tvtime_modules.zip" and Path(command[job + 4]).name == "plan_runner.py"

    sessions = metadata(result, "user_sessions")
    assert sessions["spark_version"].startswith("4.") and sessions["spark_master"] == "local[2]"
    assert (
        sessions["dagster/partition_row_count"] > 0
        and sessions["events"]
        == instance.get_latest_materialization_event(dg.AssetKey("app_events"))
        .asset_materialization.metadata["kept"]
        .value
    )
    # The job's log lines come back through Pipes; the step's own output is forwarded from the log bucket.
    assert any(
        f"Spark {sessions['spark_version']} (local[2]" in record.user_message
        for record in instance.all_logs(result.run_id)
    )
    forwarded = capfd.readouterr()
    assert "Running Spark version" in forwarded.out + forwarded.err


@pytest.mark.slow
def test_a_failed_step_fails_the_asset_with_the_jobs_error(emr, data_dir):
    cluster, instance = running_cluster(), dg.DagsterInstance.ephemeral()
    spark = emr.spark(cluster_id=cluster)
    # A day whose events file is not Parquet: the job's read fails on the cluster.
    duckdb_resources = local_resources(data_dir)
    assert dg.materialize(ASSETS, selection=["show_catalog"], instance=instance, resources=duckdb_resources).success
    lake_write(data_dir / "lake", "app_events", DAY, duckdb.connect().sql("SELECT 1 AS x"))
    [broken] = lake_files(data_dir / "lake", "app_events", DAY)
    Path(broken).write_bytes(b"not parquet at all")
    result = dg.materialize(
        ASSETS,
        selection=["user_sessions"],
        partition_key=DAY,
        instance=instance,
        resources=local_resources(data_dir, engine="spark", spark=spark),
        raise_on_error=False,
    )
    assert not result.success
    [step] = boto3.client("emr").list_steps(ClusterId=cluster)["Steps"]
    assert step["Status"]["State"] == "FAILED"
    [failure] = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message
    assert f"EMR step {step['Id']} on cluster {cluster} FAILED" in message
    # The job's own error, from its stderr: the Python traceback and the exceptions under it, not Spark's chatter.
    assert "Traceback (most recent call last)" in message and "part-0.parquet is not a Parquet file" in message
    assert " INFO " not in message
    assert not (data_dir / "lake" / "user_sessions").exists() or not any(
        (data_dir / "lake" / "user_sessions").rglob("*.parquet")
    )


class InterruptedWhileWaiting(EmrSpark):
    """Stands for a run cancelled while its step runs: the wait between polls is interrupted."""

    def _pause(self) -> None:
        time.sleep(3)  # the step is running by now
        raise dg.DagsterExecutionInterruptedError()


@dg.asset
def sessions_without_retries(context: dg.AssetExecutionContext, spark: EmrSpark, lake_storage: Lake) -> None:
    """The sessions plan launched from a step without a retry policy (Dagster retries an interrupted step that has
    one)."""
    table = lake_storage.table(dg.AssetKey("app_events"), [DAY])
    run_on_spark(context, spark, lake_storage, user_sessions_plan(), {"app_events": table.spark_input()})


@pytest.mark.slow
def test_a_cancelled_run_cancels_its_step(emr, data_dir):
    cluster, instance = running_cluster(), dg.DagsterInstance.ephemeral()
    resources = local_resources(data_dir)
    assert dg.materialize(
        ASSETS,
        selection=["app_events", "quarantined_events"],
        partition_key=DAY,
        instance=instance,
        resources=resources,
    ).success
    result = dg.materialize(
        [sessions_without_retries],
        instance=instance,
        raise_on_error=False,
        resources={
            "lake_storage": resources["lake_storage"],
            "spark": emr.spark(InterruptedWhileWaiting, cluster_id=cluster),
        },
    )
    assert not result.success
    [step] = boto3.client("emr").list_steps(ClusterId=cluster)["Steps"]
    for _ in range(100):  # the emulation stops the process, then marks the step
        if (
            boto3.client("emr").describe_step(ClusterId=cluster, StepId=step["Id"])["Step"]["Status"]["State"]
            == "CANCELLED"
        ):
            break
        time.sleep(0.2)
    assert (
        boto3.client("emr").describe_step(ClusterId=cluster, StepId=step["Id"])["Step"]["Status"]["State"]
        == "CANCELLED"
    )
    [run] = emr.emulator.ran
    assert run["returncode"] != 0  # the job's process was stopped before it ended


@pytest.mark.slow
def test_a_transient_cluster_runs_the_step_and_terminates(emr, data_dir):
    instance = dg.DagsterInstance.ephemeral()
    result = day_tables(data_dir, emr.spark(), instance)
    assert result.success
    [cluster] = boto3.client("emr").list_clusters()["Clusters"]
    assert cluster["Status"]["State"] == "TERMINATED"
    described = boto3.client("emr").describe_cluster(ClusterId=cluster["Id"])["Cluster"]
    assert described["ReleaseLabel"] == "emr-spark-8.0.0" and described["LogUri"] == f"s3://{BUCKET}/emr-logs/"
    groups = boto3.client("emr").list_instance_groups(ClusterId=cluster["Id"])["InstanceGroups"]
    assert {(g["InstanceGroupType"], g["InstanceType"], g["RequestedInstanceCount"]) for g in groups} == {
        ("MASTER", "m7g.xlarge", 1),
        ("CORE", "r7g.4xlarge", 3),
    }
    [action] = boto3.client("emr").list_bootstrap_actions(ClusterId=cluster["Id"])["BootstrapActions"]
    bucket, key = action["ScriptPath"].removeprefix("s3://").split("/", 1)
    assert (
        "pip install --quiet dagster-pipes=="
        in boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    )
    # PipesEMRClient put the Pipes context in the cluster's environment, where the emulated step found it.
    exports = [c for c in described["Configurations"] if c["Classification"] == "spark-env"][0]["Configurations"][0][
        "Properties"
    ]
    assert "DAGSTER_PIPES_CONTEXT" in exports
    [step] = boto3.client("emr").list_steps(ClusterId=cluster["Id"])["Steps"]
    assert step["ActionOnFailure"] == "TERMINATE_CLUSTER" and step["Status"]["State"] == "COMPLETED"
    assert submitted_job(step["Config"]["Args"]) == PLAN_RUNNER.read_bytes()
    assert metadata(result, "user_sessions")["spark_master"] == "local[2]"


@pytest.mark.slow
def test_the_job_reads_odd_named_landing_files_on_s3(emr, tmp_path):
    url, expected = land_odd_names_on_s3(BUCKET)
    resources = {
        **local_resources(tmp_path, engine="spark", spark=emr.spark(cluster_id=running_cluster())),
        "landing": LandingZone(url=url),
    }
    result = materialize_events(resources)
    assert result.success, [str(e.step_failure_data.error) for e in result.all_events if e.is_step_failure]
    [balance] = result.get_asset_check_evaluations()
    assert balance.passed and balance.metadata["judged_by"].value == "the Spark job, on its written files"
    events = duckdb.sql(f"SELECT event_id FROM {lake_scan(tmp_path / 'lake', 'app_events', DAY)}").fetchall()
    assert {r[0] for r in events} == expected and len(events) == len(expected)

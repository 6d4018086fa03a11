"""Spark on EMR through Pipes, against moto's EMR and S3 on 127.0.0.1, with the steps run by the emulation.

The lake and landing zone stay in local folders here: Spark reads S3 through Hadoop's S3 connector
(EMRFS on EMR), which is not installable on this machine, so the emulated cluster reads local
files while the job's code, bootstrap script, Pipes messages and logs go through moto's S3.
"""

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import dagster as dg
import pytest
from dagster_pipes import decode_param
from moto.server import ThreadedMotoServer

from tvtime_platform.resources.deployment import local_resources
from tvtime_platform.resources.emr import EmrSpark, InstanceGroup
from tvtime_platform.resources.spark import PLAN_RUNNER
from tvtime_platform_tests.conftest import ASSETS, CHECKS, START
from tvtime_platform_tests.emr_emulator import SPARK_SUBMIT, EmrEmulator, cancel_steps_supported
from tvtime_platform_tests.emulators import AWS_TEST_ENVIRONMENT, free_port

DAY = START.isoformat()
BUCKET = "tvtime-emr"


@dataclass
class Emr:
    endpoint: str
    emulator: EmrEmulator

    def spark(self, **settings) -> EmrSpark:
        return EmrSpark(code_url=f"s3://{BUCKET}/code", messages_bucket=BUCKET, log_uri=f"s3://{BUCKET}/emr-logs/", poll_seconds=0.5,
                        spark_conf={"spark.sql.shuffle.partitions": "4"}, core=InstanceGroup(instance_type="r7g.4xlarge", instance_count=3),
                        **settings)


@pytest.fixture
def emr(monkeypatch, tmp_path) -> Iterator[Emr]:
    """moto's server in this process (so the emulation can run its steps), made the AWS endpoint."""
    cancel_steps_supported()
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
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
    try:
        with EmrEmulator({**aws, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}) as emulator:
            yield Emr(aws["AWS_ENDPOINT_URL"], emulator)
    finally:
        server.stop()


def running_cluster() -> str:
    return boto3.client("emr").run_job_flow(
        Name="shared", ReleaseLabel="emr-7.12.0", LogUri=f"s3://{BUCKET}/emr-logs/", Applications=[{"Name": "Spark"}],
        Instances={"KeepJobFlowAliveWhenNoSteps": True, "MasterInstanceType": "m7g.xlarge", "InstanceCount": 1},
        ServiceRole="EMR_DefaultRole", JobFlowRole="EMR_EC2_DefaultRole",
    )["JobFlowId"]


def day_tables(data_dir: Path, spark: EmrSpark, selection: list[str], instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    resources = {**local_resources(data_dir), "spark": spark}
    assert dg.materialize(ASSETS, selection=["show_catalog"], instance=instance, resources=resources).success
    return dg.materialize([*ASSETS, *CHECKS], selection=selection, partition_key=DAY, instance=instance, resources=resources,
                          raise_on_error=False)


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    [event] = [m for m in result.get_asset_materialization_events() if m.asset_key == dg.AssetKey(asset)]
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


@pytest.mark.slow
def test_steps_added_to_a_running_cluster_report_back_through_pipes(emr, data_dir, capfd):
    cluster, instance = running_cluster(), dg.DagsterInstance.ephemeral()
    result = day_tables(data_dir, emr.spark(cluster_id=cluster), ["app_events", "quarantined_events", "user_sessions"], instance)
    assert result.success

    # One step per Spark asset, each spark-submit of the staged job with the Pipes bootstrap as arguments.
    steps = sorted(boto3.client("emr").list_steps(ClusterId=cluster)["Steps"], key=lambda s: s["Status"]["Timeline"]["CreationDateTime"])
    assert [s["Status"]["State"] for s in steps] == ["COMPLETED", "COMPLETED"]
    assert "app_events+quarantined_events" in steps[0]["Name"] and "user_sessions" in steps[1]["Name"]
    for step in steps:
        args = step["Config"]["Args"]
        assert step["Config"]["Jar"] == "command-runner.jar" and step["ActionOnFailure"] == "CONTINUE"
        assert args[:5] == ["spark-submit", "--deploy-mode", "client", "--conf", "spark.sql.shuffle.partitions=4"]
        job = args[5]
        assert job.startswith(f"s3://{BUCKET}/code/") and job.endswith("/plan_runner.py")
        bucket, key = job.removeprefix("s3://").split("/", 1)
        assert boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read() == PLAN_RUNNER.read_bytes()
        assert args[6] == "--dagster-pipes-context" and args[8] == "--dagster-pipes-messages"
        assert decode_param(args[9])["bucket"] == BUCKET
        assert "plan" in decode_param(args[7])["data"]["extras"]
    # The emulation ran exactly those arguments (the staged file fetched, the master local).
    ran = {run["step_id"]: run["command"] for run in emr.emulator.ran}
    for step in steps:
        submitted, command = step["Config"]["Args"], ran[step["Id"]]
        assert command[:3] == [SPARK_SUBMIT, "--master", "local[2]"]
        assert command[5:9] == submitted[1:5] and command[10:] == submitted[6:] and Path(command[9]).name == "plan_runner.py"

    sessions = metadata(result, "user_sessions")
    assert sessions["spark_version"].startswith("4.") and sessions["spark_master"] == "local[2]"
    assert sessions["dagster/row_count"] > 0 and sessions["events"] == metadata(result, "app_events")["kept"]
    # The job's log lines come back through Pipes; the step's own output from the log bucket.
    assert any(f"Spark {sessions['spark_version']} (local[2]" in record.user_message for record in instance.all_logs(result.run_id))
    forwarded = capfd.readouterr()
    assert "Running Spark version" in forwarded.out + forwarded.err

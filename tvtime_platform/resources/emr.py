"""Spark on EMR: the plan runner as an EMR step, through Dagster Pipes (staging and prod).

Built on Pipes, not on Dagster's older `emr_pyspark_step_launcher`, which the current docs list as
superseded by Pipes. Two ways to run, chosen by config:

- `cluster_id` set: the step is added to that running cluster (`add_job_flow_steps`). dagster-aws
  has no Pipes client for this, so it is built on `open_pipes_session`: the Pipes context travels
  as the job's command-line arguments, messages come back through S3 (`PipesS3MessageReader`),
  the step's stdout/stderr are forwarded from the cluster's log bucket, and cancelling the Dagster
  run cancels the step.
- `cluster_id` empty: a transient cluster per run (`PipesEMRClient`, `run_job_flow`), which
  terminates when its step ends; the Pipes context travels in the cluster's environment.

The job file, a zip of the platform modules it imports and a bootstrap script installing its Python
dependencies are staged on S3 first, under a folder named by their content, so concurrent runs of
different versions do not clash. A failed step fails the asset, without retries, with EMR's reason
and the job's error as its logs tell it (`job_error`). Cluster settings are this resource's config
(`resources/emr.yaml` in the cloud deployments), not code. Imported only by the staging and prod
deployments.
"""

from __future__ import annotations

import gzip
import hashlib
import time
from typing import Any

import boto3
import dagster as dg
from dagster_aws.pipes import PipesEMRClient, PipesS3MessageReader
from dagster_aws.pipes.message_readers import PipesS3LogReader, gzip_log_decode_fn
from pydantic import Field

from tvtime_platform.resources.spark import PLAN_RUNNER, SparkJobs, job_error, job_modules_zip, submit_conf

STEP_DONE = {"COMPLETED", "FAILED", "CANCELLED", "INTERRUPTED"}
PIPES_VERSION = "1.13.27"


class InstanceGroup(dg.Config):
    instance_type: str
    instance_count: int = Field(default=1, ge=1)


class BootstrapAction(dg.Config):
    name: str
    path: str = Field(description="s3:// URL of the script")
    args: list[str] = []


class EmrSpark(SparkJobs):
    """The plan runner as a step on an EMR cluster: a running one, or a transient one per run."""

    cluster_id: str = Field(
        default="", description="running cluster to add steps to; empty starts a transient cluster per run"
    )
    code_url: str = Field(description="s3:// prefix where the job file and its bootstrap script are staged")
    messages_bucket: str = Field(description="S3 bucket where the job writes its Pipes messages")
    log_uri: str = Field(
        description="s3:// prefix of the clusters' logs (LogUri); the step's stdout/stderr are read from there"
    )
    release_label: str = Field(
        default="emr-spark-8.0.0",
        description="EMR release; the job needs Spark 4.0 or later (emr-spark-8.0.0 has 4.0.2)",
    )
    master: InstanceGroup = InstanceGroup(instance_type="m7g.xlarge")
    core: InstanceGroup = InstanceGroup(instance_type="r7g.2xlarge", instance_count=4)
    python_packages: list[str] = Field(
        default=[f"dagster-pipes=={PIPES_VERSION}", "boto3", "pyarrow==26.0.1", "numpy==2.4.6", "s3fs==2026.9.0"],
        description="pip requirements of the job, installed on every node by a bootstrap action",
    )
    bootstrap_actions: list[BootstrapAction] = Field(
        default=[], description="further bootstrap actions, after the dependencies'"
    )
    spark_conf: dict[str, str] = Field(default={}, description="--conf settings of spark-submit")
    service_role: str = "EMR_DefaultRole"
    job_flow_role: str = "EMR_EC2_DefaultRole"
    poll_seconds: float = Field(default=15.0, gt=0, description="how often to ask EMR how the step is doing")

    def run(self, context: dg.AssetExecutionContext, extras: dict[str, Any]) -> list:
        job, modules, bootstrap = self._stage_code()
        if self.cluster_id:
            return self._run_on_cluster(context, extras, job, modules)
        return self._run_transient(context, extras, job, modules, bootstrap)

    def step(self, name: str, job: str, modules: str, arguments: list[str], action_on_failure: str) -> dict:
        """The EMR step: `spark-submit` of the job file and its modules (client mode, so the step's logs are the
        driver's)."""
        command = ["spark-submit", "--deploy-mode", "client", "--py-files", modules, *submit_conf(self.spark_conf)]
        return {
            "Name": name,
            "ActionOnFailure": action_on_failure,
            "HadoopJarStep": {"Jar": "command-runner.jar", "Args": [*command, job, *arguments]},
        }

    def _stage_code(self) -> tuple[str, str, str]:
        """Upload the job file, the platform modules it imports (a zip) and the bootstrap script; their s3:// URLs."""
        s3 = boto3.client("s3")
        files = {
            "plan_runner.py": PLAN_RUNNER.read_bytes(),
            "tvtime_modules.zip": job_modules_zip(),
            "bootstrap.sh": (
                "#!/bin/bash\n# Installs the Spark job's Python dependencies on every node.\nset -euo pipefail\n"
                f"sudo python3 -m pip install --quiet {' '.join(self.python_packages)}\n"
            ).encode(),
        }
        version = hashlib.sha256(b"".join(files.values())).hexdigest()[:16]
        bucket, _, prefix = self.code_url.removeprefix("s3://").partition("/")
        urls = []
        for name, body in files.items():
            key = "/".join(p for p in (prefix.strip("/"), version, name) if p)
            s3.put_object(Bucket=bucket, Key=key, Body=body)
            urls.append(f"s3://{bucket}/{key}")
        return urls[0], urls[1], urls[2]

    def _reader(self) -> PipesS3MessageReader:
        return PipesS3MessageReader(
            bucket=self.messages_bucket, client=boto3.client("s3"), interval=min(self.poll_seconds, 10.0)
        )

    def _run_on_cluster(
        self, context: dg.AssetExecutionContext, extras: dict[str, Any], job: str, modules: str
    ) -> list:
        emr = boto3.client("emr")
        reader = self._reader()
        with dg.open_pipes_session(
            context=context, extras=extras, context_injector=dg.PipesEnvContextInjector(), message_reader=reader
        ) as session:
            arguments = [part for pair in session.get_bootstrap_cli_arguments().items() for part in pair]
            name = _step_name(context)
            step_id = emr.add_job_flow_steps(
                JobFlowId=self.cluster_id, Steps=[self.step(name, job, modules, arguments, "CONTINUE")]
            )["StepIds"][0]
            context.log.info(f"Added step {name} ({step_id}) to EMR cluster {self.cluster_id}")
            self._forward_logs(emr, reader, self.cluster_id, step_id)
            try:
                state = self._wait(emr, step_id)
            except dg.DagsterExecutionInterruptedError:
                emr.cancel_steps(ClusterId=self.cluster_id, StepIds=[step_id], StepCancellationOption="SEND_INTERRUPT")
                context.log.warning(f"Cancelled EMR step {step_id}: the run was cancelled")
                raise
            if state != "COMPLETED":
                raise self._failure(emr, self.cluster_id, step_id)
        return session.get_results()

    def _run_transient(
        self, context: dg.AssetExecutionContext, extras: dict[str, Any], job: str, modules: str, bootstrap: str
    ) -> list:
        emr = boto3.client("emr")
        started: list[
            str
        ] = []  # the cluster's id, seen as it is created (PipesEMRClient does not return it on failure)
        emr.meta.events.register("after-call.emr.RunJobFlow", lambda parsed, **_: started.append(parsed["JobFlowId"]))
        client = PipesEMRClient(
            client=emr, message_reader=self._reader(), forward_termination=True, wait_for_s3_logs_seconds=0
        )
        try:
            return client.run(
                context=context,
                run_job_flow_params=self.job_flow(_step_name(context), job, modules, bootstrap),
                extras=extras,
            ).get_results()
        except dg.DagsterExecutionInterruptedError:
            raise
        except Exception as error:
            if not started:
                raise
            steps = emr.list_steps(ClusterId=started[0])["Steps"]
            failed = [s for s in steps if s["Status"]["State"] != "COMPLETED"]
            if not failed:
                raise
            raise self._failure(emr, started[0], failed[0]["Id"]) from error

    def job_flow(self, name: str, job: str, modules: str, bootstrap: str) -> dict:
        """`run_job_flow` parameters of a transient cluster running the one step."""
        groups = [
            {
                "Name": role.lower(),
                "InstanceRole": role,
                "InstanceType": group.instance_type,
                "InstanceCount": group.instance_count,
                "Market": "ON_DEMAND",
            }
            for role, group in (("MASTER", self.master), ("CORE", self.core))
        ]
        actions = [{"Name": "job dependencies", "ScriptBootstrapAction": {"Path": bootstrap, "Args": []}}]
        actions += [
            {"Name": a.name, "ScriptBootstrapAction": {"Path": a.path, "Args": a.args}} for a in self.bootstrap_actions
        ]
        return {
            "Name": name,
            "ReleaseLabel": self.release_label,
            "LogUri": self.log_uri,
            "Applications": [{"Name": "Spark"}],
            "Instances": {
                "InstanceGroups": groups,
                "KeepJobFlowAliveWhenNoSteps": False,
                "TerminationProtected": False,
            },
            "BootstrapActions": actions,
            "Steps": [self.step(name, job, modules, [], "TERMINATE_CLUSTER")],
            "ServiceRole": self.service_role,
            "JobFlowRole": self.job_flow_role,
            "VisibleToAllUsers": True,
        }

    def _forward_logs(self, emr: Any, reader: PipesS3MessageReader, cluster_id: str, step_id: str) -> None:
        """Forward the step's stdout and stderr to the run's logs as EMR writes them to the log bucket."""
        bucket, key_prefix = _log_location(self.log_uri, cluster_id, step_id)
        for stream in ("stdout", "stderr"):
            reader.add_log_reader(
                PipesS3LogReader(
                    client=reader.client,
                    bucket=bucket,
                    key=f"{key_prefix}/{stream}.gz",
                    decode_fn=gzip_log_decode_fn,
                    debug_info=f"{stream} of EMR step {step_id}",
                )
            )

    def _wait(self, emr: Any, step_id: str) -> str:
        while True:
            state = emr.describe_step(ClusterId=self.cluster_id, StepId=step_id)["Step"]["Status"]["State"]
            if state in STEP_DONE:
                return state
            self._pause()

    def _pause(self) -> None:
        """Wait between polls; a cancelled run interrupts the step here."""
        time.sleep(self.poll_seconds)

    def _failure(self, emr: Any, cluster_id: str, step_id: str) -> dg.Failure:
        """The step's end as EMR tells it, with the job's error from the step's logs."""
        status = emr.describe_step(ClusterId=cluster_id, StepId=step_id)["Step"]["Status"]
        details = status.get("FailureDetails") or {}
        reason = (
            details.get("Message")
            or details.get("Reason")
            or (status.get("StateChangeReason") or {}).get("Message")
            or "no reason given"
        )
        bucket, key_prefix = _log_location(self.log_uri, cluster_id, step_id)
        logs = {}
        for stream in ("stdout", "stderr"):  # PySpark's driver writes Python's stderr to the step's stdout
            try:
                body = boto3.client("s3").get_object(Bucket=bucket, Key=f"{key_prefix}/{stream}.gz")["Body"].read()
                logs[stream] = gzip.decompress(body).decode(errors="replace").splitlines()
            except Exception as problem:  # the log may not be there (yet); the reason still is
                logs[stream] = [f"(no {stream} log at s3://{bucket}/{key_prefix}/{stream}.gz: {problem})"]
        return dg.Failure(
            f"EMR step {step_id} on cluster {cluster_id} {status['State']}: {reason}; the job's error, from its logs:\n"
            + "\n".join(job_error(logs["stdout"], logs["stderr"])),
            metadata={"emr_cluster_id": cluster_id, "emr_step_id": step_id},
            allow_retries=False,
        )


def _step_name(context: dg.AssetExecutionContext) -> str:
    assets = "+".join(sorted(key.to_user_string() for key in context.selected_asset_keys))
    partition = f" {context.partition_key}" if context.has_partition_key else ""
    return f"tvtime {assets}{partition} {context.run.run_id[:8]}"


def _log_location(log_uri: str, cluster_id: str, step_id: str) -> tuple[str, str]:
    """Bucket and key prefix of a step's logs, where EMR puts them: <LogUri>/<cluster>/steps/<step>/."""
    bucket, _, prefix = log_uri.removeprefix("s3://").partition("/")
    return bucket, "/".join(p for p in (prefix.strip("/"), cluster_id, "steps", step_id) if p)

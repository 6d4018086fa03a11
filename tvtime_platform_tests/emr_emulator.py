"""EMR for the tests: moto's server for the API, and an emulation of what moto leaves out, running the steps.

moto (in server mode, here in this process so the emulation can reach its state) accepts
`run_job_flow`, `add_job_flow_steps`, `describe_step`, ... but never runs a step: it stays RUNNING.
`EmrEmulator` plays the cluster. It takes each step exactly as submitted, runs its `spark-submit`
arguments as a local process, uploads the step's stdout and stderr to the cluster's LogUri as EMR
does (`<LogUri>/<cluster>/steps/<step>/stderr.gz`), and moves the step and the cluster on
(COMPLETED or FAILED; a transient cluster TERMINATED, or TERMINATED_WITH_ERRORS after a failed step
whose ActionOnFailure is TERMINATE_CLUSTER). What a real cluster provides differently, and how:

- `s3://` arguments (the staged job file) are downloaded from moto's S3 to a local file, as
  spark-submit on EMR fetches them itself;
- the master is `local[2]` (EMR's spark-defaults say YARN);
- the environment is this machine's, plus what the cluster's `spark-env` configuration exports
  (where `PipesEMRClient` puts the Pipes context) and the AWS settings pointing at moto;
- bootstrap actions are not run (they would pip-install from PyPI); the tests check what they name;
- there is no YARN: the executors run inside the driver, so the only container log written under
  `<LogUri>/<cluster>/containers/` is the application master's, a line saying so (EMR always has
  that folder for a Spark application, and `PipesEMRClient` lists it after a transient cluster ends).

A step the emulation cannot start (a missing file, a command other than spark-submit) fails with
that error as its stderr, so a test waiting on it ends instead of waiting forever.

moto has no `CancelSteps`; `cancel_steps_supported()` adds it to the in-process server, marking the
step CANCEL_PENDING, which the emulation ends like EMR: the process is stopped, the step CANCELLED.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import boto3
from moto.core import DEFAULT_ACCOUNT_ID
from moto.emr.models import emr_backends
from moto.emr.responses import ElasticMapReduceResponse

SPARK_SUBMIT = str(Path(sys.executable).with_name("spark-submit"))


def cancel_steps_supported() -> None:
    """Teach the in-process moto `CancelSteps` (EMR has it, moto does not)."""

    def cancel_steps(self: ElasticMapReduceResponse) -> str:
        cluster_id = self._get_param("ClusterId")
        step_ids = self._get_param("StepIds", [])
        cluster = self.backend.clusters[cluster_id]
        for step in cluster.steps:
            if step.id in step_ids and step.state in ("PENDING", "RUNNING"):
                step.state = "CANCEL_PENDING"
        return json.dumps(
            {"CancelStepsInfoList": [{"StepId": s, "Status": "SUBMITTED", "Reason": ""} for s in step_ids]}
        )

    ElasticMapReduceResponse.cancel_steps = cancel_steps


class EmrEmulator:
    """Runs the steps moto's clusters are given, one at a time per cluster, in the order they were added."""

    def __init__(self, environment: dict[str, str], region: str = "us-east-1") -> None:
        self.environment = environment
        self.region = region
        self.ran: list[dict] = []  # per step run: its id, the command as run, the exit code
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> EmrEmulator:
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for cluster in list(emr_backends[DEFAULT_ACCOUNT_ID][self.region].clusters.values()):
                step = next((s for s in cluster.steps if s.state in ("PENDING", "RUNNING", "CANCEL_PENDING")), None)
                if step is None:
                    continue
                if step.state == "CANCEL_PENDING":
                    step.state = "CANCELLED"
                    continue
                self._run(cluster, step)
            time.sleep(0.2)

    def _run(self, cluster, step) -> None:
        step.state = "RUNNING"
        cluster.state = "RUNNING"
        try:
            returncode = self._execute(cluster, step)
        except Exception as error:  # the step could not start: it fails, as on EMR, with the reason in its log
            self._upload_logs(
                cluster, step, {"stdout": b"", "stderr": f"emulation: the step could not run: {error!r}\n".encode()}
            )
            returncode = -1
        if step.state == "CANCEL_PENDING":
            step.state = "CANCELLED"
        elif returncode == 0:
            step.state = "COMPLETED"
        else:
            step.state = "FAILED"
            step.last_state_change_reason = f"Step failed with exitCode {returncode}"
        step.end_date_time = step.start_date_time
        if any(s.state in ("PENDING", "RUNNING") for s in cluster.steps):
            return
        failed_hard = step.state == "FAILED" and step.action_on_failure in ("TERMINATE_CLUSTER", "TERMINATE_JOB_FLOW")
        if failed_hard or not cluster.keep_job_flow_alive_when_no_steps:
            cluster.terminate()
            if failed_hard:
                cluster.state = "TERMINATED_WITH_ERRORS"
        else:
            cluster.state = "WAITING"

    def _execute(self, cluster, step) -> int:
        """Run the step as a local process, stopped when the step is cancelled; its exit code."""
        with tempfile.TemporaryDirectory(prefix="emr-step-") as scratch:
            command = self._local_command(step.args, Path(scratch))
            env = {**os.environ, **self.environment, **_exports(cluster.configurations, "spark-env")}
            out, err = Path(scratch, "stdout"), Path(scratch, "stderr")
            with out.open("wb") as stdout, err.open("wb") as stderr:
                process = subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr)
                while process.poll() is None:
                    if step.state == "CANCEL_PENDING":
                        process.terminate()
                    time.sleep(0.2)
            self.ran.append({"step_id": step.id, "command": command, "returncode": process.returncode})
            self._upload_logs(cluster, step, {"stdout": out.read_bytes(), "stderr": err.read_bytes()})
        return process.returncode

    def _local_command(self, args: list[str], scratch: Path) -> list[str]:
        """The step's arguments as a local command: spark-submit of this machine, s3:// files fetched, local master."""
        if args[:1] != ["spark-submit"]:
            raise ValueError(f"the emulation runs spark-submit steps only, got {args[:1]}")
        s3 = boto3.client("s3", region_name=self.region)
        command = [SPARK_SUBMIT, "--master", "local[2]", "--conf", "spark.ui.enabled=false"]
        for arg in args[1:]:
            if arg.startswith("s3://"):
                bucket, _, key = arg.removeprefix("s3://").partition("/")
                local = scratch / key.rsplit("/", 1)[-1]
                s3.download_file(bucket, key, str(local))
                arg = str(local)
            command.append(arg)
        return command

    def _upload_logs(self, cluster, step, logs: dict[str, bytes]) -> None:
        """The step's stdout and stderr, and its application master's container log, where EMR puts them."""
        bucket, _, prefix = cluster.log_uri.removeprefix("s3://").partition("/")
        s3 = boto3.client("s3", region_name=self.region)
        application = f"application_{int(time.time())}_{len(self.ran):04d}"
        files = {f"steps/{step.id}/{name}.gz": body for name, body in logs.items()}
        files[f"containers/{application}/container_{application.removeprefix('application_')}_01_000001/stderr.gz"] = (
            b"emulation: local mode, the executors ran inside the driver (see the step's logs)\n"
        )
        for path, body in files.items():
            key = "/".join(p for p in (prefix.strip("/"), cluster.id, path) if p)
            s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(body))


def _exports(configurations: list[dict], classification: str) -> dict[str, str]:
    """What a cluster configuration's `export` sub-classification puts in the environment."""
    found: dict[str, str] = {}
    for configuration in configurations:
        if configuration.get("Classification") == classification:
            for inner in configuration.get("Configurations", []):
                if inner.get("Classification") == "export":
                    found.update(inner.get("Properties", {}))
    return found

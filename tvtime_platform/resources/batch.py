"""The factorization entrypoint as an AWS Batch job, through Dagster Pipes (staging and prod).

dagster-aws has no Pipes client for AWS Batch, so this one is built on `open_pipes_session`: the
Pipes context travels in the job's environment, the entrypoint's messages come back through S3
(`PipesS3MessageReader`), the job's CloudWatch log stream is forwarded to the run's log while it
runs, a cancelled Dagster run terminates the job, and a failed job fails the asset with its
status reason, exit code and last log lines. Imported only by the staging and prod deployments.
"""

from __future__ import annotations

import time
from typing import Any

import boto3
import dagster as dg
from dagster_aws.pipes import PipesS3MessageReader
from pydantic import Field

from tvtime_platform.resources.factorization import Factorization

DONE = {"SUCCEEDED", "FAILED"}
LOG_GROUP = "/aws/batch/job"


class BatchFactorization(Factorization):
    """Submits the entrypoint to an AWS Batch queue with a job definition of the factorization image."""

    job_queue: str = Field(description="AWS Batch job queue")
    job_definition: str = Field(description="job definition running the image of batch_images/factorization")
    messages_bucket: str = Field(description="S3 bucket where the job writes its Pipes messages")
    poll_seconds: float = Field(default=10.0, gt=0, description="how often to ask Batch how the job is doing")

    def run(self, context: dg.AssetExecutionContext, extras: dict[str, Any]) -> list:
        batch, logs = boto3.client("batch"), boto3.client("logs")
        reader = PipesS3MessageReader(
            bucket=self.messages_bucket, client=boto3.client("s3"), interval=min(self.poll_seconds, 10.0)
        )
        with dg.open_pipes_session(
            context=context, extras=extras, context_injector=dg.PipesEnvContextInjector(), message_reader=reader
        ) as session:
            environment = [{"name": k, "value": v} for k, v in session.get_bootstrap_env_vars().items()]
            name = f"factorization-{context.partition_key}-{context.run.run_id[:8]}"
            job_id = batch.submit_job(
                jobName=name,
                jobQueue=self.job_queue,
                jobDefinition=self.job_definition,
                containerOverrides={"environment": environment},
                tags={"dagster/run_id": context.run.run_id},
            )["jobId"]
            context.log.info(f"Submitted AWS Batch job {name} ({job_id}) to {self.job_queue}")
            try:
                job, tail = self._wait(context, batch, logs, job_id)
            except dg.DagsterExecutionInterruptedError:
                batch.terminate_job(jobId=job_id, reason=f"Dagster run {context.run.run_id} was cancelled")
                context.log.warning(f"Terminated AWS Batch job {job_id}: the run was cancelled")
                raise
            if job["status"] != "SUCCEEDED":
                container = job.get("container", {})
                raise dg.Failure(
                    f"AWS Batch job {name} ({job_id}) {job['status']}: {job.get('statusReason') or 'no reason given'}; "
                    f"exit code {container.get('exitCode')}; last log lines:\n" + "\n".join(tail[-20:]),
                    metadata={"batch_job_id": job_id},
                    # A lost host is retried by the job definition's retryStrategy, not by resubmitting.
                    allow_retries=False,
                )
        return session.get_results()

    def _wait(self, context: dg.AssetExecutionContext, batch: Any, logs: Any, job_id: str) -> tuple[dict, list[str]]:
        """Poll the job until it ends, forwarding its log lines; the job's description and the lines seen."""
        forwarded: list[str] = []
        token: str | None = None
        while True:
            job = batch.describe_jobs(jobs=[job_id])["jobs"][0]
            stream = job.get("container", {}).get("logStreamName")
            if stream:
                token = self._forward(context, logs, stream, token, forwarded)
            if job["status"] in DONE:
                if stream:
                    self._forward(context, logs, stream, token, forwarded)
                return job, forwarded
            self._pause()

    def _pause(self) -> None:
        """Wait between polls; a cancelled run interrupts the step here."""
        time.sleep(self.poll_seconds)

    @staticmethod
    def _forward(
        context: dg.AssetExecutionContext, logs: Any, stream: str, token: str | None, forwarded: list[str]
    ) -> str | None:
        """Forward the stream's new log events; the token to continue from."""
        try:
            kwargs = {"logGroupName": LOG_GROUP, "logStreamName": stream, "startFromHead": True}
            while True:
                page = logs.get_log_events(**kwargs, **({"nextToken": token} if token else {}))
                for event in page["events"]:
                    forwarded.append(event["message"])
                    context.log.info(f"[batch] {event['message']}")
                if page.get("nextForwardToken") in (None, token):
                    return token
                token = page["nextForwardToken"]
        except logs.exceptions.ResourceNotFoundException:
            return token  # the stream appears once the container has written something

"""Alerts: a failed run (a failed blocking check among the reasons) is reported with what, which day and where to look.

The alert names the run's assets, its partition, every check that failed in it, and a link to the
run in the UI (`DAGSTER_WEBSERVER_URL`, default http://127.0.0.1:3000). It goes to the webhook of
the `alerts` resource (a Slack incoming webhook, or any HTTP endpoint taking JSON), and is always
written to the sensor's log at ERROR level, so an alert the webhook did not take is not lost.
"""

import os

import dagster as dg

from tvtime_platform.resources.alerts import Alerts

WEBSERVER_URL_VARIABLE = "DAGSTER_WEBSERVER_URL"


def alert(instance: dg.DagsterInstance, run: dg.DagsterRun) -> dict:
    """The alert of a failed run: its assets, partition, failed checks and link, and a text of them all."""
    base = (os.environ.get(WEBSERVER_URL_VARIABLE) or "http://127.0.0.1:3000").rstrip("/")
    failed_checks = []
    for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = record.dagster_event.event_specific_data
        if not evaluation.passed:
            failed_checks.append(
                f"{evaluation.asset_key.to_user_string()}.{evaluation.check_name}"
                f"{' (blocking)' if evaluation.blocking else ''}: {evaluation.description or 'failed'}"
            )
    planned = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
    assets = ", ".join(sorted({r.dagster_event.asset_key.to_user_string() for r in planned})) or run.job_name
    partition = run.tags.get("dagster/partition", "-")
    link = f"{base}/runs/{run.run_id}"
    lines = [f"Run of {assets} failed (partition {partition}).", *(f"- check {check}" for check in failed_checks), link]
    return {
        "text": "\n".join(lines),
        "run_id": run.run_id,
        "run_url": link,
        "assets": assets,
        "partition": partition,
        "failed_checks": failed_checks,
    }


@dg.run_failure_sensor(
    name="failure_alerts",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Reports every failed run, with its failed checks and a link to it.",
)
def failure_alerts(context: dg.RunFailureSensorContext, alerts: Alerts) -> None:
    payload = alert(context.instance, context.dagster_run)
    context.log.error(payload["text"])
    if problem := alerts.send(payload):
        context.log.error(f"The alert did not reach the webhook ({problem}); it is in this log only.")

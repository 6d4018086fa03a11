"""Alerts: a failed run (a failed blocking check among the reasons) is reported with what, which day and where to look.

The alert names the run's assets, its partition, every check that failed in it, and a link to the
run in the UI (`DAGSTER_WEBSERVER_URL`, default http://127.0.0.1:3000). It is written to the
sensor's log at ERROR level.
"""

import os

import dagster as dg

WEBSERVER_URL_VARIABLE = "DAGSTER_WEBSERVER_URL"


def alert_text(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str:
    """One message for a failed run: assets, partition, failed checks, link."""
    base = (os.environ.get(WEBSERVER_URL_VARIABLE) or "http://127.0.0.1:3000").rstrip("/")
    failed_checks = []
    for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = record.dagster_event.event_specific_data
        if not evaluation.passed:
            failed_checks.append(f"{evaluation.asset_key.to_user_string()}.{evaluation.check_name}"
                                 f"{' (blocking)' if evaluation.blocking else ''}: {evaluation.description or 'failed'}")
    planned = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
    assets = ", ".join(sorted({r.dagster_event.asset_key.to_user_string() for r in planned})) or run.job_name
    partition = run.tags.get("dagster/partition", "-")
    lines = [f"Run of {assets} failed (partition {partition})."]
    lines += [f"- check {check}" for check in failed_checks]
    lines.append(f"{base}/runs/{run.run_id}")
    return "\n".join(lines)


@dg.run_failure_sensor(name="failure_alerts", default_status=dg.DefaultSensorStatus.RUNNING,
                       description="Reports every failed run, with its failed checks and a link to it.")
def failure_alerts(context: dg.RunFailureSensorContext) -> None:
    context.log.error(alert_text(context.instance, context.dagster_run))

"""Alerts of failed runs: to a webhook (a recording HTTP server on 127.0.0.1), or only to the log."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from tvtime_platform.defs.operations.failure_alerts import failure_alerts
from tvtime_platform.resources.alerts import Alerts
from tvtime_platform.resources.deployment import local_resources
from tvtime_platform_tests.emulators import free_port
from tvtime_platform_tests.lib.test_write_audit_publish import publish


@pytest.fixture
def webhook():
    """A webhook that records the JSON bodies posted to it."""
    received: list[dict] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/tvtime", received
    server.shutdown()


def failed_audit_run(tmp_path) -> tuple[dg.DagsterInstance, dg.DagsterRun]:
    instance = dg.DagsterInstance.ephemeral()
    bad = publish(local_resources(tmp_path), ["a", "a"], [1, -2], instance)  # a repeated key and a negative score
    return instance, instance.get_run_by_id(bad.run_id)


def evaluate(instance: dg.DagsterInstance, run: dg.DagsterRun, alerts: Alerts) -> None:
    [failure] = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    context = dg.build_run_status_sensor_context(
        sensor_name="failure_alerts",
        dagster_event=failure.dagster_event,
        dagster_instance=instance,
        dagster_run=run,
        resources={"alerts": alerts},
    )
    failure_alerts(context.for_run_failure())


def test_a_failed_blocking_check_alerts_the_webhook_with_check_day_and_link(tmp_path, webhook, monkeypatch):
    url, received = webhook
    monkeypatch.setenv("DAGSTER_WEBSERVER_URL", "https://dagster.example.com/")
    instance, run = failed_audit_run(tmp_path)
    evaluate(instance, run, Alerts(webhook_url=url))
    [alert] = received
    assert alert["partition"] == "2024-03-01" and alert["run_url"] == f"https://dagster.example.com/runs/{run.run_id}"
    assert alert["assets"] == "raw_scores, team_scores, team_scores_staged"
    assert alert["failed_checks"] == [
        "team_scores_staged.staging_table_passes_audit (blocking): duplicate_keys: 1, "
        "broken_score_not_negative: 1; team_scores stays as published"
    ]
    assert alert["text"].startswith("Run of raw_scores, team_scores, team_scores_staged failed (partition 2024-03-01).")


def test_without_a_webhook_or_when_it_is_down_the_alert_is_logged(tmp_path):
    instance, run = failed_audit_run(tmp_path)
    assert Alerts().send({"text": "x"}) is None  # nothing configured: nothing sent, nothing wrong
    down = Alerts(webhook_url=f"http://127.0.0.1:{free_port()}/", attempts=1)
    assert "Connection refused" in down.send({"text": "x"})
    evaluate(instance, run, down)  # logs the alert and the delivery problem; does not raise

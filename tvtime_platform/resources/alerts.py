"""Where alerts go: an HTTP webhook receiving JSON (Slack's incoming webhooks read its `text`), or only the log."""

import json
import os
import time
import urllib.request

import dagster as dg
from pydantic import Field

WEBHOOK_VARIABLE = "TVTIME_ALERT_WEBHOOK_URL"


class Alerts(dg.ConfigurableResource):
    """Where alerts go: an HTTP webhook receiving JSON (Slack's incoming webhooks read its `text`)."""

    webhook_url: str = Field(
        default="", description="webhook URL (a secret: set it from an EnvVar); empty: alerts are only logged"
    )
    attempts: int = Field(default=3, ge=1, description="tries before giving up on the webhook")

    def send(self, payload: dict) -> str | None:
        """POST the alert; None when delivered (or no webhook is set), else why it was not."""
        if not self.webhook_url:
            return None
        body = json.dumps(payload).encode()
        problem = None
        for attempt in range(self.attempts):
            request = urllib.request.Request(
                self.webhook_url, data=body, headers={"Content-Type": "application/json"}, method="POST"
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    if response.status < 300:
                        return None
                    problem = f"HTTP {response.status}"
            except OSError as error:  # refused, timed out, HTTP error status
                problem = str(error)
            time.sleep(min(2**attempt, 10) * 0.5)
        return problem


def alerts_resource() -> Alerts:
    """The alerts of this environment: to `$TVTIME_ALERT_WEBHOOK_URL` if set (read as a secret), else logged only."""
    return Alerts(webhook_url=dg.EnvVar(WEBHOOK_VARIABLE)) if os.environ.get(WEBHOOK_VARIABLE) else Alerts()

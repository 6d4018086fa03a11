"""The session checks every 15 minutes: the newest day's sessions re-derived, with every check on them."""

import dagster as dg

from tvtime_platform.defs.activity.user_sessions import SESSIONS
from tvtime_platform.lib.conditions import RECHECK_TAG

# Dagster infers a job's partitions from its assets, and a job of checks alone has none, so it could
# not run a day's checks; this job re-derives the day's sessions (idempotent, seconds) with its checks,
# tagged so that automation downstream does not take the unchanged day for new data.
session_checks_job = dg.define_asset_job(
    "session_checks",
    selection=dg.AssetSelection.assets(SESSIONS),
    tags={RECHECK_TAG: "true"},
    description="The user_sessions of a day re-derived from its events, and every session check on them.",
)


@dg.schedule(
    job=session_checks_job,
    cron_schedule="*/15 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 15 minutes, the session checks on the latest materialized day of user_sessions.",
)
def session_checks_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    latest = context.instance.get_latest_materialization_event(SESSIONS)
    if latest is None or latest.dagster_event is None or latest.dagster_event.partition is None:
        return dg.SkipReason("user_sessions has no materialized partition yet")
    partition = latest.dagster_event.partition
    return dg.RunRequest(
        partition_key=partition, run_key=f"{partition}:{context.scheduled_execution_time:%Y-%m-%dT%H:%M}"
    )

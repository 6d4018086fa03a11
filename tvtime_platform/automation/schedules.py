"""Schedules: the session checks every 15 minutes on the newest sessions; the recommendations daily."""

import dagster as dg

from tvtime_platform.automation.jobs import recommendations_job, session_checks_job

SESSIONS = dg.AssetKey("user_sessions")


@dg.schedule(job=session_checks_job, cron_schedule="*/15 * * * *", default_status=dg.DefaultScheduleStatus.RUNNING)
def session_checks_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    latest = context.instance.get_latest_materialization_event(SESSIONS)
    if latest is None or latest.dagster_event is None or latest.dagster_event.partition is None:
        return dg.SkipReason("user_sessions has no materialized partition yet")
    partition = latest.dagster_event.partition
    return dg.RunRequest(partition_key=partition, run_key=f"{partition}:{context.scheduled_execution_time:%Y-%m-%dT%H:%M}")


# Every morning at 04:00 UTC, on the day that just ended (its late files have mostly landed by then).
recommendations_schedule = dg.build_schedule_from_partitioned_job(
    recommendations_job, hour_of_day=4, default_status=dg.DefaultScheduleStatus.RUNNING
)

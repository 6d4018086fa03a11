"""When downstream assets follow their inputs."""

import datetime as dt

import dagster as dg

RECENT_DAYS = 7


def follow_upstream() -> dg.AutomationCondition:
    """Dagster's `eager()`, widened from the latest day to the last week and held back by failed blocking checks.

    Late files re-materialize *yesterday's* events, so yesterday's sessions and marts must follow
    too, not only today's; and a day whose events failed a blocking check must not flow on.
    """
    return (
        dg.AutomationCondition.in_latest_time_window(dt.timedelta(days=RECENT_DAYS))
        & (dg.AutomationCondition.newly_missing() | dg.AutomationCondition.any_deps_updated()).since_last_handled()
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
        & dg.AutomationCondition.all_deps_blocking_checks_passed()
    ).with_label("follow_upstream")

"""When downstream assets follow their inputs."""

import datetime as dt

import dagster as dg

RECENT_DAYS = 7
# Runs that re-derive a day only to check it again (the 15-minute session checks) carry this tag;
# their unchanged output must not set off the marts downstream every quarter of an hour.
RECHECK_TAG = "tvtime/recheck"


def deps_updated() -> dg.AutomationCondition:
    """Dagster's `any_deps_updated()`, except updates made by recheck runs."""
    return dg.AutomationCondition.any_deps_match(
        (
            dg.AutomationCondition.newly_updated()
            & ~dg.AutomationCondition.executed_with_root_target()
            & ~dg.AutomationCondition.all_new_updates_have_run_tags(tag_keys={RECHECK_TAG})
        )
        | dg.AutomationCondition.will_be_requested()
    ).with_label("deps_updated")


def follow_upstream() -> dg.AutomationCondition:
    """Dagster's `eager()`, widened from the latest day to the last week and held back by failed blocking checks.

    Late files re-materialize *yesterday's* events, so yesterday's sessions and marts must follow
    too, not only today's; a day whose events failed a blocking check must not flow on; and a
    recheck run's re-derived (identical) day is not news.
    """
    return (
        dg.AutomationCondition.in_latest_time_window(dt.timedelta(days=RECENT_DAYS))
        & (dg.AutomationCondition.newly_missing() | deps_updated()).since_last_handled()
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
        & dg.AutomationCondition.all_deps_blocking_checks_passed()
    ).with_label("follow_upstream")

"""The recommendations job, and its schedule: every morning, the window ending on the day that just ended."""

import dagster as dg

recommendations_job = dg.define_asset_job(
    "recommendations",
    selection=dg.AssetSelection.groups("recommendations"),
    description="The interaction matrix of the window ending on a day, the factors trained on it, and the "
    "recommendations.",
)

# Every morning at 04:00 UTC, on the day that just ended (its late files have mostly landed by then).
recommendations_schedule = dg.build_schedule_from_partitioned_job(
    recommendations_job,
    hour_of_day=4,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every day at 04:00 UTC: the recommendations of the day that just ended.",
)

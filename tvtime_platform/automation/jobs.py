"""Jobs the sensors and schedules launch, and the one that runs a whole day by hand or in a backfill."""

import dagster as dg

from tvtime_platform.automation.conditions import RECHECK_TAG

EVENTS = dg.AssetSelection.assets("app_events", "quarantined_events")

ingest_events_job = dg.define_asset_job(
    "ingest_events", selection=EVENTS,
    description="Validate a day of landing files into app_events / quarantined_events (with their checks).",
)
catalog_job = dg.define_asset_job("refresh_show_catalog", selection=dg.AssetSelection.assets("show_catalog"))
# Dagster infers a job's partitions from its assets, and a job of checks alone has none, so it could
# not run a day's checks; this job re-derives the day's sessions (idempotent, seconds) with its checks,
# tagged so that automation downstream does not take the unchanged day for new data.
session_checks_job = dg.define_asset_job(
    "session_checks", selection=dg.AssetSelection.assets("user_sessions"), tags={RECHECK_TAG: "true"},
    description="The user_sessions of a day re-derived from its events, and every session check on them.",
)
RECOMMENDATIONS = dg.AssetSelection.groups("recommendations")
daily_pipeline_job = dg.define_asset_job(
    "daily_pipeline", selection=dg.AssetSelection.all() - dg.AssetSelection.assets("show_catalog") - RECOMMENDATIONS,
    description="Everything day-shaped for one day: events, sessions, tracked episodes and the marts, with their checks.",
)
recommendations_job = dg.define_asset_job(
    "recommendations", selection=RECOMMENDATIONS,
    description="The interaction matrix of the window ending on a day, the factors trained on it, and the recommendations.",
)

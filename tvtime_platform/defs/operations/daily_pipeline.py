"""The job that runs a whole day by hand or in a backfill: everything day-shaped except the recommendations."""

import dagster as dg

daily_pipeline_job = dg.define_asset_job(
    "daily_pipeline",
    selection=dg.AssetSelection.all()
    - dg.AssetSelection.assets("show_catalog")
    - dg.AssetSelection.groups("recommendations"),
    description="Everything day-shaped for one day: events, sessions, tracked episodes and the marts, with their "
    "checks.",
)

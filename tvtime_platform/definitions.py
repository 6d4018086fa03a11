"""The code location: every asset, check, job, sensor and schedule, with the resources of `$TVTIME_DEPLOYMENT`."""

from __future__ import annotations

import dagster as dg

from tvtime_platform.assets.app_events import app_events
from tvtime_platform.assets.factors import factors
from tvtime_platform.assets.marts import daily_active_users_assets, show_popularity_assets
from tvtime_platform.assets.show_catalog import show_catalog
from tvtime_platform.assets.show_recommendations import show_recommendations_assets
from tvtime_platform.assets.tracked_episodes import tracked_episodes
from tvtime_platform.assets.user_sessions import user_sessions
from tvtime_platform.assets.user_show_interactions import user_show_interactions
from tvtime_platform.automation.alerts import failure_alerts
from tvtime_platform.automation.jobs import catalog_job, daily_pipeline_job, ingest_events_job, recommendations_job, session_checks_job
from tvtime_platform.automation.landing_sensor import landing_sensor
from tvtime_platform.automation.schedules import recommendations_schedule, session_checks_schedule
from tvtime_platform.checks import app_events as app_events_checks
from tvtime_platform.checks.marts import mart_audits
from tvtime_platform.checks import tracked_episodes as tracked_episodes_checks
from tvtime_platform.checks import user_sessions as user_sessions_checks
from tvtime_platform.resources.deployment import deployment, executor, resources_for

automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation_sensor", target=dg.AssetSelection.all(), default_status=dg.DefaultSensorStatus.RUNNING
)

defs = dg.Definitions(
    assets=[show_catalog, app_events, user_sessions, tracked_episodes, *daily_active_users_assets, *show_popularity_assets,
            user_show_interactions, factors, *show_recommendations_assets],
    asset_checks=[*dg.load_asset_checks_from_modules([app_events_checks, user_sessions_checks, tracked_episodes_checks]), *mart_audits],
    jobs=[ingest_events_job, catalog_job, session_checks_job, daily_pipeline_job, recommendations_job],
    sensors=[landing_sensor, automation_sensor, failure_alerts],
    schedules=[session_checks_schedule, recommendations_schedule],
    resources=resources_for(deployment()),
    executor=executor(),
)

"""Dagster's column-schema-change checks on every lake table: a warning when a materialization's files hold other
columns, or other types, than the one before (a transform's change reaching the lake unannounced)."""

import warnings

import dagster as dg

LAKE_TABLES = (
    "show_catalog",
    "app_events",
    "quarantined_events",
    "user_sessions",
    "tracked_episodes",
    "daily_active_users_staged",
    "show_popularity_staged",
    "user_show_interactions",
    "user_show_history",
    "user_factors",
    "show_factors",
    "show_recommendations_staged",
)

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=dg.BetaWarning)  # Dagster's documented way, in beta
    defs = dg.Definitions(asset_checks=dg.build_column_schema_change_checks(assets=list(LAKE_TABLES)))

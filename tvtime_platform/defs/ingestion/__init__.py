"""Ingestion: landed files become `show_catalog`, `app_events` and `quarantined_events`; the landing sensor and its
jobs."""

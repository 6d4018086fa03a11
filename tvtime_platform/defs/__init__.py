"""Definitions by domain, loaded by Dagster from these folders (`definitions.defs`): ingestion, activity, marts,
recommendations, and operations (what spans them: automation, alerts, the whole-day job)."""

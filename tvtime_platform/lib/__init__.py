"""Dagster pieces the domains under `defs/` share: attributes, automation conditions, partitions,
write-audit-publish."""

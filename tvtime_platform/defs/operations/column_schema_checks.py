"""Dagster's column-schema-change checks on every lake table: a warning when a materialization's files hold other
columns, or other types, than the one before (a transform's change reaching the lake unannounced)."""

from collections.abc import Iterable

import dagster as dg

from tvtime_platform.lib.attributes import in_the_lake


def column_schema_checks(specs: Iterable[dg.AssetSpec]) -> list[dg.AssetChecksDefinition]:
    """The checks of the lake tables among these assets (the definitions', so a new lake table has them too)."""
    return list(dg.build_column_schema_change_checks(assets=sorted({spec.key for spec in specs if in_the_lake(spec)})))

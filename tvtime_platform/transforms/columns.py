"""A table's columns as the code declares them: name, SQL type and what the column holds.

Each table's declaration sits beside the SQL that writes it (`app_events.py`, `user_sessions.py`,
..., `marts.py` for the warehouse tables); the assets show them in the catalog before their first
run, and a test holds every written table to its declaration, name by name.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # as DuckDB and Snowflake spell it
    description: str


Columns = tuple[Column, ...]


def columns(*declared: tuple[str, str, str]) -> Columns:
    """Columns from `(name, type, description)` triples, in table order."""
    return tuple(Column(*triple) for triple in declared)

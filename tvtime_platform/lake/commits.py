"""What a commit builds on (`Recorded`), and how one fails."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import dagster as dg
from pyiceberg.table import Table

# How many times a commit reads the day again when another commit of the table came between its read and its own
# (waiting a little longer each time, at most 2 s).
COMMIT_ATTEMPTS = 20


class LakeDamaged(dg.Failure):
    """The lake holds what no retry mends (a file a snapshot names is gone): the message says what to do, and Dagster
    does not retry the step."""

    def __init__(self, description: str) -> None:
        super().__init__(description, allow_retries=False)


class StalePartition(Exception):
    """Another write committed the partition after this one read what it builds on: nothing was committed, and the
    write must plan again from what the partition holds now."""


@dataclass(frozen=True)
class Recorded:
    """What a partition held when a write read it: the files (relative to the lake's root) of `table` and of each
    table committed with it, as readers saw them; empty if it was never written. `loaded`: those tables as the read
    loaded them, which the commit starts from (its compare-and-swap refuses them if another commit came since)."""

    table: str
    tables: dict[str, list[str]]
    loaded: Mapping[dg.AssetKey, Table] = field(default_factory=dict, compare=False)

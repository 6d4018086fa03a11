"""Commit records: the small JSON file per partition naming its current files, and what reading one can find."""

from __future__ import annotations

import json
from dataclasses import dataclass

import dagster as dg

from tvtime_platform.resources.storage import Found, read_small_file

RECORDS = "_commits"  # each table's commit records, beside its partitions
UNPARTITIONED = "table"  # the record name of a table without partitions
# How many times a commit that builds on whatever is current reads the record again when another commit came between
# its read and its write.
COMMIT_ATTEMPTS = 10


class LakeDamaged(dg.Failure):
    """The lake holds what no retry mends (a file a record names is gone, a record is malformed): the message says what
    to do, and Dagster does not retry the step."""

    def __init__(self, description: str) -> None:
        super().__init__(description, allow_retries=False)


class StalePartition(Exception):
    """Another write committed the partition after this one read the version it builds on: nothing was committed, and
    the write must plan again from the partition's new record."""


@dataclass(frozen=True)
class Recorded:
    """A partition's record as one read found it: the file (`url`, as `found`) a commit compares with before replacing
    it, and the record it leads to (following a `committed_with` pointer; empty if the partition was never written)."""

    url: str
    found: Found
    record: dict

    @property
    def tables(self) -> dict[str, list[str]]:
        """The files (relative to the root) of each table the record commits together."""
        return self.record.get("tables", {})


def read_record(url: str) -> dict | None:
    try:
        text = read_small_file(url)
    except FileNotFoundError:
        return None
    return parsed_record(url, text)


def parsed_record(url: str, text: bytes) -> dict:
    """A record's JSON, checked to be a record (files by table) or a pointer (`committed_with`)."""
    try:
        record = json.loads(text)
    except ValueError as error:
        raise malformed(url, f"it is not JSON ({error})") from error
    pointer = isinstance(record, dict) and isinstance(record.get("committed_with"), str)
    tables = isinstance(record, dict) and isinstance(record.get("tables"), dict)
    if not (pointer or tables) or (
        tables
        and not all(isinstance(f, list) and all(isinstance(x, str) for x in f) for f in record["tables"].values())
    ):
        raise malformed(url, "it holds neither files by table nor a committed_with pointer")
    return record


def malformed(url: str, why: str) -> LakeDamaged:
    return LakeDamaged(
        f"The lake's commit record {url} is malformed: {why}. Records are only ever replaced whole, so something "
        "outside the platform wrote it. Restore it, or delete it and materialize the partition again."
    )

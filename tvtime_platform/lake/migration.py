"""The move of a lake kept by commit records (`<table>/_commits/dt=….json`) to Iceberg tables, in place.

Each table's current files, as its records name them (or, for a partition written before records, the Parquet files
right in its folder), are registered as the data files of one snapshot of its Iceberg table, without being rewritten;
then the records go. Tables committed together are registered the others first, their first table last, its snapshot
naming theirs. A migration killed half-way is run again: tables already in the catalog are not registered twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import dagster as dg
from fsspec import AbstractFileSystem

from tvtime_platform.lake import catalog as iceberg
from tvtime_platform.lake.commits import LakeDamaged
from tvtime_platform.lake.lake import RECORDS, Lake
from tvtime_platform.lake.tables import PARTITION_COLUMN, parquet_files
from tvtime_platform.lake.versions import Version
from tvtime_platform.resources.storage import basename, filesystem, join, read_small_file

UNPARTITIONED_RECORD = "table.json"


def migrate(lake: Lake) -> Iterator[str]:
    """Register every table's current files in the catalog and retire the records; a line per table, as it goes."""
    files, holders = _current_files(lake)
    catalog = lake.open_catalog()
    siblings = sorted(name for name in files if name in holders)
    for name in [*siblings, *sorted(n for n in files if n not in holders)]:
        key = dg.AssetKey.from_user_string(name)
        existing = iceberg.load(catalog, lake.namespace, key)
        if existing is not None and existing.current_snapshot() is not None:
            yield f"{name}: already an Iceberg table"
            continue
        days = files[name]
        pins = {
            sibling: snapshot.snapshot_id
            for sibling, holder in holders.items()
            if holder == name
            and (table := iceberg.load(catalog, lake.namespace, dg.AssetKey.from_user_string(sibling))) is not None
            and (snapshot := table.current_snapshot()) is not None
        }
        versions = [Version(key, day, tuple(found)) for day, found in sorted(days.items(), key=lambda d: d[0] or "")]
        versions = [v for v in versions if v.files]
        if not versions:
            continue
        first = versions[-1]  # the newest day's columns (a column added later is in its files)
        table = lake._table_for(catalog, first, migrating=True)
        added = [lake._data_file(table, v, f) for v in versions for f in v.files]
        properties = {iceberg.PINS: json.dumps(pins)} if pins else {}
        together = sorted(sibling for sibling, holder in holders.items() if holder == name)
        with table.transaction() as transaction:
            if name in holders:
                transaction.set_properties(**{iceberg.COMMITTED_WITH: holders[name]})
            if together:
                transaction.set_properties(**{iceberg.COMMITTED_TOGETHER: json.dumps(together)})
        iceberg.commit_day(table, iceberg.EVERY_DAY, [], added, properties)
        yield f"{name}: {len(versions)} partition(s), {len(added)} file(s) registered"
    fs, root = filesystem(lake.url)
    for name in files:
        records = join(root, *dg.AssetKey.from_user_string(name).path, RECORDS)
        table = iceberg.load(catalog, lake.namespace, dg.AssetKey.from_user_string(name))
        if fs.exists(records) and table is not None and table.current_snapshot() is not None:
            fs.rm(records, recursive=True)
            yield f"{name}: commit records retired"


def _current_files(lake: Lake) -> tuple[dict[str, dict[str | None, list[str]]], dict[str, str]]:
    """Each table's files (relative to the root) by day, as its records name them; and the table each table committed
    with another points at."""
    fs, root = filesystem(lake.url)
    try:
        tables = [e["name"] for e in fs.ls(root, detail=True) if e["type"] == "directory"]
    except FileNotFoundError:
        return {}, {}
    files: dict[str, dict[str | None, list[str]]] = {}
    holders: dict[str, str] = {}
    prefix = f"{PARTITION_COLUMN}="
    for folder in tables:
        name = basename(folder)
        if name.startswith(("_", ".")):
            continue
        try:
            entries = fs.ls(join(folder, RECORDS), detail=True)
        except FileNotFoundError:
            entries = []
        recorded = set()
        for entry in entries:
            file = basename(entry["name"])
            if not file.endswith(".json"):
                continue
            day = None if file == UNPARTITIONED_RECORD else file.removeprefix(prefix).removesuffix(".json")
            record = _record(join(lake.url, name, RECORDS, file))
            recorded.add(day)
            if "committed_with" in record:
                holders[name] = record["committed_with"]
                continue
            for table, named in record.get("tables", {}).items():
                files.setdefault(table, {})[day] = list(named)
                if table != name:
                    holders[table] = name
        for entry in fs.ls(folder, detail=True):  # partitions written before records: their files right in the folder
            day = basename(entry["name"]).removeprefix(prefix)
            if entry["type"] == "directory" and basename(entry["name"]).startswith(prefix) and day not in recorded:
                legacy = _paths(fs, entry["name"], root)
                if legacy:
                    files.setdefault(name, {})[day] = legacy
    return files, holders


def _record(url: str) -> dict:
    """A commit record: files by table, or a `committed_with` pointer; anything else fails, naming the file."""
    try:
        record = json.loads(read_small_file(url))
    except ValueError as error:
        record = error
    tables = record.get("tables") if isinstance(record, dict) else None
    files_by_table = isinstance(tables, dict) and all(
        isinstance(f, list) and all(isinstance(x, str) for x in f) for f in tables.values()
    )
    if not (files_by_table or (isinstance(record, dict) and isinstance(record.get("committed_with"), str))):
        raise LakeDamaged(
            f"The commit record {url} is malformed (neither files by table nor a committed_with pointer), so nothing "
            "was registered. Restore it, or delete it and materialize its partition again after the "
            "migration; then run `tvtime lake migrate` again."
        )
    return record


def _paths(fs: AbstractFileSystem, folder: str, root: str) -> list[str]:
    """The Parquet files right in a partition folder, relative to the lake's root."""
    return [f[len(root.rstrip("/")) + 1 :] for f in parquet_files(fs, folder)]

"""The `Lake` resource: Parquet tables under one URL, each partition's current files named by a commit record.

The lake is a local folder (`data/lake`) or an S3 prefix (`s3://bucket/lake`); both behave the same.
Assets hand the IO manager a DuckDB relation (or `StagedFiles`, the Parquet files a Spark job
wrote) and get back a `LakeTable` naming the files to read, so a day's data streams from Parquet
to Parquet and never passes through pandas.

A write never touches what readers read. Its files go to a new *version* folder,
`<table>/dt=YYYY-MM-DD/v<UTC time>-<id>/part-<k>.parquet`; the write then *commits*: one small
JSON record, `<table>/_commits/dt=YYYY-MM-DD.json`, names the files of the partition's current
version. The record is replaced whole (a rename in a folder, one PUT on S3, both atomic), so a
reader that resolves it sees the old version or the new one, never half of one or both at once.
Tables written by one computation (`app_events` and `quarantined_events`) commit in *one* record,
held by the first; the others' records say `committed_with` it, so both change together.
Versions no record names are deleted by the next write of the partition: a replaced one (readers
may still be on it) `sweep_after_seconds` after it was replaced, a killed write's that long after it
was made. Readers that are not the platform resolve the records too: `tvtime files <table>` prints a
partition's current files (docs/lake.md). A partition written before records existed (files right
in its folder, no record) is read as it is until its next write.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import Field

from tvtime_platform.lake.records import (
    COMMIT_ATTEMPTS,
    RECORDS,
    UNPARTITIONED,
    LakeDamaged,
    Recorded,
    StalePartition,
    malformed,
    parsed_record,
    read_record,
)
from tvtime_platform.lake.tables import PARTITION_COLUMN, LakeTable, parquet_files
from tvtime_platform.lake.versions import (
    VERSION_TIME,
    StagedFiles,
    Version,
    count_rows_and_bytes,
    files_metadata,
    move_staged_in,
    rows_of,
    version_name,
    version_time,
    write_relation,
)
from tvtime_platform.resources.storage import (
    basename,
    filesystem,
    full_url,
    is_remote,
    join,
    read_found,
    replace_json,
    replace_json_if,
)

SCRATCH = "_scratch"  # where Spark and Batch jobs hand files over, under the root
# Under the root: a marker per partition written on a UTC date, `_written/date=YYYY-MM-DD/<table>/dt=…` (or `/table`),
# so that the daily sweep goes over the partitions written since, not over every partition of the lake.
JOURNAL = "_written"


class Lake(dg.ConfigurableResource):
    """The lake's root: where each table's partitions and commit records live, how a partition is replaced."""

    url: str = Field(description="root of the lake: a folder, or an S3 prefix such as s3://bucket/lake")
    compression: str = Field(default="zstd", description="Parquet compression codec")
    sweep_after_seconds: float = Field(
        default=3600,
        ge=0,
        description="how long a version no record names is kept before the next write of its partition deletes it: "
        "readers still on the version a write replaced, and writes still in progress, must be done by then",
    )

    def table_url(self, asset_key: dg.AssetKey) -> str:
        return join(self.url, *asset_key.path)

    def folder(self, asset_key: dg.AssetKey, partition_key: str | None) -> str:
        """The folder of a partition's versions (of the table's, if unpartitioned)."""
        table = self.table_url(asset_key)
        return join(table, f"{PARTITION_COLUMN}={partition_key}") if partition_key else table

    def record_url(self, asset_key: dg.AssetKey, partition_key: str | None) -> str:
        name = f"{PARTITION_COLUMN}={partition_key}" if partition_key else UNPARTITIONED
        return join(self.table_url(asset_key), RECORDS, f"{name}.json")

    def committed(self, asset_key: dg.AssetKey, partition_key: str | None) -> list[str] | None:
        """The URLs of a partition's current files, or None if it was never written."""
        recorded = self._recorded(asset_key, partition_key)
        if recorded is not None:
            return [join(self.url, f) for f in recorded]
        fs, path = filesystem(self.folder(asset_key, partition_key))
        legacy = [full_url(fs, f) for f in parquet_files(fs, path)]
        return legacy or None

    def current_tables(self, asset_key: dg.AssetKey, partition_key: str | None) -> dict[str, list[str]] | None:
        """The files (relative to the root) of every table the partition's record commits together with `asset_key`,
        read from that one record: a consistent view of tables written together (None if never written)."""
        record = self._record(asset_key, partition_key)
        return None if record is None else record["tables"]

    def current_version(self, asset_key: dg.AssetKey, partition_key: str | None) -> Version | None:
        """The partition's committed version, its files read from one record (None if never written, or written
        before records)."""
        recorded = self._recorded(asset_key, partition_key)
        return Version(asset_key, partition_key, tuple(recorded)) if recorded else None

    def version_table(self, version: Version, partitioned: bool = True) -> LakeTable:
        """The files of a version, committed or not, to read."""
        return LakeTable(tuple(join(self.url, f) for f in version.files), partitioned, self.table_url(version.key))

    def has(self, asset_key: dg.AssetKey, partition_key: str | None) -> bool:
        return self.committed(asset_key, partition_key) is not None

    def table(self, asset_key: dg.AssetKey, partition_keys: Sequence[str | None]) -> LakeTable:
        """The current files of some partitions (`[None]`: the whole unpartitioned table); a failure names those never
        written."""
        resolved = {p: self.committed(asset_key, p) for p in partition_keys}
        missing = [p for p, files in resolved.items() if files is None]
        if missing:
            name = asset_key.to_user_string()
            raise dg.Failure(
                f"Lake table {name} is missing {len(missing)} partition(s), first "
                f"{self.folder(asset_key, missing[0])}. Materialize {name} for those partitions first.",
                allow_retries=False,
            )
        files = tuple(f for found in resolved.values() for f in found or ())
        return LakeTable(files, any(p is not None for p in partition_keys), self.table_url(asset_key))

    def counted_rows(self, asset_key: dg.AssetKey, partition_keys: Sequence[str | None]) -> tuple[int, list[str]]:
        """The rows of these partitions as their records counted them at the commit, one record read each; and the
        files of those whose records do not say (committed before records counted rows), for the caller to count."""
        name, total, uncounted = asset_key.to_user_string(), 0, []
        for partition in partition_keys:
            record = self._record(asset_key, partition) or {}
            rows = record.get("rows", {}).get(name)
            if isinstance(rows, int):
                total += rows
            else:
                uncounted += self.committed(asset_key, partition) or []
        return total, uncounted

    def partitions_through(self, asset_key: dg.AssetKey, last: str) -> list[str]:
        """The days up to and including `last` (YYYY-MM-DD) that hold a committed partition, oldest first."""
        fs, table = filesystem(self.table_url(asset_key))
        prefix = f"{PARTITION_COLUMN}="
        try:
            records = [basename(e["name"]) for e in fs.ls(join(table, RECORDS), detail=True)]
        except FileNotFoundError:
            records = []
        try:
            folders = [basename(e["name"]) for e in fs.ls(table, detail=True)]
        except FileNotFoundError:
            folders = []
        days = {n.removeprefix(prefix).removesuffix(".json") for n in records if n.startswith(prefix)}
        days |= {n.removeprefix(prefix) for n in folders if n.startswith(prefix)}  # partitions written before records
        return [day for day in sorted(days) if day <= last and self.has(asset_key, day)]

    def stage(
        self,
        source: duckdb.DuckDBPyRelation | StagedFiles,
        asset_key: dg.AssetKey,
        partition: str | None,
        declared: dg.TableSchema | None = None,
        carried: Sequence[str] = (),
        carried_rows_and_bytes: Mapping[str, tuple[int, int]] | None = None,
    ) -> Version:
        """Write a relation (or move a Spark job's files) into a new version folder of the partition; no reader sees it
        until `commit`. The version's column schema is what the files hold, described from `declared` (the asset's
        definition), so a materialization keeps the catalog's column descriptions. `carried`: files of the current
        version (as its record names them) the new version keeps beside its own, for a table that grows by appending;
        their folders stay until a version no longer names them. `carried_rows_and_bytes`: what an earlier stage
        counted of some of them (`Version.rows_and_bytes`), whose footers are then not read again (on S3, requests)."""
        began = time.perf_counter()
        self._note_written(asset_key, partition)
        stamp = dt.datetime.now(dt.UTC).strftime(VERSION_TIME)
        folder = join(self.folder(asset_key, partition), f"v{stamp}-{uuid.uuid4().hex[:8]}")
        if isinstance(source, StagedFiles):
            files, timing = move_staged_in(source, folder, asset_key), "move_seconds"
        elif isinstance(source, duckdb.DuckDBPyRelation):
            files, timing = write_relation(source, folder, self.compression), "write_seconds"
        else:
            raise TypeError(
                f"{asset_key.to_user_string()} returned {type(source).__name__}; "
                "lake assets return a DuckDB relation or StagedFiles"
            )
        root = self.url.rstrip("/") + "/"
        known = {root + f: counted for f, counted in (carried_rows_and_bytes or {}).items()}
        counted, schema = count_rows_and_bytes([*files, *(root + f for f in carried)], known)
        metadata = files_metadata(counted, schema, partition is not None, declared) | {
            timing: dg.MetadataValue.float(round(time.perf_counter() - began, 3)),
            "path": dg.MetadataValue.path(folder),
        }
        relative = {f.removeprefix(root): rows_and_bytes for f, rows_and_bytes in counted.items()}
        return Version(asset_key, partition, tuple(relative), metadata, relative)

    def commit(
        self, partition: str | None, versions: Sequence[Version], expected: Recorded | None = None
    ) -> dict[dg.AssetKey, dict]:
        """Make the versions their tables' current files for the partition, all at once: one record, held by the first
        table, names them all (the others' records point at it); then sweep. Returns each table's metadata.

        The record is replaced only if it is still the one the write built on (a compare-and-swap): `expected`, as the
        write read it before planning (`recorded`), or else the one this commit reads. A write that built on an
        `expected` record that another write has replaced since raises `StalePartition` and commits nothing (it must
        plan again from what is current); one without (a partition rebuilt whole from its inputs) reads the new record
        and commits over it."""
        holder = versions[0].key.to_user_string()
        holder_url = self.record_url(versions[0].key, partition)
        if expected is not None and expected.url != holder_url:
            raise ValueError(f"A commit of {holder} builds on {expected.url}, not on its own record {holder_url}")
        for version in versions[1:]:
            pointer = {"committed_with": holder}
            if read_record(self.record_url(version.key, partition)) != pointer:
                replace_json(self.record_url(version.key, partition), pointer)
        gone = self._missing(partition, versions)
        for _ in range(COMMIT_ATTEMPTS):
            current = expected or self._recorded_at(holder_url, partition)
            record = self._next_record(partition, versions, current, gone)
            if replace_json_if(holder_url, record, current.found):
                break
            if expected is not None:
                raise StalePartition(
                    f"{holder} {partition or ''}: another run committed a new version since this one read the "
                    "partition's record; nothing was committed."
                )
        else:
            raise StalePartition(f"{holder} {partition or ''}: other runs kept committing; nothing was committed.")
        for version in versions:
            self._sweep(version.key, partition, record)  # the record just written, not read back
        return {v.key: v.metadata for v in versions}

    def replace(
        self,
        partition: str | None,
        sources: Mapping[dg.AssetKey, duckdb.DuckDBPyRelation | StagedFiles],
        declared: Mapping[dg.AssetKey, dg.TableSchema | None] | None = None,
        before_commit: Callable[[list[Version]], None] | None = None,
    ) -> list[Version]:
        """Stage each table's rows (or a job's files) as a new version of the partition, described by its `declared`
        columns; run `before_commit` on the staged versions (what must exist before any reader sees them); then commit
        them together over whatever is current. The committed versions, in the order given: each one's `metadata` is
        what its materialization reports."""
        versions = [self.stage(source, key, partition, (declared or {}).get(key)) for key, source in sources.items()]
        if before_commit is not None:
            before_commit(versions)
        self.commit(partition, versions)
        return versions

    def recorded(self, asset_key: dg.AssetKey, partition_key: str | None) -> Recorded:
        """The partition's record as of now, for a write to build on and commit against (`commit(expected=...)`):
        the files of every table committed with `asset_key` (a consistent view), read from one record."""
        return self._recorded_at(self.record_url(asset_key, partition_key), partition_key)

    def _recorded_at(self, url: str, partition_key: str | None) -> Recorded:
        found = read_found(url)
        record = parsed_record(url, found.data) if found.data is not None else None
        return Recorded(url, found, self._following(url, partition_key, record) or {})

    def _next_record(
        self, partition: str | None, versions: Sequence[Version], current: Recorded, gone: list[str]
    ) -> dict:
        """The record naming the versions, after `current`: which versions it replaces and since when. Fails, naming
        what to do, when a file it names is gone."""
        now = dt.datetime.now(dt.UTC)
        previous = current.record
        carried = [f for f in gone if f in {f for files in current.tables.values() for f in files}]
        if carried:
            raise LakeDamaged(
                f"{carried[0]}, a file of the partition's current version that this write keeps, is gone: "
                "something deleted it other than the lake's sweep. Nothing was committed. Restore it, or delete the "
                f"partition's record {current.url} and materialize the partition again to rebuild it whole."
            )
        if gone:
            raise FileNotFoundError(
                f"{gone[0]} was deleted before its commit: writing it took longer than sweep_after_seconds "
                f"({self.sweep_after_seconds:g} s) while another write of the partition swept it. Nothing was "
                "committed; run the step again (or raise sweep_after_seconds)."
            )
        return {
            "tables": {v.key.to_user_string(): list(v.files) for v in versions},
            "replaced": {v.key.to_user_string(): self._replaced_since(previous, v, now) for v in versions},
            "committed_at": now.isoformat(),
            # What each table's files hold, as staged: for readers that want a count, not the rows (`tvtime summary`).
            "rows": {v.key.to_user_string(): rows_of(v) for v in versions},
        }

    def _missing(self, partition: str | None, versions: Sequence[Version]) -> list[str]:
        """The versions' files (new and carried) no longer in the store: one listing of each table's partition folder
        (on S3 a request per thousand files, where asking each file would be a request each), then each file the
        listing did not show asked for itself (a listing that spells paths otherwise, or lags, costs requests, not
        a false alarm)."""
        missing = []
        for version in versions:
            fs, folder = filesystem(self.folder(version.key, partition))
            present = set(fs.find(folder))  # nothing, for a folder that is gone
            for file in version.files:
                path = filesystem(join(self.url, file))[1]
                if path not in present and not fs.exists(path):
                    missing.append(file)
        return missing

    def _replaced_since(self, previous: dict, version: Version, now: dt.datetime) -> dict[str, str]:
        """When each version of the table that the new record will not name stopped being current: those the previous
        record named stop now; those it listed as replaced keep their time (until swept)."""
        name = version.key.to_user_string()
        since = dict(previous.get("replaced", {}).get(name, {}))
        for file in previous.get("tables", {}).get(name, []):
            since.setdefault(version_name(file), now.isoformat())
        for kept in {version_name(f) for f in version.files}:
            since.pop(kept, None)
        return {v: at for v, at in since.items() if (now - _time(at)).total_seconds() <= 2 * self.sweep_after_seconds}

    def sweep(self, asset_key: dg.AssetKey, partition: str | None) -> list[str]:
        """Delete the partition's versions that no record names: a replaced one once `sweep_after_seconds` have passed
        since it was replaced, one never committed once that long after it was made; and, once a record exists, the
        files written before records. Returns what was deleted."""
        return self._sweep(asset_key, partition, self._record(asset_key, partition))

    def _sweep(self, asset_key: dg.AssetKey, partition: str | None, record: dict | None) -> list[str]:
        recorded = record["tables"].get(asset_key.to_user_string()) if record else None
        replaced = record.get("replaced", {}).get(asset_key.to_user_string(), {}) if record else {}
        current = {version_name(f) for f in recorded or ()}
        fs, folder = filesystem(self.folder(asset_key, partition))
        try:
            entries = fs.ls(folder, detail=True)
        except FileNotFoundError:
            return []
        now = dt.datetime.now(dt.UTC)
        stale = []
        for entry in entries:
            name = basename(entry["name"])
            if entry["type"] == "directory" and name not in current:
                since = _time(replaced[name]) if name in replaced else version_time(name)
                if since is not None and (now - since).total_seconds() > self.sweep_after_seconds:
                    stale.append(entry["name"])
            elif entry["type"] == "file" and name.endswith(".parquet") and recorded is not None:
                if now.timestamp() - fs.modified(entry["name"]).timestamp() > self.sweep_after_seconds:
                    stale.append(entry["name"])
        record_file = Path(self.record_url(asset_key, partition))
        if not is_remote(self.url):  # a record's temporary file, left by a process killed before its rename
            for left in record_file.parent.glob(f".{record_file.name}.*.tmp"):
                try:
                    modified = left.stat().st_mtime
                except FileNotFoundError:  # another writer's, renamed into place since the listing
                    continue
                if now.timestamp() - modified > self.sweep_after_seconds:
                    stale.append(str(left))
        for path in stale:
            fs.rm(path, recursive=True)
        return stale

    def _note_written(self, asset_key: dg.AssetKey, partition: str | None) -> None:
        """The marker saying the partition is written today (before its version exists: a killed write is swept too)."""
        name = f"{PARTITION_COLUMN}={partition}" if partition else UNPARTITIONED
        marker = join(self.url, JOURNAL, f"date={dt.datetime.now(dt.UTC).date()}", *asset_key.path, name)
        fs, path = filesystem(marker)
        if not is_remote(marker):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        fs.pipe_file(path, b"")

    def sweep_written(self) -> list[str]:
        """`sweep` for each partition written on a UTC date whose leftovers can all go by now (the date's end and
        `sweep_after_seconds` past: a version written then and replaced later is marked again on the date it was
        replaced), then that date's markers; and the hand-over folders. What it goes over is what was written since the
        last pass, not the lake. Returns what was deleted."""
        deleted = self._sweep_scratch()
        fs, root = filesystem(join(self.url, JOURNAL))
        try:
            dates = sorted(e["name"] for e in fs.ls(root, detail=True) if e["type"] == "directory")
        except FileNotFoundError:
            return deleted
        now = dt.datetime.now(dt.UTC)
        for folder in dates:
            try:
                written = dt.date.fromisoformat(basename(folder).removeprefix("date="))
            except ValueError:
                continue
            ripe = dt.datetime.combine(written + dt.timedelta(days=1), dt.time(), dt.UTC)
            if now < ripe + dt.timedelta(seconds=self.sweep_after_seconds):
                continue
            for marker in fs.find(folder):
                *table, name = marker[len(folder.rstrip("/")) + 1 :].split("/")
                partition = name.removeprefix(f"{PARTITION_COLUMN}=") if name != UNPARTITIONED else None
                deleted += self.sweep(dg.AssetKey(table), partition)
            fs.rm(folder, recursive=True)
        return deleted

    def scratch(self, name: str) -> str:
        """A new folder under `<lake>/_scratch` for a job to hand files over in (`name` and a random suffix); folders
        there whose files are all older than `sweep_after_seconds` (a killed run's) are deleted first."""
        self._sweep_scratch()
        return join(self.url, SCRATCH, f"{name}-{uuid.uuid4().hex[:8]}")

    def sweep_everything(self) -> list[str]:
        """`sweep` for every partition of every table, and the hand-over folders: what the last write of a partition
        replaced, and what killed runs left where no write comes again. Returns what was deleted."""
        fs, root = filesystem(self.url)
        try:
            tables = [e for e in fs.ls(root, detail=True) if e["type"] == "directory"]
        except FileNotFoundError:
            return []
        deleted = self._sweep_scratch()
        prefix = f"{PARTITION_COLUMN}="
        for entry in tables:
            name = basename(entry["name"])
            if name.startswith(("_", ".")):  # the hand-over area, the journal, parsed landing files
                continue
            key = dg.AssetKey(name)
            partitions = [
                basename(e["name"]).removeprefix(prefix)
                for e in fs.ls(entry["name"], detail=True)
                if e["type"] == "directory" and basename(e["name"]).startswith(prefix)
            ]
            for partition in partitions or [None]:
                deleted += self.sweep(key, partition)
        return deleted

    def _sweep_scratch(self) -> list[str]:
        fs, root = filesystem(join(self.url, SCRATCH))
        now = time.time()
        try:
            entries = fs.ls(root, detail=False)
        except FileNotFoundError:
            return []
        stale = [
            entry
            for entry in entries
            if all(now - fs.modified(f).timestamp() > self.sweep_after_seconds for f in fs.find(entry) or [entry])
        ]
        for entry in stale:
            fs.rm(entry, recursive=True)
        return stale

    def _record(self, asset_key: dg.AssetKey, partition_key: str | None) -> dict | None:
        """The record naming the partition's files, following a `committed_with` pointer (None if there is none)."""
        url = self.record_url(asset_key, partition_key)
        return self._following(url, partition_key, read_record(url))

    def _following(self, url: str, partition_key: str | None, record: dict | None) -> dict | None:
        """`record` (read from `url`), or the record its `committed_with` pointer names; a pointer that names another
        pointer is malformed."""
        if record is not None and "committed_with" in record:
            record = read_record(self.record_url(dg.AssetKey.from_user_string(record["committed_with"]), partition_key))
            if record is not None and "tables" not in record:
                raise malformed(url, "it points at another pointer")
        return record

    def _recorded(self, asset_key: dg.AssetKey, partition_key: str | None) -> list[str] | None:
        """The files (relative to the root) the partition's record names."""
        record = self._record(asset_key, partition_key)
        return None if record is None else record["tables"].get(asset_key.to_user_string())


def _time(iso: str) -> dt.datetime:
    return dt.datetime.fromisoformat(iso)

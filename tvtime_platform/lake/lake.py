"""The `Lake` resource: Apache Iceberg tables of Parquet files under one URL, partitioned by day, in a catalog.

The lake is a local folder (`data/lake`, its catalog the SQLite file `catalog.db` in it) or an S3 prefix
(`s3://bucket/lake`, its catalog AWS Glue or the deployment's PostgreSQL). Assets hand the IO manager a DuckDB
relation (or `StagedFiles`, the Parquet files a Spark job wrote) and get back a `LakeTable` naming the files to read,
so a day's data streams from Parquet to Parquet and never passes through pandas.

A write never touches what readers read. Its files go to a new *version* folder,
`<table>/dt=YYYY-MM-DD/v<UTC time>-<id>/part-<k>.parquet`; the write then *commits*: one Iceberg snapshot that
replaces the day's files with the version's (an append adds files; a rebuild removes the others). A commit asserts
that the table is still at the snapshot it was planned on, and is planned again otherwise (`commit`), so two runs of a
day never lose each other's files. Tables computed together (`app_events` and `quarantined_events`) commit one after
the other, the first last: its snapshot names the others' (`pins`), and readers read those at the snapshot named, so
they see the tables in step even when a run was killed between the commits (the next commit of the day mends it).
Any Iceberg reader reads the lake from the catalog (docs/lake.md). The sweep deletes the version folders no snapshot
kept names, once `keep_snapshots_days` have passed: snapshots are expired then, so a day can be read or rolled back as
it was any time in that window.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence

import dagster as dg
import duckdb
import pyarrow as pa
from fsspec import AbstractFileSystem
from pydantic import Field
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table

from tvtime_platform.lake import catalog as iceberg
from tvtime_platform.lake.commits import COMMIT_ATTEMPTS, LakeDamaged, Recorded, StalePartition
from tvtime_platform.lake.manifests import files_by_day
from tvtime_platform.lake.metadata_files import manifests
from tvtime_platform.lake.tables import PARTITION_COLUMN, LakeTable
from tvtime_platform.lake.versions import (
    COLUMN_SCHEMA,
    VERSION_TIME,
    StagedFiles,
    Version,
    count_rows_and_bytes,
    files_metadata,
    move_staged_in,
    version_name,
    version_time,
    write_relation,
)
from tvtime_platform.resources.storage import basename, filesystem, is_remote, join, protocol_filesystem

SCRATCH = "_scratch"  # where Spark and Batch jobs hand files over, under the root
# Under the root: a marker per partition written on a UTC date, `_written/date=YYYY-MM-DD/<table>/dt=…` (or `/table`),
# so that the daily sweep goes over the partitions written since, not over every partition of the lake.
JOURNAL = "_written"
UNPARTITIONED = "table"  # a journal marker's name for a table without days
RECORDS = "_commits"  # where a lake kept by commit records (before Iceberg) names each partition's files, per table


class Lake(dg.ConfigurableResource):
    """The lake's root and catalog: where each table's files and snapshots live, how a day's files are replaced."""

    url: str = Field(description="root of the lake: a folder, or an S3 prefix such as s3://bucket/lake")
    catalog: str = Field(
        default="",
        description="the Iceberg catalog: `glue` (the AWS Glue Data Catalog), or a SQLAlchemy URL of a SQL catalog "
        "(postgresql+psycopg2://…, sqlite:///…); empty: the SQLite file catalog.db in a local lake's folder",
    )
    namespace: str = Field(
        default="lake", description="the catalog's namespace (Glue: database) holding the lake's tables"
    )
    compression: str = Field(default="zstd", description="Parquet compression codec")
    sweep_after_seconds: float = Field(
        default=3600,
        ge=0,
        description="how long a version folder no snapshot names is kept (a write still in progress) before the sweep "
        "deletes it",
    )
    keep_snapshots_days: float = Field(
        default=7,
        ge=0,
        description="how long a replaced snapshot (and the files it names) is kept: readers still on it, time travel "
        "and `tvtime lake rollback` reach that far back",
    )

    # -- where things are -------------------------------------------------------------------------------------------

    def root(self) -> str:
        """The lake's root as the catalog names files: an absolute path, or the S3 prefix."""
        return self.url.rstrip("/") if is_remote(self.url) else os.path.abspath(self.url)

    def table_url(self, asset_key: dg.AssetKey) -> str:
        return join(self.root(), *asset_key.path)

    def folder(self, asset_key: dg.AssetKey, partition_key: str | None) -> str:
        """The folder of a partition's versions (of the table's, if unpartitioned)."""
        table = self.table_url(asset_key)
        return join(table, f"{PARTITION_COLUMN}={partition_key}") if partition_key else table

    def open_catalog(self) -> Catalog:
        if self.catalog:
            return iceberg.open_catalog(self.catalog, self.root())
        if is_remote(self.url):
            raise dg.Failure(
                f"The lake {self.url} is on an object store, so its Iceberg catalog must be shared by every process: "
                "set the lake's catalog (TVTIME_LAKE_CATALOG) to `glue` or to a PostgreSQL URL.",
                allow_retries=False,
            )
        os.makedirs(self.root(), exist_ok=True)
        # One SQLite file for the processes and threads of a machine: a connection may close in another thread than
        # the one that opened it, and a writer waits up to 30 s for another's commit.
        database = join(self.root(), "catalog.db")
        return iceberg.open_catalog(f"sqlite:///{database}?check_same_thread=false&timeout=30", self.root())

    def tables(self) -> list[dg.AssetKey]:
        """The tables the catalog holds, by name."""
        catalog = self.open_catalog()
        if (self.namespace,) not in catalog.list_namespaces():
            return []
        names = sorted(name for *_, name in catalog.list_tables(self.namespace))
        return [dg.AssetKey(name.split("__")) for name in names]

    def iceberg_table(self, asset_key: dg.AssetKey) -> Table | None:
        """The asset's Iceberg table (None if never written), for what PyIceberg does beyond the lake's own commits."""
        return iceberg.load(self.open_catalog(), self.namespace, asset_key)

    def _url(self, relative: str) -> str:
        return join(self.root(), relative)

    def _relative(self, url: str) -> str:
        return url.removeprefix(self.root() + "/")

    # -- reading ----------------------------------------------------------------------------------------------------

    def _day_files(
        self,
        asset_key: dg.AssetKey,
        partitions: Sequence[str | None],
        table: Table | None = None,
        holder_table: Table | None = None,
    ) -> dict[str | None, list[DataFile]]:
        """The data files of some days (None: of a table without days), as readers read them: a table committed with
        another at the snapshot that one's commit of the day names (`holder_table`, if already loaded)."""
        table = table or self.iceberg_table(asset_key)
        if table is None:
            return {}
        holder = table.properties.get(iceberg.COMMITTED_WITH)
        if holder is None:
            return files_by_day(table, partitions)
        holder_table = holder_table or self.iceberg_table(dg.AssetKey.from_user_string(holder))
        at: dict[int | None, list[str | None]] = {}
        for partition in partitions:
            at.setdefault(self._pinned(holder_table, table, asset_key, partition), []).append(partition)
        found = {}
        for snapshot, days in at.items():
            found |= files_by_day(table, days, snapshot)
        return found

    def _pinned(self, holder: Table | None, table: Table, asset_key: dg.AssetKey, partition: str | None) -> int | None:
        """The snapshot of `table` its holder's newest commit of the day names (None: read the current one)."""
        if holder is None:
            return None
        for snapshot in iceberg.day_snapshots(holder, partition):
            pinned = iceberg.pins(snapshot).get(asset_key.to_user_string())
            return pinned if pinned is not None and table.metadata.snapshot_by_id(pinned) is not None else None
        return None

    def committed(self, asset_key: dg.AssetKey, partition_key: str | None) -> list[str] | None:
        """The URLs of a partition's current files, or None if it was never written."""
        files = self._day_files(asset_key, [partition_key]).get(partition_key)
        return [f.file_path for f in files] if files else None

    def _view(
        self, table: Table, asset_key: dg.AssetKey, partition: str | None, loaded: Mapping[dg.AssetKey, Table]
    ) -> dict[str, list[str]]:
        """The files (relative to the root) of the partition in `table` and in every table committed with it, as its
        newest commit of the day pinned them: a consistent view of tables written together. Those committed with it
        are taken from `loaded` when there (a commit's, loaded a moment ago: its compare-and-swap refuses them if
        another commit came since)."""
        files = self._day_files(asset_key, [partition], table).get(partition)
        if not files:
            return {}
        view = {asset_key.to_user_string(): [self._relative(f.file_path) for f in files]}
        for name in iceberg.committed_together(table):
            key = dg.AssetKey.from_user_string(name)
            found = self._day_files(key, [partition], loaded.get(key), holder_table=table).get(partition, [])
            view[name] = [self._relative(f.file_path) for f in found]
        return view

    def current_version(self, asset_key: dg.AssetKey, partition_key: str | None) -> Version | None:
        """The partition's committed files as a version (None if never written)."""
        files = self.committed(asset_key, partition_key)
        return Version(asset_key, partition_key, tuple(self._relative(f) for f in files)) if files else None

    def version_table(self, version: Version, partitioned: bool = True) -> LakeTable:
        """The files of a version, committed or not, to read."""
        counted = version.rows_and_bytes
        rows = tuple(counted[f][0] for f in version.files) if all(f in counted for f in version.files) else None
        return LakeTable(tuple(self._url(f) for f in version.files), partitioned, self.table_url(version.key), rows)

    def has(self, asset_key: dg.AssetKey, partition_key: str | None) -> bool:
        return self.committed(asset_key, partition_key) is not None

    def table(self, asset_key: dg.AssetKey, partition_keys: Sequence[str | None]) -> LakeTable:
        """The current files of some partitions (`[None]`: the whole unpartitioned table), from one scan of the table;
        a failure names those never written."""
        resolved = self._day_files(asset_key, partition_keys)
        missing = [p for p in partition_keys if not resolved.get(p)]
        if missing:
            name = asset_key.to_user_string()
            self._refuse_records(asset_key)
            raise dg.Failure(
                f"Lake table {name} is missing {len(missing)} partition(s), first "
                f"{self.folder(asset_key, missing[0])}. Materialize {name} for those partitions first.",
                allow_retries=False,
            )
        files = [f for p in partition_keys for f in resolved[p]]
        return LakeTable(
            tuple(f.file_path for f in files),
            any(p is not None for p in partition_keys),
            self.table_url(asset_key),
            tuple(f.record_count for f in files),
        )

    def counted_rows(self, asset_key: dg.AssetKey, partition_keys: Sequence[str | None]) -> int:
        """The rows of these partitions, as the catalog counted them at each commit (no data file is opened)."""
        found = self._day_files(asset_key, partition_keys)
        return sum(f.record_count for p in partition_keys for f in found.get(p, []))

    def partitions_through(self, asset_key: dg.AssetKey, last: str) -> list[str]:
        """The days up to and including `last` (YYYY-MM-DD) that hold files, oldest first: one scan of the table."""
        table = self.iceberg_table(asset_key)
        if table is None:
            return []
        return sorted(d for d in files_by_day(table, []) if d is not None and d <= last)

    def recorded(self, asset_key: dg.AssetKey, partition_key: str | None) -> Recorded:
        """What the partition holds now, in `asset_key`'s table and those committed with it, for a write to build on
        and commit against (`commit(expected=...)`)."""
        table = self.iceberg_table(asset_key)
        if table is None:
            return Recorded(asset_key.to_user_string(), {})
        loaded = {asset_key: table}
        for name in iceberg.committed_together(table):
            key = dg.AssetKey.from_user_string(name)
            loaded[key] = self.iceberg_table(key)
        return Recorded(asset_key.to_user_string(), self._view(table, asset_key, partition_key, loaded), loaded)

    def snapshots(self, asset_key: dg.AssetKey, partition_key: str | None) -> list[dict]:
        """The snapshots of the current history that changed the day, newest first: id, time, operation, rows."""
        table = self.iceberg_table(asset_key)
        if table is None:
            return []
        return [
            {
                "snapshot": s.snapshot_id,
                "committed_at": dt.datetime.fromtimestamp(s.timestamp_ms / 1000, dt.UTC).isoformat(),
                "operation": s.summary.operation.value if s.summary else "",
                "rows": sum(
                    f.record_count for f in files_by_day(table, [partition_key], s.snapshot_id).get(partition_key, [])
                ),
            }
            for s in iceberg.day_snapshots(table, partition_key)
        ]

    # -- writing ----------------------------------------------------------------------------------------------------

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
        definition), so a materialization keeps the catalog's column descriptions. `carried`: the partition's current
        files (relative to the root) the new version keeps beside its own, for a table that grows by appending.
        `carried_rows_and_bytes`: what an earlier stage counted of some of them (`Version.rows_and_bytes`), whose
        footers are then not read again (on S3, requests)."""
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
        known = {self._url(f): counted for f, counted in (carried_rows_and_bytes or {}).items()}
        counted, schema, footers = count_rows_and_bytes([*files, *(self._url(f) for f in carried)], known)
        metadata = files_metadata(counted, schema, partition is not None, declared) | {
            timing: dg.MetadataValue.float(round(time.perf_counter() - began, 3)),
            "path": dg.MetadataValue.path(folder),
        }
        relative = {self._relative(f): rows_and_bytes for f, rows_and_bytes in counted.items()}
        return Version(
            asset_key,
            partition,
            tuple(relative),
            metadata,
            relative,
            {self._relative(f): footer for f, footer in footers.items()},
        )

    def commit(
        self, partition: str | None, versions: Sequence[Version], expected: Recorded | None = None
    ) -> dict[dg.AssetKey, dict]:
        """Make the versions their tables' files of the partition: a snapshot of each table, the first table's last,
        naming the others' (readers read those at the snapshots it names, so they see all new or all old). Each commit
        asserts its table is still at the snapshot this one read; when another commit came first, what the day holds is
        read again and the commit made again over it.

        With `expected` (what the write read with `recorded` before planning), the commit is made only while the day
        still holds that: a write that built on files another write has replaced since raises `StalePartition` and
        commits nothing (it must plan again). Without it (a partition rebuilt whole from its inputs), it commits over
        whatever is current. Returns each table's metadata."""
        holder = versions[0].key.to_user_string()
        if expected is not None and expected.table != holder:
            raise ValueError(f"A commit of {holder} builds on what {expected.table} held, not on its own partition")
        self._check_present(partition, versions)
        catalog = self.open_catalog()
        loaded = expected.loaded if expected is not None else {}
        for attempt in range(COMMIT_ATTEMPTS):
            try:
                tables = {v.key: self._table_for(catalog, v, loaded.get(v.key)) for v in versions}
                self._commit_once(partition, versions, expected, tables)
                break
            except CommitFailedException:
                # Another commit of one of the tables came first (or changed its columns): wait a little (writers in
                # step would keep colliding), then load them again and commit over it.
                time.sleep(random.uniform(0, min(0.05 * 2**attempt, 2.0)))
                loaded = {}
        else:
            raise dg.Failure(
                f"{holder} {partition or ''}: other commits of its tables kept coming first ({COMMIT_ATTEMPTS} "
                "attempts); nothing was committed. Run the step again once fewer runs write the lake at once."
            )
        return {v.key: v.metadata for v in versions}

    def _commit_once(
        self,
        partition: str | None,
        versions: Sequence[Version],
        expected: Recorded | None,
        tables: dict[dg.AssetKey, Table],
    ) -> None:
        first, others = versions[0], versions[1:]
        holder = tables[first.key]
        if expected is not None and not _as_recorded(
            self._view(holder, first.key, partition, tables), expected, others
        ):
            raise StalePartition(
                f"{first.key.to_user_string()} {partition or ''}: another run committed the day since this one read "
                "it; nothing was committed."
            )
        if others:
            together = sorted({*iceberg.committed_together(holder), *(v.key.to_user_string() for v in others)})
            if together != iceberg.committed_together(holder):
                _set_properties(holder, {iceberg.COMMITTED_TOGETHER: json.dumps(together)})
            self._keep_pins_fresh(holder, partition, tables, others)
        pins = {}
        for version in others:
            table = self._replace_day(tables[version.key], version, {}, first.key.to_user_string(), force=False)
            pins[version.key.to_user_string()] = table.current_snapshot().snapshot_id
        self._replace_day(holder, first, {iceberg.PINS: json.dumps(pins)} if pins else {}, None, force=bool(pins))

    def _keep_pins_fresh(
        self, holder: Table, partition: str | None, tables: Mapping[dg.AssetKey, Table], others: Sequence[Version]
    ) -> None:
        """Before the tables committed with `holder` change, a commit of the holder naming the snapshots of theirs that
        readers read now, if its newest commit of the day is gone or half-way to expiring: readers then find what to
        pin if this write is killed between its commits."""
        newest = next(iter(iceberg.day_snapshots(holder, partition)), None)
        horizon = time.time() * 1000 - self.keep_snapshots_days * 86_400_000 / 2
        if newest is not None and newest.timestamp_ms > horizon:
            return
        pins = {}
        for version in others:  # what readers read now: the snapshot pinned, if one still is; else the current one
            other = tables[version.key]
            pinned = self._pinned(holder, other, version.key, partition)
            current = other.current_snapshot()
            if pinned is not None or current is not None:
                pins[version.key.to_user_string()] = pinned if pinned is not None else current.snapshot_id
        iceberg.commit_day(holder, partition, [], [], {iceberg.PINS: json.dumps(pins)})

    def _replace_day(
        self, table: Table, version: Version, properties: dict[str, str], committed_with: str | None, force: bool = True
    ) -> Table:
        """A snapshot of `table` whose files of the version's day are the version's (the table as loaded asserted); a
        new file of no rows left out of a table committed with another."""
        partition = version.partition
        current = files_by_day(table, [partition]).get(partition, [])
        wanted = {self._url(f) for f in version.files}
        removed = [f for f in current if f.file_path not in wanted]
        present = {f.file_path for f in current}
        added = [self._data_file(table, version, f) for f in version.files if self._url(f) not in present]
        if committed_with is not None and len(current) > len(removed):
            # A file of no rows changes nothing readers read: a table committed with another is not committed for one
            # while the day keeps files (its holder's commit names its current snapshot); its version folder is swept.
            added = [f for f in added if f.record_count]
        if committed_with is not None and table.properties.get(iceberg.COMMITTED_WITH) != committed_with:
            _set_properties(table, {iceberg.COMMITTED_WITH: committed_with})
        if removed or added or force:
            iceberg.commit_day(table, partition, removed, added, properties)
        return table

    def _data_file(self, table: Table, version: Version, relative: str) -> DataFile:
        footer = version.footers.get(relative)
        url = self._url(relative)
        if footer is None:  # a carried file the table no longer holds (another run replaced it meanwhile)
            counted, _, footers = count_rows_and_bytes([url], {})
            footer, size = footers[url], counted[url][1]
        else:
            size = version.rows_and_bytes[relative][1]
        return iceberg.data_file(table, url, version.partition, footer, size)

    def _table_for(
        self, catalog: Catalog, version: Version, loaded: Table | None = None, migrating: bool = False
    ) -> Table:
        """The version's table in the catalog (`loaded`: as already loaded), made (or given new columns) from the
        version's columns; not made beside the commit records of a lake not migrated yet, unless `migrating`."""
        schema = version.metadata[COLUMN_SCHEMA].value if COLUMN_SCHEMA in version.metadata else None
        columns = self._columns(version)
        descriptions = {c.name: c.description for c in schema.columns} if schema is not None else {}
        return iceberg.create_or_evolve(
            catalog,
            self.namespace,
            version.key,
            self.table_url(version.key),
            columns,
            version.partition is not None,
            descriptions,
            (lambda: None) if migrating else (lambda: self._refuse_records(version.key)),
            loaded,
        )

    def _refuse_records(self, asset_key: dg.AssetKey) -> None:
        """A table the catalog does not hold but commit records do is not made anew: its days would be hidden."""
        fs, records = filesystem(join(self.table_url(asset_key), RECORDS))
        if fs.exists(records):
            raise LakeDamaged(
                f"{self.table_url(asset_key)} holds commit records from before the lake's Iceberg tables, and the "
                f"catalog has no table {asset_key.to_user_string()}: run `tvtime lake migrate` (docs/lake.md) before "
                "writing to it, so that its days stay readable."
            )

    def _columns(self, version: Version) -> pa.Schema:
        footer = next(iter(version.footers.values()), None)
        if footer is None:
            _, schema, _ = count_rows_and_bytes([self._url(version.files[0])], {})
            return schema
        return footer.schema.to_arrow_schema()

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

    def _current_files(self, name: str, partition: str | None) -> list[DataFile]:
        """A table's files of the day in its current snapshot, pinned or not."""
        table = self.iceberg_table(dg.AssetKey.from_user_string(name))
        return files_by_day(table, [partition]).get(partition, []) if table is not None else []

    def rollback(self, asset_key: dg.AssetKey, partition_key: str | None, snapshot_id: int) -> Version:
        """Make the day's files what they were at one of the table's snapshots (a new snapshot; the tables committed
        with it follow, at the snapshots that one named)."""
        table = self.iceberg_table(asset_key)
        if table is None:
            raise dg.Failure(f"The lake holds no table {asset_key.to_user_string()!r}.", allow_retries=False)
        if table.metadata.snapshot_by_id(snapshot_id) is None:
            raise dg.Failure(
                f"{asset_key.to_user_string()} has no snapshot {snapshot_id}: "
                f"`tvtime lake snapshots {asset_key.to_user_string()} {partition_key or ''}` lists the day's.",
                allow_retries=False,
            )
        holder = table.properties.get(iceberg.COMMITTED_WITH)
        if holder is not None:
            raise dg.Failure(
                f"{asset_key.to_user_string()} is committed together with {holder}: roll back {holder}'s day, which "
                f"takes {asset_key.to_user_string()} with it (`tvtime lake snapshots {holder} {partition_key or ''}`).",
                allow_retries=False,
            )
        snapshot = table.metadata.snapshot_by_id(snapshot_id)
        versions = [self._version_at(table, asset_key, partition_key, snapshot_id)]
        for name, pinned in iceberg.pins(snapshot).items():
            key = dg.AssetKey.from_user_string(name)
            versions.append(self._version_at(self.iceberg_table(key), key, partition_key, pinned))
        self.commit(partition_key, versions)
        return versions[0]

    def _version_at(self, table: Table | None, key: dg.AssetKey, partition: str | None, snapshot_id: int) -> Version:
        files = files_by_day(table, [partition], snapshot_id).get(partition, []) if table else []
        if not files:
            raise dg.Failure(f"{key.to_user_string()} held no files of {partition} at snapshot {snapshot_id}")
        return Version(key, partition, tuple(self._relative(f.file_path) for f in files))

    def _check_present(self, partition: str | None, versions: Sequence[Version]) -> None:
        """Fails, naming what to do, when a file a version names is gone: one listing of each table's partition folder
        (on S3 a request per thousand files), then each file the listing did not show asked for itself."""
        for version in versions:
            fs, folder = filesystem(self.folder(version.key, partition))
            present = set(fs.find(folder))  # nothing, for a folder that is gone
            for file in version.files:
                path = filesystem(self._url(file))[1]
                if path in present or fs.exists(path):
                    continue
                if not file.startswith(version.folder + "/"):  # a carried file, not one of the version's own
                    raise LakeDamaged(
                        f"{file}, a file of the partition's current version that this write keeps, is gone: "
                        "something deleted it other than the lake's sweep. Nothing was committed. Roll the day back "
                        "(`tvtime lake rollback`) or materialize it again to rebuild it whole."
                    )
                raise FileNotFoundError(
                    f"{file} was deleted before its commit: writing it took longer than sweep_after_seconds "
                    f"({self.sweep_after_seconds:g} s) while the sweep went over the partition. Nothing was "
                    "committed; run the step again (or raise sweep_after_seconds)."
                )

    # -- sweeping ---------------------------------------------------------------------------------------------------

    def sweep(self, asset_key: dg.AssetKey, partition: str | None) -> list[str]:
        """Delete the partition's version folders no snapshot kept names: once `sweep_after_seconds` after they were
        made (a write still in progress has not committed yet). Returns what was deleted."""
        table = self.iceberg_table(asset_key)
        named = self._named_versions(table, partition) if table is not None else set()
        fs, folder = filesystem(self.folder(asset_key, partition))
        try:
            entries = fs.ls(folder, detail=True)
        except FileNotFoundError:
            return []
        now = dt.datetime.now(dt.UTC)
        stale = []
        for entry in entries:
            name = basename(entry["name"])
            made = version_time(name) if entry["type"] == "directory" else None
            if made is not None and name not in named and (now - made).total_seconds() > self.sweep_after_seconds:
                stale.append(entry["name"])
        for path in stale:
            fs.rm(path, recursive=True)
        return stale

    def _named_versions(self, table: Table, partition: str | None) -> set[str]:
        """The version folders of a day that the table's kept snapshots name: those of each kept snapshot whose parent
        is not kept (expiry may keep a pinned snapshot and expire those after it) and of each kept snapshot that changed
        the day (the others hold the day as their parent does)."""
        snapshots = table.metadata.snapshots
        kept = {s.snapshot_id for s in snapshots}
        day = partition or ""
        reading = {
            s.snapshot_id
            for s in snapshots
            if s.parent_snapshot_id not in kept or iceberg.day_changed(s) in (day, iceberg.EVERY_DAY, None)
        }
        named = set()
        for snapshot in reading:
            for file in files_by_day(table, [partition], snapshot).get(partition, []):
                named.add(version_name(file.file_path))
        return named

    def expire(self, asset_key: dg.AssetKey) -> int:
        """Expire the table's snapshots replaced more than `keep_snapshots_days` ago (`_expired`), then delete the
        metadata files no kept snapshot needs. Returns how many expired (none if writes kept committing meanwhile)."""
        for _ in range(COMMIT_ATTEMPTS):
            table = self.iceberg_table(asset_key)
            if table is None:
                return 0
            old = self._expired(table)
            try:
                if old:
                    table.maintenance.expire_snapshots().by_ids(old).commit()
                break
            except CommitFailedException:  # a write committed meanwhile: look again
                continue
        else:
            old = []  # left for the next pass
        self._sweep_metadata(table)
        return len(old)

    def _expired(self, table: Table) -> list[int]:
        """The snapshots another was committed over more than `keep_snapshots_days` ago (never the current one), but
        those a snapshot of the table it is committed with pins, its own snapshots that readers read a day out of step
        by, and those readers read a day by while an older one of the day stays (readers would read that one)."""
        horizon = time.time() * 1000 - self.keep_snapshots_days * 86_400_000
        kept = set()
        holder = table.properties.get(iceberg.COMMITTED_WITH)
        holder_table = self.iceberg_table(dg.AssetKey.from_user_string(holder)) if holder else None
        for snapshot in holder_table.metadata.snapshots if holder_table is not None else []:
            kept |= set(iceberg.pins(snapshot).values())
        together = {n: self.iceberg_table(dg.AssetKey.from_user_string(n)) for n in iceberg.committed_together(table)}
        kept |= iceberg.pins_of_days_out_of_step(table, {n: t for n, t in together.items() if t is not None})
        # When each snapshot stopped being current: when the next one was committed (never, the current one), not from
        # its child (which may have expired while a pin kept it); the latest such time so far, so that a snapshot never
        # outlives one committed over it whatever the writers' clocks.
        ordered = iceberg.in_commit_order(table.metadata.snapshots)
        replaced, latest = {}, 0
        for snapshot, after in zip(ordered, ordered[1:], strict=False):
            latest = max(latest, after.timestamp_ms)
            replaced[snapshot.snapshot_id] = latest
        replaced.pop(table.metadata.current_snapshot_id, None)
        expiring = {s.snapshot_id for s in ordered if replaced.get(s.snapshot_id, horizon) < horizon} - kept
        if together:
            expiring -= iceberg.read_by_over_kept_ones(table, expiring)
        return [s.snapshot_id for s in ordered if s.snapshot_id in expiring]

    def _sweep_metadata(self, table: Table) -> list[str]:
        """Delete the metadata files, manifest lists and manifests no kept snapshot needs (older than
        `sweep_after_seconds`: a commit in progress writes its own before it commits). Files are told apart by name:
        each has a name of its own (a UUID in it)."""
        needed = {table.metadata_location, *(entry.metadata_file for entry in table.metadata.metadata_log)}
        for snapshot in table.metadata.snapshots:
            needed.add(snapshot.manifest_list)
            needed |= {m.manifest_path for m in manifests(snapshot, table.io)}
        needed = {basename(f) for f in needed}
        fs, folder = filesystem(join(table.location(), "metadata"))
        try:
            entries = fs.ls(folder, detail=True)
        except FileNotFoundError:
            return []
        now = time.time()
        stale = [
            e["name"]
            for e in entries
            if e["type"] == "file"
            and basename(e["name"]) not in needed
            and now - _modified(fs, e).timestamp() > self.sweep_after_seconds
        ]
        for path in stale:
            fs.rm(path)
        return stale

    def _note_written(self, asset_key: dg.AssetKey, partition: str | None) -> None:
        """The marker saying the partition is written today (before its version exists: a killed write is swept too)."""
        name = f"{PARTITION_COLUMN}={partition}" if partition else UNPARTITIONED
        marker = join(self.url, JOURNAL, f"date={dt.datetime.now(dt.UTC).date()}", *asset_key.path, name)
        fs, path = filesystem(marker)
        if not is_remote(marker):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        fs.pipe_file(path, b"")

    def sweep_written(self) -> list[str]:
        """For each UTC date whose writes' leftovers can all go by now (the date's end and `keep_snapshots_days` past,
        and `sweep_after_seconds`: a version replaced later is marked again on the date it was replaced), expire each
        table's old snapshots, `sweep` each partition written on it, then drop that date's markers; and the hand-over
        folders. What it goes over is what was written since the last pass, not the lake. Returns what was deleted."""
        deleted = self._sweep_scratch()
        fs, root = filesystem(join(self.url, JOURNAL))
        try:
            dates = sorted(e["name"] for e in fs.ls(root, detail=True) if e["type"] == "directory")
        except FileNotFoundError:
            return deleted
        now = dt.datetime.now(dt.UTC)
        wait = dt.timedelta(days=self.keep_snapshots_days, seconds=self.sweep_after_seconds)
        expired = set()
        for folder in dates:
            try:
                written = dt.date.fromisoformat(basename(folder).removeprefix("date="))
            except ValueError:
                continue
            if now < dt.datetime.combine(written + dt.timedelta(days=1), dt.time(), dt.UTC) + wait:
                continue
            marked = []
            for marker in fs.find(folder):
                *table, name = marker[len(folder.rstrip("/")) + 1 :].split("/")
                partition = name.removeprefix(f"{PARTITION_COLUMN}=") if name != UNPARTITIONED else None
                marked.append((dg.AssetKey(table), partition))
            for key, partition in marked:  # while the snapshots that pin their days are kept
                self.compact(key, partition)
            for key in dict.fromkeys(key for key, _ in marked):
                if key not in expired:
                    self.expire(key)
                    expired.add(key)
            for key, partition in marked:
                deleted += self.sweep(key, partition)
            fs.rm(folder, recursive=True)
        return deleted

    def compact(self, asset_key: dg.AssetKey, partition: str | None) -> list[Version]:
        """One file per table for a day that holds several (a day that grew by appending, a Spark job's parts), the
        tables committed with it rewritten with it; and a table committed with it that is ahead of what its newest
        commit of the day pins (a run killed between the commits, never run again) put back in step, before those
        snapshots expire. One commit against what the day holds: a run that commits the day meanwhile wins, and
        nothing is done. The versions committed (none if the day needed none). The files it replaces stay as long as
        the snapshots that name them."""
        table = self.iceberg_table(asset_key)
        if table is None or iceberg.COMMITTED_WITH in table.properties:  # compacted with the table it is committed with
            return []
        held = self.recorded(asset_key, partition)
        counts = [len(files) for files in held.tables.values()]
        if not counts or min(counts) == 0:
            return []
        if max(counts) == 1:
            ahead = [
                name
                for name in iceberg.committed_together(table)
                if [self._relative(f.file_path) for f in self._current_files(name, partition)] != held.tables[name]
            ]
            if not ahead:
                return []
            versions = [
                Version(dg.AssetKey.from_user_string(name), partition, tuple(files))
                for name, files in held.tables.items()
            ]
        else:
            con = duckdb.connect()
            if is_remote(self.url):
                con.register_filesystem(protocol_filesystem(self.url.split("://", 1)[0]))
            versions = [
                self.stage(
                    con.read_parquet([self._url(f) for f in files], union_by_name=True),
                    dg.AssetKey.from_user_string(name),
                    partition,
                )
                for name, files in held.tables.items()
            ]
        try:
            self.commit(partition, versions, held)
        except StalePartition:
            return []
        return versions

    def scratch(self, name: str) -> str:
        """A new folder under `<lake>/_scratch` for a job to hand files over in (`name` and a random suffix); folders
        there whose files are all older than `sweep_after_seconds` (a killed run's) are deleted first."""
        self._sweep_scratch()
        return join(self.url, SCRATCH, f"{name}-{uuid.uuid4().hex[:8]}")

    def sweep_everything(self) -> list[str]:
        """Expire every table's old snapshots and `sweep` every partition folder of every table, and the hand-over
        folders: what killed runs left where no write comes again. Returns what was deleted."""
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
            self.expire(key)
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


def _modified(fs: AbstractFileSystem, entry: dict) -> dt.datetime:
    """When a listed file was last written: from the listing on S3 (asking again is a request per file)."""
    listed = entry.get("LastModified")
    return listed if isinstance(listed, dt.datetime) else fs.modified(entry["name"])


def _set_properties(table: Table, properties: Mapping[str, str]) -> None:
    """Set table properties in a commit of their own. The catalog applies it to the table as it is now, and `table`
    becomes that: if another commit came since `table` was loaded (what the commit about to follow was checked
    against), `CommitFailedException`, so that the commit loads the tables and checks what the day holds again."""
    loaded_at = table.metadata.current_snapshot_id
    with table.transaction() as transaction:
        transaction.set_properties(**properties)
    if table.metadata.current_snapshot_id != loaded_at:
        raise CommitFailedException(f"{table.name()} changed since it was loaded")


def _as_recorded(view: dict[str, list[str]], expected: Recorded, others: Sequence[Version]) -> bool:
    """Whether the day holds what the write read, a table committed with the first one that holds exactly this write's
    version counted as it was: this write committed it already, before its first table's commit lost a race."""
    view = dict(view)
    for version in others:
        name = version.key.to_user_string()
        if set(view.get(name, ())) == set(version.files):
            view.pop(name, None)
            if name in expected.tables:
                view[name] = expected.tables[name]
    return view == expected.tables

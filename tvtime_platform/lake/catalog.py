"""The lake's Iceberg catalog: each lake table an Apache Iceberg table, partitioned by its day.

PyIceberg keeps the tables: a SQL catalog (SQLite in a local lake's folder, or the deployment's PostgreSQL) or the AWS
Glue Data Catalog. The platform writes Parquet with DuckDB or Spark as before and commits the files it wrote as data
files of a snapshot, its day given as the partition value: the files carry their day only in their `dt=` folder, and
Iceberg readers (PyIceberg, Spark, Trino) fill an identity partition's column from the partition value.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.catalog import Catalog, MetastoreCatalog
from pyiceberg.catalog.sql import IcebergTables, SqlCatalog
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError, TableAlreadyExistsError
from pyiceberg.io.pyarrow import (
    compute_statistics_plan,
    data_file_statistics_from_parquet_metadata,
    parquet_path_to_id_mapping,
)
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.table import StagedTable, Table, Transaction
from pyiceberg.table.locations import load_location_provider
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.snapshots import Operation, Snapshot
from pyiceberg.table.update import (
    TableRequirement,
    TableUpdate,
    _apply_table_update,
    _TableMetadataUpdateContext,
    _update_table_metadata_log,
)
from pyiceberg.typedef import Identifier, Record
from pyiceberg.types import DateType
from pyiceberg.utils.datetime import datetime_to_millis

from tvtime_platform.lake.manifests import EPOCH, DayAppend, files_by_day
from tvtime_platform.lake.metadata_files import KeptFileIO, keep_table_metadata, parsed_table_metadata
from tvtime_platform.lake.tables import PARTITION_COLUMN

CATALOG_NAME = "tvtime"
GLUE = "glue"  # the catalog setting that names the AWS Glue Data Catalog
# A snapshot's summary: the day the commit changed ("" for a table without days), and the snapshot of each table
# committed with it (JSON), at which readers read those tables' same day.
PARTITION = "tvtime.partition"
EVERY_DAY = "*"  # the day of a snapshot that changed every day (a migration's)
PINS = "tvtime.pins"
# Table properties: the table whose snapshots pin this one's days (`quarantined_events`: `app_events`), and on that
# table, the tables it pins (JSON).
COMMITTED_WITH = "tvtime.committed-with"
COMMITTED_TOGETHER = "tvtime.committed-together"
DEFAULT_NAME_MAPPING = "schema.name-mapping.default"
TABLE_PROPERTIES = {
    # The lake retries a commit itself, re-reading what the day holds (a compare-and-swap): PyIceberg's own retry
    # would append again over another run's commit.
    "commit.retry.num-retries": "0",
    # A metadata file per commit: the log names the last few, and the daily sweep deletes the others (a commit deleting
    # them would cost a request more).
    "write.metadata.delete-after-commit.enabled": "false",
    "write.metadata.previous-versions-max": "10",
    # A data file's row count and size, not its columns' statistics: a closed day is one file per table (compaction),
    # which the day's partition value selects already, and a run decodes and rewrites its day's manifest on each append
    # (statistics made that several times slower).
    "write.metadata.metrics.default": "none",
}


@functools.cache
def open_catalog(setting: str, warehouse: str) -> Catalog:
    """The catalog a setting names (`glue`, or a SQLAlchemy URL); one per process. Its files are read through fsspec,
    like the rest of the platform's (the AWS endpoint and credentials from the standard environment), each metadata
    file once per process (`metadata_files`)."""
    properties = {"warehouse": warehouse, "py-io-impl": f"{KeptFileIO.__module__}.{KeptFileIO.__name__}"}
    if setting == GLUE:
        from tvtime_platform.lake.glue_catalog import KeptGlueCatalog  # boto3 loads only for a Glue catalog

        return KeptGlueCatalog(CATALOG_NAME, **properties)
    return _KeptSqlCatalog(CATALOG_NAME, uri=setting, **properties)


def kept_table(catalog: Catalog, identifier: tuple[str, ...], location: str, load: Callable[[], Table]) -> Table:
    """The table whose metadata is at `location`, from its metadata as this process parsed it before (`load` parses
    it, the first time): a metadata file never changes, and parsing it costs what the table's snapshots add up to."""
    metadata = parsed_table_metadata(location)
    if metadata is None:
        table = load()
        keep_table_metadata(table.metadata_location, table.metadata)
        return table
    io = catalog._load_file_io(metadata.properties, location)
    return Table(identifier=identifier, metadata=metadata, metadata_location=location, io=io, catalog=catalog)


def updated_metadata(
    base: TableMetadata, updates: Sequence[TableUpdate], metadata_location: str | None = None
) -> TableMetadata:
    """The metadata PyIceberg's `update_table_metadata` builds, without the deep copy it ends with: every update makes
    new containers of the frozen metadata, so the copy protects nothing, and it costs what the table's snapshots add up
    to (twice a commit: the transaction's metadata, then the catalog's). `metadata_location`: the file `base` was read
    from, which the metadata log then names."""
    context = _TableMetadataUpdateContext()
    metadata = base
    for update in updates:
        metadata = _apply_table_update(update, metadata, context)
    if context.has_changes():
        if metadata_location:
            metadata = _update_table_metadata_log(metadata, metadata_location, base.last_updated_ms)
        if metadata.last_updated_ms == base.last_updated_ms:
            metadata = metadata.model_copy(
                update={"last_updated_ms": datetime_to_millis(dt.datetime.now().astimezone())}
            )
    metadata.spec().check_compatible(metadata.schema())
    metadata.sort_order().check_compatible(metadata.schema())
    return metadata


class StagedWithoutCopy(MetastoreCatalog):
    """A catalog whose commit builds a table's next metadata with `updated_metadata` (a new table's, PyIceberg's way:
    validated whole)."""

    def _update_and_stage_table(
        self,
        current_table: Table | None,
        table_identifier: Identifier,
        requirements: tuple[TableRequirement, ...],
        updates: tuple[TableUpdate, ...],
    ) -> StagedTable:
        if current_table is None:
            return super()._update_and_stage_table(current_table, table_identifier, requirements, updates)
        for requirement in requirements:
            requirement.validate(current_table.metadata)
        metadata = updated_metadata(current_table.metadata, updates, current_table.metadata_location)
        version = self._parse_metadata_version(current_table.metadata_location) + 1
        location = load_location_provider(metadata.location, metadata.properties).new_table_metadata_file_location(
            version
        )
        io = self._load_file_io(properties=metadata.properties, location=location)
        return StagedTable(
            identifier=table_identifier, metadata=metadata, metadata_location=location, io=io, catalog=self
        )


class _KeptSqlCatalog(StagedWithoutCopy, SqlCatalog):
    """PyIceberg's SQL catalog, each table's metadata file parsed once per process (`kept_table`), its commits staged
    without a copy (`StagedWithoutCopy`)."""

    def _convert_orm_to_iceberg(self, orm_table: IcebergTables) -> Table:
        load = functools.partial(super()._convert_orm_to_iceberg, orm_table)
        if not (orm_table.metadata_location and orm_table.table_namespace):  # PyIceberg's own error, naming what
            return load()
        identifier = (*Catalog.identifier_to_tuple(orm_table.table_namespace), orm_table.table_name)
        return kept_table(self, identifier, orm_table.metadata_location, load)


def identifier(namespace: str, key: dg.AssetKey) -> str:
    return f"{namespace}.{'__'.join(key.path)}"


def load(catalog: Catalog, namespace: str, key: dg.AssetKey) -> Table | None:
    try:
        return catalog.load_table(identifier(namespace, key))
    except NoSuchTableError:
        return None


def create_or_evolve(
    catalog: Catalog,
    namespace: str,
    key: dg.AssetKey,
    location: str,
    columns: pa.Schema,
    partitioned: bool,
    descriptions: Mapping[str, str | None],
    before_creating: Callable[[], None] = lambda: None,
    loaded: Table | None = None,
) -> Table:
    """The table of `key` (`loaded`: as already loaded), created if new (partitioned by `dt` if `partitioned`, its
    columns documented from the asset's declarations; `before_creating` may refuse it); columns it lacks added (a
    version with a new column), and the platform's table properties set where they differ (a table made before)."""
    table = loaded or load(catalog, namespace, key)
    if table is None:
        before_creating()
        schema = columns
        if partitioned and PARTITION_COLUMN not in schema.names:
            schema = schema.append(pa.field(PARTITION_COLUMN, pa.date32()))
        _make_namespace(catalog, namespace)
        try:
            with catalog.create_table_transaction(
                identifier(namespace, key), schema=schema, location=location, properties=TABLE_PROPERTIES
            ) as creating:
                if partitioned:
                    with creating.update_spec() as spec:
                        spec.add_identity(PARTITION_COLUMN)
                documented = {n: d for n, d in descriptions.items() if d and n in schema.names}
                if documented:
                    with creating.update_schema() as update:
                        for name, doc in documented.items():
                            update.update_column(name, doc=doc)
                _map_names(creating)
        except (TableAlreadyExistsError, CommitFailedException):  # another run created it first
            if load(catalog, namespace, key) is None:
                raise
        return catalog.load_table(identifier(namespace, key))
    fields = {f.name: f for f in table.schema().fields}
    undocumented = {n: d for n, d in descriptions.items() if d and n in fields and fields[n].doc != d}
    unlike = {k: v for k, v in TABLE_PROPERTIES.items() if table.properties.get(k) != v}
    if set(columns.names) - set(fields) or undocumented:
        with table.transaction() as evolving:
            with evolving.update_schema() as update:
                update.union_by_name(columns)
                for name, doc in undocumented.items():
                    update.update_column(name, doc=doc)
            _map_names(evolving)
    if unlike:
        with table.transaction() as setting:
            setting.set_properties(**unlike)
    return table


def _make_namespace(catalog: Catalog, namespace: str) -> None:
    """The namespace, made if missing; another process making it between PyIceberg's look and its insert is not an
    error (the SQL catalog then fails on its unique key)."""
    try:
        catalog.create_namespace_if_not_exists(namespace)
    except Exception:
        if (namespace,) not in catalog.list_namespaces():
            raise


def _map_names(transaction: Transaction) -> None:
    """The schema's name mapping as the table's default: the platform's files carry no field ids, so readers match
    their columns by name."""
    mapping = transaction.table_metadata.schema().name_mapping
    transaction.set_properties(**{DEFAULT_NAME_MAPPING: mapping.model_dump_json()})


def data_file(table: Table, url: str, partition: str | None, footer: pq.FileMetaData, size: int) -> DataFile:
    """A Parquet file the platform wrote, as a data file of `table` in the day `partition` (statistics from its
    footer, as read when it was staged)."""
    statistics = data_file_statistics_from_parquet_metadata(
        parquet_metadata=footer,
        stats_columns=compute_statistics_plan(table.schema(), table.metadata.properties),
        parquet_column_mapping=parquet_path_to_id_mapping(table.schema()),
    )
    values = ()
    if table.spec().fields:
        kind = table.schema().find_field(PARTITION_COLUMN).field_type
        day = dt.date.fromisoformat(partition)
        values = ((day - EPOCH).days if isinstance(kind, DateType) else partition,)
    return DataFile.from_args(
        content=DataFileContent.DATA,
        file_path=url,
        file_format=FileFormat.PARQUET,
        partition=Record(*values),
        file_size_in_bytes=size,
        sort_order_id=None,
        spec_id=table.metadata.default_spec_id,
        equality_ids=None,
        key_metadata=None,
        **statistics.to_serialized_dict(),
    )


def commit_day(
    table: Table,
    partition: str | None,
    removed: Iterable[DataFile],
    added: Iterable[DataFile],
    properties: Mapping[str, str],
) -> Table:
    """One snapshot that replaces `removed` with `added`, asserting the snapshot `table` was loaded at is still current
    (`CommitFailedException` otherwise); its summary says the day and `properties`."""
    removed, added = list(removed), list(added)
    summary = {PARTITION: partition or "", **properties}
    with _Transaction(table) as transaction:
        if removed:
            snapshot = transaction.update_snapshot(snapshot_properties=summary).overwrite()
        else:
            day = None if partition in (None, EVERY_DAY) else partition
            snapshot = DayAppend(
                day, operation=Operation.APPEND, transaction=transaction, io=table.io, snapshot_properties=summary
            )
        with snapshot:
            for file in removed:
                snapshot.delete_data_file(file)
            for file in added:
                snapshot.append_data_file(file)
    keep_table_metadata(table.metadata_location, table.metadata)  # what the run reads next: its own commit
    return table


class _Transaction(Transaction):
    """PyIceberg's transaction, its table metadata with the changes so far built once per change, without a copy
    (`updated_metadata`): PyIceberg builds and deep-copies it on every look, about fifteen times a commit, a cost that
    grows with the snapshots a table keeps."""

    _built: tuple[TableMetadata, tuple, TableMetadata] | None = None

    @property
    def table_metadata(self) -> TableMetadata:
        if not self._updates:
            return self._table.metadata  # no change yet: the table's own (frozen: PyIceberg's copy protects nothing)
        built = self._built
        if built is None or built[0] is not self._table.metadata or built[1] is not self._updates:
            built = self._built = (
                self._table.metadata,
                self._updates,
                updated_metadata(self._table.metadata, self._updates),
            )
        return built[2]


def in_commit_order(snapshots: Iterable[Snapshot]) -> list[Snapshot]:
    """Snapshots of one table oldest first, by sequence number (each commit's is the table's last one plus one; the
    writers' clocks, which stamp the times, may disagree)."""
    return sorted(snapshots, key=lambda s: (_sequence(s), s.timestamp_ms))


def day_snapshots(table: Table, partition: str | None) -> list[Snapshot]:
    """The table's snapshots that changed the day, newest first (all of them: the lake only ever commits on top of the
    current one, and an expired snapshot in between would end a walk up the parents)."""
    days = (partition or "", EVERY_DAY)
    return [s for s in reversed(in_commit_order(table.metadata.snapshots)) if day_changed(s) in days]


def day_changed(snapshot: Snapshot) -> str | None:
    """The day a snapshot of the platform's changed ("" for a table without days); None for one made otherwise."""
    return _summary(snapshot).get(PARTITION)


def committed_together(table: Table) -> list[str]:
    """The tables `table`'s commits pin."""
    return json.loads(table.properties.get(COMMITTED_TOGETHER, "[]"))


def pins_of_days_out_of_step(holder: Table, together: Mapping[str, Table]) -> set[int]:
    """The holder's snapshots that readers read a day of a table committed with it (by name) by, where that day's files
    at the snapshot pinned are not its current ones (a run killed between its commits; an append that left such a table
    alone while a killed run's commit of it came): kept until a commit of the day or the daily sweep mends it. The files
    are compared, not the snapshots' times: the snapshots that put the table ahead may have expired since."""
    read_by = _read_by(holder)
    every = read_by.pop(EVERY_DAY, None)
    kept = set()
    for name, table in together.items():
        # The days the holder's kept snapshots changed; with a migration's snapshot, every day the table holds.
        days = {None if d == "" else d for d in read_by}
        scanned = [] if every is not None else list(days)
        current = files_by_day(table, scanned)
        at: dict[int, dict[str | None, list[DataFile]]] = {}
        if every is not None:
            days |= set(current) | set(_files_at(table, pins(every[-1]).get(name), scanned, at) or {})
        for day in days:
            reading = (read_by.get(day or "") or every)[-1]
            pinned = _files_at(table, pins(reading).get(name), scanned, at)
            if pinned is None:
                continue  # readers read the table's current snapshot
            if {f.file_path for f in pinned.get(day, [])} != {f.file_path for f in current.get(day, [])}:
                kept.add(reading.snapshot_id)
    return kept


def read_by_over_kept_ones(holder: Table, expiring: set[int]) -> set[int]:
    """Of the holder's `expiring` snapshots, those readers read a day by while an older one of the day stays: expiring
    them would make readers read the day by that one, whose pins are older. (Keeping one that changed every day can
    make that so for other days: looked at again until nothing changes.)"""
    read_by = _read_by(holder).values()
    kept: set[int] = set()
    while True:
        more = {
            snapshots[-1].snapshot_id
            for snapshots in read_by
            if snapshots[-1].snapshot_id in expiring - kept
            and any(s.snapshot_id not in expiring or s.snapshot_id in kept for s in snapshots[:-1])
        }
        if more <= kept:
            return kept
        kept |= more


def _read_by(holder: Table) -> dict[str, list[Snapshot]]:
    """For each day the holder's snapshots changed ("" for a table without days), those readers may read it by, in
    commit order (the last is the one they do, as `day_snapshots` finds it): the day's own and those that changed every
    day; under `EVERY_DAY`, those alone."""
    by_day: dict[str, list[Snapshot]] = {}
    for snapshot in in_commit_order(holder.metadata.snapshots):
        day = day_changed(snapshot)
        if day is not None:
            by_day.setdefault(day, []).append(snapshot)
    every = by_day.get(EVERY_DAY, [])
    return {
        day: snapshots if day == EVERY_DAY else in_commit_order([*snapshots, *every])
        for day, snapshots in by_day.items()
    }


def _files_at(
    table: Table,
    snapshot_id: int | None,
    days: Sequence[str | None],
    known: dict[int, dict[str | None, list[DataFile]]],
) -> dict[str | None, list[DataFile]] | None:
    """The days' files (no days: every day's) as of a snapshot of the table, kept in `known`; None if it has no such
    snapshot."""
    if snapshot_id is None or table.metadata.snapshot_by_id(snapshot_id) is None:
        return None
    if snapshot_id not in known:
        known[snapshot_id] = files_by_day(table, days, snapshot_id)
    return known[snapshot_id]


def _sequence(snapshot: Snapshot) -> int:
    return snapshot.sequence_number or 0


def pins(snapshot: Snapshot) -> dict[str, int]:
    """The snapshot of each table committed with `snapshot`'s, by table name."""
    return json.loads(_summary(snapshot).get(PINS, "{}"))


def _summary(snapshot: Snapshot) -> dict[str, str]:
    return snapshot.summary.additional_properties if snapshot.summary is not None else {}

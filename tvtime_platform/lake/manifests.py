"""A lake table's days in its manifests: which manifests may hold a day, the files they hold, and an append that keeps
each day in one manifest.

PyIceberg's fast append adds a manifest per commit. A day appended to hour by hour would then be planned from one
manifest per append, and every run of the day reads them all again in a new process (a run worker). `DayAppend`
writes the day's files, those already there and the new ones, into one manifest that replaces the manifests holding
only that day: a day is planned from one manifest however often it was appended to. The days of a month before last
are merged into one manifest, so the manifest list, which every run reads whole, grows by a manifest a month, not a
day. A manifest that also holds days of several months (a migration's) is kept as it is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

from pyiceberg.conversions import from_bytes
from pyiceberg.expressions import AlwaysTrue, BooleanExpression, EqualTo, In
from pyiceberg.expressions.visitors import inclusive_projection, manifest_evaluator
from pyiceberg.manifest import DataFile, ManifestContent, ManifestEntry, ManifestEntryStatus, ManifestFile
from pyiceberg.table import Table
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.update.snapshot import _FastAppendFiles

from tvtime_platform.lake.metadata_files import live_entries, manifests
from tvtime_platform.lake.tables import PARTITION_COLUMN

EPOCH = dt.date(1970, 1, 1)


def partition_day(value: object) -> str:
    """A `dt` partition value (days since 1970 for a date, or the string itself) as YYYY-MM-DD."""
    return (EPOCH + dt.timedelta(days=value)).isoformat() if isinstance(value, int) else str(value)


def day_filter(metadata: TableMetadata, partitions: Sequence[str | None]) -> BooleanExpression:
    days = [p for p in partitions if p is not None]
    if not days or not metadata.spec().fields:
        return AlwaysTrue()
    return EqualTo(PARTITION_COLUMN, days[0]) if len(days) == 1 else In(PARTITION_COLUMN, days)


def _may_hold(metadata: TableMetadata, partitions: Sequence[str | None]) -> Callable[[ManifestFile], bool]:
    """Whether a data manifest may hold files of those days, from its partition summary alone."""
    schema, spec = metadata.schema(), metadata.spec()
    evaluate = manifest_evaluator(spec, schema, inclusive_projection(schema, spec)(day_filter(metadata, partitions)))
    return lambda m: m.content == ManifestContent.DATA and evaluate(m)


def _day_of(metadata: TableMetadata) -> Callable[[DataFile], str | None]:
    return (lambda f: partition_day(f.partition[0])) if metadata.spec().fields else (lambda f: None)


def files_by_day(
    table: Table, partitions: Sequence[str | None], snapshot_id: int | None = None
) -> dict[str | None, list[DataFile]]:
    """The data files of some days (None, or no days: of every day) as of a snapshot (the current one if None), read
    from the manifests that may hold those days; a day that holds none is absent. Files without rows are files too (a
    day can hold none): a scan's planning would leave them out by their statistics."""
    snapshot = table.current_snapshot() if snapshot_id is None else table.snapshot_by_id(snapshot_id)
    if snapshot is None:
        return {}
    days = {p for p in partitions if p is not None}
    may_hold, day_of = _may_hold(table.metadata, partitions), _day_of(table.metadata)
    found: dict[str | None, list[DataFile]] = {}
    for manifest in manifests(snapshot, table.io):
        if not may_hold(manifest) or not (manifest.added_files_count or manifest.existing_files_count):
            continue  # another day's; or one recording deletions only
        for entry in live_entries(manifest, table.io):
            day = day_of(entry.data_file)
            if not days or day in days:
                found.setdefault(day, []).append(entry.data_file)
    for files in found.values():
        # The newest version's files first (version folders are named by their UTC time), each version's in order.
        files.sort(key=lambda f: f.file_path)
        files.sort(key=lambda f: f.file_path.rsplit("/", 1)[0], reverse=True)
    return found


class DayAppend(_FastAppendFiles):
    """An append of files of one day (None: of a table without days) that writes them with the day's files already
    there into one manifest, in place of the manifests that held only that day."""

    def __init__(self, day: str | None, **kwargs) -> None:
        super().__init__(**kwargs)
        self._day = day

    def _manifests(self) -> list[ManifestFile]:
        if not self._added_data_files:  # a snapshot of summary properties only: its manifests stay as they are
            return super()._manifests()
        metadata = self._transaction.table_metadata
        parent = metadata.snapshot_by_id(self._parent_snapshot_id) if self._parent_snapshot_id is not None else None
        may_hold, day_of = _may_hold(metadata, [self._day]), _day_of(metadata)
        kept: list[ManifestFile] = []
        carried: list[ManifestEntry] = []
        for manifest in manifests(parent, self._io) if parent is not None else ():
            if not (manifest.has_added_files() or manifest.has_existing_files()):
                continue  # it records deletions only, which this snapshot need not repeat (as a fast append does)
            if may_hold(manifest) and manifest.partition_spec_id == metadata.default_spec_id:
                entries = live_entries(manifest, self._io)
                if all(day_of(e.data_file) == self._day for e in entries):
                    carried.extend(entries)
                    continue
            kept.append(manifest)
        with self.new_manifest_writer(metadata.spec()) as writer:
            for entry in carried:
                writer.add_entry(_existing(entry))
            for file in self._added_data_files:
                writer.add(
                    ManifestEntry.from_args(
                        status=ManifestEntryStatus.ADDED,
                        snapshot_id=self._snapshot_id,
                        sequence_number=None,
                        file_sequence_number=None,
                        data_file=file,
                    )
                )
        return [writer.to_manifest_file(), *self._closed_months_merged(metadata, kept)]

    def _closed_months_merged(self, metadata: TableMetadata, kept: list[ManifestFile]) -> list[ManifestFile]:
        """The manifests, those holding days of one month before last (by their partition summaries) merged into one
        per month: the manifest list, which every run reads whole, holds about a manifest a month of the past, not one
        a day. A month is merged once (again only if a rebuilt day left it several manifests)."""
        if self._day is None or not metadata.spec().fields:
            return kept
        kind = metadata.spec().partition_type(metadata.schema()).fields[0].field_type
        spec_id = metadata.default_spec_id
        first_of_this_month = dt.date.fromisoformat(self._day).replace(day=1)
        last_month = (first_of_this_month - dt.timedelta(days=1)).isoformat()[:7]
        by_month: dict[str, list[ManifestFile]] = {}
        others = []
        for manifest in kept:
            summary = manifest.partitions[0] if manifest.partitions else None
            bounds = (summary.lower_bound, summary.upper_bound) if summary is not None else (None, None)
            if manifest.content != ManifestContent.DATA or manifest.partition_spec_id != spec_id or None in bounds:
                others.append(manifest)
                continue
            low, high = (partition_day(from_bytes(kind, bound))[:7] for bound in bounds)
            (by_month.setdefault(low, []) if low == high and low < last_month else others).append(manifest)
        for group in by_month.values():
            if len(group) == 1:
                others.extend(group)
                continue
            with self.new_manifest_writer(metadata.spec()) as writer:
                for manifest in group:
                    for entry in live_entries(manifest, self._io):
                        writer.add_entry(_existing(entry))
            others.append(writer.to_manifest_file())
        return others


def _existing(entry: ManifestEntry) -> ManifestEntry:
    """A live entry carried into a new manifest: as it was added (snapshot, sequence numbers), now existing."""
    return ManifestEntry.from_args(
        status=ManifestEntryStatus.EXISTING,
        snapshot_id=entry.snapshot_id,
        sequence_number=entry.sequence_number,
        file_sequence_number=entry.file_sequence_number,
        data_file=entry.data_file,
    )

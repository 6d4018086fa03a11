"""What a process keeps of the lake's Iceberg metadata files: their bytes, and each manifest's live entries.

Iceberg never changes a metadata file once written: a table's metadata JSON, a snapshot's manifest list and a manifest
each get a name of their own (a UUID in it) and a commit points the catalog at new ones. So a process reads each once,
with one request, however often a run looks at its tables (to plan, to check what it planned on, to commit, to check
what it committed), and what it wrote it never reads back. PyIceberg's fsspec FileIO would ask for a file's size
before each read and check that a new file does not exist before each write: two requests more per file on S3.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from fsspec import AbstractFileSystem
from pyiceberg.io import FileIO, InputFile, InputStream, OutputFile, OutputStream
from pyiceberg.io.fsspec import FsspecFileIO
from pyiceberg.manifest import ManifestEntry, ManifestFile
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.snapshots import Snapshot

KEPT_BYTES = 256 * 2**20  # the metadata files' bytes a process keeps, newest used first
# The records decoded from manifests (one per live file, a few KB with its column statistics) and from manifest lists
# (one per manifest, about 1 KB) a process keeps: a few hundred MB at most.
KEPT_ENTRIES = 2**15
KEPT_MANIFESTS = 2**15
KEPT_TABLE_METADATA = 64  # tables' metadata files a process keeps parsed
_METADATA_SUFFIXES = (".metadata.json", ".avro")  # a table's metadata JSON; manifest lists and manifests

V = TypeVar("V")


class _Kept(Generic[V]):
    """A least-recently-used map bounded by the summed weight of its values, shared by the process's threads."""

    def __init__(self, limit: int, weight: Callable[[V], int]) -> None:
        self._values: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()
        self._limit, self._weight, self._total = limit, weight, 0

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            value = self._values.get(key)
            if value is not None:
                self._values.move_to_end(key)
            return value

    def put(self, key: Hashable, value: V) -> None:
        with self._lock:
            self._total -= self._weight(self._values.pop(key)) if key in self._values else 0
            self._values[key] = value
            self._total += self._weight(value)
            while self._total > self._limit and len(self._values) > 1:
                self._total -= self._weight(self._values.popitem(last=False)[1])

    def get_or_make(self, key: Hashable, make: Callable[[], V]) -> V:
        """The value kept under `key`, made and kept if none is."""
        found = self.get(key)
        if found is None:
            found = make()
            self.put(key, found)
        return found

    def drop(self, key: Hashable) -> None:
        with self._lock:
            if key in self._values:
                self._total -= self._weight(self._values.pop(key))

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._total = 0


_bytes: _Kept[bytes] = _Kept(KEPT_BYTES, len)
_entries: _Kept[tuple[ManifestEntry, ...]] = _Kept(KEPT_ENTRIES, len)
_lists: _Kept[tuple[ManifestFile, ...]] = _Kept(KEPT_MANIFESTS, len)
_tables: _Kept[TableMetadata] = _Kept(KEPT_TABLE_METADATA, lambda _: 1)


def forget() -> None:
    """Drop what the process kept, as a new process starts (a benchmark's runs, each as its own run worker)."""
    _bytes.clear()
    _entries.clear()
    _lists.clear()
    _tables.clear()


def parsed_table_metadata(location: str) -> TableMetadata | None:
    """A table's metadata file as this process parsed it before (None: not parsed yet, or no longer kept)."""
    return _tables.get(location)


def keep_table_metadata(location: str, metadata: TableMetadata) -> None:
    """Keep a table's metadata as parsed (or as committed), under its file's location: parsing it again costs what
    the snapshots the table keeps add up to."""
    _tables.put(location, metadata)


def manifests(snapshot: Snapshot, file_io: FileIO) -> tuple[ManifestFile, ...]:
    """A snapshot's manifests, its manifest list decoded once per process."""
    return _lists.get_or_make(snapshot.manifest_list, lambda: tuple(snapshot.manifests(file_io)))


def live_entries(manifest: ManifestFile, file_io: FileIO) -> tuple[ManifestEntry, ...]:
    """A manifest's entries of files it holds (not those it records as deleted), sequence numbers filled in."""
    return _entries.get_or_make(
        manifest.manifest_path, lambda: tuple(manifest.fetch_manifest_entry(file_io, discard_deleted=True))
    )


class _KeptInputFile(InputFile):
    def __init__(self, location: str, fs: AbstractFileSystem) -> None:
        super().__init__(location)
        self._fs = fs

    def _read(self) -> bytes:
        # One GET on S3: read from byte 0, as a range (read whole, s3fs first asks for the size, to read a large file in
        # parallel).
        return _bytes.get_or_make(self.location, lambda: self._fs.cat_file(self.location, start=0))

    def __len__(self) -> int:
        return len(self._read())

    def exists(self) -> bool:
        return self._fs.exists(self.location)  # asked each time: the sweep deletes files without this FileIO

    def open(self, seekable: bool = True) -> InputStream:
        return io.BytesIO(self._read())


class _Upload(io.BytesIO):
    """A metadata file being written: sent whole when closed (one PUT on S3), and kept."""

    def __init__(self, location: str, fs: AbstractFileSystem) -> None:
        super().__init__()
        self._location, self._fs = location, fs

    def close(self) -> None:
        if not self.closed:
            data = self.getvalue()
            self._fs.pipe_file(self._location, data)
            _bytes.put(self._location, data)
        super().close()

    def __del__(self) -> None:
        """A stream dropped without being closed (its upload failed) is not sent when collected."""
        io.BytesIO.close(self)


class _KeptOutputFile(OutputFile):
    def __init__(self, location: str, fs: AbstractFileSystem) -> None:
        super().__init__(location)
        self._fs = fs

    def __len__(self) -> int:
        return len(self.to_input_file())

    def exists(self) -> bool:
        return self.to_input_file().exists()

    def create(self, overwrite: bool = False) -> OutputStream:
        """A new file's stream. Not checked for a file of the same name first: Iceberg names each metadata file anew
        (a UUID), and the catalog's compare-and-swap, not the file, decides which commit wins."""
        return _Upload(self.location, self._fs)

    def to_input_file(self) -> InputFile:
        return _KeptInputFile(self.location, self._fs)


class KeptFileIO(FsspecFileIO):
    """PyIceberg's fsspec FileIO, its metadata files read once per process and written with one request."""

    def new_input(self, location: str) -> InputFile:
        if not location.endswith(_METADATA_SUFFIXES):
            return super().new_input(location)
        return _KeptInputFile(location, super().new_input(location)._fs)

    def new_output(self, location: str) -> OutputFile:
        if not location.endswith(_METADATA_SUFFIXES):
            return super().new_output(location)
        return _KeptOutputFile(location, super().new_output(location)._fs)

    def delete(self, location: str | InputFile | OutputFile) -> None:
        super().delete(location)
        _bytes.drop(location if isinstance(location, str) else location.location)

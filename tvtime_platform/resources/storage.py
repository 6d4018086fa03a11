"""Where files live: a local folder or an object store, addressed by one URL and reached through fsspec.

`data/lake` and `s3://bucket/lake` are used the same way by the landing zone, the lake and DuckDB.
fsspec imports a store's driver (s3fs, and through it botocore) only when a URL of that kind is
used, so the local deployment never loads the AWS libraries. The S3 endpoint, region and
credentials come from the standard AWS environment (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, ...),
so any S3-compatible store works.
"""

from __future__ import annotations

import functools
import json
import os
import posixpath
import threading
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import fsspec
from fsspec import AbstractFileSystem


def is_remote(url: str) -> bool:
    """True for an object-store URL (`s3://...`), False for a local path."""
    return "://" in url and not url.startswith("file://")


def filesystem(url: str) -> tuple[AbstractFileSystem, str]:
    """The filesystem holding `url`, and the path within it.

    Listings are never cached: a sensor or a partition rewrite must see the store as it is now.
    """
    options = {"use_listings_cache": False} if is_remote(url) else {}
    return fsspec.core.url_to_fs(url, **options)


def files_under(url: str) -> dict[str, dict]:
    """The files under a folder or prefix, by their path relative to it, with their listing details, from one listing:
    on S3 a request a page, also for a prefix that holds nothing (an `exists` first costs two requests more, and s3fs's
    `find` of a prefix that holds nothing asks about it as a file twice). Nothing for one that does not exist."""
    fs, root = filesystem(url)
    root = root.rstrip("/")
    parent, inside, name = root.rpartition("/")
    if is_remote(url) and inside:
        listed = fs.find(parent, prefix=f"{name}/", detail=True)
    else:
        listed = fs.find(root, detail=True)
    return {path[len(root) + 1 :]: info for path, info in listed.items() if info.get("type", "file") == "file"}


def protocol_filesystem(protocol: str) -> AbstractFileSystem:
    """A filesystem for DuckDB to read `protocol://` paths through, which asks an object store about a Parquet file
    once per process (see `_keeping_parquet_info`). An instance of its own: the shared one serves listings and records,
    which change."""
    kind = fsspec.get_filesystem_class(protocol)
    if protocol in ("s3", "s3a"):  # s3fs's `_info`, whose arguments `_keeping_parquet_info` knows
        kind = _keeping_parquet_info(kind)
    return kind(use_listings_cache=False, skip_instance_cache=True)


# How many Parquet files' sizes and times a process keeps: a few days of a table's versions and parts.
KEPT_PARQUET_INFO = 20_000


@functools.cache
def _keeping_parquet_info(kind: type[AbstractFileSystem]) -> type[AbstractFileSystem]:
    """s3fs's filesystem class, keeping what it learns about each Parquet file (its size and time).

    DuckDB asks for them three or four times per file and query, each a HEAD request on S3, and a day that grows by
    appending is read from all its versions' files several times per run. Keeping them is safe because the platform
    writes each Parquet file once, under a name of its own (a version folder, a part's key and writer), and never
    rewrites one: a file's size and time never change, it can only be deleted (whose read then fails as before). Other
    files (a catalog, a record) are asked each time."""

    class KeepingParquetInfo(kind):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self._parquet_info: OrderedDict[str, dict] = OrderedDict()
            self._parquet_info_lock = threading.Lock()

        async def _info(self, path: str, *args, **kwargs) -> dict:
            key = self._strip_protocol(path)
            # (Positional arguments after the path repeat it as bucket and key; a version or a refresh is asked anew.)
            if any(kwargs.values()) or any(a is not None for a in args[2:]) or not key.endswith(".parquet"):
                return await super()._info(path, *args, **kwargs)
            with self._parquet_info_lock:
                known = self._parquet_info.get(key)
            if known is None:
                known = await super()._info(path)  # a file not found raises, and is asked again next time
                with self._parquet_info_lock:
                    self._parquet_info[key] = known
                    while len(self._parquet_info) > KEPT_PARQUET_INFO:
                        self._parquet_info.popitem(last=False)
            return dict(known)

    KeepingParquetInfo.__name__ = KeepingParquetInfo.__qualname__ = f"KeepingParquetInfo{kind.__name__}"
    return KeepingParquetInfo


def join(url: str, *parts: str) -> str:
    """`url` with path parts appended, keeping its scheme (`s3://b/lake` + `t` = `s3://b/lake/t`)."""
    return posixpath.join(url.rstrip("/"), *parts)


def basename(path: str) -> str:
    """The last part of a path as a filesystem lists it (folders may end with a slash)."""
    return path.rstrip("/").rsplit("/", 1)[-1]


def replace_json(url: str, value: Mapping) -> None:
    """Write a small JSON file whole or not at all: a rename over it in a folder, one PUT on an object store (a reader
    never sees it half written, whoever is killed when)."""
    data = json.dumps(value, indent=1, default=str).encode()
    fs, path = filesystem(url)
    if is_remote(url):
        fs.pipe_file(path, data)
        return
    _rename_into(Path(path), data)


def _rename_into(target: Path, data: bytes) -> None:
    """`data` as the file `target`, through a hidden temporary file renamed over it (atomic on POSIX)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, target)


def move_in(local: str, url: str) -> None:
    """A local file moved to `url`, its folder made if needed: a rename on this machine, an upload to S3."""
    fs, target = filesystem(url)
    if is_remote(url):
        fs.put_file(local, target)
    else:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(local).replace(target)


def read_files(urls: Sequence[str]) -> list[bytes]:
    """The bytes of each file, read by its exact name (no glob: fsspec's `cat` of a list would expand `[a]` or `*`), a
    few at a time (an object store answers each request in tens of milliseconds); FileNotFoundError if one is gone."""

    if len(urls) < 2 or not is_remote(urls[0]):
        return [read_small_file(url) for url in urls]
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(read_small_file, urls))


def read_small_file(url: str) -> bytes:
    """A small file's bytes (a record, a part's `read.json`): on S3 in one GET, where s3fs would first ask its size in a
    HEAD request to split a large file's download; FileNotFoundError if it is gone."""
    fs, path = filesystem(url)
    if "s3" in fs.protocol:
        return fs.cat_file(path, max_concurrency=1)
    return fs.cat_file(path)

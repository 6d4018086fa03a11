"""Where files live: a local folder or an object store, addressed by one URL and reached through fsspec.

`data/lake` and `s3://bucket/lake` are used the same way by the landing zone, the lake and DuckDB.
fsspec imports a store's driver (s3fs, and through it botocore) only when a URL of that kind is
used, so the local deployment never loads the AWS libraries. The S3 endpoint, region and
credentials come from the standard AWS environment (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, ...),
so any S3-compatible store works.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import posixpath
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import fsspec
from fsspec import AbstractFileSystem
from fsspec.asyn import sync


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


def full_url(fs: AbstractFileSystem, path: str) -> str:
    """A path as a filesystem lists it, made into a URL again (`bucket/key` -> `s3://bucket/key`)."""
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return path if protocol in ("file", "local") else fs.unstrip_protocol(path)


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


@dataclass(frozen=True)
class Found:
    """A small file as one read found it, for a conditional write to compare against: its bytes (None: there was no
    file) and, on S3, its ETag."""

    data: bytes | None
    tag: str | None = None


def read_found(url: str) -> Found:
    """A small file's bytes and, on S3, its ETag, from one GET (what `replace_json_if` compares)."""
    fs, path = filesystem(url)
    if "s3" not in fs.protocol:
        try:
            return Found(fs.cat_file(path))
        except FileNotFoundError:
            return Found(None)
    bucket, key, _ = fs.split_path(path)
    return sync(fs.loop, _get_with_etag, fs, bucket, key)


async def _get_with_etag(fs: AbstractFileSystem, bucket: str, key: str) -> Found:
    try:
        response = await fs._call_s3("get_object", Bucket=bucket, Key=key)
    except FileNotFoundError:
        return Found(None)
    async with response["Body"] as body:
        return Found(await body.read(), response["ETag"])


def replace_json_if(url: str, value: Mapping, expected: Found) -> bool:
    """`replace_json`, only if the file is still as `expected` found it (still absent, if it was): False, writing
    nothing, if another writer replaced (or made) it since. In a folder, under an exclusive lock on a file beside it
    (`.<name>.lock`, held by writers only: readers read the renamed file as before); on S3, a conditional PUT (If-Match
    its ETag, or If-None-Match for a file that was absent), which S3 decides atomically."""
    data = json.dumps(value, indent=1, default=str).encode()
    fs, path = filesystem(url)
    if not is_remote(url):
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target.with_name(f".{target.name}.lock"), "a") as lock:
            _lock(lock, target)  # released when the file closes, or the process dies
            try:
                now = target.read_bytes()
            except FileNotFoundError:
                now = None
            if now != expected.data:
                return False
            _rename_into(target, data)
        return True
    bucket, key, _ = fs.split_path(path)
    condition = {"IfMatch": expected.tag} if expected.data is not None else {"IfNoneMatch": "*"}
    try:
        fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, **condition)
    except OSError as error:
        if _precondition_failed(error):
            return False
        raise
    return True


# How long a writer waits for another to release a record's lock (a commit holds it for milliseconds).
LOCK_TIMEOUT_SECONDS = 120


def _lock(lock, target: Path) -> None:
    """An exclusive lock on an open file, waiting up to `LOCK_TIMEOUT_SECONDS` (a process that holds it is stopped,
    not dead: a dead one's lock is released by the kernel)."""
    deadline, pause = time.monotonic() + LOCK_TIMEOUT_SECONDS, 0.01
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{target} stayed locked by another writer for {LOCK_TIMEOUT_SECONDS} s: a process holding "
                    f"{lock.name} is stopped or hung (find it with: fuser {lock.name}); end it, then run again."
                ) from None
            time.sleep(pause)
            pause = min(pause * 2, 1.0)


def _precondition_failed(error: OSError) -> bool:
    """Whether S3 refused a conditional write because the object changed (412), was being written by another
    conditional write (409), or, asked to match an ETag, is gone (404)."""
    response = getattr(error.__cause__, "response", None) or {}
    code = response.get("Error", {}).get("Code")
    return code in {"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "404"}


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

"""Where files live: a local folder or an object store, addressed by one URL and reached through fsspec.

`data/lake` and `s3://bucket/lake` are used the same way by the landing zone, the lake and DuckDB.
fsspec imports a store's driver (s3fs, and through it botocore) only when a URL of that kind is
used, so the local deployment never loads the AWS libraries. The S3 endpoint, region and
credentials come from the standard AWS environment (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, ...),
so any S3-compatible store works.
"""

from __future__ import annotations

import json
import os
import posixpath
import uuid
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


def protocol_filesystem(protocol: str) -> AbstractFileSystem:
    """A filesystem for a protocol, for DuckDB to read and write `protocol://` paths through."""
    return fsspec.filesystem(protocol, use_listings_cache=False)


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
    target = Path(path)
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

    def read(url: str) -> bytes:
        fs, path = filesystem(url)
        return fs.cat_file(path)

    if len(urls) < 2 or not is_remote(urls[0]):
        return [read(url) for url in urls]
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(read, urls))

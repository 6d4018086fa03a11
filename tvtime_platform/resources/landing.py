"""The landing zone: where the app's collectors drop hourly event files, and the show catalog.

Layout under a folder or an S3 prefix: `dt=YYYY-MM-DD/hour=HH/*.jsonl.gz` for events (the day and
hour they *arrived*) and `catalog/{shows,seasons,episodes}.jsonl.gz` for the catalog. Files are
named by URL (a path, or `s3://bucket/key`), read where they are, by the name listed (no globbing).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from fnmatch import fnmatchcase
from typing import NamedTuple

import dagster as dg
from pydantic import Field

from tvtime_platform.resources.storage import files_under, join

CATALOG_FOLDER = "catalog"
EVENT_FILE_GLOB = "hour=*/*.jsonl.gz"
CATALOG_FILE_GLOB = "*.jsonl.gz"


class LandedFile(NamedTuple):
    """A landing file as listed: its size, and its version (an object's ETag, a file's mtime), which changes when the
    file is rewritten under its name."""

    size: int
    version: str


class LandingZone(dg.ConfigurableResource):
    """A landing folder or S3 prefix, and the rule for how late an event may arrive and still join its day."""

    url: str = Field(description="landing folder, or an S3 prefix such as s3://bucket/landing")
    late_arrival_days: int = Field(
        default=1,
        ge=0,
        description="events landing up to this many days after their event day still join that day's partition",
    )
    queue_url: str | None = Field(
        default=None,
        description="SQS queue receiving the landing bucket's S3 event notifications: landing_sensor then lists only "
        "the days its messages name (see landing_queue); unset, it lists the open days every tick",
    )

    def day_url(self, day: dt.date) -> str:
        return join(self.url, f"dt={day.isoformat()}")

    def event_files(self, day: dt.date) -> dict[str, LandedFile]:
        """The event files that arrived on `day`, in arrival order (hour, then name), with their sizes and versions."""
        return {
            join(self.day_url(day), rel): LandedFile(info["size"], _version(info))
            for rel, info in self._listing(self.day_url(day), EVENT_FILE_GLOB).items()
        }

    def catalog_url(self) -> str:
        return join(self.url, CATALOG_FOLDER)

    def catalog_files(self) -> list[str]:
        """The names of the catalog files present."""
        return list(self._listing(self.catalog_url(), CATALOG_FILE_GLOB))

    def open_days(self, today: dt.date) -> list[dt.date]:
        """The landing days collectors may still write to, oldest first: today's, and the `late_arrival_days` and one
        more before it (a file that arrives just after midnight, a collector's clock a little behind). Older days are
        closed: a file landing there is found by the slower reconciliation of the whole zone."""
        return [today - dt.timedelta(days=k) for k in range(self.late_arrival_days + 1, -1, -1)]

    def day_fingerprints(self, days: list[dt.date]) -> dict[str, str]:
        """Fingerprint of the files of each of these landing days that holds any, from one listing of each day's
        folder: what a change in those days costs to see, whatever the zone holds besides."""
        listed = {day.isoformat(): self._listing(self.day_url(day), EVENT_FILE_GLOB) for day in days}
        return {day: _fingerprint(files) for day, files in listed.items() if files}

    def landed_days(self) -> dict[str, str]:
        """Fingerprint of every landing day's files: a change of any name, size or version changes it.

        One recursive listing of the zone (paginated by the filesystem layer) serves every day: it costs what the
        zone holds, so only the reconciliation of closed days asks for it.
        """
        by_day: dict[str, dict[str, dict]] = {}
        for rel, info in self._listing(self.url, f"dt=*/{EVENT_FILE_GLOB}").items():
            day, _, inside = rel.partition("/")
            by_day.setdefault(day.removeprefix("dt="), {})[inside] = info
        return {day: _fingerprint(files) for day, files in sorted(by_day.items())}

    def catalog_fingerprint(self) -> str | None:
        """Fingerprint of the catalog files, None while there are none."""
        files = self._listing(self.catalog_url(), CATALOG_FILE_GLOB)
        return _fingerprint(files) if files else None

    def _listing(self, url: str, pattern: str) -> dict[str, dict]:
        """Files under `url` whose path relative to it matches `pattern`, sorted, with their listing details."""
        found = {
            rel: info
            for rel, info in files_under(url).items()
            if fnmatchcase(rel, pattern) and rel.count("/") == pattern.count("/")
        }
        return dict(sorted(found.items()))


def _version(info: dict) -> str:
    """What changes when a file is rewritten: an object's ETag; a file's mtime and its inode change time (which no
    copy that keeps times, `cp -p` or `rsync -t`, can set back)."""
    return str(info.get("ETag") or f"{info.get('mtime')}/{info.get('created')}")


def _fingerprint(files: dict[str, dict]) -> str:
    """A digest of names, sizes and versions."""
    digest = hashlib.sha1()
    for rel, info in sorted(files.items()):
        digest.update(f"{rel}|{info['size']}|{_version(info)}\n".encode())
    return digest.hexdigest()[:16]

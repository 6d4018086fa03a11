"""The landing zone: where the app's collectors drop hourly event files, and the show catalog.

Layout: `<path>/dt=YYYY-MM-DD/hour=HH/*.jsonl.gz` for events (the day and hour they *arrived*)
and `<path>/catalog/{shows,seasons,episodes}.jsonl.gz` for the catalog.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
from pydantic import Field

CATALOG_FOLDER = "catalog"
EVENT_FILE_GLOB = "hour=*/*.jsonl.gz"
TRUNCATED = "truncated: the gzip stream ends early (an interrupted upload?)"


def gzip_problem(path: str) -> str | None:
    """What is wrong with a gzip file, or None when every member is complete.

    DuckDB reads a truncated gzip file up to where it breaks without complaint, so completeness is
    checked here, streaming (zlib releases the GIL, so files are checked in parallel threads).
    """
    decompressor, ended = zlib.decompressobj(31), False
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                while chunk:
                    if ended:  # another gzip member follows
                        decompressor, ended = zlib.decompressobj(31), False
                    decompressor.decompress(chunk)
                    ended = decompressor.eof
                    chunk = decompressor.unused_data if ended else b""
    except zlib.error as error:
        return f"not gzip data: {error}"
    return None if ended else TRUNCATED


def _fingerprint(folder: Path, pattern: str) -> str:
    digest = hashlib.sha1()
    for f in sorted(folder.glob(pattern)):
        st = f.stat()
        digest.update(f"{f.relative_to(folder)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


class LandingZone(dg.ConfigurableResource):
    """A landing folder, and the rule for how late an event may arrive and still join its day."""

    path: str = Field(description="landing folder")
    late_arrival_days: int = Field(
        default=1,
        ge=0,
        description="events landing up to this many days after their event day still join that day's partition",
    )

    def day_folder(self, day: dt.date) -> Path:
        return Path(self.path) / f"dt={day.isoformat()}"

    def event_files(self, day: dt.date) -> list[str]:
        """The event files that arrived on `day`, in arrival order (hour, then name)."""
        return sorted(str(p) for p in self.day_folder(day).glob(EVENT_FILE_GLOB))

    def file_problems(self, files: list[str]) -> dict[str, str]:
        """The files among `files` that are not complete gzip, with what is wrong with each."""
        with ThreadPoolExecutor(max_workers=2) as pool:
            found = dict(zip(files, pool.map(gzip_problem, files)))
        return {f: problem for f, problem in found.items() if problem}

    def catalog_folder(self) -> Path:
        return Path(self.path) / CATALOG_FOLDER

    def landed_days(self) -> dict[str, str]:
        """Fingerprint of every landing day's files: a change of any name, size or mtime changes it."""
        return {folder.name.removeprefix("dt="): _fingerprint(folder, EVENT_FILE_GLOB) for folder in sorted(Path(self.path).glob("dt=*"))}

    def catalog_fingerprint(self) -> str | None:
        """Fingerprint of the catalog files, None while there are none."""
        folder = self.catalog_folder()
        return _fingerprint(folder, "*.jsonl.gz") if any(folder.glob("*.jsonl.gz")) else None

    def partitions_reading(self, landing_day: str) -> list[str]:
        """Event-day partitions whose input includes files landed on `landing_day` (itself and the late window)."""
        day = dt.date.fromisoformat(landing_day)
        return [(day - dt.timedelta(days=k)).isoformat() for k in range(self.late_arrival_days + 1)]

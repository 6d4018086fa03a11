"""Landing files parsed once: each file's lines, read and judged, kept in the lake under `_parsed/`.

What a landing file's lines parse to (the reader of `transforms/landed_lines.py`, then
`transforms.app_events.parse_sql`: typed fields and each line's verdict) does not depend on the day
that reads it, so it is kept, keyed by the file's identity (URL, size and version: an object's ETag,
a file's mtime) and by a digest of the rules themselves. A run of `app_events` parses only the files
no run parsed before, and assembles its day (ownership, late arrivals, duplicates, the accounting)
from the parts of the day's files and of its late window's. A file rewritten under its name has a
new key and is parsed again; a file removed from the landing zone is no longer listed, so its part is
no longer read; new rules make every key new. Parts no listed file names are deleted once older than
the lake's `sweep_after_seconds` (a run listing the landing day may still be reading them before).

Layout: `<lake>/_parsed/dt=<landing day>/<key>/lines-<n>.parquet` (none for a file without lines) and
`<key>/read.json`: the file's lines counted apart from the reader, its problem, and the event days of its valid
lines (which days, besides its own, may need its lines). `read.json` is
written last, so a part without it (its run was killed) counts as not parsed, is parsed again, and is
swept like any stale part.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import inspect
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import duckdb
import pyarrow as pa

from tvtime_platform.resources.landing import LandedFile
from tvtime_platform.resources.storage import basename, files_under, filesystem, join, move_in, read_files, replace_json
from tvtime_platform.transforms import app_events as rules
from tvtime_platform.transforms import landed_lines

PARSED = "_parsed"
READ = "read.json"
# What read.json holds: parts written before a field was added are not read (their keys differ).
READ_FIELDS = ("lines", "problem", "files", "event_days")
# The rules a part was made by: the reader's code, the parsing SQL, the fields and what read.json holds. Any change
# makes every key new.
RULES = hashlib.sha1(
    (inspect.getsource(landed_lines) + rules.parse_sql("landed_lines") + repr((rules.FIELDS, READ_FIELDS))).encode()
).hexdigest()[:12]


@dataclass(frozen=True)
class Part:
    """One landing file's parse: where it is kept, and whether a run has finished it."""

    landing_date: dt.date
    source_file: str
    folder: str
    ready: bool


@dataclass
class ParsedLanding:
    """The parts of the landing files under `<lake_url>/_parsed`."""

    lake_url: str
    sweep_after_seconds: float
    # What this instance listed in each part folder and read of each `read.json` (or wrote): a run asks once.
    _present: dict[str, dict[str, int]] = field(default_factory=dict)  # each file's size
    _read: dict[str, dict] = field(default_factory=dict)

    def parts(self, files: Mapping[dt.date, Mapping[str, LandedFile]]) -> list[Part]:
        """The part of each listed file (by landing day), in arrival order; `ready` where a run finished it. Stale
        parts of those days (no listed file's, or unfinished, and older than `sweep_after_seconds`) are deleted."""
        parts = []
        for day, listed in sorted(files.items()):
            folder = join(self.lake_url, PARSED, f"dt={day.isoformat()}")
            found = self._listing(folder)
            keys = {url: _key(url, landed) for url, landed in listed.items()}
            for url, key in keys.items():
                parts.append(Part(day, url, join(folder, key), READ in found.get(key, {})))
                self._present[parts[-1].folder] = {name: size for name, (_, size) in found.get(key, {}).items()}
            self._sweep(folder, found, set(keys.values()))
        return parts

    def parse_missing(
        self, parts: list[Part], con: duckdb.DuckDBPyConnection, scratch: str, threads: int, log: Callable[[str], None]
    ) -> int:
        """Read and judge the files of the parts no run finished (`threads` at a time), and keep each file's lines and
        count as its part; returns how many. Two runs parsing one file at once each write their own files, and
        `read.json`, the same either way, names one run's."""
        missing = [p for p in parts if not p.ready]
        if not missing:
            return 0
        began = time.perf_counter()
        writer = uuid.uuid4().hex[:8]
        work = Path(scratch, f"parse-{writer}")  # a folder of its own: a run may parse twice (`damaged`)
        work.mkdir()
        lines = f"{work}/landed_lines.parquet"
        reads = landed_lines.write_parquet(
            [(p.landing_date, p.source_file) for p in missing], rules.FIELDS, lines, threads
        )
        by_file = {p.source_file: p for p in missing}
        con.read_parquet(lines).create_view("landed_lines")
        con.register("part_keys", pa.table({"source_file": list(by_file), "part": [part_key(p) for p in missing]}))
        written = f"{work}/parts"
        parsed = f"SELECT p.*, k.part FROM ({rules.parse_sql('landed_lines')}) p JOIN part_keys k USING (source_file)"
        target = written.replace("'", "''")  # COPY takes no bound path; a folder may be named with quotes
        # zstd's level 1: 2M lines' parts were written in 1.7 s instead of 2.4 s at the default 3, and came out smaller.
        options = "FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, PARTITION_BY (part)"
        con.execute(f"COPY ({parsed}) TO '{target}' ({options})")
        days = _event_days(con, sorted(str(f) for f in Path(written).glob("part=*/*.parquet")))
        for read in reads.to_pylist():
            part = by_file[read["source_file"]]
            local = Path(written, f"part={part_key(part)}")
            sizes = {}
            for k, file in enumerate(sorted(local.glob("*.parquet")) if local.is_dir() else []):
                sizes[f"lines-{writer}-{k}.parquet"] = file.stat().st_size
                move_in(str(file), join(part.folder, f"lines-{writer}-{k}.parquet"))
            record = {"lines": read["lines"], "problem": read["problem"], "files": list(sizes)}
            # (`sizes` is not among READ_FIELDS: parts written before it are checked for their files' presence only.)
            record |= {"event_days": days.get(part_key(part), []), "sizes": sizes}
            replace_json(join(part.folder, READ), record)
            self._read[part.folder], self._present[part.folder] = record, sizes
        log(f"Parsed {len(missing)} landing file(s) no run had parsed, in {time.perf_counter() - began:.1f}s")
        return len(missing)

    def load(self, con: duckdb.DuckDBPyConnection, parts: list[Part], name: str) -> pa.Table:
        """The parts' lines as the view `name`, each with a `row` identity unique in it (its file's number and its place
        in the file), as `app_events_plan(..., parsed_parts=True)` reads them; returns what reading each part's landing
        file found (`landed_lines.COUNT_SCHEMA`): its lines, counted apart from the reader, and its problem."""
        rows, files = [], []
        for part, read in zip(parts, self._reads(parts), strict=True):
            files += [f"{part.folder}/{f}" for f in read["files"]]
            rows.append(
                {
                    "landing_date": part.landing_date,
                    "source_file": part.source_file,
                    "lines": read["lines"],
                    "problem": read["problem"],
                }
            )
        if files:
            con.register(f"{name}_files", pa.table({"filename": files, "file_index": list(range(len(files)))}))
            con.read_parquet(files, filename=True, file_row_number=True).create_view(f"{name}_parts")
            sql = (
                f"SELECT p.* EXCLUDE (filename, file_row_number), f.file_index * 4294967296 + p.file_row_number AS row "
                f"FROM {name}_parts p JOIN {name}_files f USING (filename)"
            )
        else:
            con.register(f"{name}_none", pa.Table.from_pylist([], schema=landed_lines.SCHEMA))
            sql = f"SELECT *, CAST(0 AS BIGINT) AS row FROM ({rules.parse_sql(f'{name}_none')})"
        con.sql(sql).create_view(name)
        return pa.Table.from_pylist(rows, schema=landed_lines.COUNT_SCHEMA)

    def event_days(self, parts: list[Part]) -> dict[str, set[str]]:
        """The event days (ISO dates) of each finished part's valid lines, by part key."""
        return {part_key(p): set(read["event_days"]) for p, read in zip(parts, self._reads(parts), strict=True)}

    def damaged(self, parts: list[Part]) -> list[Part]:
        """The finished parts whose `read.json` names a lines file their folder did not hold when listed, or held at
        another size than written (deleted or cut short by hand, lost with a disk), as parts to parse again: reading
        them would fail every run of their days."""
        return [
            replace(p, ready=False)
            for p, read in zip(parts, self._reads(parts), strict=True)
            if not self._whole(p, read)
        ]

    def _whole(self, part: Part, read: dict) -> bool:
        """Whether the part's folder held, when listed, each lines file its `read.json` names, at the size written."""
        present = self._present.get(part.folder, {})
        written = read.get("sizes", {})
        return all(name in present and written.get(name, present[name]) == present[name] for name in read["files"])

    def _reads(self, parts: list[Part]) -> list[dict]:
        """Each finished part's `read.json`, read once by this instance."""
        unread = [p.folder for p in parts if p.folder not in self._read]
        for folder, record in zip(unread, read_files([join(f, READ) for f in unread]), strict=True):
            self._read[folder] = json.loads(record)
        return [self._read[p.folder] for p in parts]

    def _listing(self, folder: str) -> dict[str, dict[str, tuple[float, int]]]:
        """Each part folder under a landing day's folder: its files' names, modification times and sizes."""
        found: dict[str, dict[str, tuple[float, int]]] = {}
        for rel, info in files_under(folder).items():
            key, _, name = rel.partition("/")
            found.setdefault(key, {})[name] = (_modified(info), int(info.get("size") or 0))
        return found

    def _sweep(self, folder: str, found: dict[str, dict[str, tuple[float, int]]], current: set[str]) -> None:
        fs, root = filesystem(folder)
        now = time.time()
        for key, files in found.items():
            stale = key not in current or READ not in files
            if stale and all(now - modified > self.sweep_after_seconds for modified, _ in files.values()):
                fs.rm(f"{root.rstrip('/')}/{key}", recursive=True)


def _event_days(con: duckdb.DuckDBPyConnection, files: list[str]) -> dict[str, list[str]]:
    """The distinct event days of the valid lines in freshly written part files (hive-partitioned by `part`)."""
    if not files:
        return {}
    rows = con.execute(
        "SELECT part, list(DISTINCT CAST(event_date AS VARCHAR) ORDER BY CAST(event_date AS VARCHAR)) "
        "FROM read_parquet($files, hive_partitioning = true) WHERE schema_reason IS NULL GROUP BY part",
        {"files": files},
    ).fetchall()
    return {part: days for part, days in rows}


def part_key(part: Part) -> str:
    """The key a part is kept under: its file's identity and the rules' digest."""
    return basename(part.folder)


def _key(url: str, landed: LandedFile) -> str:
    return hashlib.sha1(f"{RULES}|{url}|{landed.size}|{landed.version}".encode()).hexdigest()[:24]


def _modified(info: dict) -> float:
    modified = info.get("LastModified") or info.get("mtime") or info.get("created") or 0
    return modified.timestamp() if isinstance(modified, dt.datetime) else float(modified)

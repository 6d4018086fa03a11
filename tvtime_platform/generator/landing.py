"""Landing files as the app's collectors write them: hourly gzip JSON lines, with real-world defects.

A file lands in the folder of the hour it *arrived* (`dt=YYYY-MM-DD/hour=HH/`), which is
usually the hour the event happened, but not for late events (delivered in the next day's
files) nor retries (duplicates, a little later). Defects are injected at configurable rates so
the ingestion's quarantine has something real to catch.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tvtime_platform.generator import text
from tvtime_platform.generator.catalog import Catalog
from tvtime_platform.generator.events import COUNTRIES, DAY_MS, EVENT_TYPES, PLATFORMS, Events, simulate_chunk

HOUR_MS = 3_600_000
USERS_PER_CHUNK = 200_000


@dataclass(frozen=True)
class Defects:
    """Share of events (or count of files) carrying each defect; `scaled(0)` gives clean data."""

    malformed_json: float = 0.0005
    missing_field: float = 0.0005
    wrong_type: float = 0.0005
    invalid_value: float = 0.0003
    duplicate: float = 0.003
    late: float = 0.005
    unknown_episode: float = 0.001
    empty_files_per_day: int = 1

    def scaled(self, factor: float) -> Defects:
        values = {k: v * factor for k, v in asdict(self).items()}
        values["empty_files_per_day"] = round(self.empty_files_per_day * factor)
        return Defects(**values)


@dataclass
class DayStats:
    """What was written for one generated day, so callers can check their expectations."""

    events: int = 0
    lines: int = 0
    files: int = 0
    defects: dict[str, int] = field(default_factory=dict)

    def add(self, other: DayStats) -> None:
        self.events += other.events
        self.lines += other.lines
        self.files += other.files
        for k, v in other.defects.items():
            self.defects[k] = self.defects.get(k, 0) + v


def write_day(
    landing: Path,
    catalog: Catalog,
    seed: int,
    day: dt.date,
    n_users: int,
    defects: Defects,
    pool: ThreadPoolExecutor,
    progress: Callable[[int, DayStats], None] | None = None,
) -> DayStats:
    """Simulate and land one day of events for users 1..n_users, chunk by chunk (bounded memory); `progress` hears
    the users done and the day's stats so far after each chunk."""
    day_ordinal = (day - dt.date(1970, 1, 1)).days
    stats = DayStats()
    pending: list[Future] = []
    for chunk, first_user in enumerate(range(1, n_users + 1, USERS_PER_CHUNK)):
        events = simulate_chunk(catalog, seed, day_ordinal, first_user, min(USERS_PER_CHUNK, n_users - first_user + 1))
        lines, arrival_ms, chunk_stats = _format_lines(
            events, catalog, defects, np.random.default_rng([seed, 3, day_ordinal, first_user])
        )
        for f in pending:  # at most two chunks in memory: the one being written and this one
            f.result()
        pending = _submit_files(pool, landing, lines, arrival_ms, f"part-{day:%Y%m%d}-{chunk:04d}")
        chunk_stats.files = len(pending)
        stats.add(chunk_stats)
        if progress:
            progress(min(first_user + USERS_PER_CHUNK - 1, n_users), stats)
    for f in pending:
        f.result()
    empty_rng = np.random.default_rng([seed, 4, day_ordinal])
    for k in range(defects.empty_files_per_day):
        hour = int(empty_rng.integers(0, 24))
        text.gzip_write(
            _hour_folder(landing, day, hour) / f"part-{day:%Y%m%d}-empty{k}.jsonl.gz", pa.array([], pa.string())
        )
        stats.files += 1
    stats.defects["empty_file"] = defects.empty_files_per_day
    return stats


def _hour_folder(landing: Path, day: dt.date, hour: int) -> Path:
    return landing / f"dt={day:%Y-%m-%d}" / f"hour={hour:02d}"


def _format_lines(
    events: Events, catalog: Catalog, defects: Defects, rng: np.random.Generator
) -> tuple[pa.Array, np.ndarray, DayStats]:
    n = len(events)
    mask = {
        name: rng.random(n) < getattr(defects, name)
        for name in ("malformed_json", "missing_field", "wrong_type", "invalid_value", "late", "duplicate")
    }
    unknown_episode = (events.episode_id > 0) & (rng.random(n) < defects.unknown_episode)
    episode_id = np.where(
        unknown_episode, catalog.max_episode_id + 1 + rng.integers(0, 1_000_000, n), events.episode_id
    )
    missing = np.where(mask["missing_field"], rng.integers(0, 3, n), -1)  # 0: event_type, 1: user_id, 2: ts

    arrival_ms = events.ts_ms + rng.exponential(20_000.0, n).astype(np.int64)
    late = mask["late"]
    arrival_ms[late] = (events.ts_ms[late] // DAY_MS + 1) * DAY_MS + rng.integers(0, 6 * HOUR_MS, int(late.sum()))

    user = text.ints(events.user_id)
    platform = pc.if_else(pa.array(mask["invalid_value"]), "smart-fridge", pa.array(PLATFORMS[events.platform]))
    lines = text.join(
        '{"event_id":"',
        text.uuid_strings(rng, n),
        '"',
        text.where(missing != 0, text.join(',"event_type":"', pa.array(EVENT_TYPES[events.event_type]), '"')),
        text.where(
            missing != 1,
            pc.if_else(
                pa.array(mask["wrong_type"]), text.join(',"user_id":"', user, '"'), text.join(',"user_id":', user)
            ),
        ),
        text.where(missing != 2, text.join(',"ts":"', text.iso_timestamps(events.ts_ms, events.offset_min), '"')),
        ',"platform":"',
        platform,
        '","country":"',
        pa.array(COUNTRIES[events.country]),
        '"',
        text.where(events.show_id > 0, text.join(',"show_id":', text.ints(events.show_id))),
        text.where(episode_id > 0, text.join(',"episode_id":', text.ints(episode_id))),
        text.where(events.rating > 0, text.join(',"rating":', text.ints(events.rating))),
        "}\n",
    )
    truncated = text.join(pc.utf8_slice_codeunits(lines, 0, -15), "\n")
    lines = pc.if_else(pa.array(mask["malformed_json"]), truncated, lines)

    # Retries: the same line delivered again up to an hour later.
    dup = np.flatnonzero(mask["duplicate"])
    lines = pa.concat_arrays([lines, lines.take(pa.array(dup))])
    arrival_ms = np.concatenate([arrival_ms, arrival_ms[dup] + rng.integers(1_000, HOUR_MS, len(dup))])
    defect_counts = {k: int(v.sum()) for k, v in mask.items()}
    defect_counts["unknown_episode"] = int(unknown_episode.sum())
    return lines, arrival_ms, DayStats(events=n, lines=len(lines), defects=defect_counts)


def _submit_files(
    pool: ThreadPoolExecutor, landing: Path, lines: pa.Array, arrival_ms: np.ndarray, stem: str
) -> list[Future]:
    """One file per arrival hour; zlib releases the GIL, so the pool compresses files in parallel."""
    hour_key = arrival_ms // HOUR_MS
    order = np.argsort(hour_key, kind="stable")
    keys, starts = np.unique(hour_key[order], return_index=True)
    ends = np.append(starts[1:], len(order))
    ordered = lines.take(pa.array(order))
    futures = []
    for key, start, end in zip(keys, starts, ends, strict=True):
        moment = dt.datetime.fromtimestamp(int(key) * 3600, tz=dt.UTC)
        path = _hour_folder(landing, moment.date(), moment.hour) / f"{stem}.jsonl.gz"
        futures.append(pool.submit(text.gzip_write, path, ordered.slice(int(start), int(end - start))))
    return futures

"""The bookkeeping of an `app_events` day that grows by appending: what each version folder's rows come from.

Each version folder a DuckDB run writes holds a segment (`segment.json`: the landing files' parts its rows come from,
their facts, the rows and bytes of its files), the hashes of the event ids it kept, and the distinct users of the day
so far. A run appends when the parts the day holds are the first of those now listed (docs/lake.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass, field

import dagster as dg
import duckdb

from tvtime_platform.lake import Lake, Version
from tvtime_platform.resources.parsed_landing import RULES, ParsedLanding, Part, part_key
from tvtime_platform.resources.storage import join, move_in, read_files, replace_json
from tvtime_platform.transforms import app_events as rules

# In each app_events version folder: the parts its rows come from and their facts, and the hashes of the event ids kept.
SEGMENT, EVENT_HASHES = "segment.json", "event_hashes.parquet"
# Beside them: the distinct users of the day's kept events so far (this version's and those it carries), so that an
# append counts the day's users from one file instead of every version's.
DAY_USERS = "day_users.parquet"
# The rules a segment was assembled by: its parts' (the reader and the parsing) and the plan's statements (the day and
# the late window are parameters, not in the text). Segments assembled otherwise are not added to.
_PLAN = rules.app_events_plan(dt.date(2024, 1, 1), 1, parsed_parts=True, appending=True)
ASSEMBLY_RULES = hashlib.sha1(repr((RULES, _PLAN.steps, _PLAN.outputs, _PLAN.facts)).encode()).hexdigest()[:12]
# What a segment must hold to be added to (those written before `own_parts` was kept are not).
SEGMENT_NEEDS = ("rules", "late_arrival_days", "parts", "own_parts")


@dataclass
class Segment:
    """One version folder's segment, as `segment.json` holds it (and `folder`, where it was read from)."""

    rules: str
    late_arrival_days: int
    parts: list[str]  # the landing files' parts its rows come from, in arrival order
    own_parts: list[str]  # those of the files landed on the day itself
    facts: dict = field(default_factory=dict)  # the plan's facts over its parts
    files: dict[str, list[int]] = field(default_factory=dict)  # the rows and bytes of each file it wrote
    written: str = ""  # when, by the writer's clock
    day_users: int | None = None  # the day's distinct users so far (None: written before they were kept)
    folder: str = ""  # the version folder, relative to the lake

    @classmethod
    def read(cls, text: bytes | str, folder: str, late_arrival_days: int) -> Segment | None:
        """The segment `segment.json` holds, or None if it was assembled by other rules or another late window (also
        one written before segments had all these fields): a run does not add to it, and rebuilds the day."""
        found = json.loads(text)
        if found.get("rules") != ASSEMBLY_RULES or found.get("late_arrival_days") != late_arrival_days:
            return None
        if any(name not in found for name in SEGMENT_NEEDS):
            return None
        known = {name: value for name, value in found.items() if name in cls.__dataclass_fields__}
        return cls(**known | {"folder": folder})

    def text(self) -> dict:
        """What `segment.json` holds (not the folder it is in)."""
        return {name: value for name, value in asdict(self).items() if name != "folder"}


def held_segments(lake: Lake, files: list[str], late_arrival_days: int) -> list[Segment] | None:
    """What the day's current app_events `files` come from, version folder by version folder, in the order they were
    written; None when the day holds nothing, or files written otherwise (by Spark, before parts, under other rules
    or another late window)."""
    if not files:
        return None
    folders = list(dict.fromkeys(f.rsplit("/", 1)[0] for f in files))
    try:
        found = read_files([join(lake.url, f, SEGMENT) for f in folders])
    except FileNotFoundError:
        return None
    segments = [Segment.read(text, folder, late_arrival_days) for folder, text in zip(folders, found, strict=True)]
    if None in segments:
        return None
    return sorted(segments, key=lambda s: s.written)


def earlier_days_to_run(
    lake: Lake,
    cache: ParsedLanding,
    day: dt.date,
    late_arrival_days: int,
    parts: list[Part],
    held: list[Segment] | None,
    appending: bool,
    held_rows: bool,
) -> list[str]:
    """The days before `day` that need a run: those for which one of the day's own files holds valid lines and whose
    current rows do not come from that file's part (read from their segments: a run of theirs that failed, was never
    made, or whose request was lost is made up for by the next run of this day). All of the late window when this day
    is rebuilt over rows it held after one of its own files was removed or rewritten (the days before may hold its
    lines)."""
    window = late_window(day, late_arrival_days)
    lost_own = held is None or not {k for s in held for k in s.own_parts} <= {part_key(p) for p in parts}
    if not appending and held_rows and lost_own:
        return window
    holds = cache.event_days([p for p in parts if p.landing_date == day])
    needed = []
    for earlier in window:
        current = lake.current_version(dg.AssetKey("app_events"), earlier)  # (not quarantined_events': a table less)
        segments = held_segments(lake, list(current.files) if current else [], late_arrival_days) or []
        covered = {key for segment in segments for key in segment.parts}
        if any(earlier in days and key not in covered for key, days in holds.items()):
            needed.append(earlier)
    return needed


def late_window(day: dt.date, late_arrival_days: int) -> list[str]:
    """The earlier days whose late window holds `day`'s files."""
    return [(day - dt.timedelta(days=k)).isoformat() for k in range(1, late_arrival_days + 1)]


def record_segment(
    con: duckdb.DuckDBPyConnection, lake: Lake, events: Version, segment: Segment, scratch: str, held: list[Segment]
) -> None:
    """The new segment beside its app_events file, staged and not yet committed: the hashes of the event ids it kept,
    the day's distinct users so far (those of the version it appends to and of its new events; every carried file's
    when that version kept none), then `segment.json` (last: a segment that has it has the others)."""
    folder = join(lake.url, events.folder)
    new_events = con.read_parquet(join(lake.url, events.files[0]))
    local = f"{scratch}/{EVENT_HASHES}"
    new_events.project(f"{rules.EVENT_HASH} AS event_hash").to_parquet(local, compression="zstd")
    move_in(local, join(folder, EVENT_HASHES))
    # The version this one appends to wrote the first file it carries (a new version's files come first); its segment
    # counted the users of every version before it. (Not the latest `written`: runs stamp it by their own clocks.)
    appended_to = events.files[1].rsplit("/", 1)[0] if held else None
    before = next((s for s in held if s.folder == appended_to), None)
    if not held:
        earlier = []
    elif before is not None and before.day_users is not None:
        earlier = [join(lake.url, appended_to, DAY_USERS)]
    else:  # written before the day's users were kept: count them on the files carried
        earlier = [join(lake.url, f) for f in events.files[1:]]
    users = new_events.project("user_id")
    if earlier:
        users = users.union(con.read_parquet(earlier).project("user_id"))
    local = f"{scratch}/{DAY_USERS}"
    users.distinct().order("user_id").to_parquet(local, compression="zstd")
    segment.day_users = con.execute("SELECT count(*) FROM read_parquet($f)", {"f": local}).fetchall()[0][0]
    move_in(local, join(folder, DAY_USERS))
    segment.written = dt.datetime.now(dt.UTC).isoformat()
    replace_json(join(folder, SEGMENT), segment.text())


def day_facts(held: list[Segment], segment: Segment) -> dict:
    """The day's facts: what the held segments and the new one counted, added up, but distinct users as the new segment
    counted them on the whole day."""
    if not held:
        return segment.facts
    segments = [*held, segment]
    counted = [rules.Accounting(*s.facts["accounting"][0]) for s in segments]
    accounting = rules.Accounting(*map(sum, zip(*counted, strict=True)))._replace(users=segment.day_users)
    reasons: dict[str, int] = {}
    for s in segments:
        for reason, lines in s.facts["reasons"]:
            reasons[reason] = reasons.get(reason, 0) + lines
    balance = sum(s.facts[rules.LINES_ACCOUNTED_FOR][0][0] for s in segments)
    return {
        "accounting": [list(accounting)],
        "reasons": sorted(map(list, reasons.items())),
        rules.LINES_ACCOUNTED_FOR: [[balance]],
    }

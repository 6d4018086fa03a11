"""Ingestion and sessionization of a generated day: the embedded engine (DuckDB) against plain pandas.

Each measurement runs in a fresh process so its peak memory (ru_maxrss) is its own. The pandas
baselines implement the same logic the straightforward way: `json.loads` per line and column checks
for ingestion; sort, diff, cumsum and groupby for sessionization.

    python benchmarks/sessionization_benchmark.py [--users 2100000] [--out benchmarks/out]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import multiprocessing as mp
import resource
import shutil
import time
from pathlib import Path

DAY = dt.date(2024, 3, 1)


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def duckdb_ingest(landing: str, out: str) -> dict:
    from tvtime_platform.resources.duckdb_engine import DuckDBEngine
    from tvtime_platform.resources.landing import LandingZone
    from tvtime_platform.transforms import app_events as rules

    zone = LandingZone(path=landing)
    con = DuckDBEngine().connect()
    began = time.perf_counter()
    own = rules.parse_sql(rules.read_lines_sql(zone.event_files(DAY), DAY))
    late_day = DAY + dt.timedelta(days=1)
    late = rules.parse_sql(rules.late_candidates_sql(rules.read_lines_sql(zone.event_files(late_day), late_day), DAY))
    con.execute(f"CREATE TEMP TABLE parsed AS SELECT * FROM ({own}) UNION ALL SELECT * FROM ({late})")
    con.execute(f"CREATE TEMP TABLE owned AS {rules.owned_rows_sql('SELECT * FROM parsed', DAY, 1)}")
    con.sql(rules.kept_sql("owned")).to_parquet(f"{out}/app_events.parquet")
    con.sql(rules.quarantined_sql("owned")).to_parquet(f"{out}/quarantined.parquet")
    lines = con.execute("SELECT count(*) FROM parsed WHERE landing_date = ?", [DAY]).fetchone()[0]
    return {"seconds": time.perf_counter() - began, "lines": lines, "peak_mib": _peak_mib()}


def pandas_ingest(landing: str, out: str) -> dict:
    import pandas as pd

    from tvtime_platform.transforms.app_events import EVENT_TYPES, PLATFORMS

    began = time.perf_counter()
    records, rejected = [], 0
    for path in sorted(Path(landing, f"dt={DAY}").glob("hour=*/*.jsonl.gz")):
        for line in gzip.decompress(path.read_bytes()).decode().splitlines():
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                rejected += 1
                continue
            records.append(obj)
    frame = pd.DataFrame.from_records(records)
    ts = pd.to_datetime(frame["ts"], utc=True, errors="coerce", format="ISO8601")
    user_ok = frame["user_id"].map(lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0)
    valid = user_ok & frame["event_type"].isin(EVENT_TYPES) & frame["platform"].isin(PLATFORMS) & ts.notna() & frame["event_id"].notna()
    frame = frame[valid].assign(ts=ts[valid], user_id=frame.loc[valid, "user_id"].astype("int64"))
    frame = frame[frame["ts"].dt.date == DAY].drop_duplicates("event_id")
    frame.to_parquet(f"{out}/pandas_events.parquet")
    return {"seconds": time.perf_counter() - began, "lines": len(records) + rejected, "peak_mib": _peak_mib()}


def duckdb_sessionize(out: str) -> dict:
    from tvtime_platform.resources.duckdb_engine import DuckDBEngine
    from tvtime_platform.transforms.user_sessions import sessionize_sql

    con = DuckDBEngine().connect()
    began = time.perf_counter()
    con.sql(sessionize_sql(f"read_parquet('{out}/app_events.parquet')")).to_parquet(f"{out}/sessions.parquet")
    seconds = time.perf_counter() - began
    events, sessions = con.execute(f"SELECT sum(event_count), count(*) FROM '{out}/sessions.parquet'").fetchone()
    return {"seconds": seconds, "events": int(events), "sessions": sessions, "peak_mib": _peak_mib()}


def pandas_sessionize(out: str) -> dict:
    import pandas as pd

    began = time.perf_counter()
    events = pd.read_parquet(f"{out}/app_events.parquet", columns=["user_id", "event_id", "ts", "event_type", "platform", "country"])
    events = events.sort_values(["user_id", "ts", "event_id"], kind="stable")
    gap = events["ts"].diff().dt.total_seconds()
    new_session = (events["user_id"] != events["user_id"].shift()) | (gap > 1800)
    events["session_number"] = new_session.cumsum()
    events["watched"] = events["event_type"] == "episode_watched"
    sessions = events.groupby("session_number").agg(
        user_id=("user_id", "first"), session_start=("ts", "min"), session_end=("ts", "max"), event_count=("ts", "size"),
        episodes_watched=("watched", "sum"), platform=("platform", "first"), country=("country", "first"),
    )
    sessions["duration_seconds"] = (sessions["session_end"] - sessions["session_start"]).dt.total_seconds()
    sessions["session_id"] = sessions["user_id"].astype(str) + "-" + (sessions["session_start"].astype("int64") // 1000).astype(str)
    sessions.to_parquet(f"{out}/pandas_sessions.parquet")
    seconds = time.perf_counter() - began
    return {"seconds": seconds, "events": int(sessions["event_count"].sum()), "sessions": len(sessions), "peak_mib": _peak_mib()}


def _isolated(fn, *args) -> dict:
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2_100_000, help="about 4.8 events per user: 2.1M users is ~10M events")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    args = parser.parse_args()
    from tvtime_platform.cli import generate

    shutil.rmtree(args.out, ignore_errors=True)
    landing = args.out / "landing"
    began = time.perf_counter()
    stats = generate(landing, DAY, 1, users=args.users, seed=0)
    print(f"generated {stats.events:,} events ({stats.lines:,} lines) in {time.perf_counter() - began:.1f}s")

    results = {
        "ingestion, DuckDB": _isolated(duckdb_ingest, str(landing), str(args.out)),
        "ingestion, pandas": _isolated(pandas_ingest, str(landing), str(args.out)),
        "sessionization, DuckDB": _isolated(duckdb_sessionize, str(args.out)),
        "sessionization, pandas": _isolated(pandas_sessionize, str(args.out)),
    }
    events = results["sessionization, DuckDB"]["events"]
    assert results["sessionization, pandas"]["sessions"] == results["sessionization, DuckDB"]["sessions"], "engines disagree"
    print(f"\n{'step':<26}{'seconds':>9}{'events/s':>14}{'peak MiB':>10}")
    for name, r in results.items():
        count = r.get("lines", events) if name.startswith("ingestion") else events
        print(f"{name:<26}{r['seconds']:>9.2f}{count / r['seconds']:>14,.0f}{r['peak_mib']:>10,.0f}")
    for step in ("ingestion", "sessionization"):
        ratio = results[f"{step}, pandas"]["seconds"] / results[f"{step}, DuckDB"]["seconds"]
        print(f"{step}: DuckDB is {ratio:.1f}x the pandas baseline")


if __name__ == "__main__":
    main()

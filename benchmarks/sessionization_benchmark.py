"""Ingestion and sessionization of a generated day: the embedded engine (DuckDB) against plain pandas.

Each measurement runs in a fresh process so its peak memory (ru_maxrss) is its own. The pandas
baselines implement the same logic the straightforward way: `json.loads` per line and column checks
for ingestion; sort, diff, cumsum and groupby for sessionization.

    python benchmarks/sessionization_benchmark.py [--users 2100000] [--days 1] [--out benchmarks/out] [--reuse]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import shutil
import time
from pathlib import Path

from isolation import isolated, peak_mib

DAY = dt.date(2024, 3, 1)


def events_files(data_dir: str) -> list[str]:
    """The day's app_events files, as the lake's record names them."""
    import dagster as dg

    from tvtime_platform.lake import Lake

    return Lake(url=f"{data_dir}/lake").table(dg.AssetKey("app_events"), [DAY.isoformat()]).files()


def duckdb_ingest(data_dir: str) -> dict:
    """The `app_events` asset itself, materialized in process on the benchmark's data folder."""
    import logging

    import dagster as dg

    from tvtime_platform.definitions import build_definitions
    from tvtime_platform.resources.deployment import Deployment, local_resources

    logging.getLogger("dagster").setLevel(logging.WARNING)
    defs = build_definitions(Deployment())
    began = time.perf_counter()
    result = dg.materialize(
        [defs.get_assets_def("app_events")], partition_key=DAY.isoformat(), resources=local_resources(Path(data_dir))
    )
    seconds = time.perf_counter() - began
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    return {"seconds": seconds, "lines": metadata["landed_lines"].value, "peak_mib": peak_mib()}


def pandas_ingest(data_dir: str) -> dict:
    import pandas as pd

    from tvtime_platform.transforms.app_events import EVENT_TYPES, PLATFORMS

    began = time.perf_counter()
    records, rejected = [], 0
    for path in sorted(Path(data_dir, "landing", f"dt={DAY}").glob("hour=*/*.jsonl.gz")):
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
    valid = (
        user_ok
        & frame["event_type"].isin(EVENT_TYPES)
        & frame["platform"].isin(PLATFORMS)
        & ts.notna()
        & frame["event_id"].notna()
    )
    frame = frame[valid].assign(ts=ts[valid], user_id=frame.loc[valid, "user_id"].astype("int64"))
    frame = frame[frame["ts"].dt.date == DAY].drop_duplicates("event_id")
    frame.to_parquet(f"{data_dir}/pandas_events.parquet")
    return {"seconds": time.perf_counter() - began, "lines": len(records) + rejected, "peak_mib": peak_mib()}


def duckdb_sessionize(data_dir: str) -> dict:
    from tvtime_platform.resources.duckdb_engine import DuckDBEngine
    from tvtime_platform.transforms.user_sessions import gap_params, sessionize_sql

    con = DuckDBEngine().connect()
    began = time.perf_counter()
    con.read_parquet(events_files(data_dir)).create_view("events")
    con.sql(sessionize_sql("events"), params=gap_params()).to_parquet(f"{data_dir}/sessions.parquet")
    seconds = time.perf_counter() - began
    events, sessions = con.execute(f"SELECT sum(event_count), count(*) FROM '{data_dir}/sessions.parquet'").fetchall()[
        0
    ]
    return {"seconds": seconds, "events": int(events), "sessions": sessions, "peak_mib": peak_mib()}


def pandas_sessionize(data_dir: str) -> dict:
    import pandas as pd

    began = time.perf_counter()
    columns = ["user_id", "event_id", "ts", "event_type", "platform", "country"]
    events = pd.concat([pd.read_parquet(f, columns=columns) for f in events_files(data_dir)], ignore_index=True)
    events = events.sort_values(["user_id", "ts", "event_id"], kind="stable")
    gap = events["ts"].diff().dt.total_seconds()
    new_session = (events["user_id"] != events["user_id"].shift()) | (gap > 1800)
    events["session_number"] = new_session.cumsum()
    events["watched"] = events["event_type"] == "episode_watched"
    sessions = events.groupby("session_number").agg(
        user_id=("user_id", "first"),
        session_start=("ts", "min"),
        session_end=("ts", "max"),
        event_count=("ts", "size"),
        episodes_watched=("watched", "sum"),
        platform=("platform", "first"),
        country=("country", "first"),
    )
    sessions["duration_seconds"] = (sessions["session_end"] - sessions["session_start"]).dt.total_seconds()
    sessions["session_id"] = (
        sessions["user_id"].astype(str) + "-" + (sessions["session_start"].astype("int64") // 1000).astype(str)
    )
    sessions.to_parquet(f"{data_dir}/pandas_sessions.parquet")
    seconds = time.perf_counter() - began
    return {
        "seconds": seconds,
        "events": int(sessions["event_count"].sum()),
        "sessions": len(sessions),
        "peak_mib": peak_mib(),
    }


def generate_landing(landing: str, days: int, users: int) -> dict:
    from tvtime_platform.cli import generate

    began = time.perf_counter()
    stats = generate(Path(landing), DAY, days, users=users, seed=0)
    return {"events": stats.events, "lines": stats.lines, "seconds": time.perf_counter() - began}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--users", type=int, default=2_100_000, help="about 4.8 events per user: 2.1M users is ~10M events"
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    parser.add_argument(
        "--reuse", action="store_true", help="keep the landing files of an earlier run instead of generating anew"
    )
    parser.add_argument(
        "--days",
        type=int,
        default=1,
        help="days generated; with 2, the first day's ingestion also scans "
        "a whole next day for late arrivals, as in steady state",
    )
    args = parser.parse_args()
    landing = args.out / "landing"
    if not (args.reuse and landing.is_dir()):
        shutil.rmtree(args.out, ignore_errors=True)
        # generated in a child too: see isolation.py
        stats = isolated(generate_landing, str(landing), args.days, args.users)
        print(f"generated {stats['events']:,} events ({stats['lines']:,} lines) in {stats['seconds']:.1f}s")

    out = str(args.out.resolve())
    results = {
        "ingestion, DuckDB": isolated(duckdb_ingest, out),
        "ingestion, pandas": isolated(pandas_ingest, out),
        "sessionization, DuckDB": isolated(duckdb_sessionize, out),
        "sessionization, pandas": isolated(pandas_sessionize, out),
    }
    events = results["sessionization, DuckDB"]["events"]
    if (
        args.days == 1
    ):  # with more days, DuckDB's day also holds late arrivals from the next, which the baseline does not read
        assert results["sessionization, pandas"]["sessions"] == results["sessionization, DuckDB"]["sessions"], (
            "engines disagree"
        )
    print(f"\n{'step':<26}{'seconds':>9}{'events/s':>14}{'peak MiB':>10}")
    for name, r in results.items():
        count = r.get("lines", events) if name.startswith("ingestion") else events
        print(f"{name:<26}{r['seconds']:>9.2f}{count / r['seconds']:>14,.0f}{r['peak_mib']:>10,.0f}")
    for step in ("ingestion", "sessionization"):
        ratio = results[f"{step}, pandas"]["seconds"] / results[f"{step}, DuckDB"]["seconds"]
        print(f"{step}: DuckDB is {ratio:.1f}x the pandas baseline")


if __name__ == "__main__":
    main()

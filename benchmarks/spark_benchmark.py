"""The same generated day through the set-based assets on DuckDB and on Spark in local mode, side by side.

Each engine materializes `app_events` (parsing, validation and the accounting of every landed line)
and then `user_sessions`, through the assets themselves, each step in a process of its own and each
engine on its own copy of the lake. Spark runs as the platform launches it: the plan runner through
`spark-submit` and Dagster Pipes (`LocalSpark`, local[*] on this machine). Reported per step: wall
seconds, events/s, the peak memory of the process running the asset (Dagster; with DuckDB, the
engine too) and of its largest child (Spark's JVM), and Spark's startup (JVM and session, as the job
reports it) apart from its work. The two engines must agree on the rows counted (the script checks).

    python benchmarks/spark_benchmark.py [--users 2100000] [--out benchmarks/out-spark] [--reuse]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import time
from pathlib import Path

from isolation import isolated, peak_mib
from sessionization_benchmark import DAY, generate_landing

ENGINES = ("duckdb", "spark")
STEPS = {
    "app_events": ["app_events", "quarantined_events"],
    "user_sessions": ["user_sessions"],
}  # step: the tables it writes


def materialize(data_dir: str, engine: str, asset: str) -> dict:
    """One asset of the day on one engine; its wall time, metadata and peak memories."""
    import logging

    import dagster as dg

    from tvtime_platform.definitions import build_definitions
    from tvtime_platform.resources.deployment import Deployment, local_resources

    defs = build_definitions(Deployment())

    logging.getLogger("dagster").setLevel(logging.WARNING)
    resources = local_resources(Path(data_dir), engine=engine)
    began = time.perf_counter()
    result = dg.materialize(
        list(defs.assets), selection=STEPS[asset], partition_key=DAY.isoformat(), resources=resources
    )
    seconds = time.perf_counter() - began
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)]
    metadata = {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}
    return {
        "seconds": seconds,
        "metadata": metadata,
        "peak_mib": peak_mib(),
        "child_peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--users", type=int, default=2_100_000, help="about 4.8 events per user: 2.1M users is ~10M events"
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out-spark"))
    parser.add_argument(
        "--reuse", action="store_true", help="keep the landing files of an earlier run instead of generating anew"
    )
    args = parser.parse_args()
    out = args.out.resolve()
    landing = out / "landing"
    if not (args.reuse and landing.is_dir()):
        shutil.rmtree(out, ignore_errors=True)
        stats = isolated(generate_landing, str(landing), 1, args.users)  # in a child: see isolation.py
        print(f"generated {stats['events']:,} events ({stats['lines']:,} lines) in {stats['seconds']:.1f}s")

    results: dict[tuple[str, str], dict] = {}
    for engine in ENGINES:
        folder = out / engine
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        (folder / "landing").symlink_to(landing, target_is_directory=True)
        for asset in STEPS:
            results[engine, asset] = isolated(materialize, str(folder), engine, asset)
            print(f"{asset} on {engine}: {results[engine, asset]['seconds']:.1f}s")

    lines = results["duckdb", "app_events"]["metadata"]["landed_lines"]
    events = results["duckdb", "user_sessions"]["metadata"]["events"]
    for asset, key in (
        ("app_events", "kept"),
        ("app_events", "quarantined"),
        ("user_sessions", "dagster/partition_row_count"),
    ):
        counts = {engine: results[engine, asset]["metadata"][key] for engine in ENGINES}
        assert len(set(counts.values())) == 1, f"the engines disagree on {asset} {key}: {counts}"

    print(
        f"\n{lines:,} lines landed on the day, {events:,} events kept (late arrivals in), "
        f"{results['duckdb', 'user_sessions']['metadata']['dagster/partition_row_count']:,} sessions\n"
    )
    print(
        f"{'step':<28}{'seconds':>9}{'events/s':>12}{'peak MiB':>10}{'JVM MiB':>9}"
        f"{'Spark startup s':>17}{'Spark work s':>14}"
    )
    for (engine, asset), r in results.items():
        count = lines if asset == "app_events" else events
        meta = r["metadata"]
        startup = meta.get("spark_startup_seconds")
        work = meta["spark_seconds"] - startup if startup is not None else None
        print(
            f"{asset + ', ' + engine:<28}{r['seconds']:>9.1f}{count / r['seconds']:>12,.0f}{r['peak_mib']:>10,.0f}"
            f"{r['child_peak_mib'] if engine == 'spark' else 0:>9,.0f}"
            f"{'' if startup is None else f'{startup:.1f}':>17}{'' if work is None else f'{work:.1f}':>14}"
        )
    for asset in STEPS:
        ratio = results["spark", asset]["seconds"] / results["duckdb", asset]["seconds"]
        print(f"{asset}: Spark in local mode takes {ratio:.1f}x DuckDB's time on this machine")


if __name__ == "__main__":
    main()

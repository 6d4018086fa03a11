"""A day landing hour by hour, with the landing sensor's runs after each hour, against one run over the whole day.

The generated day's files (and the next day's: late arrivals, sessions past midnight) land one hour folder at a time
into an empty landing zone; after each, `landing_sensor` is evaluated, every run it requests is executed in process
(`app_events` with its checks: what its `ingest_events` job runs; a run key used before is skipped, as the daemon
does), and the sensor is evaluated again until it requests nothing (it requests the days before once the runs found
their events); each run's time measured, Dagster's overhead included. The anchors, measured in the same process after
everything landed, on a fresh lake: one run of the day, then one run of each other partition the sensor requested
(the days before and after, which read the day's files for their late windows, or it theirs). Which run parses a
landing file first is an accident of order, so the ratio that counts is all the sensor's runs against all the anchors;
the day's own runs against one run of the day is printed too. The day's rows must come out the same both ways.

    python benchmarks/hourly_landing_benchmark.py [--users 600000] [--out benchmarks/out-hourly] [--reuse]
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DAY = dt.date(2024, 3, 1)
TABLES = ("app_events", "quarantined_events")


def run(assets: list, resources: dict, instance, partition: str) -> float:
    """One run of `app_events` (and its checks) for the partition; its seconds. The resources are built once per data
    folder, as a code location's definitions hold them."""
    import dagster as dg

    began = time.perf_counter()
    result = dg.materialize(assets, partition_key=partition, instance=instance, resources=resources)
    assert result.success, partition
    return time.perf_counter() - began


def same_rows(a: Path, b: Path, table: str) -> bool:
    """The day's rows of `table` in the two data folders are the same (landing file names compared without their
    folder)."""
    import dagster as dg
    import duckdb

    from tvtime_platform.resources.lake import Lake

    scans = []
    for folder in (a, b):
        files = Lake(url=str(folder / "lake")).table(dg.AssetKey(table), [DAY.isoformat()]).files()
        scan = f"read_parquet({files!r})"
        if table == "quarantined_events":
            scan = f"(SELECT * REPLACE (replace(source_file, '{folder}', '') AS source_file) FROM {scan})"
        scans.append(scan)
    con = duckdb.connect()
    return all(
        con.execute(f"SELECT count(*) FROM (SELECT * FROM {x} EXCEPT ALL SELECT * FROM {y})").fetchall()[0][0] == 0
        for x, y in (scans, scans[::-1])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=600_000, help="about 4.8 events per user: 600k users is ~3M")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out-hourly"))
    parser.add_argument("--reuse", action="store_true", help="keep the landing files of an earlier run")
    args = parser.parse_args()

    import logging

    import dagster as dg

    from tvtime_platform.cli import generate
    from tvtime_platform.definitions import build_definitions
    from tvtime_platform.defs.ingestion.landing_sensor import landing_sensor
    from tvtime_platform.resources.deployment import Deployment, local_resources
    from tvtime_platform.resources.landing import LandingZone

    logging.getLogger("dagster").setLevel(logging.WARNING)
    out = args.out.resolve()
    source = out / "generated"
    if not (args.reuse and source.is_dir()):
        shutil.rmtree(out, ignore_errors=True)
        stats = generate(source, DAY, 1, users=args.users, seed=3)
        print(f"generated {stats.events:,} events ({stats.lines:,} lines)")
    defs = build_definitions(Deployment())
    assets = [defs.get_assets_def("app_events"), *defs.asset_checks]
    hours = sorted({p.parent for p in source.glob("dt=*/hour=*/*.jsonl.gz")})

    hourly = out / "hourly"
    shutil.rmtree(hourly, ignore_errors=True)
    (hourly / "landing").mkdir(parents=True)
    seconds: dict[str, float] = {}
    runs: dict[str, int] = {}
    cursor = None
    sensor_seconds = 0.0
    run_keys: set[str] = set()
    resources = local_resources(hourly)
    with dg.DagsterInstance.ephemeral() as instance:
        for hour in hours:
            shutil.copytree(hour, hourly / "landing" / hour.relative_to(source))
            requested = True
            while requested:  # until the sensor asks for nothing more (its next ticks, in the daemon)
                began = time.perf_counter()
                context = dg.build_sensor_context(
                    instance=instance, cursor=cursor, resources={"landing": LandingZone(url=str(hourly / "landing"))}
                )
                result = landing_sensor(context)
                sensor_seconds += time.perf_counter() - began
                cursor = result.cursor
                requested = False
                for request in result.run_requests or []:
                    # As the daemon does: a run key used before is not run again.
                    if request.job_name != "ingest_events" or request.run_key in run_keys:
                        continue
                    run_keys.add(request.run_key)
                    requested = True
                    partition = request.partition_key
                    seconds[partition] = seconds.get(partition, 0.0) + run(assets, resources, instance, partition)
                    runs[partition] = runs.get(partition, 0) + 1
    day = DAY.isoformat()
    whole = out / "whole"
    shutil.rmtree(whole, ignore_errors=True)
    whole.mkdir(parents=True)
    (whole / "landing").symlink_to(source, target_is_directory=True)
    anchors: dict[str, float] = {}
    resources = local_resources(whole)
    with dg.DagsterInstance.ephemeral() as instance:
        for partition in [day, *sorted(set(seconds) - {day})]:
            anchors[partition] = run(assets, resources, instance, partition)
    print(f"{len(hours)} hour folders landed; the sensor's evaluations took {sensor_seconds:.1f}s")
    print("partition    runs as the files landed    one run after everything landed")
    for partition in sorted(seconds):
        print(f"{partition}   {runs[partition]:>3} runs, {seconds[partition]:>7.1f}s   {anchors[partition]:>10.1f}s")
    every, once = sum(seconds.values()), sum(anchors.values())
    print(f"every run the sensor requested: {every:.1f}s, {every / once:.2f}x one run of each partition ({once:.1f}s)")
    print(f"the day's own runs: {seconds[day]:.1f}s, {seconds[day] / anchors[day]:.2f}x one run of the day")
    for table in TABLES:
        assert same_rows(whole, hourly, table), f"{table} differs between the hourly runs and the one run"
    print("the day's app_events and quarantined_events rows are the same both ways")


if __name__ == "__main__":
    main()

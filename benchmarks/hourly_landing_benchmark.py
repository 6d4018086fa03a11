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

With `--s3`, the landing zone and the lake are on S3 (moto's server on 127.0.0.1) and what is measured is the requests
each of the sensor's runs sends to the store, counted as the server logs them. (No anchors: the requests of an append
are the point.) Every run, both ways, starts without the DuckDB database, catalog and Iceberg metadata an earlier run
left in the process, as a run worker's new process does.

    python benchmarks/hourly_landing_benchmark.py [--users 600000] [--out benchmarks/out-hourly] [--reuse] [--s3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import shutil
import sys
import time
import unittest.mock
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from moto_s3 import moto_s3  # noqa: E402

DAY = dt.date(2024, 3, 1)
TABLES = ("app_events", "quarantined_events")
BUCKET = "tvtime-benchmark"


def run(assets: list, resources: dict, instance, partition: str) -> float:
    """One run of `app_events` (and its checks) for the partition, as a run worker's new process makes it; its seconds.
    The resources are built once per data folder, as a code location's definitions hold them."""
    import dagster as dg

    as_a_new_process()
    began = time.perf_counter()
    result = dg.materialize(assets, partition_key=partition, instance=instance, resources=resources)
    assert result.success, partition
    return time.perf_counter() - began


def as_a_new_process() -> None:
    """Forget what a run worker's process starts without (the runs here share one process): its DuckDB database, the
    lake's catalog, and the Iceberg metadata files it read."""
    from pyiceberg.manifest import clear_manifest_cache

    from tvtime_platform.lake import catalog, metadata_files
    from tvtime_platform.resources import duckdb_engine

    duckdb_engine._database.cache_clear()
    catalog.open_catalog.cache_clear()
    metadata_files.forget()
    clear_manifest_cache()


class RequestsHeard(logging.Handler):
    """Counts the requests moto's server logs (through werkzeug's logger, a line a request)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += " HTTP/1." in record.getMessage()  # '"GET /bucket/key HTTP/1.1" 200 -'


@contextmanager
def s3_store() -> Iterator[RequestsHeard]:
    """moto's S3 server with the benchmark's bucket, its requests heard."""
    heard = RequestsHeard()
    werkzeug = logging.getLogger("werkzeug")
    werkzeug.addHandler(heard)
    werkzeug.setLevel(logging.INFO)
    werkzeug.propagate = False
    with moto_s3(BUCKET, verbose=True):
        yield heard


def s3_resources(root: Path) -> dict:
    """The local deployment's resources with the landing zone and the lake on the benchmark's bucket."""
    from tvtime_platform.lake import Lake, LakeIOManager
    from tvtime_platform.resources.deployment import local_resources
    from tvtime_platform.resources.duckdb_engine import DuckDBEngine
    from tvtime_platform.resources.landing import LandingZone
    from tvtime_platform.resources.set_based import SetBasedEngine

    resources = local_resources(root)
    lake = Lake(url=f"s3://{BUCKET}/lake", catalog="glue")  # moto's Glue Data Catalog
    landing = LandingZone(url=f"s3://{BUCKET}/landing")
    engine = DuckDBEngine(temp_directory=str(root / "tmp" / "duckdb"), remote_protocols=["s3"])
    spark = resources["set_based"].spark
    set_based = SetBasedEngine(default="duckdb", duckdb=engine, spark=spark, lake=lake, landing=landing)
    return resources | {
        "landing": landing,
        "lake_storage": lake,
        "lake": LakeIOManager(lake=lake),
        "duckdb": engine,
        "set_based": set_based,
    }


def same_rows(a: Path, b: Path, table: str) -> bool:
    """The day's rows of `table` in the two data folders are the same (landing file names compared without their
    folder)."""
    import dagster as dg
    import duckdb

    from tvtime_platform.lake import Lake

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
    parser.add_argument("--s3", action="store_true", help="landing zone and lake on S3 (moto): count the requests")
    args = parser.parse_args()

    from tvtime_platform.cli import generate
    from tvtime_platform.definitions import build_definitions
    from tvtime_platform.resources.deployment import Deployment

    logging.getLogger("dagster").setLevel(logging.WARNING)
    out = args.out.resolve()
    source = out / "generated"
    if not (args.reuse and source.is_dir()):
        shutil.rmtree(out, ignore_errors=True)
        stats = generate(source, DAY, 1, users=args.users, seed=3)
        print(f"generated {stats.events:,} events ({stats.lines:,} lines)")
    defs = build_definitions(Deployment())
    assets = [defs.get_assets_def("app_events"), *defs.asset_checks]  # what the ingest_events job runs
    hourly = out / "hourly"
    shutil.rmtree(hourly, ignore_errors=True)
    if args.s3:
        with s3_store() as heard:
            requests: list[tuple[str, int]] = []

            def counted(partition: str, run_once) -> float:
                before = heard.count
                took = run_once()
                requests.append((partition, heard.count - before))
                return took

            seconds, _ = land_hour_by_hour(assets, source, hourly, f"s3://{BUCKET}/landing", counted)
        total = sum(n for _, n in requests)
        print(f"{len(requests)} runs sent {total:,} requests to S3 in {sum(seconds.values()):.1f}s")
        print("requests of each run, in order:", ", ".join(f"{p[5:]} {n}" for p, n in requests))
        return
    seconds, runs = land_hour_by_hour(assets, source, hourly, str(hourly / "landing"))
    compare_with_one_run_each(assets, source, out, hourly, seconds, runs)


def land_hour_by_hour(
    assets: list,
    source: Path,
    root: Path,
    landing_url: str,
    around: Callable[[str, Callable[[], float]], float] | None = None,
) -> tuple[dict[str, float], dict[str, int]]:
    """The generated day's hour folders landed one at a time at `landing_url`, each followed by the sensor's runs (each
    called through `around(partition, run_once)` when given); the seconds and the number of runs of each partition."""
    import dagster as dg
    import fsspec

    from tvtime_platform.defs.ingestion import landing_sensor as landing_sensor_module
    from tvtime_platform.resources.deployment import local_resources
    from tvtime_platform.resources.landing import LandingZone

    hours = sorted({p.parent for p in source.glob("dt=*/hour=*/*.jsonl.gz")})
    resources = s3_resources(root) if landing_url.startswith("s3://") else local_resources(root)
    store, landing_path = fsspec.core.url_to_fs(landing_url)
    seconds: dict[str, float] = {}
    runs: dict[str, int] = {}
    cursor = None
    sensor_seconds = 0.0
    run_keys: set[str] = set()
    with dg.DagsterInstance.ephemeral() as instance:
        for hour in hours:
            for file in sorted(hour.glob("*")):
                target = f"{landing_path}/{file.relative_to(source)}"
                store.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
                store.put_file(str(file), target)
            requested = True
            # The sensor lists the landing days open on its day: it evaluates as on the day the hour lands.
            today = dt.date.fromisoformat(hour.parent.name.removeprefix("dt="))
            while requested:  # until the sensor asks for nothing more (its next ticks, in the daemon)
                began = time.perf_counter()
                context = dg.build_sensor_context(
                    instance=instance, cursor=cursor, resources={"landing": LandingZone(url=landing_url)}
                )
                with unittest.mock.patch.object(landing_sensor_module, "utc_today", return_value=today):
                    result = landing_sensor_module.landing_sensor(context)
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

                    def run_once(partition: str = partition) -> float:
                        return run(assets, resources, instance, partition)

                    took = around(partition, run_once) if around else run_once()
                    seconds[partition] = seconds.get(partition, 0.0) + took
                    runs[partition] = runs.get(partition, 0) + 1
    print(f"{len(hours)} hour folders landed; the sensor's evaluations took {sensor_seconds:.1f}s")
    return seconds, runs


def compare_with_one_run_each(
    assets: list, source: Path, out: Path, hourly: Path, seconds: dict[str, float], runs: dict[str, int]
) -> None:
    """One run of each partition the sensor requested, after everything landed, on a fresh lake: the ratio, and the
    day's rows the same both ways."""
    import dagster as dg

    from tvtime_platform.resources.deployment import local_resources

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

"""What a periodic cost does as history grows: the same work with a short history and a long one, measured in one run,
as ratios against the short history (the anchor). A cost that follows the new data stays near 1x.

- publication: one day of `show_recommendations` published (audited staging table in, the day's rows replaced, the
  replaced day backed up) into a DuckDB warehouse whose table already holds `--short` days, then `--long` days: the
  day after them (a daily run), and the last of them again (a day run again);
- recommendations: a day of `show_recommendations` staged, audited and published (and, where it exists, the day's
  `user_show_history` folded first) over a lake holding `--short` days of `app_events`, then `--long` days (copies of
  one day of `--users` generated viewers), with small factors;
- rebuild_per_day: `rebuild_warehouse` of `--short` published days of `show_recommendations` into an empty warehouse,
  then of `--long` days, per day (linear: 1x);
- sweep: `sweep_lake`'s daily pass (a day's partition written the day before) over a lake table of `--short` days,
  then `--long` days, local folder;
- sensor tick: `landing_sensor`'s steady evaluation (nothing new landed) over a landing zone of `--short` days, then of
  `--long` days ending today (empty files, `--files-per-day` each), on a local folder; and a pass of
  `landing_reconciliation`, which lists the whole zone on purpose (every few hours, off the minute's path); with
  `--s3`, the steady tick on moto's S3 too, listing the open days and draining a landing queue (SQS), requests counted.

The history is built cheaply: generated rows copied day by day inside the warehouse, empty landing files; the lake's
days committed one after the other, then their snapshots expired as the daily sweep would have.

    python benchmarks/history_benchmark.py [--short 30] [--long 300] [--rows-per-day 250000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from moto_s3 import moto_s3  # noqa: E402
from timing import median_seconds  # noqa: E402

FIRST = dt.date(2024, 1, 1)
VERSION = "v20240101T000000000000-0a0b0c0d"  # a lake version's name, for the staging table's


def publication_seconds(folder: Path, days: int, rows_per_day: int, repeat: int, replacing: bool) -> float:
    """One day published into a table holding `days` days of `rows_per_day` recommendations each (median): the day
    after them (`replacing` False: what a daily run does), or the last of them again (a day run again)."""
    from tvtime_platform.resources.warehouse import DuckDBWarehouse
    from tvtime_platform.transforms.marts import SHOW_RECOMMENDATIONS as MART

    warehouse = DuckDBWarehouse(database=str(folder / f"warehouse-{days}-{replacing}.duckdb"))

    def day_rows(day: str) -> str:
        """A day of recommendations: 20 shows for each of `rows_per_day / 20` users."""
        return (
            f"SELECT DATE '{FIRST}' + INTERVAL ({day}) DAY AS dt, r // 20 AS user_id, CAST(r % 20 + 1 AS INTEGER) AS "
            f"rank, (r * 7919) % 2000 AS show_id, 1.0 / (r % 20 + 1) AS score FROM range({rows_per_day}) t(r)"
        )

    table = warehouse.qualified(MART.name)
    warehouse.run([f"CREATE TABLE {table} AS SELECT h.* FROM range({days}) d(d), LATERAL ({day_rows('d.d')}) h"])
    published = days - 1 if replacing else days

    def publish() -> None:
        nonlocal published
        day = (FIRST + dt.timedelta(days=published)).isoformat()
        stage = warehouse.qualified(warehouse.staging_table(MART, day, VERSION))
        warehouse.run([f"CREATE OR REPLACE TABLE {stage} AS {day_rows(str(published))}"])
        warehouse.publish(MART, day, VERSION)
        published += 0 if replacing else 1

    publish()  # the first publication makes the days record and the backup folder
    return median_seconds(publish, repeat)


def recommendations_lake(root: Path, days: int, users: int) -> tuple[list, dict, list[str], str]:
    """A lake under `root` holding `days` days of app_events (copies of one generated day of `users` viewers), small
    factors and, where the asset exists, the state of the day before the last: the definitions' assets and checks, the
    local resources, the selection of a day's recommendations run, and the last day."""
    import dagster as dg
    import duckdb
    import pyarrow as pa

    from tvtime_platform.cli import generate
    from tvtime_platform.definitions import build_definitions
    from tvtime_platform.lake import Lake
    from tvtime_platform.resources.deployment import Deployment, local_resources

    generate(root / "landing", FIRST, 1, users=users, seed=1, shows=500)
    defs = build_definitions(Deployment())
    assets = [*defs.assets, *defs.asset_checks]
    resources = local_resources(root)
    dg.materialize(
        assets, selection=["app_events", "quarantined_events"], partition_key=FIRST.isoformat(), resources=resources
    )
    lake = Lake(url=str(root / "lake"))
    day_one = duckdb.connect().read_parquet(lake.committed(dg.AssetKey("app_events"), FIRST.isoformat()))
    for d in range(1, days):  # the same day's events, as every later day of the history
        day = (FIRST + dt.timedelta(days=d)).isoformat()
        lake.commit(day, [lake.stage(day_one, dg.AssetKey("app_events"), day)])
    last = (FIRST + dt.timedelta(days=days - 1)).isoformat()
    con = duckdb.connect()
    user_ids = [u for (u,) in day_one.project("user_id").distinct().order("user_id").fetchall()]
    factors = {
        "user_factors": pa.table({"user_id": pa.array(user_ids, pa.int64()), "factors": [[1.0, 0.5]] * len(user_ids)}),
        "show_factors": pa.table({"show_id": pa.array(range(1, 501), pa.int64()), "factors": [[0.5, 1.0]] * 500}),
        "user_show_interactions": pa.table(
            {"user_id": pa.array(user_ids[:1], pa.int64()), "show_id": pa.array([1], pa.int64())}
        ),
    }
    for name, table in factors.items():
        lake.commit(last, [lake.stage(con.from_arrow(table), dg.AssetKey(name), last)])
    expire_history(lake)
    has_state = any(spec.key == dg.AssetKey("user_show_history") for spec in defs.resolve_all_asset_specs())
    if has_state:  # the state of the day before, as a daily run leaves it
        before = (FIRST + dt.timedelta(days=days - 2)).isoformat()
        dg.materialize(assets, selection=["user_show_history"], partition_key=before, resources=resources)
    selection = ["show_recommendations_staged", "show_recommendations"] + (["user_show_history"] if has_state else [])
    return assets, resources, selection, last


def expire_history(lake) -> None:
    """Expire every table's snapshots but the current one: the history was written a moment ago, where a lake's days
    were written over months and their snapshots expired by the daily sweep (`keep_snapshots_days`)."""
    from tvtime_platform.lake import Lake

    expiring = Lake(url=lake.url, keep_snapshots_days=0, sweep_after_seconds=0)
    for key in expiring.tables():
        expiring.expire(key)


def recommendations_seconds(folder: Path, days: int, users: int, repeat: int) -> float:
    """A day's recommendations (staged, audited, published) after `days` days of app_events (median)."""
    import dagster as dg

    assets, resources, selection, last = recommendations_lake(folder / f"recommendations-{days}", days, users)

    def run() -> None:
        assert dg.materialize(assets, selection=selection, partition_key=last, resources=resources).success

    run()  # the process's first run of these steps (imports, a first connection) is not counted
    return median_seconds(run, repeat)


def rebuild_seconds(folder: Path, days: int, users: int) -> float:
    """`rebuild_warehouse` into an empty warehouse, of `days` published days of show_recommendations (one day's staged
    version and state, as a daily run leaves them, copied to each day): its time per day."""
    import time

    import dagster as dg
    import duckdb

    from tvtime_platform.definitions import build_definitions
    from tvtime_platform.defs.recommendations.show_recommendations import PUBLICATION
    from tvtime_platform.lake import Lake
    from tvtime_platform.lib.write_audit_publish import staged_key
    from tvtime_platform.resources.deployment import Deployment, local_resources
    from tvtime_platform.resources.warehouse import DuckDBWarehouse

    source = folder / "rebuild-source"
    if not source.exists():
        assets, resources, selection, last = recommendations_lake(source, 2, users)
        assert dg.materialize(assets, selection=selection, partition_key=last, resources=resources).success
    source_lake, con = Lake(url=str(source / "lake")), duckdb.connect()
    keys = [staged_key(PUBLICATION.mart), dg.AssetKey("user_show_history")]
    one_day = {
        key: con.read_parquet(source_lake.committed(key, (FIRST + dt.timedelta(days=1)).isoformat())) for key in keys
    }
    root = folder / f"rebuild-{days}"
    lake = Lake(url=str(root / "lake"))
    with dg.DagsterInstance.ephemeral() as instance:
        for d in range(days):
            day = (FIRST + dt.timedelta(days=d)).isoformat()
            for key, rows in one_day.items():
                dated = rows.project(f"* REPLACE (DATE '{day}' AS dt)") if "dt" in rows.columns else rows
                lake.commit(day, [lake.stage(dated, key, day)])
            instance.report_runless_asset_event(dg.AssetMaterialization("show_recommendations", partition=day))
        job = build_definitions(Deployment()).get_job_def("rebuild_warehouse")
        # Versions staged more than keep_staging_seconds ago, as a rebuild after a lost warehouse finds them: each
        # publication drops the staging table of the day before (these versions were staged a moment ago).
        warehouse = DuckDBWarehouse(database=str(root / "warehouse.duckdb"), keep_staging_seconds=0)
        resources = local_resources(root) | {"warehouse": warehouse}
        began = time.perf_counter()
        assert job.execute_in_process(instance=instance, resources=resources).success
        seconds = time.perf_counter() - began
    assert len(warehouse.published_days(PUBLICATION.mart)) == days, "every day published again"
    return seconds / days


def sweep_seconds(folder: Path, days: int, repeat: int) -> float:
    """The daily sweep over a table of `days` partitions, one of them written the day before (median)."""
    import dagster as dg
    import duckdb

    from tvtime_platform.lake import JOURNAL, Lake

    lake, key = Lake(url=str(folder / f"sweep-{days}"), sweep_after_seconds=0), dg.AssetKey("t")
    relation = duckdb.connect().sql("SELECT 1 AS x")
    for d in range(days):
        lake.replace((FIRST + dt.timedelta(days=d)).isoformat(), {key: relation})
    expire_history(lake)
    journal = Path(lake.url, JOURNAL)

    def written_the_day_before() -> None:
        shutil.rmtree(journal, ignore_errors=True)  # every partition was written long ago and swept since
        lake.replace(FIRST.isoformat(), {key: relation})  # but one, the day before, replacing a version
        for written in journal.glob("date=*"):
            written.rename(written.with_name("date=2020-01-01"))

    return median_seconds(lake.sweep_written, repeat, prepare=written_the_day_before)


def sensor_seconds(folder: Path, days: int, files_per_day: int, repeat: int) -> tuple[float, float]:
    """`landing_sensor`'s steady tick and a pass of `landing_reconciliation`, over `days` landed days ending today
    (UTC) of `files_per_day` empty files each (medians)."""
    import dagster as dg

    from tvtime_platform.defs.ingestion.landing_sensor import landing_reconciliation, landing_sensor
    from tvtime_platform.resources.landing import LandingZone

    landing, today = folder / f"landing-{days}", dt.datetime.now(dt.UTC).date()
    for d in range(days):
        hour = landing / f"dt={today - dt.timedelta(days=d)}" / "hour=00"
        hour.mkdir(parents=True)
        for k in range(files_per_day):
            (hour / f"part-{k}.jsonl.gz").touch()
    zone = LandingZone(url=str(landing))
    with dg.DagsterInstance.ephemeral() as instance:
        cursors = {}
        for sensor in (landing_sensor, landing_reconciliation):
            cursors[sensor] = sensor(dg.build_sensor_context(instance=instance), landing=zone).cursor

        def tick(sensor) -> None:
            result = sensor(dg.build_sensor_context(instance=instance, cursor=cursors[sensor]), landing=zone)
            assert not result.run_requests, "a steady tick requests nothing"

        return tuple(median_seconds(lambda s=sensor: tick(s), repeat) for sensor in cursors)


def s3_ticks(histories: tuple[int, ...], files_per_day: int, repeat: int) -> dict[str, list[tuple[float, int]]]:
    """`landing_sensor`'s steady tick over each history (days landed, ending today) on one moto server (`files_per_day`
    small objects a day), listing the open days (`listing`) and draining the landing queue of the bucket's event
    notifications (`queue`): its median time and the requests one tick sends (S3 and SQS), heard at the AWS clients."""
    import boto3
    import dagster as dg
    import fsspec

    from tvtime_platform.defs.ingestion.landing_sensor import landing_sensor
    from tvtime_platform.resources.landing import LandingZone
    from tvtime_platform_tests.support import notifying_queue

    today, measured = dt.datetime.now(dt.UTC).date(), {"listing": [], "queue": []}
    with moto_s3("history"):
        s3 = fsspec.filesystem("s3", use_listings_cache=False)  # the instance the landing zone's URL resolves to
        sent: list[str] = []
        s3.connect()
        s3.s3.meta.events.register("before-parameter-build.s3", lambda model, **_: sent.append(model.name))
        # The SQS clients the sensor makes, from boto3's default session.
        boto3.setup_default_session()
        boto3.DEFAULT_SESSION.events.register("before-parameter-build.sqs", lambda model, **_: sent.append(model.name))
        for mode, days in [(mode, days) for mode in measured for days in histories]:
            bucket = f"history-{days}-{mode}"
            boto3.client("s3").create_bucket(Bucket=bucket)
            objects = {
                f"{bucket}/landing/dt={today - dt.timedelta(days=d)}/hour=00/part-{k}.jsonl.gz": b""
                for d in range(days)
                for k in range(files_per_day)
            }
            s3.pipe(objects)
            zone = LandingZone(url=f"s3://{bucket}/landing")
            if mode == "queue":
                zone = LandingZone(url=zone.url, queue_url=notifying_queue(zone.url))
            with dg.DagsterInstance.ephemeral() as instance:
                cursor = landing_sensor(dg.build_sensor_context(instance=instance), landing=zone).cursor

                def tick(instance=instance, cursor=cursor, zone=zone) -> None:
                    landing_sensor(dg.build_sensor_context(instance=instance, cursor=cursor), landing=zone)

                sent.clear()
                tick()
                requests = len(sent)
                measured[mode].append((median_seconds(tick, repeat), requests))
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", type=int, default=30, help="days of history of the anchor")
    parser.add_argument("--long", type=int, default=300, help="days of history measured against it")
    parser.add_argument("--rows-per-day", type=int, default=250_000, help="recommendations a day (250k: 12.5k users)")
    parser.add_argument("--files-per-day", type=int, default=48, help="landing files a day (2 an hour)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--s3", action="store_true", help="also the sensor's tick on moto's S3, requests counted")
    parser.add_argument("--s3-files-per-day", type=int, default=2, help="landing objects a day on S3")
    parser.add_argument("--users", type=int, default=5000, help="viewers of the generated day of app_events")
    parser.add_argument(
        "--only",
        choices=[
            "publication_of_a_new_day",
            "publication_replacing_a_day",
            "recommendations",
            "sweep",
            "rebuild_per_day",
            "sensor",
        ],
        help="measure one of them",
    )
    args = parser.parse_args()
    results = {}
    histories = (args.short, args.long)
    measured = {
        "publication_of_a_new_day": lambda folder, days: publication_seconds(
            folder, days, args.rows_per_day, args.repeat, replacing=False
        ),
        "publication_replacing_a_day": lambda folder, days: publication_seconds(
            folder, days, args.rows_per_day, args.repeat, replacing=True
        ),
        "recommendations": lambda folder, days: recommendations_seconds(folder, days, args.users, args.repeat),
        "sweep": lambda folder, days: sweep_seconds(folder, days, args.repeat),
        "rebuild_per_day": lambda folder, days: rebuild_seconds(folder, days, args.users),
    }
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for name, seconds in measured.items():
            if args.only in (None, name):
                results[name] = compared(histories, [seconds(folder, days) for days in histories])
        if args.only in (None, "sensor"):
            sensors = [sensor_seconds(folder, days, args.files_per_day, args.repeat) for days in histories]
            ticks, passes = zip(*sensors, strict=True)
            results["sensor_tick_folder"] = compared(histories, ticks)
            results["reconciliation_pass_folder"] = compared(histories, passes)
    if args.s3 and args.only in (None, "sensor"):
        for mode, ticks in s3_ticks(histories, args.s3_files_per_day, args.repeat).items():
            seconds, requests = zip(*ticks, strict=True)
            results[f"sensor_tick_s3_{mode}"] = compared(histories, seconds) | {
                f"{days}_days_requests": sent for days, sent in zip(histories, requests, strict=True)
            }
    print(json.dumps({"args": vars(args), **results}, indent=1))


def compared(histories: tuple[int, int], seconds: list[float] | tuple[float, ...]) -> dict:
    """The times with the short history and the long one, and the long against the short."""
    (short, long), (short_s, long_s) = histories, seconds
    return {
        f"{short}_days_s": round(short_s, 3),
        f"{long}_days_s": round(long_s, 3),
        "ratio": round(long_s / short_s, 2),
    }


if __name__ == "__main__":
    main()

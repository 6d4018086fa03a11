"""What a periodic cost does as history grows: the same work with a short history and a long one, measured in one run,
as ratios against the short history (the anchor). A cost that follows the new data stays near 1x.

- publication: one day of `show_recommendations` published (audited staging table in, the day's rows replaced, the
  replaced day backed up) into a DuckDB warehouse whose table already holds `--short` days, then `--long` days;
- sensor tick: `landing_sensor`'s steady evaluation (nothing new landed) over a landing zone of `--short` days, then of
  `--long` days ending today (empty files, `--files-per-day` each), on a local folder; and a pass of
  `landing_reconciliation`, which lists the whole zone on purpose (every few hours, off the minute's path).

The history is built cheaply: generated rows copied day by day inside the warehouse, empty landing files.

    python benchmarks/history_benchmark.py [--short 30] [--long 300] [--rows-per-day 250000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FIRST = dt.date(2024, 1, 1)
VERSION = "v20240101T000000000000-0a0b0c0d"  # a lake version's name, for the staging table's


def median_seconds(action, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        action()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def publication_seconds(folder: Path, days: int, rows_per_day: int, repeat: int) -> float:
    """One day published into a table holding `days` days of `rows_per_day` recommendations each (median)."""
    from tvtime_platform.resources.warehouse import DuckDBWarehouse
    from tvtime_platform.transforms.marts import SHOW_RECOMMENDATIONS as MART

    warehouse = DuckDBWarehouse(database=str(folder / f"warehouse-{days}.duckdb"))

    def day_rows(day: str) -> str:
        """A day of recommendations: 20 shows for each of `rows_per_day / 20` users."""
        return (
            f"SELECT DATE '{FIRST}' + INTERVAL ({day}) DAY AS dt, r // 20 AS user_id, CAST(r % 20 + 1 AS INTEGER) AS "
            f"rank, (r * 7919) % 2000 AS show_id, 1.0 / (r % 20 + 1) AS score FROM range({rows_per_day}) t(r)"
        )

    table = warehouse.qualified(MART.name)
    warehouse.run([f"CREATE TABLE {table} AS SELECT h.* FROM range({days}) d(d), LATERAL ({day_rows('d.d')}) h"])
    last = (FIRST + dt.timedelta(days=days - 1)).isoformat()
    stage = warehouse.qualified(warehouse.staging_table(MART, last, VERSION))

    def publish() -> None:
        warehouse.run([f"CREATE OR REPLACE TABLE {stage} AS {day_rows(str(days - 1))}"])
        warehouse.publish(MART, last, VERSION)

    publish()  # the first publication makes the days record and the backup folder
    return median_seconds(publish, repeat)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", type=int, default=30, help="days of history of the anchor")
    parser.add_argument("--long", type=int, default=300, help="days of history measured against it")
    parser.add_argument("--rows-per-day", type=int, default=250_000, help="recommendations a day (250k: 12.5k users)")
    parser.add_argument("--files-per-day", type=int, default=48, help="landing files a day (2 an hour)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", choices=["publication", "sensor"], help="measure one of the two")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        if args.only != "sensor":
            short = publication_seconds(folder, args.short, args.rows_per_day, args.repeat)
            long = publication_seconds(folder, args.long, args.rows_per_day, args.repeat)
            results["publication"] = {
                f"{args.short}_days_s": round(short, 3),
                f"{args.long}_days_s": round(long, 3),
                "ratio": round(long / short, 2),
            }
        if args.only == "publication":
            print(json.dumps({"args": vars(args), **results}, indent=1))
            return
        (short_tick, short_pass), (long_tick, long_pass) = (
            sensor_seconds(folder, days, args.files_per_day, args.repeat) for days in (args.short, args.long)
        )
        for name, short, long in (
            ("sensor_tick_folder", short_tick, long_tick),
            ("reconciliation_pass_folder", short_pass, long_pass),
        ):
            results[name] = {
                f"{args.short}_days_s": round(short, 3),
                f"{args.long}_days_s": round(long, 3),
                "ratio": round(long / short, 2),
            }
    print(json.dumps({"args": vars(args), **results}, indent=1))


if __name__ == "__main__":
    main()

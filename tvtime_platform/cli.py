"""The `tvtime` command: `generate` writes realistic landing data, `summary` tells what the platform holds, `files`
names a lake table's current files (what its Iceberg snapshot names), `lake` lists a day's snapshots, rolls a day back
and moves a lake kept by commit records to Iceberg, `fail-dead-runs` marks failed the runs whose processes died
(without a daemon)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import duckdb

from tvtime_platform.generator.catalog import build_catalog
from tvtime_platform.generator.landing import DayStats, Defects, write_day
from tvtime_platform.lake import Lake
from tvtime_platform.lib.partitions import FIRST_DAY
from tvtime_platform.resources.deployment import data_dir
from tvtime_platform.resources.landing import CATALOG_FOLDER
from tvtime_platform.resources.warehouse import open_duckdb_warehouse

LAST_DAY = "9999-12-31"


def generate(
    landing: Path, start: dt.date, days: int, users: int, seed: int = 0, shows: int = 90_000, defect_scale: float = 1.0
) -> DayStats:
    """Write the catalog under `landing/catalog/` and `days` days of events from `start`, reporting progress on
    stderr (users and events so far, and the rate) as it goes."""
    began = time.perf_counter()
    catalog = build_catalog(shows, seed, landing / CATALOG_FOLDER)
    _report(f"catalog: {shows:,} shows in {time.perf_counter() - began:.1f}s")
    total = DayStats()
    with ThreadPoolExecutor(max_workers=2) as pool:
        for i in range(days):
            day = start + dt.timedelta(days=i)

            def progress(done: int, stats: DayStats, day: dt.date = day) -> None:
                events = total.events + stats.events
                rate = events / max(time.perf_counter() - began, 1e-9)
                _report(f"{day}: {done:,}/{users:,} users, {events:,} events so far ({rate:,.0f} events/s)")

            total.add(write_day(landing, catalog, seed, day, users, Defects().scaled(defect_scale), pool, progress))
    return total


def _report(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def describe_data(root: Path) -> str:
    """A plain-text table of partitions and rows per lake table (the rows the catalog counted at each commit, without
    opening a Parquet file), and days and rows per warehouse mart."""
    lines = [f"Data folder: {root}", "", f"{'lake table':<28}{'partitions':>11}{'rows':>12}"]
    lake = Lake(url=str(root / "lake"))
    for key in lake.tables() if (root / "lake").is_dir() else []:
        days = lake.partitions_through(key, LAST_DAY)
        rows = lake.counted_rows(key, days or [None])
        lines.append(f"{key.to_user_string():<28}{len(days) or '-':>11}{rows:>12,}")
    warehouse = root / "warehouse.duckdb"
    if warehouse.is_file():
        lines += ["", f"{'warehouse mart':<28}{'days':>11}{'rows':>12}"]
        with open_duckdb_warehouse(str(warehouse), lock_timeout_seconds=5, read_only=True) as con:
            tables = {
                n
                for (n,) in con.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'marts'"
                ).fetchall()
            }
            for name in sorted(t for t in tables if "__" not in t):
                # The days published, with rows or without (those only the `__days` record holds).
                published = (
                    f"marts.{name}__days" if f"{name}__days" in tables else f"(SELECT DISTINCT dt FROM marts.{name})"
                )
                days = con.execute(f"SELECT count(*) FROM {published}").fetchall()[0][0]
                rows = con.execute(f"SELECT count(*) FROM marts.{name}").fetchall()[0][0]
                lines.append(f"{name:<28}{days:>11}{rows:>12,}")
    return "\n".join(lines)


def current_files(lake: Lake, table: str, days: list[str]) -> list[str]:
    """The files the records of a table's days name (of the whole table, for an unpartitioned one)."""
    key = dg.AssetKey(table)
    if days:
        return lake.table(key, days).files()
    return lake.committed(key, None) or []


def _lake_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lake", default=None, help="the lake's URL; default: $TVTIME_LAKE_URL or <data dir>/lake")
    parser.add_argument(
        "--catalog",
        default=None,
        help="the lake's Iceberg catalog (glue, or a SQLAlchemy URL); default: $TVTIME_LAKE_CATALOG or the lake "
        "folder's catalog.db",
    )


def _lake(args: argparse.Namespace) -> Lake:
    return Lake(
        url=args.lake or os.environ.get("TVTIME_LAKE_URL") or str(data_dir() / "lake"),
        catalog=args.catalog or os.environ.get("TVTIME_LAKE_CATALOG") or "",
    )


def _lake_command(args: argparse.Namespace) -> int:
    lake = _lake(args)
    if args.lake_command == "migrate":
        from tvtime_platform.lake.migration import migrate

        for line in migrate(lake):
            print(line)
        return 0
    key, day = dg.AssetKey(args.table), args.day.isoformat() if args.day else None
    if args.lake_command == "snapshots":
        found = lake.snapshots(key, day)
        if not found:
            if lake.iceberg_table(key) is None:
                print(f"The lake {lake.url} holds no table {args.table!r}.", file=sys.stderr)
            elif day is None and lake.partitions_through(key, LAST_DAY):
                print(
                    f"{args.table} has days: name one, e.g. `tvtime lake snapshots {args.table} YYYY-MM-DD`.",
                    file=sys.stderr,
                )
            else:
                print(f"{lake.url} holds no snapshot of {args.table!r} that changed {day or 'it'}.", file=sys.stderr)
            return 1
        json.dump(found, sys.stdout, indent=2)
        print()
        return 0
    version = lake.rollback(key, day, args.snapshot)
    print(f"{args.table} {day}: {len(version.files)} file(s), as at snapshot {args.snapshot}")
    return 0


def _print_days(parser: argparse.ArgumentParser, first: dt.date, last: dt.date | None, count: int | None) -> int:
    """Each day from `first` to `last` (or `count` days from `first`), checked to be partitions, one per line."""
    if last is not None and count is not None:
        parser.error("give LAST or --count, not both")
    if count:
        try:
            last = _partition_day((first + dt.timedelta(days=count - 1)).isoformat())
        except (argparse.ArgumentTypeError, OverflowError) as error:
            parser.error(f"--count {count} from {first}: {error}")
    last = last or first
    if last < first:
        parser.error(f"{last} is before {first}")
    print("\n".join((first + dt.timedelta(days=k)).isoformat() for k in range((last - first).days + 1)))
    return 0


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {value!r}") from None


def _partition_day(value: str) -> dt.date:
    """A day that is a partition: the format, then the range, both named when wrong."""
    day = _date(value)
    last = dt.datetime.now(dt.UTC).date()
    if not dt.date.fromisoformat(FIRST_DAY) <= day <= last:
        raise argparse.ArgumentTypeError(f"{value} is not a day partition: they run from {FIRST_DAY} to {last} (UTC)")
    return day


def _positive(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {value}")
    return number


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tvtime", description="Tools of the tvtime data platform.")
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="write a show catalog and hourly landing files of app events")
    gen.add_argument("--start", type=_date, required=True, help="first day, YYYY-MM-DD")
    gen.add_argument("--days", type=_positive, default=1, help="number of days (default 1)")
    gen.add_argument("--users", type=_positive, required=True, help="number of users; ~4.8 events per user a day")
    gen.add_argument("--landing", type=Path, required=True, help="landing folder, e.g. data/landing")
    gen.add_argument("--seed", type=int, default=0, help="random seed; the same seed writes the same files")
    gen.add_argument("--shows", type=_positive, default=90_000, help="shows in the catalog (default 90000)")
    gen.add_argument(
        "--defect-scale", type=float, default=1.0, help="multiplies every defect rate; 0 writes clean data"
    )
    summary = commands.add_parser(
        "summary", help="row counts of every lake table and warehouse mart under a data folder"
    )
    summary.add_argument("--data-dir", type=Path, default=None, help="default: $TVTIME_DATA_DIR or ./data")
    files = commands.add_parser("files", help="the current Parquet files of a lake table, one per line")
    files.add_argument("table", help="a lake table, e.g. app_events")
    files.add_argument(
        "--day",
        type=_partition_day,
        action="append",
        help=f"a day YYYY-MM-DD from {FIRST_DAY} to today (repeat it); default every day",
    )
    _lake_arguments(files)
    lake = commands.add_parser("lake", help="a lake table's snapshots of a day, a day rolled back, the move to Iceberg")
    lake_commands = lake.add_subparsers(dest="lake_command", required=True)
    snapshots = lake_commands.add_parser("snapshots", help="the snapshots that changed a day, newest first (JSON)")
    snapshots.add_argument("table", help="a lake table, e.g. app_events")
    snapshots.add_argument("day", type=_partition_day, nargs="?", help="YYYY-MM-DD; none for a table without days")
    rollback = lake_commands.add_parser(
        "rollback", help="make a day's files what they were at one of its snapshots (with its sibling tables')"
    )
    rollback.add_argument("table", help="a lake table, e.g. app_events")
    rollback.add_argument("day", type=_partition_day, help="YYYY-MM-DD")
    rollback.add_argument("snapshot", type=int, help="a snapshot id `tvtime lake snapshots` listed")
    migrate = lake_commands.add_parser(
        "migrate", help="register a lake kept by commit records in the Iceberg catalog in place, retire the records"
    )
    for command in (snapshots, rollback, migrate):
        _lake_arguments(command)
    days = commands.add_parser(
        "days", help="the day partitions from FIRST to LAST (inclusive), one per line: checked days for the Makefile"
    )
    days.add_argument("first", type=_partition_day, help=f"a day YYYY-MM-DD from {FIRST_DAY} to today")
    days.add_argument("last", type=_partition_day, nargs="?", help="default: FIRST")
    days.add_argument("--count", type=_positive, help="instead of LAST: this many days from FIRST")
    commands.add_parser(
        "fail-dead-runs",
        help="mark failed the runs of $DAGSTER_HOME's instance whose processes died, and free their pool slots "
        "(the daemon's run monitoring does it when it runs)",
    )
    args = parser.parse_args(argv)
    if args.command == "fail-dead-runs":
        from tvtime_platform.lib.local_run_launcher import fail_dead_runs

        if not os.environ.get("DAGSTER_HOME"):
            print(
                "DAGSTER_HOME is not set: name the instance whose runs to check, e.g. "
                "export DAGSTER_HOME=$PWD/.dagster_home (what the Makefile uses)",
                file=sys.stderr,
            )
            return 2
        with dg.DagsterInstance.get() as instance:
            for line in fail_dead_runs(instance):
                print(line)
        return 0
    if args.command == "days":
        return _print_days(parser, args.first, args.last, args.count)
    try:
        if args.command == "summary":
            print(describe_data(args.data_dir or data_dir()))
            return 0
        if args.command == "lake":
            return _lake_command(args)
        if args.command == "files":
            lake = _lake(args)
            key = dg.AssetKey(args.table)
            days = [d.isoformat() for d in args.day] if args.day else lake.partitions_through(key, LAST_DAY)
            files = current_files(lake, args.table, days)
            if not files:
                print(f"The lake {lake.url} holds no table {args.table!r} (or it has no files yet).", file=sys.stderr)
                return 1
            print("\n".join(files))
            return 0
    except dg.Failure as failure:  # a lake or warehouse that cannot be read as it is: what to do
        print(failure.description, file=sys.stderr)
        return 1
    except duckdb.IOException as error:  # a file a snapshot names, gone or unreadable
        print(
            f"A lake file cannot be read: {error}. Restore it, or materialize its table again for that day.",
            file=sys.stderr,
        )
        return 1
    began = time.perf_counter()
    stats = generate(args.landing, args.start, args.days, args.users, args.seed, args.shows, args.defect_scale)
    seconds = time.perf_counter() - began
    report = {
        "landing": str(args.landing),
        "events": stats.events,
        "lines": stats.lines,
        "files": stats.files,
        "defects": stats.defects,
        "seconds": round(seconds, 2),
        "events_per_second": round(stats.events / seconds),
    }
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


def run() -> int:
    """The console script: `main`, quiet when its reader goes away (`tvtime files ... | head -1`), ending as Unix tools
    do then (the status of a process a SIGPIPE ended: 141)."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # Nothing more can be written; point stdout at nothing so the interpreter's own flush at exit stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    return code


if __name__ == "__main__":
    sys.exit(run())

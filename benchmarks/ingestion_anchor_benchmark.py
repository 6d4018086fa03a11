"""`app_events` on each engine against that engine's own naive read of the same files, measured in one run.

The anchors type the common case and nothing else: DuckDB's `read_json` of the typed columns straight to Parquet
(errors ignored, no accounting, no grammar), and Spark's JSON source with a schema and a corrupt-record column, written
to Parquet, its JVM start included (as the asset's Spark run includes it). The asset reads the day's files and the late
window's (the next day's), so the anchors read the same. Each step runs in a process of its own.

    python benchmarks/ingestion_anchor_benchmark.py [--users 420000] [--out benchmarks/out-anchor] [--reuse]
        [--no-spark]
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import time
from pathlib import Path

from isolation import isolated
from sessionization_benchmark import DAY, generate_landing
from spark_benchmark import materialize

TYPED = {
    "event_id": "VARCHAR",
    "event_type": "VARCHAR",
    "user_id": "BIGINT",
    "ts": "TIMESTAMPTZ",
    "platform": "VARCHAR",
    "country": "VARCHAR",
    "show_id": "BIGINT",
    "episode_id": "BIGINT",
    "rating": "BIGINT",
}
SPARK_SCHEMA = (
    "event_id STRING, event_type STRING, user_id BIGINT, ts TIMESTAMP, platform STRING, country STRING, "
    "show_id BIGINT, episode_id BIGINT, rating BIGINT, _corrupt STRING"
)


def read_files(landing: Path) -> list[str]:
    """The files `app_events` of the day reads: the day's and the late window's."""
    days = [DAY.isoformat(), (DAY + dt.timedelta(days=1)).isoformat()]
    return sorted(str(p) for day in days for p in landing.glob(f"dt={day}/hour=*/*.jsonl.gz") if p.stat().st_size)


def duckdb_anchor(landing: str, out: str) -> dict:
    import duckdb

    files = read_files(Path(landing))
    began = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    columns = "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in TYPED.items()) + "}"
    con.execute(
        f"COPY (SELECT * FROM read_json(?, columns = {columns}, format = 'newline_delimited', ignore_errors = true)) "
        f"TO '{out}' (FORMAT parquet, COMPRESSION zstd)",
        [files],
    )
    rows = con.execute("SELECT count(*) FROM read_parquet(?)", [out]).fetchall()[0][0]
    return {"seconds": time.perf_counter() - began, "rows": rows}


def spark_anchor(landing: str, out: str) -> dict:
    from pyspark.sql import SparkSession

    files = read_files(Path(landing))
    began = time.perf_counter()
    spark = (
        SparkSession.builder.master("local[*]")
        .config("spark.driver.memory", "4g")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    started = time.perf_counter() - began
    read = spark.read.schema(SPARK_SCHEMA).option("columnNameOfCorruptRecord", "_corrupt").json(files)
    read.write.mode("overwrite").parquet(out)
    rows = spark.read.parquet(out).count()
    seconds = time.perf_counter() - began
    spark.stop()
    return {"seconds": seconds, "rows": rows, "startup_seconds": started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=420_000, help="about 4.8 events per user: 420k users is ~2M")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out-anchor"))
    parser.add_argument("--reuse", action="store_true", help="keep the landing files of an earlier run")
    parser.add_argument("--no-spark", action="store_true", help="DuckDB only")
    args = parser.parse_args()
    out = args.out.resolve()
    landing = out / "landing"
    if not (args.reuse and landing.is_dir()):
        shutil.rmtree(out, ignore_errors=True)
        stats = isolated(generate_landing, str(landing), 1, args.users)
        print(f"generated {stats['events']:,} events ({stats['lines']:,} lines) in {stats['seconds']:.1f}s")
    for engine in ("duckdb", *(() if args.no_spark else ("spark",))):
        folder = out / engine
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        (folder / "landing").symlink_to(landing, target_is_directory=True)
        asset = isolated(materialize, str(folder), engine, "app_events")
        anchor = isolated(duckdb_anchor if engine == "duckdb" else spark_anchor, str(landing), str(folder / "anchor"))
        lines = asset["metadata"]["landed_lines"]
        rate = lines / asset["seconds"]
        print(
            f"app_events on {engine}: {asset['seconds']:.1f}s ({rate:,.0f} lines/s); its naive read "
            f"({anchor['rows']:,} rows): {anchor['seconds']:.1f}s; ratio {asset['seconds'] / anchor['seconds']:.2f}x"
        )


if __name__ == "__main__":
    main()

"""What the lake's commit records cost: a partition write through `Lake.replace` (a version folder, footers read for the
metadata, one record, the sweep) against writing the same Parquet straight into a folder, and a reader's resolution of
many partitions through their records against listing their folders, on a local folder and on S3 (moto's server on
127.0.0.1). Medians of `--repeat` runs, as ratios against the anchor measured in the same run.

    python benchmarks/lake_commit_benchmark.py [--rows 1000000] [--days 60] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from moto_s3 import moto_s3  # noqa: E402
from timing import median_seconds  # noqa: E402


def measure(lake_url: str, rows: int, days: int, repeat: int) -> dict:
    import dagster as dg

    from tvtime_platform.lake import Lake, parquet_files
    from tvtime_platform.resources.duckdb_engine import DuckDBEngine
    from tvtime_platform.resources.storage import filesystem, join

    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    relation = con.sql(f"SELECT range AS id, range % 97 AS show_id, 'event ' || range AS label FROM range({rows})")
    lake = Lake(url=lake_url, catalog="glue" if "://" in lake_url else "")  # on S3, moto's Glue
    key = dg.AssetKey("events")

    def anchor_write() -> None:
        folder = join(lake_url, "plain", "dt=2024-03-01")
        if "://" in lake_url:
            with tempfile.TemporaryDirectory() as scratch:
                local = f"{scratch}/part-0.parquet"
                relation.to_parquet(local, compression="zstd")
                fs, path = filesystem(folder)
                fs.put_file(local, f"{path}/part-{uuid.uuid4().hex}.parquet")
        else:
            Path(folder).mkdir(parents=True, exist_ok=True)
            relation.to_parquet(f"{folder}/part-0.parquet", compression="zstd")

    write = median_seconds(lambda: lake.replace("2024-03-01", {key: relation}), repeat)
    plain_write = median_seconds(anchor_write, repeat)

    small = con.sql("SELECT 1 AS x")
    day_keys = [f"2024-01-{d:02d}" if d <= 31 else f"2024-02-{d - 31:02d}" for d in range(1, days + 1)]
    for day in day_keys:
        lake.replace(day, {dg.AssetKey("history"): small})

    def anchor_list() -> list[str]:
        found = []
        for day in day_keys:
            fs, path = filesystem(lake.folder(dg.AssetKey("history"), day))
            found += [
                f for entry in fs.ls(path) if entry.rsplit("/", 1)[-1].startswith("v") for f in parquet_files(fs, entry)
            ]
        return found

    resolve = median_seconds(lambda: lake.table(dg.AssetKey("history"), day_keys), repeat)
    listing = median_seconds(anchor_list, repeat)
    return {
        "write_seconds": round(write, 3),
        "plain_write_seconds": round(plain_write, 3),
        "write_ratio": round(write / plain_write, 2),
        f"resolve_{days}_days_seconds": round(resolve, 3),
        f"list_{days}_days_seconds": round(listing, 3),
        "resolve_ratio": round(resolve / listing, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    report = {"rows": args.rows, "days": args.days, "repeat": args.repeat}
    with tempfile.TemporaryDirectory() as folder:
        report["folder"] = measure(f"{folder}/lake", args.rows, args.days, args.repeat)

    with moto_s3("lake-benchmark"):
        report["s3_moto"] = measure("s3://lake-benchmark/lake", args.rows, args.days, args.repeat)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

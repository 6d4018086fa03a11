"""The Spark job: run one transformation plan (`transforms.plan`) and report back through Dagster Pipes.

Submitted with `spark-submit` in local mode, or as a step on an EMR cluster; it is the same file
either way and imports nothing of the platform but `landed_lines` (`transforms/landed_lines.py`,
shipped beside it with `--py-files`): the plan arrives already in Spark SQL. So it needs PySpark
(4.0 or later), PyArrow, NumPy, dagster-pipes, and fsspec/s3fs and boto3 where files are on S3. The
asset passes, as Pipes extras:

- `plan`: the plan, in Spark SQL;
- `inputs`: per input name, `{"format": "lines", "files": {landing_date: [urls]}, "fields": [...]}`
  (landing files, read by `landed_lines` in Python workers, a few files a task),
  `{"format": "line_counts", "files": ...}` (their lines counted apart from that reader), or
  `{"format": "parquet", "paths": [...], "base_path": table}` (lake partitions);
- `outputs`: per output table, the folder to write its Parquet files to;
- `report_for`: the assets to report the materialization of, each with the plan's facts and the
  job's timings as metadata;
- `report_checks`: the plan's balances to report as asset checks, each `{"asset", "check"}`.

Pipes parameters come from the command line (`--dagster-pipes-context ...`, as a step added to a
running cluster passes them) or from the environment (as the launcher of a new cluster sets them);
messages go to S3 when the launcher reads them there, else to the local file it names.
"""

from __future__ import annotations

import re
import sys
import time

from dagster_pipes import (
    PipesCliArgsParamsLoader,
    PipesContext,
    PipesDefaultMessageWriter,
    PipesEnvVarParamsLoader,
    PipesMessageWriter,
    PipesParamsLoader,
    PipesS3MessageWriter,
    open_dagster_pipes,
)
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

# Shipped beside the job (`--py-files`): the platform is not installed on the cluster.
from tvtime_platform.transforms import landed_lines

# What the transforms assume of every engine: UTC days, timestamps Parquet readers take as instants.
SESSION_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.parquet.compression.codec": "zstd",
    # A key repeated inside a JSON object is valid JSON (RFC 8259); `landed_lines` judges the event fields' repeats.
    "spark.sql.variant.allowDuplicateKeys": "true",
}


def params_loader() -> PipesParamsLoader:
    return PipesCliArgsParamsLoader() if "--dagster-pipes-context" in sys.argv else PipesEnvVarParamsLoader()


def message_writer(loader: PipesParamsLoader) -> PipesMessageWriter:
    if "bucket" in loader.load_messages_params():
        import boto3

        return PipesS3MessageWriter(client=boto3.client("s3"))
    return PipesDefaultMessageWriter()


def literal(path: str) -> str:
    """A path as a pattern that Hadoop's reader, which globs every path it is given, matches only literally."""
    return re.sub(r"([\\\[\]{}*?])", r"\\\1", path)


def landing_files(spark: SparkSession, files: dict[str, list[str]]) -> DataFrame:
    """One row (landing_date, source_file) per landing file, spread over twice as many tasks as the cores (each Python
    task costs a start of its own, so not a task a file: 75 files on 2 cores took 10x as long that way)."""
    rows = [(day, url) for day, urls in sorted(files.items()) for url in urls]
    schema = "landing_date STRING, source_file STRING"
    if not rows:
        return spark.createDataFrame([], schema)
    frame = spark.sparkContext.parallelize(rows, min(len(rows), 2 * spark.sparkContext.defaultParallelism)).toDF(schema)
    return frame.withColumn("landing_date", F.col("landing_date").cast("date"))


def bind_input(spark: SparkSession, name: str, spec: dict) -> None:
    if spec["format"] == "lines":
        frame = landing_files(spark, spec["files"]).mapInArrow(
            landed_lines.spark_lines(tuple(spec["fields"])), landed_lines.SPARK_SCHEMA
        )
    elif (
        spec["format"] == "line_counts"
    ):  # a row a file, cached: several facts read it, and each read decompresses every file
        frame = (
            landing_files(spark, spec["files"])
            .mapInArrow(landed_lines.spark_counts, landed_lines.SPARK_COUNT_SCHEMA)
            .cache()
        )
    elif spec["format"] == "parquet":
        frame = spark.read.option("basePath", spec["base_path"]).parquet(*(literal(path) for path in spec["paths"]))
    else:
        raise ValueError(f"input {name}: unknown format {spec['format']!r}")
    frame.createOrReplaceTempView(name)


def run_plan(
    spark: SparkSession, plan: dict, inputs: dict[str, dict], outputs: dict[str, str], log=print
) -> dict[str, list[list]]:
    """Bind the inputs, run the steps, write the outputs; returns the facts' rows."""
    missing = [name for name in plan["inputs"] if name not in inputs]
    if missing:
        raise ValueError(f"the plan needs inputs {missing}, which the launcher did not pass")
    for name in plan["inputs"]:
        bind_input(spark, name, inputs[name])
    args = (
        plan.get("params") or None
    )  # bound to the statements' :name markers (Spark ignores the ones a statement lacks)
    for step in plan["steps"]:
        frame = spark.sql(step["sql"], args=args)
        if step["kind"] == "numbered":
            frame = frame.withColumn("row", F.monotonically_increasing_id())
        if step["kind"] in ("table", "numbered"):
            frame = frame.cache()
        frame.createOrReplaceTempView(step["name"])
    for table, sql in plan["outputs"].items():
        began = time.perf_counter()
        spark.sql(sql, args=args).write.mode("overwrite").parquet(outputs[table])
        log(f"{table}: written to {outputs[table]} in {time.perf_counter() - began:.1f}s")
    return {name: [list(row) for row in spark.sql(sql, args=args).collect()] for name, sql in plan["facts"].items()}


def balance(check: dict, tables: list[str], facts: dict[str, list[list]], written: dict[str, int]) -> dict:
    """A balance's check result: the rows written to its tables against the one value of its fact."""
    rows, expected = sum(written[table] for table in tables), facts[check["check"]][0][0]
    return {
        "asset_key": check["asset"],
        "check_name": check["check"],
        "passed": rows == expected,
        "severity": "ERROR",
        "metadata": {
            "rows_written": rows,
            "rows_expected": expected,
            "tables": ", ".join(tables),
            "judged_by": "the Spark job, on its written files",
        },
    }


def _json_ready(value):
    """Fact values as JSON: dates and decimals become strings or floats."""
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def main() -> None:
    loader = params_loader()
    with open_dagster_pipes(params_loader=loader, message_writer=message_writer(loader)) as pipes:
        report(pipes)


def report(pipes: PipesContext) -> None:
    extras = pipes.extras
    began = time.perf_counter()
    builder = SparkSession.builder.appName(f"tvtime {','.join(extras['outputs'])}")
    for key, value in SESSION_CONF.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    started = time.perf_counter() - began
    version, master = spark.version, spark.sparkContext.master
    # The driver JVM's -XX flags, as it was started: whether the launcher's options (`resources/spark.py`) reached it.
    arguments = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()
    flags = " ".join(a for a in map(str, arguments) if a.startswith("-XX:")) or "none"
    application = spark.sparkContext.applicationId
    pipes.log.info(f"Spark {version} ({master}, {application}) up in {started:.1f}s; driver JVM flags: {flags}")
    try:
        facts = run_plan(spark, extras["plan"], extras["inputs"], extras["outputs"], pipes.log.info)
        # Rows written, counted from the Parquet footers, only of the tables a requested check balances.
        balanced = {
            table for check in extras.get("report_checks", []) for table in extras["plan"]["balances"][check["check"]]
        }
        written = {table: spark.read.parquet(literal(extras["outputs"][table])).count() for table in balanced}
    finally:
        spark.stop()
    for check in extras.get("report_checks", []):
        pipes.report_asset_check(**balance(check, extras["plan"]["balances"][check["check"]], facts, written))
    metadata = {
        "spark_facts": {"raw_value": {name: _json_ready(rows) for name, rows in facts.items()}, "type": "json"},
        "spark_version": version,
        "spark_master": master,
        "spark_startup_seconds": round(started, 3),
        "spark_seconds": round(time.perf_counter() - began, 3),
    }
    for asset in extras["report_for"]:
        pipes.report_asset_materialization(asset_key=asset, metadata=metadata)


if __name__ == "__main__":
    main()

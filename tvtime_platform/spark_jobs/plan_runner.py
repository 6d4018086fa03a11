"""The Spark job: run one transformation plan (`transforms.plan`) and report back through Dagster Pipes.

Submitted with `spark-submit` in local mode, or as a step on an EMR cluster; it is the same file
either way and imports nothing of the platform (the plan arrives already in Spark SQL), so it needs
only PySpark (4.0 or later), dagster-pipes, and boto3 where messages go to S3. The asset passes,
as Pipes extras:

- `plan`: the plan, in Spark SQL;
- `inputs`: per input name, `{"format": "lines", "files": {landing_date: [paths]}}` (landing files,
  read as text) or `{"format": "parquet", "paths": [...], "base_path": table}` (lake partitions);
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

# What the transforms assume of every engine: UTC days, timestamps Parquet readers take as instants.
SESSION_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.parquet.compression.codec": "zstd",
}
LINE_SCHEMA = "landing_date DATE, source_file STRING, line STRING"


def params_loader() -> PipesParamsLoader:
    return PipesCliArgsParamsLoader() if "--dagster-pipes-context" in sys.argv else PipesEnvVarParamsLoader()


def message_writer(loader: PipesParamsLoader) -> PipesMessageWriter:
    if "bucket" in loader.load_messages_params():
        import boto3

        return PipesS3MessageWriter(client=boto3.client("s3"))
    return PipesDefaultMessageWriter()


def landed_lines(spark: SparkSession, files: dict[str, list[str]]) -> DataFrame:
    """Every non-empty line of the landing files, with its landing day and file (named as the asset named it)."""
    frames = [
        spark.read.text(paths)
        .select(F.lit(day).cast("date").alias("landing_date"),
                F.regexp_replace(F.input_file_name(), "^file://", "").alias("source_file"),
                F.col("value").alias("line"))
        for day, paths in sorted(files.items()) if paths
    ]
    if not frames:
        return spark.createDataFrame([], LINE_SCHEMA)
    lines = frames[0]
    for frame in frames[1:]:
        lines = lines.unionByName(frame)
    return lines.where(F.trim("line") != "")


def bind_input(spark: SparkSession, name: str, spec: dict) -> None:
    if spec["format"] == "lines":
        frame = landed_lines(spark, spec["files"])
    elif spec["format"] == "parquet":
        frame = spark.read.option("basePath", spec["base_path"]).parquet(*spec["paths"])
    else:
        raise ValueError(f"input {name}: unknown format {spec['format']!r}")
    frame.createOrReplaceTempView(name)


def run_plan(spark: SparkSession, plan: dict, inputs: dict[str, dict], outputs: dict[str, str], log=print) -> dict[str, list[list]]:
    """Bind the inputs, run the steps, write the outputs; returns the facts' rows."""
    missing = [name for name in plan["inputs"] if name not in inputs]
    if missing:
        raise ValueError(f"the plan needs inputs {missing}, which the launcher did not pass")
    for name in plan["inputs"]:
        bind_input(spark, name, inputs[name])
    for step in plan["steps"]:
        frame = spark.sql(step["sql"])
        if step["kind"] == "numbered":
            frame = frame.withColumn("row", F.monotonically_increasing_id())
        if step["kind"] in ("table", "numbered"):
            frame = frame.cache()
        frame.createOrReplaceTempView(step["name"])
    for table, sql in plan["outputs"].items():
        began = time.perf_counter()
        spark.sql(sql).write.mode("overwrite").parquet(outputs[table])
        log(f"{table}: written to {outputs[table]} in {time.perf_counter() - began:.1f}s")
    return {name: [list(row) for row in spark.sql(sql).collect()] for name, sql in plan["facts"].items()}


def balance(check: dict, tables: list[str], facts: dict[str, list[list]], written: dict[str, int]) -> dict:
    """A balance's check result: the rows written to its tables against the one value of its fact."""
    rows, expected = sum(written[table] for table in tables), facts[check["check"]][0][0]
    return {
        "asset_key": check["asset"], "check_name": check["check"], "passed": rows == expected, "severity": "ERROR",
        "metadata": {"rows_written": rows, "rows_expected": expected, "tables": ", ".join(tables),
                     "judged_by": "the Spark job, on its written files"},
    }


class UnreadableLandingFile(Exception):
    """A landing file Hadoop's text reader refuses; the message says which and what to do."""


READ_FAILURE = re.compile(r"reading file (\S+?)\.?(\s|$)")


def unreadable_landing_file(message: str, inputs: dict[str, dict]) -> str | None:
    """The landing file a failed read names, if it is one of the landing files the plan reads."""
    found = READ_FAILURE.search(message)
    if not found:
        return None
    path = re.sub(r"^file:(//)?", "", found.group(1))
    landing = {f for spec in inputs.values() if spec["format"] == "lines" for paths in spec["files"].values() for f in paths}
    return path if path in landing else None


def _cause(message: str) -> str:
    """The innermost cause a Spark error names (its last `Caused by:` line), else its first line."""
    causes = [line for line in message.splitlines() if line.startswith("Caused by:")]
    return (causes[-1] if causes else message.splitlines()[0])[:500]


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
    pipes.log.info(f"Spark {version} ({master}, {spark.sparkContext.applicationId}) up in {started:.1f}s")
    try:
        facts = run_plan(spark, extras["plan"], extras["inputs"], extras["outputs"], pipes.log.info)
        # Rows written, counted from the Parquet footers, only of the tables a requested check balances.
        balanced = {table for check in extras.get("report_checks", []) for table in extras["plan"]["balances"][check["check"]]}
        written = {table: spark.read.parquet(extras["outputs"][table]).count() for table in balanced}
    except Exception as error:
        unreadable = unreadable_landing_file(str(error), extras["inputs"])
        if unreadable is None:
            raise
        raise UnreadableLandingFile(
            f"Spark could not read the landing file {unreadable} (not gzip, or cut short by an interrupted upload), so the day "
            "fails here. DuckDB quarantines such a file, or keeps the complete lines of a cut one: rerun this day with "
            f"engine 'duckdb'. Spark said: {_cause(str(error))}"
        ) from error
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

"""Where Spark runs a transformation plan: `spark-submit` on this machine, or a step on EMR (`resources/emr.py`).

Either way the job is `spark_jobs/plan_runner.py`, launched through Dagster Pipes: its log lines,
the plan's facts and its timings come back to the asset that launched it. Which engine an asset
uses, DuckDB or Spark, is the deployment's choice (`runs_by_default`), overridable per run with the
asset's `engine` config.
"""

from __future__ import annotations

import abc
import sys
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from tvtime_platform.resources.storage import is_remote

PLAN_RUNNER = Path(__file__).resolve().parents[1] / "spark_jobs" / "plan_runner.py"
# Spark settings that suit a laptop's local mode: few shuffle partitions (few output files), no UI
# server, no progress bars in the run's logs.
LOCAL_SPARK_CONF = {
    "spark.sql.shuffle.partitions": "8",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}


class SparkJobs(dg.ConfigurableResource, abc.ABC):
    """Launches the plan runner with some Pipes extras; returns what it reported."""

    runs_by_default: bool = Field(
        default=False, description="whether the set-based assets run on Spark when a run's config leaves the engine to the deployment"
    )

    @abc.abstractmethod
    def run(self, context: dg.AssetExecutionContext, extras: dict[str, Any]) -> list:
        """Run the plan runner with these extras; the materializations it reported."""


class LocalSpark(SparkJobs):
    """`spark-submit` in local mode, on this machine, with this interpreter's PySpark."""

    master: str = Field(default="local[*]", description="Spark master; local[N] uses N cores")
    driver_memory: str = Field(default="4g", description="JVM heap of the driver (in local mode, of the whole job)")
    spark_conf: dict[str, str] = Field(default=LOCAL_SPARK_CONF, description="--conf settings passed to spark-submit")

    def run(self, context: dg.AssetExecutionContext, extras: dict[str, Any]) -> list:
        remote = [url for url in _urls(extras) if is_remote(url)]
        if remote:
            raise dg.Failure(
                f"Spark in local mode reads and writes local folders only (Spark's S3 connector is not installed here), "
                f"but this run names {remote[0]}. Run the asset with engine 'duckdb', or launch Spark on EMR.",
                allow_retries=False,
            )
        command = [str(Path(sys.executable).with_name("spark-submit")), "--master", self.master, "--driver-memory", self.driver_memory]
        for key, value in self.spark_conf.items():
            command += ["--conf", f"{key}={value}"]
        env = {"SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
        client = dg.PipesSubprocessClient(env=env)
        return client.run(context=context, command=[*command, str(PLAN_RUNNER)], extras=extras).get_results()


def _urls(extras: dict[str, Any]) -> list[str]:
    """Every file or folder the job will read or write."""
    urls = list(extras["outputs"].values())
    for spec in extras["inputs"].values():
        urls += [path for paths in spec.get("files", {}).values() for path in paths] + spec.get("paths", [])
    return urls

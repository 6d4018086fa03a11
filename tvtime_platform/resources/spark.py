"""Where Spark runs a transformation plan: `spark-submit` on this machine, or a step on EMR (`resources/emr.py`).

Either way the job is `spark_jobs/plan_runner.py`, launched through Dagster Pipes: its log lines,
the plan's facts and its timings come back to the asset that launched it. Which engine an asset
uses, DuckDB or Spark, is the `set_based` resource's choice (`resources/set_based.py`). A job that fails fails the
asset with its own error (`job_error`: its
Python traceback, not Spark's log), and is not retried: a plan that failed on some data fails again.
"""

from __future__ import annotations

import abc
import collections
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import IO, Any

import dagster as dg
from pydantic import Field

from tvtime_platform.resources.storage import is_remote

PACKAGE = Path(__file__).resolve().parents[1]
PLAN_RUNNER = PACKAGE / "spark_jobs" / "plan_runner.py"
# The platform's modules the job imports, shipped beside it in their package (`--py-files`): the landing-file reader
# that DuckDB's path uses too. Nothing else of the platform reaches the cluster.
JOB_MODULES = ("__init__.py", "transforms/__init__.py", "transforms/landed_lines.py")
# Spark settings that suit a laptop's local mode: few shuffle partitions (few output files), no UI
# server, no progress bars in the run's logs.
LOCAL_SPARK_CONF = {
    "spark.sql.shuffle.partitions": "8",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}


# JVM options the job needs wherever it runs, on the driver (where local mode runs everything) and the executors. The
# code Spark generates for the validation of a line is one method above the 8,000 bytes of bytecode HotSpot compiles,
# and left to the interpreter it took twice as long (docs/spark.md).
JOB_JAVA_OPTIONS = "-XX:-DontCompileHugeMethods"
JAVA_OPTION_SETTINGS = ("spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions")


def submit_conf(spark_conf: dict[str, str]) -> list[str]:
    """`spark-submit`'s `--conf` arguments: a deployment's settings, and the job's JVM options after its own."""
    settings = dict(spark_conf)
    for key in JAVA_OPTION_SETTINGS:
        settings[key] = f"{settings.get(key, '')} {JOB_JAVA_OPTIONS}".strip()
    return [argument for key, value in settings.items() for argument in ("--conf", f"{key}={value}")]


def job_modules_zip() -> bytes:
    """The job's platform modules as a zip for `--py-files`; the same bytes for the same sources (EMR stages it by
    hash)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for relative in JOB_MODULES:
            archive.writestr(
                zipfile.ZipInfo(f"tvtime_platform/{relative}", date_time=(1980, 1, 1, 0, 0, 0)),
                (PACKAGE / relative).read_bytes(),
            )
    return buffer.getvalue()


class SparkJobs(dg.ConfigurableResource, abc.ABC):
    """Launches the plan runner with some Pipes extras; returns what it reported."""

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
                f"Spark in local mode reads and writes local folders only (Spark's S3 connector is not installed "
                f"here), "
                f"but this run names {remote[0]}. Run the asset with engine 'duckdb', or launch Spark on EMR.",
                allow_retries=False,
            )
        modules = Path(tempfile.mkdtemp(prefix="tvtime-spark-")) / "tvtime_modules.zip"
        modules.write_bytes(job_modules_zip())
        try:
            return self._submit(context, extras, modules)
        finally:
            shutil.rmtree(modules.parent, ignore_errors=True)

    def _submit(self, context: dg.AssetExecutionContext, extras: dict[str, Any], modules: Path) -> list:
        command = [
            str(Path(sys.executable).with_name("spark-submit")),
            "--master",
            self.master,
            "--driver-memory",
            self.driver_memory,
            "--py-files",
            str(modules),
            *submit_conf(self.spark_conf),
        ]
        env = {"SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
        with dg.open_pipes_session(
            context=context,
            extras=extras,
            context_injector=dg.PipesEnvContextInjector(),
            message_reader=dg.PipesTempFileMessageReader(),
        ) as session:
            process = subprocess.Popen(
                [*command, str(PLAN_RUNNER)],
                env={**os.environ, **env, **session.get_bootstrap_env_vars()},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
            )
            # The job's output goes on to the run's captured logs; its last lines are kept for the failure message.
            tails = [_Tee(process.stdout, sys.stdout), _Tee(process.stderr, sys.stderr)]
            try:
                returncode = process.wait()
            except dg.DagsterExecutionInterruptedError:
                process.send_signal(signal.SIGINT)  # Spark stops its jobs and the JVM on SIGINT
                process.wait(timeout=60)
                raise
            for tail in tails:
                tail.join()
            if returncode != 0:
                said = job_error(tails[0].lines(), tails[1].lines())
                raise dg.Failure(
                    f"The Spark job (spark-submit, {self.master}) failed with exit code {returncode}; its error:\n"
                    + "\n".join(said),
                    allow_retries=False,
                )
        return session.get_results()


class _Tee(threading.Thread):
    """Copies a child's output stream to ours, keeping its last lines."""

    def __init__(self, source: IO[str], target: IO[str], keep: int = 5000) -> None:
        super().__init__(daemon=True)
        self.source, self.target, self._last = source, target, collections.deque(maxlen=keep)
        self.start()

    def run(self) -> None:
        for line in self.source:
            self.target.write(line)
            self._last.append(line.rstrip("\n"))
        self.target.flush()

    def lines(self) -> list[str]:
        return list(self._last)


SPARK_LOG_LINE = re.compile(r"^\d\d/\d\d/\d\d \d\d:\d\d:\d\d (INFO|WARN|DEBUG) ")


def job_error(*streams: list[str], most: int = 30) -> list[str]:
    """What a failed job said went wrong, from its output streams: the last Python traceback found (PySpark's
    driver writes it to stdout) without Spark's log lines and stack frames, or, with none, the last lines."""
    for lines in streams:
        lines = [line for line in lines if not SPARK_LOG_LINE.match(line)]
        starts = [k for k, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
        if starts:
            block = lines[starts[-1] :]
            said = [block[0]] + [line[:1000] for line in block[1:] if line.strip() and not line[0].isspace()]
            return said[:most]
    return [line for lines in streams for line in lines if not SPARK_LOG_LINE.match(line)][-most:]


def _urls(extras: dict[str, Any]) -> list[str]:
    """Every file or folder the job will read or write."""
    urls = list(extras["outputs"].values())
    for spec in extras["inputs"].values():
        urls += [path for paths in spec.get("files", {}).values() for path in paths] + spec.get("paths", [])
    return urls

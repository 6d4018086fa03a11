"""The engine of the set-based assets (app_events, user_sessions, tracked_episodes, user_show_interactions).

Each builds a plan (`transforms.plan`) and runs it through the `set_based` resource, on DuckDB in
this process or on Spark (`spark`: local mode, or EMR). Its setting `default` is the deployment's
choice (local: DuckDB, staging and prod: `auto`, which picks by the bytes landed for the days the
run covers: DuckDB up to `spark_above_bytes`, Spark above); a run overrides it with the asset's
`engine` config. Both engines leave the same rows in the lake (the parity test), and the asset
reports the same metadata either way (`engine` and `engine_reason` say which ran and why), plus the
Spark job's timings when Spark ran it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, NamedTuple

import dagster as dg
import duckdb as duckdb_api
from pydantic import Field

from tvtime_platform.lake import ROW_COUNT, Lake, LakeTable, StagedFiles, Version, create_views
from tvtime_platform.resources.duckdb_engine import DuckDBEngine, Facts
from tvtime_platform.resources.landing import LandingZone
from tvtime_platform.resources.spark import SparkJobs
from tvtime_platform.resources.step_config import StepConfig
from tvtime_platform.resources.storage import filesystem, join
from tvtime_platform.transforms.plan import NUMBERED, Plan
from tvtime_platform.transforms.spark_sql import to_spark

Engine = Literal["duckdb", "spark"]
DeploymentEngine = Literal["duckdb", "spark", "auto"]
# Where `auto` moves a partition to Spark, in bytes landed (gzip JSON lines) for the days a run covers. Measured
# (docs/benchmarks.md): DuckDB validates ~73,000 lines/s a core, Spark ~9,100 (since ~24,900, which the threshold does
# not yet follow), and a landed line is ~45 bytes. 16 GiB is
# ~380M lines: where a running 256-core cluster passes a 16-core run worker, and where the lines DuckDB stages on the
# worker's disk (~170 bytes each, ~65 GB) approach its size. A transient cluster (~10 min to start) pays off only from
# ~1.4 billion lines (~63 GB); `TVTIME_SPARK_ABOVE_BYTES` moves the threshold.
SPARK_ABOVE_BYTES = 16 << 30


class EngineConfig(StepConfig):
    engine: Literal["deployment", "duckdb", "spark"] = Field(
        default="deployment", description="'duckdb' or 'spark' for this run; 'deployment' leaves it to the deployment"
    )


class EngineChoice(NamedTuple):
    """The engine a run uses and why, as the materialization reports it (with the bytes landed, when `auto` counted
    them)."""

    engine: Engine
    reason: str
    landed_bytes: int | None = None

    def metadata(self) -> dict[str, str | int]:
        counted = {} if self.landed_bytes is None else {"landed_bytes": self.landed_bytes}
        return {"engine": self.engine, "engine_reason": self.reason, **counted}


@dataclass
class PlanRun:
    """What a plan left: per output table a DuckDB relation or the files Spark staged, its facts, the engine's own
    metadata, and, from Spark, the balances its job judged (None: to be judged once the outputs are written)."""

    outputs: dict[str, duckdb_api.DuckDBPyRelation | StagedFiles]
    facts: Facts
    metadata: dict[str, object]
    checks: list[dg.AssetCheckResult] | None = None


class SetBasedEngine(dg.ConfigurableResource):
    """Where the set-based plans run: `default` is the deployment's engine (`auto`: by the landed bytes), a run's
    `engine` config overrides it."""

    default: DeploymentEngine = Field(
        default="duckdb",
        description="engine of a run whose config leaves it to the deployment; 'auto' picks by the bytes landed",
    )
    spark_above_bytes: int = Field(
        default=SPARK_ABOVE_BYTES,
        gt=0,
        description="with 'auto': a run whose days landed more bytes than this runs on Spark, the others on DuckDB",
    )
    duckdb: DuckDBEngine
    spark: SparkJobs
    lake: Lake
    landing: LandingZone

    def choose(self, config: EngineConfig, days: Iterable[dt.date], landed_bytes: int | None = None) -> EngineChoice:
        """The run's engine: its config's, else the deployment's, else (`auto`) by the bytes landed for `days` and the
        late window after each (what their app_events partitions read); `landed_bytes` when the caller counted them."""
        if config.engine != "deployment":
            return EngineChoice(config.engine, "the run's engine config")
        if self.default != "auto":
            return EngineChoice(self.default, "the deployment's engine")
        size = self.landed_bytes(days) if landed_bytes is None else landed_bytes
        engine: Engine = "spark" if size > self.spark_above_bytes else "duckdb"
        relation = "more than" if engine == "spark" else "at most"
        threshold = _size(self.spark_above_bytes)
        return EngineChoice(engine, f"auto: {_size(size)} landed, {relation} spark_above_bytes ({threshold})", size)

    def landed_bytes(self, days: Iterable[dt.date]) -> int:
        """Bytes of the event files landed on `days` and the `late_arrival_days` after each, each day counted once."""
        read = {d + dt.timedelta(days=k) for d in days for k in range(self.landing.late_arrival_days + 1)}
        return sum(f.size for d in sorted(read) for f in self.landing.event_files(d).values())

    def run_plan(
        self,
        context: dg.AssetExecutionContext,
        config: EngineConfig,
        plan: Plan,
        tables: dict[str, LakeTable],
        days: Iterable[dt.date],
    ) -> PlanRun:
        """A plan over lake tables covering `days`, on the engine the run's config or the deployment chooses."""
        choice = self.choose(config, days)
        context.log.info(f"Running on {choice.engine} ({choice.reason})")
        if choice.engine == "duckdb":
            result = run_on_duckdb(self.duckdb, plan, tables, context.log.info)
        else:
            result = self.run_on_spark(context, plan, {name: table.spark_input() for name, table in tables.items()})
        result.metadata.update(choice.metadata())
        return result

    def run_on_spark(self, context: dg.AssetExecutionContext, plan: Plan, inputs: dict[str, dict]) -> PlanRun:
        """Launch the plan on Spark; its outputs are staged in a scratch folder of the lake, for the IO manager to move
        in."""
        return run_on_spark(context, self.spark, self.lake, plan, inputs)


def run_on_spark(
    context: dg.AssetExecutionContext, spark: SparkJobs, lake: Lake, plan: Plan, inputs: dict[str, dict]
) -> PlanRun:
    """Launch the plan on Spark; its outputs are staged in a scratch folder of the lake, for the IO manager to move
    in."""
    scratch = lake.scratch(f"spark-{context.run.run_id}")
    extras = {
        "plan": plan.translated(to_spark).to_json(),
        "inputs": inputs,
        "outputs": {name: join(scratch, name) for name in plan.outputs},
        "report_for": [key.to_user_string() for key in sorted(context.selected_asset_keys)],
        "report_checks": [
            {"asset": key.asset_key.to_user_string(), "check": key.name}
            for key in sorted(context.selected_asset_check_keys)
            if key.name in plan.balances
        ],
    }
    try:
        reported = spark.run(context, extras)
    except BaseException:
        fs, path = filesystem(scratch)
        if fs.exists(path):
            fs.rm(path, recursive=True)
        raise
    materializations = [r for r in reported if isinstance(r, dg.MaterializeResult)]
    if not materializations:
        raise dg.Failure("The Spark job ended without reporting its results through Pipes; see its log above.")
    metadata = dict(materializations[0].metadata or {})
    facts = metadata.pop("spark_facts")
    checks = [r for r in reported if isinstance(r, dg.AssetCheckResult)]
    return PlanRun(
        {name: StagedFiles(url) for name, url in extras["outputs"].items()},
        getattr(facts, "data", facts),
        metadata,
        checks,
    )


def _size(count: int) -> str:
    """Bytes as people read them: 512 B, 3.4 MiB, 16.0 GiB."""
    size, unit = float(count), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            break
        size /= 1024
    return f"{count} B" if unit == "B" else f"{size:.1f} {unit}"


def judged_balances(
    context: dg.AssetExecutionContext, plan: Plan, run: PlanRun, written: dict[str, Version]
) -> list[dg.AssetCheckResult]:
    """The plan's selected balances, as Spark's job reported them or, after DuckDB, judged on the versions written
    (before they are committed): their rows against the fact's value."""
    if run.checks is not None:
        return run.checks
    results = []
    for key in sorted(context.selected_asset_check_keys):
        if key.name not in plan.balances:
            continue
        tables = plan.balances[key.name]
        rows = sum(written[table].metadata[ROW_COUNT].value for table in tables)
        expected = run.facts[key.name][0][0]
        results.append(
            dg.AssetCheckResult(
                asset_key=key.asset_key,
                check_name=key.name,
                passed=rows == expected,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "rows_written": rows,
                    "rows_expected": expected,
                    "tables": ", ".join(tables),
                    "judged_by": "the asset, on the lake's files",
                },
            )
        )
    return results


def run_on_duckdb(
    duckdb: DuckDBEngine, plan: Plan, tables: dict[str, LakeTable], log: Callable[[str], None] | None = None
) -> PlanRun:
    """Run a plan without numbered steps (those stage files, which must outlive the relations: see `app_events`)."""
    if any(step.kind == NUMBERED for step in plan.steps):
        raise ValueError("a plan with numbered steps needs a scratch folder that outlives its outputs")
    con = duckdb.connect()
    create_views(con, tables)
    outputs, facts = duckdb.run_plan(con, plan, scratch="", log=log)
    return PlanRun(dict(outputs), facts, {})

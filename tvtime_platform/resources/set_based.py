"""The engine of the set-based assets (app_events, user_sessions, tracked_episodes, user_show_interactions).

Each builds a plan (`transforms.plan`) and runs it through the `set_based` resource, on DuckDB in
this process or on Spark (`spark`: local mode, or EMR). Its one setting `default` is the
deployment's choice (local: DuckDB, staging and prod: Spark); a run overrides it with the asset's
`engine` config. Both engines leave the same rows in the lake (the parity test), and the asset
reports the same metadata either way, plus the Spark job's timings when Spark ran it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import dagster as dg
import duckdb as duckdb_api
from pydantic import Field

from tvtime_platform.resources.duckdb_engine import DuckDBEngine, Facts
from tvtime_platform.resources.lake import ROW_COUNT, Lake, LakeTable, StagedFiles, Version, create_views
from tvtime_platform.resources.spark import SparkJobs
from tvtime_platform.resources.step_config import StepConfig
from tvtime_platform.resources.storage import filesystem, join
from tvtime_platform.transforms.plan import NUMBERED, Plan
from tvtime_platform.transforms.spark_sql import to_spark

Engine = Literal["duckdb", "spark"]


class EngineConfig(StepConfig):
    engine: Literal["deployment", "duckdb", "spark"] = Field(
        default="deployment", description="'duckdb' or 'spark' for this run; 'deployment' leaves it to the deployment"
    )


@dataclass
class PlanRun:
    """What a plan left: per output table a DuckDB relation or the files Spark staged, its facts, the engine's own
    metadata, and, from Spark, the balances its job judged (None: to be judged once the outputs are written)."""

    outputs: dict[str, duckdb_api.DuckDBPyRelation | StagedFiles]
    facts: Facts
    metadata: dict[str, object]
    checks: list[dg.AssetCheckResult] | None = None


class SetBasedEngine(dg.ConfigurableResource):
    """Where the set-based plans run: `default` is the deployment's engine, a run's `engine` config overrides it."""

    default: Engine = Field(default="duckdb", description="engine of a run whose config leaves it to the deployment")
    duckdb: DuckDBEngine
    spark: SparkJobs
    lake: Lake

    def on_spark(self, config: EngineConfig) -> bool:
        return (self.default if config.engine == "deployment" else config.engine) == "spark"

    def run_plan(
        self, context: dg.AssetExecutionContext, config: EngineConfig, plan: Plan, tables: dict[str, LakeTable]
    ) -> PlanRun:
        """A plan over lake tables, on the engine the deployment and the run's config choose."""
        if not self.on_spark(config):
            return run_on_duckdb(self.duckdb, plan, tables, context.log.info)
        inputs = {name: table.spark_input() for name, table in tables.items()}
        return self.run_on_spark(context, plan, inputs)

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

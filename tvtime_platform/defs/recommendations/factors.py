"""`user_factors` and `show_factors`: matrix factorization of the interactions, trained in the batch image.

The asset launches the image's entrypoint through the `factorization` resource (a local process,
or an AWS Batch job) with Pipes; the entrypoint trains, evaluates against the popularity baseline
and writes both factor tables to a scratch folder of the run, which this asset then moves into
the lake. The entrypoint's report (model parameters, library version, training loss, timings and
the blocking check `beats_popularity_baseline`) arrives as the assets' metadata and check result:
the check is evaluated by the entrypoint (it holds the model and the held-out split) and declared
here, blocking, so that factors that fail it never reach `show_recommendations`.
"""

import dagster as dg
from pydantic import Field

from tvtime_platform.factorization.model import SHOW_FACTORS_COLUMNS, USER_FACTORS_COLUMNS
from tvtime_platform.lake import Lake
from tvtime_platform.lib.attributes import SERVICE_RETRIES, column_schema, declared_columns, role
from tvtime_platform.lib.failures import deterministic_failures_not_retried
from tvtime_platform.lib.partitions import daily_partitions, run_day
from tvtime_platform.resources.duckdb_engine import DuckDBEngine
from tvtime_platform.resources.factorization import Factorization
from tvtime_platform.resources.step_config import StepConfig
from tvtime_platform.resources.storage import filesystem, join

FACTOR_TABLES = ("user_factors", "show_factors")
MIN_LIFT = 0.05

beats_popularity_baseline = dg.AssetCheckSpec(
    "beats_popularity_baseline",
    asset="user_factors",
    blocking=True,
    partitions_def=daily_partitions,  # a day's failure holds back that day, not the others
    description=f"Blocking: NDCG@10 on each user's held-out latest show beats the popularity baseline's on the same "
    f"split "
    f"by the configured margin (default {MIN_LIFT:.0%}); precision@10, recall@10 and coverage reported beside.",
)


class TrainingConfig(StepConfig):
    factors: int = Field(default=32, ge=1, description="latent factors per user and show")
    iterations: int = Field(default=15, ge=1, description="ALS iterations")
    regularization: float = Field(
        default=30.0, ge=0, description="L2 penalty; strong, as most users have few shows in a window"
    )
    alpha: float = Field(default=20.0, gt=0, description="scale of the confidence weights")
    seed: int = 0
    threads: int = Field(default=0, ge=0, description="solver threads; 0 uses every core")
    min_lift: float = Field(
        default=MIN_LIFT, description="how much NDCG@10 must exceed the popularity baseline's (0.05 = 5%)"
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "user_factors",
            deps=["user_show_interactions"],
            description="A vector of latent factors per user.",
            tags=role("training"),
            code_version="1",
            metadata=column_schema(USER_FACTORS_COLUMNS),
        ),
        dg.AssetSpec(
            "show_factors",
            deps=["user_show_interactions"],
            description="A vector of latent factors per show.",
            tags=role("training"),
            code_version="1",
            metadata=column_schema(SHOW_FACTORS_COLUMNS),
        ),
    ],
    check_specs=[beats_popularity_baseline],
    partitions_def=daily_partitions,
    group_name="recommendations",
    retry_policy=SERVICE_RETRIES,
    pool="aws_batch",  # training jobs at once, limited by the instance
)
def factors(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    factorization: Factorization,
    lake_storage: Lake,
    duckdb: DuckDBEngine,
):
    """Train on the day's interaction matrix in the batch image, then adopt its factor files into the lake."""
    with deterministic_failures_not_retried():
        partition = run_day(context)
        scratch = lake_storage.scratch(f"factors-{context.run.run_id}")
        extras = {
            "interactions_files": lake_storage.table(dg.AssetKey("user_show_interactions"), [partition]).files(),
            "output_url": scratch,
            **config.model_dump(),
        }
        try:
            reported = factorization.run(context, extras)
            con = duckdb.connect()
            trained = {dg.AssetKey(name): con.read_parquet(join(scratch, f"{name}.parquet")) for name in FACTOR_TABLES}
            versions = lake_storage.replace(partition, trained, declared_columns(context))
            written = {version.key.to_user_string(): version.metadata for version in versions}
        finally:
            fs, path = filesystem(scratch)
            if fs.exists(path):
                fs.rm(path, recursive=True)
        for result in reported:
            if isinstance(result, dg.MaterializeResult):
                name = result.asset_key.to_user_string()
                yield dg.MaterializeResult(
                    asset_key=result.asset_key, metadata={**(result.metadata or {}), **written[name]}
                )
            else:
                yield result

"""The batch image's entrypoint: train and evaluate the factors, report back through Dagster Pipes.

Run by the `user_factors`/`show_factors` asset as a local process (local deployment) or as the
container command of an AWS Batch job (staging, prod); it is the same file either way. The asset
passes, as Pipes extras: `interactions_files` (the day's Parquet files, paths or s3:// URLs),
`output_url` (where to write `user_factors.parquet` and `show_factors.parquet`), the solver's
parameters and `min_lift`, the margin over the popularity baseline the check requires.
"""

from __future__ import annotations

import os
import time
from importlib.metadata import version

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit parallelizes itself; nested BLAS threads slow it down

from dagster_pipes import (
    PipesDefaultMessageWriter,
    PipesEnvVarParamsLoader,
    PipesMessageWriter,
    PipesS3MessageWriter,
    open_dagster_pipes,
)

from tvtime_platform.factorization import model as mf

CHECK = "beats_popularity_baseline"


def message_writer() -> PipesMessageWriter:
    """Messages go where the launcher reads them: to S3 from an AWS Batch job, else to a local file."""
    if "bucket" in PipesEnvVarParamsLoader().load_messages_params():
        import boto3

        return PipesS3MessageWriter(client=boto3.client("s3"))
    return PipesDefaultMessageWriter()


def main() -> None:
    with open_dagster_pipes(message_writer=message_writer()) as pipes:
        extras = pipes.extras
        params = mf.Params(
            **{name: extras[name] for name in ("factors", "iterations", "regularization", "alpha", "seed", "threads")}
        )
        began = time.perf_counter()
        files = extras["interactions_files"]
        print(f"factorization: reading {len(files)} file(s), first {files[0]}", flush=True)  # the container's log
        data = mf.read_interactions(files)
        split = mf.hold_out_latest(data)
        pipes.log.info(
            f"{len(data.user_ids):,} users x {len(data.show_ids):,} shows, {data.matrix.nnz:,} interactions; "
            f"{len(split.users):,} users hold out their latest"
        )
        user_factors, show_factors, fit = mf.train(split.train, params)
        pipes.log.info(f"trained in {fit['training_seconds']:.1f}s, loss {fit['loss_by_iteration'][-1]:.5f}")

        recommended, _ = mf.top_k(user_factors, show_factors, split.train, split.users, mf.TOP_K)
        model = mf.evaluate(recommended, split.held_out, len(data.show_ids))
        baseline = mf.evaluate(mf.popular_top_k(split.train, split.users, mf.TOP_K), split.held_out, len(data.show_ids))
        key = f"ndcg_at_{mf.TOP_K}"
        required = baseline[key] * (1 + extras["min_lift"])
        passed = model[key] >= required

        # The evaluated model never saw each viewer's latest show, the strongest sign of what they want next: once
        # it has passed, the factors published are refit, with the same parameters, on every interaction.
        published = fit
        if passed:
            user_factors, show_factors, published = mf.train(data.matrix, params)
            pipes.log.info(f"refit on all {data.matrix.nnz:,} interactions in {published['training_seconds']:.1f}s")
        trained_on = (
            "all interactions (refit after the evaluation passed)"
            if passed
            else "the evaluation split, without each viewer's latest show (held back: the evaluation failed)"
        )

        output = extras["output_url"].rstrip("/")
        mf.write_factors(f"{output}/user_factors.parquet", data.user_ids, user_factors, "user_id")
        mf.write_factors(f"{output}/show_factors.parquet", data.show_ids, show_factors, "show_id")

        model_info = {
            "library": f"implicit {version('implicit')}",
            "solver": "weighted ALS (conjugate gradient)",
            **{f"param_{k}": v for k, v in vars(params).items()},
            "trained_on": trained_on,
            # The published factors' own fit; the evaluated model's training beside it (the same fit when held back).
            "training_seconds": round(published["training_seconds"], 3),
            "final_training_loss": published["loss_by_iteration"][-1],
            "loss_by_iteration": {"raw_value": published["loss_by_iteration"], "type": "json"},
            "evaluation_training_seconds": round(fit["training_seconds"], 3),
            "total_seconds": round(time.perf_counter() - began, 3),
        }
        pipes.report_asset_materialization(
            asset_key="user_factors",
            metadata={**model_info, "users": len(data.user_ids), "interactions": int(data.matrix.nnz)},
        )
        pipes.report_asset_materialization(
            asset_key="show_factors", metadata={**model_info, "shows": len(data.show_ids)}
        )
        pipes.report_asset_check(
            asset_key="user_factors",
            check_name=CHECK,
            passed=passed,
            severity="ERROR",
            metadata={
                **{f"model_{k}": v for k, v in model.items()},
                **{f"popularity_{k}": v for k, v in baseline.items()},
                "users_evaluated": len(split.users),
                "evaluated_on": "each viewer's latest show, held out of a model trained on the rest",
                "min_lift": extras["min_lift"],
                f"required_{key}": required,
            },
        )


if __name__ == "__main__":
    main()

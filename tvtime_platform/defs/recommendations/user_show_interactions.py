"""`user_show_interactions`: the implicit-feedback matrix of a trailing window of days, in the lake.

Partition D covers the `window_days` days ending on D. Days of the window not in the lake yet (the
first weeks of data, or a gap) are skipped and named in the metadata rather than failing the day.
"""

import datetime as dt

import dagster as dg
from pydantic import Field

from tvtime_platform.lake import Lake
from tvtime_platform.lib.attributes import SERVICE_RETRIES, column_schema, role
from tvtime_platform.lib.failures import deterministic_failures_not_retried
from tvtime_platform.lib.partitions import daily_partitions, run_day
from tvtime_platform.resources.set_based import EngineConfig, SetBasedEngine
from tvtime_platform.transforms.interactions import USER_SHOW_INTERACTIONS_COLUMNS, interactions_plan

MAX_WINDOW_DAYS = 28
WINDOW = dg.TimeWindowPartitionMapping(start_offset=-(MAX_WINDOW_DAYS - 1), allow_nonexistent_upstream_partitions=True)


class InteractionsConfig(EngineConfig):
    window_days: int = Field(
        default=MAX_WINDOW_DAYS,
        ge=1,
        le=MAX_WINDOW_DAYS,
        description="days of activity in the matrix, ending on the partition's day",
    )
    follow_weight: float = Field(default=2.0, ge=0, description="strength a follow adds")
    rating_weight: float = Field(
        default=0.5, ge=0, description="strength per star of average rating above 3 (below 3 it subtracts)"
    )
    half_life_days: float = Field(default=14.0, gt=0, description="days after which an interaction counts half")


@dg.asset(
    io_manager_key="lake",
    partitions_def=daily_partitions,
    deps=[
        dg.AssetDep("tracked_episodes", partition_mapping=WINDOW),
        dg.AssetDep("app_events", partition_mapping=WINDOW),
    ],
    group_name="recommendations",
    tags=role("set_based"),
    code_version="1",
    retry_policy=SERVICE_RETRIES,
    metadata=column_schema(USER_SHOW_INTERACTIONS_COLUMNS),
)
def user_show_interactions(
    context: dg.AssetExecutionContext, config: InteractionsConfig, set_based: SetBasedEngine, lake_storage: Lake
):
    """One row per user and show with a confidence weight: episodes tracked, follows and ratings, fading with age."""
    with deterministic_failures_not_retried():
        end = dt.date.fromisoformat(run_day(context))
        days = [(end - dt.timedelta(days=k)).isoformat() for k in range(config.window_days)]
        tables = {name: dg.AssetKey(name) for name in ("tracked_episodes", "app_events")}
        present = [d for d in days if all(lake_storage.has(key, d) for key in tables.values())]
        if not present:
            raise dg.Failure(
                f"No day of the {config.window_days}-day window ending {end} has tracked_episodes and app_events "
                "in the lake; materialize them first.",
                allow_retries=False,
            )
        inputs = {name: lake_storage.table(key, present) for name, key in tables.items()}
        plan = interactions_plan(end, config.follow_weight, config.rating_weight, config.half_life_days)
        result = set_based.run_plan(context, config, plan, inputs, [dt.date.fromisoformat(d) for d in present])
        users, shows, kept, dropped = result.facts["summary"][0]
        missing = sorted(set(days) - set(present))
        metadata = {
            "users": users,
            "shows": shows,
            "pairs": kept,
            "pairs_without_positive_feedback": dropped,
            "days_in_window": len(present),
            "days_missing": dg.MetadataValue.json(missing),
            **result.metadata,
        }
        # Launching Pipes makes Dagster expect explicit outputs, so the value comes wrapped.
        return dg.Output(result.outputs["user_show_interactions"], metadata=metadata)

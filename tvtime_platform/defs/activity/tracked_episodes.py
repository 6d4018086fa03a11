"""`tracked_episodes`: episode_watched events joined to the catalog, one row per user, episode and day; its check."""

import datetime as dt

import dagster as dg

from tvtime_platform.lake import LakeTable
from tvtime_platform.lib.attributes import column_schema, derived_day_table
from tvtime_platform.lib.failures import deterministic_failures_not_retried
from tvtime_platform.lib.partitions import daily_partitions, run_day
from tvtime_platform.resources.duckdb_engine import DuckDBEngine
from tvtime_platform.resources.set_based import EngineConfig, SetBasedEngine
from tvtime_platform.transforms.tracked_episodes import TRACKED_EPISODES_COLUMNS, tracked_episodes_plan


@dg.asset(**derived_day_table("activity"), metadata=column_schema(TRACKED_EPISODES_COLUMNS))
def tracked_episodes(
    context: dg.AssetExecutionContext,
    config: EngineConfig,
    app_events: LakeTable,
    show_catalog: LakeTable,
    set_based: SetBasedEngine,
):
    """Who watched which episode that day; episodes unknown to the catalog are kept and flagged."""
    with deterministic_failures_not_retried():
        tables = {"app_events": app_events, "show_catalog": show_catalog}
        day = dt.date.fromisoformat(run_day(context))
        result = set_based.run_plan(context, config, tracked_episodes_plan(), tables, [day])
        users, shows, orphans = result.facts["summary"][0]
        metadata = {"distinct_users": users, "distinct_shows": shows, "not_in_catalog": orphans, **result.metadata}
        # Launching Pipes makes Dagster expect explicit outputs, so the value comes wrapped.
        return dg.Output(result.outputs["tracked_episodes"], metadata=metadata)


MAX_ORPHAN_SHARE = 0.01


@dg.asset_check(
    asset="tracked_episodes",
    partitions_def=daily_partitions,
    description=f"At most {MAX_ORPHAN_SHARE:.0%} of tracked episodes may be unknown to the catalog or name another "
    f"show.",
)
def tracked_episodes_in_catalog(tracked_episodes: LakeTable, duckdb: DuckDBEngine) -> dg.AssetCheckResult:
    rows, unknown, wrong_show = duckdb.fetch_one(
        "SELECT count(*), count(*) FILTER (WHERE NOT in_catalog), count(*) FILTER (WHERE in_catalog AND NOT "
        "show_matches_catalog) "
        "FROM tracked_episodes",
        {"tracked_episodes": tracked_episodes},
    )
    share = (unknown + wrong_show) / max(rows, 1)
    return dg.AssetCheckResult(
        passed=share <= MAX_ORPHAN_SHARE,
        metadata={
            "rows": rows,
            "unknown_episodes": unknown,
            "show_mismatches": wrong_show,
            "orphan_share": round(share, 6),
        },
        description=None
        if share <= MAX_ORPHAN_SHARE
        else f"{share:.2%} of tracked episodes fail catalog integrity (limit {MAX_ORPHAN_SHARE:.0%})",
    )

"""Checks on `tracked_episodes`: its episodes must exist in the catalog, under the show the app named."""

import dagster as dg

from tvtime_platform.partitions import daily_partitions
from tvtime_platform.resources.duckdb_engine import DuckDBEngine
from tvtime_platform.resources.lake import LakeTable

MAX_ORPHAN_SHARE = 0.01


@dg.asset_check(asset="tracked_episodes", partitions_def=daily_partitions,
                description=f"At most {MAX_ORPHAN_SHARE:.0%} of tracked episodes may be unknown to the catalog or name another show.")
def tracked_episodes_in_catalog(tracked_episodes: LakeTable, duckdb: DuckDBEngine) -> dg.AssetCheckResult:
    rows, unknown, wrong_show = duckdb.fetch_one(
        "SELECT count(*), count(*) FILTER (WHERE NOT in_catalog), count(*) FILTER (WHERE in_catalog AND NOT show_matches_catalog) "
        "FROM tracked_episodes", {"tracked_episodes": tracked_episodes})
    share = (unknown + wrong_show) / max(rows, 1)
    return dg.AssetCheckResult(
        passed=share <= MAX_ORPHAN_SHARE,
        metadata={"rows": rows, "unknown_episodes": unknown, "show_mismatches": wrong_show, "orphan_share": round(share, 6)},
        description=None if share <= MAX_ORPHAN_SHARE else f"{share:.2%} of tracked episodes fail catalog integrity (limit {MAX_ORPHAN_SHARE:.0%})",
    )

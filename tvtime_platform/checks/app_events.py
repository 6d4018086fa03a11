"""Checks on `app_events`: a day with too many rejected lines must not flow downstream."""

import dagster as dg

from tvtime_platform.partitions import daily_partitions
from tvtime_platform.resources.duckdb_engine import DuckDBEngine
from tvtime_platform.resources.lake import LakeTable
from tvtime_platform.transforms.app_events import DUPLICATE

MAX_QUARANTINE_RATE = 0.02


@dg.asset_check(
    asset="app_events",
    partitions_def=daily_partitions,
    blocking=True,
    additional_ins={"quarantined_events": dg.AssetIn()},
    description=f"Blocking: at most {MAX_QUARANTINE_RATE:.0%} of a day's lines may be rejected (duplicates, being retries, do not count).",
)
def quarantine_rate_below_threshold(app_events: LakeTable, quarantined_events: LakeTable, duckdb: DuckDBEngine) -> dg.AssetCheckResult:
    kept = app_events.row_count()
    rejected = duckdb.fetch_one("SELECT count(*) FILTER (WHERE reason <> ?) FROM quarantined_events",
                                {"quarantined_events": quarantined_events}, [DUPLICATE])[0]
    rate = rejected / max(kept + rejected, 1)
    return dg.AssetCheckResult(
        passed=rate <= MAX_QUARANTINE_RATE,
        severity=dg.AssetCheckSeverity.ERROR,
        description=None if rate <= MAX_QUARANTINE_RATE else
        f"{rate:.2%} of lines rejected (limit {MAX_QUARANTINE_RATE:.0%}); see quarantined_events for the reasons",
        metadata={"quarantine_rate": rate, "rejected": rejected, "kept": kept, "limit": MAX_QUARANTINE_RATE},
    )

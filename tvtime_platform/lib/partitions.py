"""The daily partitions every day-shaped table shares: one partition per UTC day of event time."""

from __future__ import annotations

import warnings

import dagster as dg

FIRST_DAY = "2024-01-01"

# What a run of a day-partitioned asset says when it names no day (`dg launch --partition ""`, a job launched bare).
NO_DAY = (
    "This run names no day partition, but what it materializes ({what}) is partitioned by day: launch it with one, "
    "e.g. dg launch --job daily_pipeline --partition 2024-03-01, or make day DAY=2024-03-01."
)

# end_offset=1 makes today a partition too, so a day is materialized as soon as its first files land.
daily_partitions = dg.DailyPartitionsDefinition(start_date=FIRST_DAY, end_offset=1)

# Checks are partitioned like the days they judge, which Dagster still labels a preview; the choice
# is deliberate (a check result per day in the UI), so the warning is not repeated on every load.
warnings.filterwarnings(
    "ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=dg.PreviewWarning
)
# Windows that reach back (a matrix's 28 days, a day and the one before) start before the first partition on the
# first days; allowing that is labelled beta, and is what these mappings mean, so it is not repeated either.
warnings.filterwarnings("ignore", message="Parameter `allow_nonexistent_upstream_partitions`", category=dg.BetaWarning)


def run_day(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> str:
    """The day partition the run is for (YYYY-MM-DD); a run without one fails saying how to name it, not with Dagster's
    "Cannot access partition_key for a non-partitioned run"."""
    if not context.has_partition_key:
        checked = isinstance(context, dg.AssetCheckExecutionContext)
        keys = {spec.asset_key for spec in context.check_specs} if checked else context.selected_asset_keys
        raise dg.Failure(NO_DAY.format(what=", ".join(sorted(k.to_user_string() for k in keys))), allow_retries=False)
    return context.partition_key

"""The daily partitions every day-shaped table shares: one partition per UTC day of event time."""

from __future__ import annotations

import warnings

import dagster as dg

FIRST_DAY = "2024-01-01"

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

"""Data-quality rules as asset checks, one module per guarded table (the old quality subDAGs)."""

import warnings

import dagster as dg

# Checks are partitioned like the days they judge, which Dagster still labels a preview; the choice
# is deliberate (a check result per day in the UI), so the warning is not repeated on every load.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=dg.PreviewWarning)

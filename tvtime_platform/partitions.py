"""The daily partitions every day-shaped table shares: one partition per UTC day of event time."""

from __future__ import annotations

import dagster as dg

FIRST_DAY = "2024-01-01"

# end_offset=1 makes today a partition too, so a day is materialized as soon as its first files land.
daily_partitions = dg.DailyPartitionsDefinition(start_date=FIRST_DAY, end_offset=1)

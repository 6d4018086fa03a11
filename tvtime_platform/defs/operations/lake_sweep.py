"""`sweep_lake`: every morning, what no record names any more is deleted from the partitions written since.

Each write of a partition sweeps that partition; this catches the rest: the version the last write
of a day replaced (kept `sweep_after_seconds` for its readers), a killed write's files in a day
that is never written again, and the hand-over folders of killed Spark or Batch steps. It goes over
the partitions the lake's journal says were written since its last pass (`Lake.sweep_written`), so
its cost follows what was written, not the lake; `everything: true` goes over every partition of
every table (once after the journal was introduced: a lake written before it has no markers).
"""

import dagster as dg
from pydantic import Field

from tvtime_platform.lake import Lake


class SweepConfig(dg.Config):
    everything: bool = Field(
        default=False, description="go over every partition of every table, not only those written since the last pass"
    )


@dg.op(out={}, description="Delete, in the lake partitions written since the last pass, the files no record names.")
def sweep_written_partitions(context: dg.OpExecutionContext, config: SweepConfig, lake_storage: Lake):
    deleted = lake_storage.sweep_everything() if config.everything else lake_storage.sweep_written()
    context.log.info(
        f"Deleted {len(deleted)} version folder(s) and file(s) no record names"
        + (f", first {deleted[0]}" if deleted else "")
    )


@dg.job(description="Delete from the lake what no commit record names any more (replaced versions, killed writes).")
def sweep_lake():
    sweep_written_partitions()


sweep_lake_schedule = dg.ScheduleDefinition(
    job=sweep_lake,
    cron_schedule="30 5 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every day at 05:30 UTC: sweep_lake.",
)

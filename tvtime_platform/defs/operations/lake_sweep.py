"""`sweep_lake`: every morning, the lake's expired snapshots and what no kept snapshot names are deleted.

A commit deletes nothing: the versions it replaced stay as long as the snapshots that name them (`keep_snapshots_days`,
for readers still on them, time travel and rollbacks). This pass goes over the partitions the lake's journal says were
written on the dates that long gone (`Lake.sweep_written`): it expires their tables' older snapshots, then deletes
the version folders no kept snapshot names (replaced versions, killed writes' files) and the manifests of the expired
snapshots, and the hand-over folders of killed Spark or Batch steps. Its cost follows what was written, not the
lake; `everything: true` goes over every partition of every table (for a lake written before the journal).
"""

import dagster as dg
from pydantic import Field

from tvtime_platform.lake import Lake


class SweepConfig(dg.Config):
    everything: bool = Field(
        default=False, description="go over every partition of every table, not only those written since the last pass"
    )


@dg.op(out={}, description="Expire old snapshots; delete, in the partitions written since, what no kept one names.")
def sweep_written_partitions(context: dg.OpExecutionContext, config: SweepConfig, lake_storage: Lake):
    deleted = lake_storage.sweep_everything() if config.everything else lake_storage.sweep_written()
    context.log.info(
        f"Deleted {len(deleted)} version folder(s) and file(s) no kept snapshot names"
        + (f", first {deleted[0]}" if deleted else "")
    )


@dg.job(
    description="Expire the lake's old snapshots and delete what no kept snapshot names (replaced versions, killed "
    "writes)."
)
def sweep_lake():
    sweep_written_partitions()


sweep_lake_schedule = dg.ScheduleDefinition(
    job=sweep_lake,
    cron_schedule="30 5 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every day at 05:30 UTC: sweep_lake.",
)

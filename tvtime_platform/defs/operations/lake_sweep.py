"""`sweep_lake`: every morning, what no record names any more is deleted from the whole lake.

Each write of a partition sweeps that partition; this catches the rest: the version the last write
of a day replaced (kept `sweep_after_seconds` for its readers), a killed write's files in a day
that is never written again, and the hand-over folders of killed Spark or Batch steps.
"""

import dagster as dg

from tvtime_platform.resources.lake import Lake


@dg.op(out={}, description="Delete, in every partition of every lake table, the files no commit record names any more.")
def sweep_every_partition(context: dg.OpExecutionContext, lake_storage: Lake):
    deleted = lake_storage.sweep_everything()
    context.log.info(
        f"Deleted {len(deleted)} version folder(s) and file(s) no record names"
        + (f", first {deleted[0]}" if deleted else "")
    )


@dg.job(description="Delete from the lake what no commit record names any more (replaced versions, killed writes).")
def sweep_lake():
    sweep_every_partition()


sweep_lake_schedule = dg.ScheduleDefinition(
    job=sweep_lake,
    cron_schedule="30 5 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every day at 05:30 UTC: sweep_lake.",
)

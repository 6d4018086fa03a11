"""The landing sensor and the jobs it launches: a day partition runs as soon as files it reads are new or changed.

Partition D reads the files landed on D and, for late events, on the `late_arrival_days` after
it. A change on landing day L requests L. Whether the days before it need a run too is known once
L's files are read: L's materialization names them (`earlier_days_to_run`: the days one of L's
files holds events of while their rows lack that file, or the whole window when L rebuilt rows it
held after losing one of its files), and the sensor requests those on its next evaluation. So a
file of the morning does not re-run yesterday unless it holds yesterday's events. The cursor keeps
each landing day's fingerprint (names, sizes, mtimes) and the last materialization read; the run
key names the fingerprints a run read, so a day that already ran on the same files is not run
again.
"""

import datetime as dt
import json

import dagster as dg

from tvtime_platform.defs.ingestion.app_events import EARLIER_DAYS_TO_RUN
from tvtime_platform.lib.partitions import daily_partitions
from tvtime_platform.resources.landing import LandingZone

CATALOG = "catalog"
MATERIALIZED = "app_events_read_through"  # in the cursor: the storage id of the last app_events materialization read
PAGE = 500  # materializations fetched at a time
LOOKBACK = dt.timedelta(days=2)  # materializations read when the cursor holds no position

ingest_events_job = dg.define_asset_job(
    "ingest_events",
    selection=dg.AssetSelection.assets("app_events", "quarantined_events"),
    description="Validate a day of landing files into app_events / quarantined_events (with their checks).",
)
catalog_job = dg.define_asset_job(
    "refresh_show_catalog",
    selection=dg.AssetSelection.assets("show_catalog"),
    description="Rebuild show_catalog from the catalog export in the landing zone.",
)


@dg.sensor(
    jobs=[ingest_events_job, catalog_job],
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests a day's ingest_events run when its files land or change (and the days before it when those "
    "files hold their events), and refresh_show_catalog when the catalog export changes.",
)
def landing_sensor(context: dg.SensorEvaluationContext, landing: LandingZone) -> dg.SensorResult:
    previous: dict[str, str | int | None] = json.loads(context.cursor) if context.cursor else {}
    current = landing.landed_days()
    requests: list[dg.RunRequest] = []

    catalog = landing.catalog_fingerprint()
    if catalog and previous.get(CATALOG) != catalog:
        requests.append(dg.RunRequest(job_name=catalog_job.name, run_key=f"{CATALOG}:{catalog}"))

    changed = {day for day, fingerprint in current.items() if previous.get(day) != fingerprint}
    earlier, read_through = _earlier_days_to_run(context, previous.get(MATERIALIZED))
    known = set(daily_partitions.get_partition_keys(dynamic_partitions_store=context.instance))
    for partition in sorted(changed | earlier):
        if partition not in known:
            context.log.warning(
                f"Landing files for {partition} are outside the partitions ({daily_partitions.start:%Y-%m-%d} "
                f"onwards); skipped."
            )
            continue
        day = dt.date.fromisoformat(partition)
        reads = [(day + dt.timedelta(days=k)).isoformat() for k in range(landing.late_arrival_days + 1)]
        inputs = ",".join(current.get(d, "-") for d in reads)
        requests.append(
            dg.RunRequest(job_name=ingest_events_job.name, partition_key=partition, run_key=f"{partition}:{inputs}")
        )

    if catalog:
        current[CATALOG] = catalog
    current[MATERIALIZED] = read_through
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(current, sort_keys=True))


def _earlier_days_to_run(context: dg.SensorEvaluationContext, after: int | None) -> tuple[set[str], int | None]:
    """The days that app_events materializations after storage id `after` name as needing a run, and the last id read.
    Without a position (a first evaluation, a lost cursor), the materializations of the last `LOOKBACK` are read: older
    ones were followed up then, and a day a lost one named is named again by its day's next run."""
    days: set[str] = set()
    since = None if after is not None else (dt.datetime.now(dt.UTC) - LOOKBACK).timestamp()
    while True:
        records = dg.AssetRecordsFilter(dg.AssetKey("app_events"), after_storage_id=after, after_timestamp=since)
        found = context.instance.fetch_materializations(records, limit=PAGE, ascending=True)
        for record in found.records:
            days |= _named_days(context, record)
            after = record.storage_id
        if not found.has_more:
            return days, after


def _named_days(context: dg.SensorEvaluationContext, record: dg.EventLogRecord) -> set[str]:
    """The days a materialization names in `EARLIER_DAYS_TO_RUN`; a value that is not a list of dates is skipped with a
    warning (a hand-reported event must not stop the sensor)."""
    metadata = record.asset_materialization.metadata if record.asset_materialization else {}
    named = metadata[EARLIER_DAYS_TO_RUN].value if EARLIER_DAYS_TO_RUN in metadata else []
    if isinstance(named, list):
        try:
            return {dt.date.fromisoformat(day).isoformat() for day in named}
        except (TypeError, ValueError):
            pass
    context.log.warning(
        f"app_events materialization {record.storage_id} names {named!r} as {EARLIER_DAYS_TO_RUN}, not a list of "
        "dates (YYYY-MM-DD); skipped."
    )
    return set()

"""The landing sensors and the jobs they launch: a day partition runs as soon as files it reads are new or changed.

Partition D reads the files landed on D and, for late events, on the `late_arrival_days` after
it. A change on landing day L requests L. Whether the days before it need a run too is known once
L's files are read: L's materialization names them (`earlier_days_to_run`: the days one of L's
files holds events of while their rows lack that file, or the whole window when L rebuilt rows it
held after losing one of its files), and the sensor requests those on its next evaluation. So a
file of the morning does not re-run yesterday unless it holds yesterday's events.

`landing_sensor` ticks every minute and lists only the *open* landing days (today's and the few
before it that collectors may still write to, `LandingZone.open_days`): a tick costs the same on
day 1,000 as on day 30. Its cursor keeps those days' fingerprints (names, sizes, versions) and the
last materialization read; closed days fold away. `landing_reconciliation` lists the whole zone
every `RECONCILE_EVERY` to catch what lands in a closed day (a collector days behind, a file
rewritten by hand); its cursor keeps every closed day's fingerprint, and a closed day that changed
is requested only if the newest sensor run of it read other files (its run key), so a day that
closed, or that `landing_sensor` already ran because a later day named it, is not run again. Run
keys name the fingerprints a run read.

With a queue of the landing bucket's S3 event notifications (`LandingZone.queue_url`, staging and
prod), `landing_sensor` lists no day unless a message names it, closed days included, and compares
each with what its newest sensor run read; `landing_reconciliation` then also covers the open days,
for a message lost, and a queue that cannot be read makes the tick list the open days as without one.
"""

import datetime as dt
import json

import dagster as dg

from tvtime_platform.defs.ingestion.app_events import EARLIER_DAYS_TO_RUN
from tvtime_platform.lib.partitions import FIRST_DAY, daily_partitions
from tvtime_platform.resources import landing_queue
from tvtime_platform.resources.landing import LandingZone

CATALOG = "catalog"
MATERIALIZED = "app_events_read_through"  # in the cursor: the storage id of the last app_events materialization read
PAGE = 500  # materializations fetched at a time
LOOKBACK = dt.timedelta(days=2)  # materializations read when the cursor holds no position
RECEIVED = "received"  # in the cursor, with a queue: the receipts of the messages the tick read, deleted by the next
RECONCILE_EVERY = 6 * 3600  # seconds between two listings of the whole landing zone
RUN_KEY = "dagster/run_key"
RUNS_ASKED = 5  # a partition's newest runs looked through for one a sensor launched (launched by hand: no run key)

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


def utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


@dg.sensor(
    jobs=[ingest_events_job, catalog_job],
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests a day's ingest_events run when its files land or change in an open landing day, or in any "
    "day the landing queue's notifications name (and the days before it when those files hold their events), and "
    "refresh_show_catalog when the catalog export changes.",
)
def landing_sensor(context: dg.SensorEvaluationContext, landing: LandingZone) -> dg.SensorResult:
    previous: dict = json.loads(context.cursor) if context.cursor else {}
    if landing.queue_url:
        current, changed, cursor = _notified(context, landing, previous)
    else:
        current = landing.day_fingerprints(landing.open_days(utc_today()))
        changed = {day for day, fingerprint in current.items() if previous.get(day) != fingerprint}
        cursor = dict(current)  # closed days fold away
    requests: list[dg.RunRequest] = []

    catalog = landing.catalog_fingerprint()
    if catalog and previous.get(CATALOG) != catalog:
        requests.append(dg.RunRequest(job_name=catalog_job.name, run_key=f"{CATALOG}:{catalog}"))

    earlier, read_through = _earlier_days_to_run(context, previous.get(MATERIALIZED))
    requests += ingest_requests(context, landing, changed | earlier, current)

    cursor[MATERIALIZED] = read_through
    if catalog:
        cursor[CATALOG] = catalog
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor, sort_keys=True))


def _notified(
    context: dg.SensorEvaluationContext, landing: LandingZone, previous: dict
) -> tuple[dict[str, str], set[str], dict]:
    """With a queue: the fingerprints of the days its messages name, those of them whose files the newest sensor run of
    the day did not read (a message read twice, or after a lost cursor, runs nothing again), and the cursor, which holds
    the receipts to delete those messages by on the next tick (this tick's result is stored by then). A queue that
    cannot be read is said, and the open days are listed instead."""
    queue = str(landing.queue_url)
    if failed := landing_queue.forget(queue, previous.get(RECEIVED, [])):
        context.log.warning(f"{len(failed)} landing queue message(s) not deleted, to be read again: {failed[:3]}")
    try:
        notices = landing_queue.drain(queue, landing.url)
    except landing_queue.QueueUnusable as error:
        context.log.warning(f"{error}; listing the open landing days instead.")
        days, receipts = landing.open_days(utc_today()), ()
    else:
        if notices.not_understood:
            context.log.warning(f"Landing queue messages that are not S3 events, dropped: {notices.not_understood[:5]}")
        days, receipts = _days(context, notices.days), notices.receipts
    current = landing.day_fingerprints(days)
    read = _read_by_runs(context.instance, set(current))
    changed = {day for day, fingerprint in current.items() if read.get(day) != fingerprint}
    return current, changed, {RECEIVED: list(receipts)}


def _days(context: dg.SensorEvaluationContext, named: frozenset[str]) -> list[dt.date]:
    """The day partitions of these landing folder names; other names (no `YYYY-MM-DD`, or a day outside the
    partitions) are said and skipped."""
    days = []
    for name in sorted(named):
        if daily_partitions.has_partition_key(name):  # strict: not 20240303, 2024-3-4 or 2024-W09-7
            days.append(dt.date.fromisoformat(name))
        else:
            context.log.warning(
                f"Landing folder dt={name[:100]} is not a day partition (dt=YYYY-MM-DD from {FIRST_DAY}); skipped."
            )
    return days


@dg.sensor(
    jobs=[ingest_events_job],
    minimum_interval_seconds=RECONCILE_EVERY,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Lists the whole landing zone every few hours and requests the landing days landing_sensor did not see "
    "change (closed days; with a landing queue, any day whose message was lost): a file that landed days late, one "
    "rewritten, or one removed while others remain.",
)
def landing_reconciliation(context: dg.SensorEvaluationContext, landing: LandingZone) -> dg.SensorResult:
    everything = landing.landed_days()  # one listing of the zone: what it holds, every RECONCILE_EVERY
    # With a queue, landing_sensor lists only the days messages name: a message lost is found here, on any day.
    still_open = set() if landing.queue_url else {day.isoformat() for day in landing.open_days(utc_today())}
    landed = {day: fingerprint for day, fingerprint in everything.items() if day not in still_open}
    closed = {day: fingerprint for day, fingerprint in landed.items() if daily_partitions.has_partition_key(day)}
    if odd := sorted(set(landed) - set(closed)):
        context.log.warning(f"Landing folders that are not day partitions (dt=YYYY-MM-DD from {FIRST_DAY}): {odd[:10]}")
    previous = json.loads(context.cursor) if context.cursor else {}
    changed = {day for day, fingerprint in closed.items() if previous.get(day) != fingerprint}
    # Not those the newest sensor run of the day read as they are now (this one's before, or landing_sensor's when a
    # later day named it; or a pass whose cursor is new or lost).
    read = _read_by_runs(context.instance, changed)
    changed -= {day for day in changed if read.get(day) == closed[day]}
    if changed:
        context.log.info(f"{len(changed)} closed landing day(s) changed since the last pass: {sorted(changed)[:10]}")
    requests = ingest_requests(context, landing, changed, everything)
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(closed, sort_keys=True))


def ingest_requests(
    context: dg.SensorEvaluationContext, landing: LandingZone, partitions: set[str], listed: dict[str, str]
) -> list[dg.RunRequest]:
    """A run of `ingest_events` for each partition, keyed by the fingerprints of the landing days it reads (`listed`,
    or one listing of each other day it reads)."""
    kept = []
    for partition in sorted(partitions):
        if daily_partitions.has_partition_key(partition):  # without listing every partition: that grows by the day
            kept.append(partition)
        else:
            context.log.warning(
                f"Landing files for {partition} are outside the partitions ({daily_partitions.start:%Y-%m-%d} "
                f"onwards); skipped."
            )
    reads = {partition: _reads(landing, partition) for partition in kept}
    unlisted = sorted({day for days in reads.values() for day in days} - set(listed))
    fingerprints = listed | landing.day_fingerprints([dt.date.fromisoformat(day) for day in unlisted])
    return [
        dg.RunRequest(
            job_name=ingest_events_job.name,
            partition_key=partition,
            run_key=f"{partition}:{','.join(fingerprints.get(day, '-') for day in days)}",
        )
        for partition, days in reads.items()
    ]


def _reads(landing: LandingZone, partition: str) -> list[str]:
    """The landing days a partition reads: its own and its late window's."""
    day = dt.date.fromisoformat(partition)
    return [(day + dt.timedelta(days=k)).isoformat() for k in range(landing.late_arrival_days + 1)]


def _read_by_runs(instance: dg.DagsterInstance, days: set[str]) -> dict[str, str]:
    """Each landing day's fingerprint as the newest sensor run of the day's own partition recorded it in its run key
    (`<partition>:<the fingerprints of the days it reads>`, the partition's own first). Only that run ingested the day's
    own events: a run of the day before read it for late events only. A few queries a day asked about."""
    read = {}
    for day in days:
        filters = dg.RunsFilter(job_name=ingest_events_job.name, tags={"dagster/partition": day})
        found = instance.get_run_records(filters=filters, limit=RUNS_ASKED)
        keyed = [r for r in found if RUN_KEY in r.dagster_run.tags][:1]  # newest first
        for record in keyed:
            partition, _, fingerprints = record.dagster_run.tags[RUN_KEY].partition(":")
            if partition == day:
                read[day] = fingerprints.split(",")[0]
    return read


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

"""The landing sensor and the jobs it launches: a day partition runs as soon as files it reads are new or changed.

Partition D reads the files landed on D and, for late events, on the `late_arrival_days` after
it; so a change on landing day L requests L and the days before it within that window. The cursor
keeps each landing day's fingerprint (names, sizes, mtimes) and the run key names the fingerprints
a run read, so a restart that lost the cursor re-requests nothing already run.
"""

import datetime as dt
import json

import dagster as dg

from tvtime_platform.lib.partitions import daily_partitions
from tvtime_platform.resources.landing import LandingZone

CATALOG = "catalog"

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
    description="Requests a day's ingest_events run when files it reads land or change, and refresh_show_catalog "
    "when the catalog export changes.",
)
def landing_sensor(context: dg.SensorEvaluationContext, landing: LandingZone) -> dg.SensorResult:
    previous: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    current = landing.landed_days()
    requests: list[dg.RunRequest] = []

    catalog = landing.catalog_fingerprint()
    if catalog and previous.get(CATALOG) != catalog:
        requests.append(dg.RunRequest(job_name=catalog_job.name, run_key=f"{CATALOG}:{catalog}"))

    changed = [day for day, fingerprint in current.items() if previous.get(day) != fingerprint]
    known = set(daily_partitions.get_partition_keys(dynamic_partitions_store=context.instance))
    partitions = sorted({p for day in changed for p in landing.partitions_reading(day)})
    for partition in partitions:
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
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(current, sort_keys=True))

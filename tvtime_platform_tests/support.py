"""What the tests share: the local deployment's definitions, hand-made landing files and events, and reading or
writing the lake as a reader outside the platform would."""

import datetime as dt
import gzip
import json
import shutil
import unittest.mock
from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from tvtime_platform.definitions import build_definitions
from tvtime_platform.defs.ingestion import landing_sensor as landing_sensor_module
from tvtime_platform.lake import Lake, LakeIOManager, Version
from tvtime_platform.resources.deployment import Deployment, local_resources
from tvtime_platform.resources.duckdb_engine import DuckDBEngine
from tvtime_platform.resources.landing import LandingZone
from tvtime_platform.resources.set_based import SetBasedEngine
from tvtime_platform.resources.spark import LocalSpark
from tvtime_platform.resources.storage import filesystem, join
from tvtime_platform_tests.json_corpus import BASE_EVENT

REPO = Path(__file__).resolve().parents[1]
defs = build_definitions(Deployment())  # the local deployment's definitions

FACTORIZATION_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/tvtime-factorization:test"

START = dt.date(2024, 3, 1)
DAYS = 2
ASSETS = list(defs.assets)
CHECKS = list(defs.asset_checks)
DAY_SHAPED = (
    dg.AssetSelection.all() - dg.AssetSelection.assets("show_catalog") - dg.AssetSelection.groups("recommendations")
)


def landed_days(data_dir: Path) -> list[str]:
    return sorted(p.name.removeprefix("dt=") for p in (data_dir / "landing").glob("dt=*"))


def non_empty_landed_lines(landing: Path) -> int:
    """Counted with Python's gzip, independently of the DuckDB reader under test."""
    return sum(
        1
        for path in landing.glob("dt=*/hour=*/*.jsonl.gz")
        if path.stat().st_size
        for line in gzip.decompress(path.read_bytes()).splitlines()
        if line.strip()
    )


def materialize_all(
    data_dir: Path, instance: dg.DagsterInstance, days: list[str] | None = None, resources: dict | None = None
) -> list[dg.ExecuteInProcessResult]:
    """The catalog, then the whole day-shaped graph (with checks) for each landed day, in process (local resources by
    default)."""
    resources = resources or local_resources(data_dir)
    results = [dg.materialize(ASSETS, selection=["show_catalog"], instance=instance, resources=resources)]
    for day in days or landed_days(data_dir):
        results.append(
            dg.materialize(
                [*ASSETS, *CHECKS],
                selection=DAY_SHAPED,
                partition_key=day,
                instance=instance,
                resources=resources,
                raise_on_error=False,
            )
        )
    return results


def event(eid: str, **overrides) -> dict:
    """A valid episode_watched event of 2024-03-01, with fields overridden (None leaves a field out)."""
    base = {"event_id": eid, **BASE_EVENT}
    return {k: v for k, v in {**base, **overrides}.items() if v is not None}


def write_landing_file(landing: Path, day: str, hour: int, lines: list, name: str = "part-test.jsonl.gz") -> Path:
    """A landing file of the given lines: dicts become JSON, strings are written as they are."""
    path = landing / f"dt={day}" / f"hour={hour:02d}" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "\n".join(json.dumps(line) if isinstance(line, dict) else line for line in lines) + "\n"
    path.write_bytes(gzip.compress(body.encode()))
    return path


def lake_at(url: str | Path, **settings: object) -> Lake:
    """A lake at `url`: a folder's own catalog, or for an S3 lake moto's Glue Data Catalog, in a namespace of the
    bucket's own (the tests share one moto server)."""
    url = str(url)
    if "://" in url:
        bucket = url.removeprefix("s3://").split("/")[0]
        settings = {"catalog": "glue", "namespace": bucket.replace("-", "_"), **settings}
    return Lake(url=url, **settings)


def copy_data(source: Path, target: Path) -> None:
    """Copy a data folder (landing, lake, warehouse), its lake registered in a catalog of its own (`copy_lake`)."""
    shutil.copytree(source, target, ignore=lambda folder, names: ["lake"] if Path(folder) == source else [])
    if (source / "lake").is_dir():
        copy_lake(source / "lake", target / "lake")


def copy_lake(source_url: str | Path, target_url: str | Path) -> None:
    """Copy a lake's files and register the current ones in the copy's own catalog (sibling tables together, as the
    source pins them): a catalog names its files and metadata by absolute paths, so a copied catalog would go on
    naming the source's."""
    from tvtime_platform.cli import LAST_DAY
    from tvtime_platform.lake import catalog as iceberg

    source, target = lake_at(source_url), lake_at(target_url)
    fs, source_root = filesystem(source.root())
    target_fs, target_root = filesystem(target.root())
    for path in fs.find(source_root):
        relative = path[len(source_root.rstrip("/")) + 1 :]
        if relative == "catalog.db" or "/metadata/" in f"/{relative}":
            continue
        if "://" not in str(target_url):
            Path(target_root, relative).parent.mkdir(parents=True, exist_ok=True)
        target_fs.pipe_file(join(target_root, relative), fs.cat_file(path))
    for key in source.tables():
        if iceberg.COMMITTED_WITH in source.iceberg_table(key).properties:  # registered with its first table
            continue
        for day in source.partitions_through(key, LAST_DAY) or [None]:
            together = source.recorded(key, day).tables
            versions = [Version(dg.AssetKey.from_user_string(name), day, tuple(f)) for name, f in together.items()]
            target.commit(day, [v for v in versions if v.files])


def lake_files(lake_url: str | Path, table: str, day: str | None = None) -> list[str]:
    """The current files of a lake table's day (of every day without one), as its snapshot names them: what any
    reader outside the platform must read (a glob also finds replaced and unfinished versions)."""
    from tvtime_platform.cli import LAST_DAY, current_files

    lake = lake_at(lake_url)
    return current_files(lake, table, [day] if day else lake.partitions_through(dg.AssetKey(table), LAST_DAY))


def lake_scan(lake_url: str | Path, table: str, day: str | None = None, hive: bool = False) -> str:
    """`read_parquet([...])` over a table day's (every day's) current files, for a test's SQL; `hive` adds `dt`."""
    files = ", ".join(f"'{f}'" for f in lake_files(lake_url, table, day))
    return f"read_parquet([{files}]{', hive_partitioning = true' if hive else ''})"


def lake_write(lake_url: str | Path, table: str, day: str | None, rows) -> None:
    """Commit an Arrow table (or a DuckDB relation) as a lake table's day, as an asset would."""
    import duckdb

    relation = rows if isinstance(rows, duckdb.DuckDBPyRelation) else duckdb.connect().from_arrow(rows)
    write_partition(lake_at(lake_url), relation, dg.AssetKey(table), day)


def write_partition(lake: Lake, relation, asset_key: dg.AssetKey, partition: str | None) -> dict[str, dg.MetadataValue]:
    """Stage a relation and commit it as the asset's partition, replacing it whole, as the IO manager does; the
    metadata a materialization reports."""
    return lake.commit(partition, [lake.stage(relation, asset_key, partition)])[asset_key]


def commit_killed_before_the_first_table(lake: Lake, partition: str | None, versions: Sequence[Version]) -> None:
    """Commit tables together, the run killed after the others' commits and before the first table's (the one whose
    snapshot pins them)."""
    import tvtime_platform.lake.catalog as iceberg

    commit_day = iceberg.commit_day

    def killed(table, day, removed, added, properties):
        if iceberg.PINS in properties:
            raise KeyboardInterrupt("killed")
        return commit_day(table, day, removed, added, properties)

    with unittest.mock.patch.object(iceberg, "commit_day", killed):
        try:
            lake.commit(partition, versions)
        except KeyboardInterrupt:
            return
    raise AssertionError("the commit was not killed")


def columns_unlike_declared(lake_url: str | Path) -> dict[str, tuple[list[str], list[str]]]:
    """Per lake table written under `lake_url`: its files' column names and the names its definition declares, where
    they differ."""
    import pyarrow.parquet as pq

    from tvtime_platform.cli import LAST_DAY

    lake = lake_at(lake_url)
    unlike = {}
    for spec in defs.resolve_all_asset_specs():
        schema = spec.metadata.get("dagster/column_schema")
        days = lake.partitions_through(spec.key, LAST_DAY) or [None]
        files = lake.committed(spec.key, days[-1])
        if schema is None or not files:
            continue
        written, declared = pq.read_schema(files[0]).names, [c.name for c in schema.columns]
        if written != declared:
            unlike[spec.key.to_user_string()] = (written, declared)
    return unlike


def schemas_unlike_declared(results: list[dg.ExecuteInProcessResult]) -> dict[str, tuple[list, list]]:
    """Per table the runs materialized with a column schema: the (name, type, description) of its written columns
    and of its declared ones, where they differ."""
    declared = {spec.key: spec.metadata.get("dagster/column_schema") for spec in defs.resolve_all_asset_specs()}
    unlike = {}
    for result in results:
        for event in result.get_asset_materialization_events():
            written = event.materialization.metadata.get("dagster/column_schema")
            if written is None:
                continue
            wanted = declared[event.asset_key]
            pairs = [[(c.name, c.type, c.description) for c in s.columns] for s in (written.value, wanted)]
            if pairs[0] != pairs[1]:
                unlike[event.asset_key.to_user_string()] = tuple(pairs)
    return unlike


def resources_for(root: Path, lake_url: str | None = None) -> dict:
    """The local deployment's resources under `root`, with the lake at `lake_url` if given (an S3 prefix)."""
    resources = local_resources(root)
    if lake_url:
        lake = lake_at(lake_url)
        engine = DuckDBEngine(temp_directory=str(root / "tmp" / "duckdb"), remote_protocols=["s3"])
        resources |= {
            "lake_storage": lake,
            "lake": LakeIOManager(lake=lake),
            "duckdb": engine,
            "set_based": SetBasedEngine(
                default="duckdb", duckdb=engine, spark=LocalSpark(), lake=lake, landing=resources["landing"]
            ),
        }
    return resources


# The day the landing sensor's tests take for today: the landing days 2024-03-01 to 2024-03-03 are open.
LANDING_TODAY = dt.date(2024, 3, 3)


def evaluate_landing_sensor(
    landing: str | Path,
    cursor: str | None = None,
    instance: dg.DagsterInstance | None = None,
    today: dt.date = LANDING_TODAY,
    sensor: str = "landing_sensor",
    queue_url: str | None = None,
) -> dg.SensorResult:
    """One tick of `landing_sensor` (or of another sensor of its module, such as `landing_reconciliation`) over a
    landing folder or prefix (and its notification queue), on the day `today` (UTC)."""
    with unittest.mock.patch.object(landing_sensor_module, "utc_today", return_value=today):
        context = dg.build_sensor_context(
            cursor=cursor,
            instance=instance or dg.DagsterInstance.ephemeral(),
            resources={"landing": LandingZone(url=str(landing), queue_url=queue_url)},
        )
        return getattr(landing_sensor_module, sensor)(context)


def record_runs(instance: dg.DagsterInstance, requests: list[dg.RunRequest]) -> None:
    """The runs the daemon would launch for the requests (their run keys are what was read)."""
    for request in requests:
        tags = {"dagster/partition": request.partition_key, "dagster/run_key": request.run_key}
        instance.add_run(dg.DagsterRun(job_name=request.job_name, tags=tags))


def notifying_queue(landing_url: str) -> str:
    """A new SQS queue receiving the S3 event notifications (objects created and removed) of the landing prefix's
    bucket, as the landing bucket is configured in staging and prod; S3's test event is drained. Its URL."""
    import boto3

    bucket, _, prefix = landing_url.removeprefix("s3://").partition("/")
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName=f"{bucket}-landing")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("s3").put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": arn,
                    "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": f"{prefix}/"}]}},
                }
            ]
        },
    )
    for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])  # S3's test event
    return queue_url


def requested(result: dg.SensorResult) -> list[tuple[str, str | None]]:
    """What a sensor tick requested: (job, partition) pairs, sorted."""
    return sorted((r.job_name, r.partition_key) for r in result.run_requests)


def requests_to_the_store(fs) -> list[tuple[str, str]]:
    """The (operation, key or listed prefix) of every request `fs` sends from now on, heard on its S3 client."""
    fs.connect()
    sent: list[tuple[str, str]] = []

    def heard(params, model, **_) -> None:
        sent.append((model.name, params.get("Key") or params.get("Prefix", "")))

    fs.s3.meta.events.register("before-parameter-build.s3", heard)
    return sent

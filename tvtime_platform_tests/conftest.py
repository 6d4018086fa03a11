"""Shared fixtures: small generated landing data and resources pointed at a temporary data folder."""

import datetime as dt
import gzip
import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from tvtime_platform.cli import generate
from tvtime_platform.definitions import build_definitions
from tvtime_platform.resources.deployment import Deployment, local_resources
from tvtime_platform_tests.emulators import (
    AWS_TEST_ENVIRONMENT,
    moto_server,
    new_bucket,
    snowflake_environment,
    snowflake_query,
    snowflake_server,
)
from tvtime_platform_tests.fake_docker import FakeDocker
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


@pytest.fixture(scope="session")
def generated_landing(tmp_path_factory) -> Path:
    """Two generated days (with the default defects) for 1,500 users over a 400-show catalog."""
    landing = tmp_path_factory.mktemp("generated") / "landing"
    generate(landing, START, DAYS, users=1500, seed=7, shows=400)
    return landing


@pytest.fixture
def data_dir(tmp_path, generated_landing) -> Path:
    """A fresh data folder holding a copy of the generated landing zone."""
    shutil.copytree(generated_landing, tmp_path / "landing")
    return tmp_path


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


@pytest.fixture(scope="session")
def container_runtime() -> Iterator[FakeDocker]:
    """The emulated Docker that moto's AWS Batch runs job containers with (as local processes)."""
    with FakeDocker({FACTORIZATION_IMAGE: REPO / "batch_images" / "factorization"}, environment={}) as docker:
        yield docker


@pytest.fixture(scope="session")
def s3_endpoint(container_runtime) -> Iterator[str]:
    """moto's server on 127.0.0.1 (S3, Batch, IAM, CloudWatch Logs), made the process's AWS endpoint
    (as `AWS_ENDPOINT_URL` does in staging); its Batch jobs run in `container_runtime`."""
    with moto_server({"DOCKER_HOST": container_runtime.url}) as endpoint, pytest.MonkeyPatch.context() as env:
        aws = {**AWS_TEST_ENVIRONMENT, "AWS_ENDPOINT_URL": endpoint}
        for name, value in aws.items():
            env.setenv(name, value)
        container_runtime.environment.update(aws)  # the emulated cloud, as seen from inside a job's container
        yield endpoint


@pytest.fixture(scope="session")
def snowflake_settings(s3_endpoint) -> Iterator[dict]:
    """fakesnow's Snowflake server on 127.0.0.1, able to read the moto S3 through external stages.

    The connector would otherwise probe cloud metadata endpoints (169.254.169.254, AWS STS) on every
    connect to learn where it runs; tests talk to 127.0.0.1 only.
    """
    with snowflake_server() as settings, pytest.MonkeyPatch.context() as env:
        env.setenv("SNOWFLAKE_DISABLE_PLATFORM_DETECTION", "true")
        yield settings


@pytest.fixture
def staging_environment(s3_endpoint, snowflake_settings, monkeypatch) -> dict[str, str]:
    """`TVTIME_DEPLOYMENT=staging` with every setting, on a bucket and a Snowflake database of the test's own."""
    bucket, database = new_bucket(), f"TVTIME_{uuid.uuid4().hex[:8].upper()}"
    variables = {
        "TVTIME_DEPLOYMENT": "staging",
        # The set-based assets on DuckDB: Spark here has no S3 connector to read this lake (the EMR path is tested
        # in resources/test_emr.py, with the lake in local folders).
        "TVTIME_SET_BASED_ENGINE": "duckdb",
        "TVTIME_LANDING_URL": f"s3://{bucket}/landing",
        "TVTIME_LAKE_URL": f"s3://{bucket}/lake",
        "TVTIME_SNOWFLAKE_STAGE": "LAKE_STAGE",
        "TVTIME_BATCH_JOB_QUEUE": "training",
        "TVTIME_BATCH_JOB_DEFINITION": "factorization",
        "TVTIME_PIPES_BUCKET": bucket,
        **snowflake_environment(snowflake_settings, database),
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    snowflake_query(snowflake_settings, database, "MARTS", f"CREATE STAGE LAKE_STAGE URL = 's3://{bucket}/lake/'")
    return variables


def lake_files(lake_url: str | Path, table: str, day: str | None = None) -> list[str]:
    """The current files of a lake table's day (of every day without one), as its commit records name them: what any
    reader outside the platform must read (a glob also finds replaced and unfinished versions)."""
    from tvtime_platform.cli import LAST_DAY, current_files
    from tvtime_platform.resources.lake import Lake

    lake = Lake(url=str(lake_url))
    return current_files(lake, table, [day] if day else lake.partitions_through(dg.AssetKey(table), LAST_DAY))


def lake_scan(lake_url: str | Path, table: str, day: str | None = None, hive: bool = False) -> str:
    """`read_parquet([...])` over a table day's (every day's) current files, for a test's SQL; `hive` adds `dt`."""
    files = ", ".join(f"'{f}'" for f in lake_files(lake_url, table, day))
    return f"read_parquet([{files}]{', hive_partitioning = true' if hive else ''})"


def lake_write(lake_url: str | Path, table: str, day: str | None, rows) -> None:
    """Commit an Arrow table (or a DuckDB relation) as a lake table's day, as an asset would."""
    import duckdb

    from tvtime_platform.resources.lake import Lake

    relation = rows if isinstance(rows, duckdb.DuckDBPyRelation) else duckdb.connect().from_arrow(rows)
    Lake(url=str(lake_url)).write(relation, dg.AssetKey(table), day)


def columns_unlike_declared(lake_url: str | Path) -> dict[str, tuple[list[str], list[str]]]:
    """Per lake table written under `lake_url`: its files' column names and the names its definition declares, where
    they differ."""
    import pyarrow.parquet as pq

    from tvtime_platform.cli import LAST_DAY
    from tvtime_platform.resources.lake import Lake

    lake = Lake(url=str(lake_url))
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

"""Shared fixtures: small generated landing data, the emulated cloud, and resources pointed at a temporary data folder
(what tests share besides fixtures is in `support.py`)."""

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tvtime_platform.cli import generate
from tvtime_platform_tests.emulators import (
    AWS_TEST_ENVIRONMENT,
    moto_server,
    new_bucket,
    postgres_server,
    snowflake_environment,
    snowflake_query,
    snowflake_server,
)
from tvtime_platform_tests.fake_docker import FakeDocker
from tvtime_platform_tests.support import DAYS, FACTORIZATION_IMAGE, REPO, START


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
        "TVTIME_LAKE_CATALOG": "glue",  # moto's Glue Data Catalog, in a database of the bucket's own
        "TVTIME_LAKE_NAMESPACE": bucket.replace("-", "_"),
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


@pytest.fixture(params=["folder", "s3"])
def lake_url(request, tmp_path) -> str:
    """A lake in a local folder, then one on S3 (moto), for tests that hold on both."""
    if request.param == "folder":
        return str(tmp_path / "lake")
    request.getfixturevalue("s3_endpoint")
    return f"s3://{new_bucket()}/lake"


@pytest.fixture(scope="session")
def postgres() -> Iterator[dict[str, str]]:
    """A PostgreSQL server of its own on 127.0.0.1, with an empty `dagster` database (its settings as the instance's
    environment variables name them)."""
    with postgres_server() as settings:
        yield settings

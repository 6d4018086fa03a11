"""Real stand-ins for the cloud services, on 127.0.0.1: moto's S3 server and fakesnow's Snowflake server.

The production code talks to them exactly as to AWS and Snowflake (HTTP, the real connectors);
only where fakesnow does not implement Snowflake does this harness adapt, each case said below.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import fsspec
import snowflake.connector
from fakesnow import server as fakesnow_server  # the function; bound before the module of the same name loads
from fakesnow.cursor import FakeSnowflakeCursor
from fakesnow.server import shared_fs

from tvtime_platform.resources.deployment import (
    CLOUD_SETTINGS,
    DEPLOYMENT_VARIABLE,
    EMR_CLUSTER_VARIABLE,
    EMR_SETTINGS,
    ENGINE_VARIABLE,
    EXECUTOR_VARIABLE,
    LAKE_NAMESPACE_VARIABLE,
    LANDING_QUEUE_VARIABLE,
    SPARK_ABOVE_VARIABLE,
)

# Every staging/prod setting, as placeholders: enough to load a cloud code location, which connects to nothing.
CLOUD_PLACEHOLDERS = {
    name: f"s3://example/{name.lower()}" if name.endswith(("_URL", "_URI")) else "example"
    for name in {**CLOUD_SETTINGS, **EMR_SETTINGS}
} | {"TVTIME_LAKE_CATALOG": "glue"}
DEPLOYMENT_VARIABLES = {
    *CLOUD_SETTINGS,
    *EMR_SETTINGS,
    DEPLOYMENT_VARIABLE,
    ENGINE_VARIABLE,
    EXECUTOR_VARIABLE,
    EMR_CLUSTER_VARIABLE,
    LANDING_QUEUE_VARIABLE,
    LAKE_NAMESPACE_VARIABLE,
    SPARK_ABOVE_VARIABLE,
}


def clean_environment(**variables: str) -> dict[str, str]:
    """This process's environment without any deployment setting, plus `variables`: for a code location in a
    subprocess."""
    base = {k: v for k, v in os.environ.items() if k not in DEPLOYMENT_VARIABLES}
    return {**base, **variables}


AWS_TEST_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def moto_server(environment: dict[str, str] | None = None) -> Iterator[str]:
    """moto in server mode (real HTTP AWS APIs) on a free loopback port; yields its endpoint URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, **(environment or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def new_bucket() -> str:
    """A bucket of its own for a test, on the S3 endpoint of the environment."""
    name = f"tvtime-{uuid.uuid4().hex[:12]}"
    fsspec.filesystem("s3").mkdir(name)
    return name


# --- Where fakesnow differs from Snowflake, and how this harness makes up for it -------------------

_ON_ERROR_CONTINUE = re.compile(r"ON_ERROR\s*=\s*CONTINUE", re.IGNORECASE)
_original_execute = FakeSnowflakeCursor.execute


def _execute_like_snowflake(self: FakeSnowflakeCursor, command: str, *args, **kwargs) -> FakeSnowflakeCursor:
    # fakesnow's COPY INTO accepts only ON_ERROR = ABORT_STATEMENT. Files whose every
    # row loads give the same result under both; fakesnow cannot reject single rows anyway.
    command = _ON_ERROR_CONTINUE.sub("ON_ERROR = ABORT_STATEMENT", command)
    return _original_execute(self, command, *args, **kwargs)


@contextmanager
def snowflake_server() -> Iterator[dict]:
    """fakesnow's server on a loopback port, reading S3 through the environment's endpoint; yields connection
    settings."""
    FakeSnowflakeCursor.execute = _execute_like_snowflake
    # Difference 3: Snowflake reads an external stage's s3:// URL itself; fakesnow's DuckDB needs
    # an S3 filesystem registered to read the same URL from moto.
    shared_fs.duck_conn.register_filesystem(fsspec.filesystem("s3", use_listings_cache=False))
    try:
        with fakesnow_server() as settings:
            yield settings
    finally:
        FakeSnowflakeCursor.execute = _original_execute


def snowflake_environment(settings: dict, database: str, schema: str = "MARTS") -> dict[str, str]:
    """The SNOWFLAKE_* variables of a deployment pointed at the emulator."""
    return {
        "SNOWFLAKE_ACCOUNT": settings["account"],
        "SNOWFLAKE_USER": settings["user"],
        "SNOWFLAKE_PASSWORD": settings["password"],
        "SNOWFLAKE_DATABASE": database,
        "SNOWFLAKE_SCHEMA": schema,
        "SNOWFLAKE_WAREHOUSE": "LOADING",
        "SNOWFLAKE_HOST": settings["host"],
        "SNOWFLAKE_PORT": str(settings["port"]),
        "SNOWFLAKE_PROTOCOL": settings["protocol"],
    }


def snowflake_query(settings: dict, database: str, schema: str, sql: str) -> list[tuple]:
    """A query through the real connector, as an analyst would run it."""
    with snowflake.connector.connect(**settings, database=database, schema=schema) as conn:
        return conn.cursor().execute(sql).fetchall()


PG_BINS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))  # Debian's layout


def as_postgres(args: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the `postgres` user when we are root."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@contextmanager
def postgres_server() -> Iterator[dict[str, str]]:
    """A PostgreSQL server of its own on a free loopback port, with an empty `dagster` database; its settings as the
    instance's environment variables name them."""
    import psycopg2

    if not PG_BINS:
        raise RuntimeError("PostgreSQL is not installed: `make system-packages` installs Debian's (see the README)")
    pg_bin = PG_BINS[-1]
    # Not under pytest's folders, which `postgres` cannot enter.
    folder = Path(tempfile.mkdtemp(prefix="tvtime-postgres-"))
    data = folder / "data"
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    port = str(free_port())
    subprocess.run(
        as_postgres([str(pg_bin / "initdb"), "-D", str(data), "-U", "dagster", "--auth=trust"]),
        check=True,
        capture_output=True,
    )
    start = [str(pg_bin / "pg_ctl"), "-D", str(data), "-w", "-l", str(folder / "log")]
    subprocess.run(
        as_postgres([*start, "-o", f"-h 127.0.0.1 -p {port} -k {folder}", "start"]), check=True, capture_output=True
    )
    try:
        conn = psycopg2.connect(host="127.0.0.1", port=port, user="dagster", dbname="postgres")
        conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
        conn.cursor().execute("CREATE DATABASE dagster")
        conn.close()
        yield {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": port,
            "DAGSTER_PG_USER": "dagster",
            "DAGSTER_PG_PASSWORD": "unused-with-trust",
            "DAGSTER_PG_DB": "dagster",
        }
    finally:
        subprocess.run(
            as_postgres([str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]), capture_output=True
        )
        shutil.rmtree(folder, ignore_errors=True)

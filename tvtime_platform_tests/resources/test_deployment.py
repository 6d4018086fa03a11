"""Each deployment's definitions load with the real `dg` CLI; `local` loads no cloud library; a missing setting is
named."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tvtime_platform.resources.deployment import (
    CLOUD_MODULES,
    EMR_CONFIG,
    EMR_SETTINGS,
    Deployment,
    DeploymentError,
    cloud_resources,
)
from tvtime_platform.resources.emr import EmrSpark
from tvtime_platform.resources.set_based import SPARK_ABOVE_BYTES
from tvtime_platform.resources.spark import LocalSpark
from tvtime_platform_tests.emulators import CLOUD_PLACEHOLDERS, DEPLOYMENT_VARIABLES, clean_environment

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
DG = str(Path(sys.executable).with_name("dg"))


def environment(tmp_path: Path, **variables: str) -> dict[str, str]:
    (tmp_path / "home").mkdir(exist_ok=True)
    return clean_environment(
        DAGSTER_HOME=str(tmp_path / "home"),
        TVTIME_DATA_DIR=str(tmp_path / "data"),
        VIRTUAL_ENV=str(Path(sys.executable).parents[1]),
        **variables,
    )


def validate(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([DG, "check", "defs"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def imported_heavy_modules(env: dict[str, str]) -> list[str]:
    code = (
        "import sys; from tvtime_platform.definitions import build_definitions; "
        "from tvtime_platform.resources.deployment import Deployment; "
        "build_definitions(Deployment.from_environment()); "
        f"print(','.join(m for m in {CLOUD_MODULES!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return [m for m in result.stdout.strip().split(",") if m]


@pytest.mark.parametrize("name", ["local", "staging", "prod"])
def test_each_deployment_loads(tmp_path, name):
    env = environment(tmp_path, TVTIME_DEPLOYMENT=name, **({} if name == "local" else CLOUD_PLACEHOLDERS))
    result = validate(env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "Warning" not in result.stdout + result.stderr, (result.stdout + result.stderr)[-3000:]


def test_local_imports_no_cloud_library_and_staging_does(tmp_path):
    assert imported_heavy_modules(environment(tmp_path)) == []
    assert "snowflake.connector" in imported_heavy_modules(
        environment(tmp_path, TVTIME_DEPLOYMENT="staging", **CLOUD_PLACEHOLDERS)
    )


def test_a_missing_setting_fails_the_load_naming_it(tmp_path):
    partial = {k: v for k, v in CLOUD_PLACEHOLDERS.items() if k not in ("SNOWFLAKE_PASSWORD", "TVTIME_LAKE_URL")}
    result = validate(environment(tmp_path, TVTIME_DEPLOYMENT="prod", **partial))
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "TVTIME_DEPLOYMENT=prod needs these environment variables" in output
    assert "SNOWFLAKE_PASSWORD" in output and "TVTIME_LAKE_URL" in output and "SNOWFLAKE_USER" not in output


def test_an_unknown_deployment_is_refused(tmp_path):
    result = validate(environment(tmp_path, TVTIME_DEPLOYMENT="qa"))
    assert (
        result.returncode != 0
        and "TVTIME_DEPLOYMENT='qa' is not a deployment; use one of local, staging, prod"
        in result.stdout + result.stderr
    )


def cloud_environment(monkeypatch, **variables: str) -> None:
    for name in DEPLOYMENT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in {**CLOUD_PLACEHOLDERS, **variables}.items():
        monkeypatch.setenv(name, value)


def test_staging_picks_the_engine_by_size_with_emr_steps_shaped_by_emr_yaml_above_the_threshold(monkeypatch):
    cloud_environment(monkeypatch, TVTIME_DEPLOYMENT="staging", TVTIME_EMR_CLUSTER_ID="j-RUNNING")
    set_based = Deployment.from_environment().resources()["set_based"]
    assert set_based.spark_above_bytes == SPARK_ABOVE_BYTES
    spark = set_based.spark
    shape = yaml.safe_load(EMR_CONFIG.read_text())
    assert set_based.default == "auto" and isinstance(spark, EmrSpark) and spark.cluster_id == "j-RUNNING"
    assert spark.release_label == shape["release_label"] and spark.spark_conf == shape["spark_conf"]
    assert (
        spark.core.instance_count == shape["core"]["instance_count"]
        and spark.python_packages == shape["python_packages"]
    )
    assert spark.code_url.get_value() == CLOUD_PLACEHOLDERS["TVTIME_EMR_CODE_URL"]  # an EnvVar: never shown in config
    assert spark.messages_bucket.get_value() == CLOUD_PLACEHOLDERS["TVTIME_PIPES_BUCKET"]
    cloud_environment(monkeypatch)
    assert (
        cloud_resources("prod")["set_based"].spark.cluster_id == ""
    )  # no running cluster named: a transient one per run


def test_the_engine_is_one_setting_overridable_per_deployment(monkeypatch):
    cloud_environment(monkeypatch, TVTIME_DEPLOYMENT="staging", TVTIME_SET_BASED_ENGINE="duckdb")
    assert Deployment.from_environment().resources()["set_based"].default == "duckdb"
    for name in EMR_SETTINGS:  # DuckDB needs no EMR settings
        monkeypatch.delenv(name)
    assert isinstance(Deployment.from_environment().resources()["set_based"].spark, LocalSpark)
    monkeypatch.setenv("TVTIME_SET_BASED_ENGINE", "spark")
    with pytest.raises(DeploymentError, match="TVTIME_EMR_CODE_URL: S3 prefix where the Spark job"):
        Deployment.from_environment().resources()
    monkeypatch.setenv("TVTIME_SET_BASED_ENGINE", "auto")  # auto may pick Spark: it needs them too
    with pytest.raises(DeploymentError, match="TVTIME_EMR_CODE_URL: S3 prefix where the Spark job"):
        Deployment.from_environment().resources()
    monkeypatch.setenv("TVTIME_SET_BASED_ENGINE", "flink")
    with pytest.raises(
        DeploymentError, match="TVTIME_SET_BASED_ENGINE='flink' is not an engine; use one of duckdb, spark, auto"
    ):
        Deployment.from_environment()
    monkeypatch.setenv("TVTIME_DEPLOYMENT", "local")
    monkeypatch.setenv("TVTIME_SET_BASED_ENGINE", "spark")  # local runs Spark (local mode) when asked
    assert Deployment.from_environment().resources()["set_based"].default == "spark"


def test_a_port_that_is_not_one_is_refused_naming_the_setting(monkeypatch):
    cloud_environment(monkeypatch, SNOWFLAKE_PORT="abc")
    with pytest.raises(DeploymentError, match="SNOWFLAKE_PORT='abc' is not a port: use a number from 1 to 65535"):
        cloud_resources("staging")


def test_an_unknown_executor_is_refused(monkeypatch):
    monkeypatch.setenv("TVTIME_EXECUTOR", "celery")
    with pytest.raises(
        DeploymentError, match="TVTIME_EXECUTOR='celery' is not an executor; use k8s, or leave it unset"
    ):
        Deployment.from_environment()


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("TVTIME_LAKE_URL", "/srv/lake"),
        ("TVTIME_LANDING_URL", "tvtime-landing/events"),
        ("TVTIME_EMR_LOG_URI", "s3://"),
    ],
)
def test_a_cloud_location_that_is_not_an_s3_prefix_is_refused_naming_it(monkeypatch, setting, value):
    cloud_environment(monkeypatch, **{setting: value})
    with pytest.raises(DeploymentError, match=f"needs S3 prefixes \\(s3://bucket/prefix\\) for:\n  {setting}="):
        cloud_resources("staging")


def test_a_pipes_bucket_given_as_a_url_is_refused(monkeypatch):
    cloud_environment(monkeypatch, TVTIME_PIPES_BUCKET="s3://tvtime-pipes")
    with pytest.raises(DeploymentError, match="TVTIME_PIPES_BUCKET='s3://tvtime-pipes' is not a bucket name"):
        cloud_resources("prod")


def test_the_landing_queue_is_optional_and_refused_when_it_is_not_a_url(monkeypatch):
    cloud_environment(monkeypatch)
    assert cloud_resources("prod")["landing"].queue_url is None
    queue = "https://sqs.us-east-1.amazonaws.com/123456789012/tvtime-landing"
    monkeypatch.setenv("TVTIME_LANDING_QUEUE_URL", queue)
    landing = cloud_resources("prod")["landing"]
    assert (
        landing.queue_url.get_value() == queue and landing.url.get_value() == CLOUD_PLACEHOLDERS["TVTIME_LANDING_URL"]
    )
    monkeypatch.setenv("TVTIME_LANDING_QUEUE_URL", "tvtime-landing")
    with pytest.raises(DeploymentError, match="TVTIME_LANDING_QUEUE_URL='tvtime-landing' is not a queue URL"):
        cloud_resources("prod")


@pytest.mark.parametrize("value", ["16GB", "0", "-5", "1e9"])
def test_a_spark_threshold_that_is_not_a_number_of_bytes_is_refused(monkeypatch, value):
    cloud_environment(monkeypatch, TVTIME_SPARK_ABOVE_BYTES=value)
    with pytest.raises(DeploymentError, match=f"TVTIME_SPARK_ABOVE_BYTES='{value}' is not a size"):
        cloud_resources("staging")
    monkeypatch.setenv("TVTIME_SPARK_ABOVE_BYTES", "1000000")
    assert cloud_resources("staging")["set_based"].spark_above_bytes == 1_000_000

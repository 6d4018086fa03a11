"""The deployments: one set of resources each, chosen by `TVTIME_DEPLOYMENT` (`local`, `staging`, `prod`).

`local` keeps everything embedded under `TVTIME_DATA_DIR`. `staging` and `prod` read the landing
zone and the lake on S3, run the set-based assets as Spark steps on EMR, publish to Snowflake and
train on AWS Batch; their settings come from the environment
(`EnvVar`, so secrets never appear in config or in the UI), and a missing one stops the code
location from loading with a message naming it. The Snowflake and AWS libraries are imported only
when a cloud deployment is built. The EMR cluster's shape and the Kubernetes executor's config are
package data beside this module (`emr.yaml`, `k8s_executor.yaml`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import dagster as dg

from tvtime_platform.lake import Lake, LakeIOManager
from tvtime_platform.resources.alerts import alerts_resource
from tvtime_platform.resources.duckdb_engine import DuckDBEngine
from tvtime_platform.resources.factorization import LocalFactorization
from tvtime_platform.resources.landing import LandingZone
from tvtime_platform.resources.set_based import SPARK_ABOVE_BYTES, DeploymentEngine, SetBasedEngine
from tvtime_platform.resources.spark import LocalSpark, SparkJobs
from tvtime_platform.resources.warehouse import DuckDBWarehouse

DEPLOYMENT_VARIABLE = "TVTIME_DEPLOYMENT"
EXECUTOR_VARIABLE = "TVTIME_EXECUTOR"
K8S_EXECUTOR_CONFIG = files(__package__) / "k8s_executor.yaml"
DATA_DIR_VARIABLE = "TVTIME_DATA_DIR"
DEPLOYMENTS = ("local", "staging", "prod")
EXECUTORS = ("default", "k8s")
ENGINE_VARIABLE = "TVTIME_SET_BASED_ENGINE"
ENGINES = ("duckdb", "spark", "auto")
SPARK_ABOVE_VARIABLE = "TVTIME_SPARK_ABOVE_BYTES"
EMR_CONFIG = files(__package__) / "emr.yaml"

# What staging and prod need, with what each is for (docs/deployments.md lists the same; a test holds them together).
CLOUD_SETTINGS = {
    "TVTIME_LANDING_URL": "S3 prefix the collectors write to, e.g. s3://tvtime-landing/events",
    "TVTIME_LAKE_URL": "S3 prefix of the lake, e.g. s3://tvtime-lake/lake",
    "TVTIME_LAKE_CATALOG": "the lake's Iceberg catalog: glue (the AWS Glue Data Catalog) or a PostgreSQL URL, "
    "e.g. postgresql+psycopg2://tvtime@db/lake_catalog",
    "TVTIME_SNOWFLAKE_STAGE": "Snowflake external stage whose URL is TVTIME_LAKE_URL, e.g. LAKE_STAGE",
    "SNOWFLAKE_ACCOUNT": "Snowflake account identifier",
    "SNOWFLAKE_USER": "Snowflake user the platform loads as",
    "SNOWFLAKE_PASSWORD": "its password (a secret)",
    "SNOWFLAKE_DATABASE": "database holding the marts",
    "SNOWFLAKE_SCHEMA": "schema holding the marts",
    "SNOWFLAKE_WAREHOUSE": "virtual warehouse that runs the loads",
    "TVTIME_BATCH_JOB_QUEUE": "AWS Batch job queue the factorization runs in",
    "TVTIME_BATCH_JOB_DEFINITION": "AWS Batch job definition of the image built by batch_images/factorization",
    "TVTIME_PIPES_BUCKET": "S3 bucket where Batch jobs and Spark steps leave their Dagster Pipes messages",
}
# Optional: the catalog namespace (Glue database) of the lake's tables, when staging and prod share a catalog.
LAKE_NAMESPACE_VARIABLE = "TVTIME_LAKE_NAMESPACE"
# What Spark on EMR needs (staging and prod, unless TVTIME_SET_BASED_ENGINE=duckdb); the cluster's shape is in emr.yaml
# beside this module.
EMR_SETTINGS = {
    "TVTIME_EMR_CODE_URL": "S3 prefix where the Spark job and its bootstrap script are staged, e.g. s3://tvtime-code/emr",
    "TVTIME_EMR_LOG_URI": "S3 prefix of the EMR clusters' logs (their LogUri), e.g. s3://tvtime-logs/emr/",
}
# The settings that are S3 prefixes: anything else (a local path, a bucket without a scheme) is refused at load.
S3_PREFIX_SETTINGS = ("TVTIME_LANDING_URL", "TVTIME_LAKE_URL", "TVTIME_EMR_CODE_URL", "TVTIME_EMR_LOG_URI")
# Libraries only a cloud deployment, Spark or the Kubernetes executor imports: the local deployment loads none of them.
CLOUD_MODULES = (
    "snowflake.connector",
    "dagster_snowflake",
    "boto3",
    "botocore",
    "s3fs",
    "pyspark",
    "dagster_k8s",
    "kubernetes",
)
# Optional: a running cluster to add the steps to; unset, each run starts a transient cluster.
EMR_CLUSTER_VARIABLE = "TVTIME_EMR_CLUSTER_ID"
# Optional: the SQS queue of the landing bucket's event notifications; unset, landing_sensor lists the open days.
LANDING_QUEUE_VARIABLE = "TVTIME_LANDING_QUEUE_URL"
# Optional: where to connect when not at <account>.snowflakecomputing.com (a private link, an emulator).
SNOWFLAKE_ENDPOINT_SETTINGS = {"SNOWFLAKE_HOST": "host", "SNOWFLAKE_PORT": "port", "SNOWFLAKE_PROTOCOL": "protocol"}


class DeploymentError(Exception):
    """The environment does not describe a deployment that can load."""


@dataclass(frozen=True)
class Deployment:
    """Which deployment runs, where its set-based plans run by default, and which executor runs its steps."""

    name: str = "local"
    engine: DeploymentEngine = "duckdb"
    executor: str = "default"

    @classmethod
    def from_environment(cls) -> Deployment:
        """`$TVTIME_DEPLOYMENT` (default `local`), `$TVTIME_SET_BASED_ENGINE` (default DuckDB locally, `auto` in the
        cloud) and `$TVTIME_EXECUTOR` (`k8s`, or unset), each refused with the choices when it names none."""
        name = os.environ.get(DEPLOYMENT_VARIABLE) or "local"
        if name not in DEPLOYMENTS:
            raise DeploymentError(
                f"{DEPLOYMENT_VARIABLE}={name!r} is not a deployment; use one of {', '.join(DEPLOYMENTS)}."
            )
        engine = os.environ.get(ENGINE_VARIABLE) or ("duckdb" if name == "local" else "auto")
        if engine not in ENGINES:
            raise DeploymentError(f"{ENGINE_VARIABLE}={engine!r} is not an engine; use one of {', '.join(ENGINES)}.")
        executor = os.environ.get(EXECUTOR_VARIABLE) or "default"
        if executor not in EXECUTORS:
            raise DeploymentError(f"{EXECUTOR_VARIABLE}={executor!r} is not an executor; use k8s, or leave it unset.")
        return cls(name, engine, executor)

    @property
    def cloud(self) -> bool:
        return self.name != "local"

    def resources(self) -> dict[str, object]:
        return local_resources(engine=self.engine) if self.name == "local" else cloud_resources(self.name, self.engine)

    def executor_definition(self) -> dg.ExecutorDefinition | None:
        """`k8s`: every step a Kubernetes job (dagster-k8s, config in k8s_executor.yaml beside this module);
        otherwise Dagster's default (steps as processes of the run worker)."""
        if self.executor == "default":
            return None
        import yaml
        from dagster_k8s import k8s_job_executor  # the Kubernetes client loads only here

        return k8s_job_executor.configured(yaml.safe_load(K8S_EXECUTOR_CONFIG.read_text()), name="k8s_job_executor")


def data_dir() -> Path:
    """`$TVTIME_DATA_DIR`, default `./data`, as an absolute path (runs may start in other folders)."""
    return Path(os.environ.get(DATA_DIR_VARIABLE) or "data").resolve()


def local_resources(
    root: Path | None = None, engine: DeploymentEngine = "duckdb", spark: SparkJobs | None = None
) -> dict[str, object]:
    """Everything embedded under one folder: landing and lake folders, a DuckDB warehouse file; Spark in local mode."""
    root = root or data_dir()
    lake = Lake(url=str(root / "lake"))
    landing = LandingZone(url=str(root / "landing"))
    duckdb = DuckDBEngine(temp_directory=str(root / "tmp" / "duckdb"))
    return {
        "landing": landing,
        "lake_storage": lake,
        "lake": LakeIOManager(lake=lake),
        "warehouse": DuckDBWarehouse(database=str(root / "warehouse.duckdb")),
        "duckdb": duckdb,
        "set_based": SetBasedEngine(
            default=engine,
            spark_above_bytes=spark_above_bytes(),
            duckdb=duckdb,
            spark=spark or LocalSpark(),
            lake=lake,
            landing=landing,
        ),
        "factorization": LocalFactorization(),
        "alerts": alerts_resource(),
    }


def cloud_resources(name: str, engine: DeploymentEngine = "auto") -> dict[str, object]:
    """Landing zone and lake on S3, marts in Snowflake; every setting from the environment."""
    needed = {**CLOUD_SETTINGS, **(EMR_SETTINGS if engine != "duckdb" else {})}
    missing = [variable for variable in needed if not os.environ.get(variable)]
    if missing:
        wanted = "\n".join(f"  {variable}: {needed[variable]}" for variable in missing)
        raise DeploymentError(
            f"{DEPLOYMENT_VARIABLE}={name} needs these environment variables, which are not set:\n{wanted}\n"
            "(AWS credentials and AWS_ENDPOINT_URL come from the standard AWS environment.)"
        )
    not_s3 = [v for v in S3_PREFIX_SETTINGS if v in needed and not _is_s3_prefix(os.environ[v])]
    if not_s3:
        wrong = "\n".join(f"  {v}={os.environ[v]!r}: {needed[v]}" for v in not_s3)
        raise DeploymentError(f"{DEPLOYMENT_VARIABLE}={name} needs S3 prefixes (s3://bucket/prefix) for:\n{wrong}")
    if os.environ["TVTIME_PIPES_BUCKET"].startswith("s3://") or "/" in os.environ["TVTIME_PIPES_BUCKET"]:
        raise DeploymentError(
            f"TVTIME_PIPES_BUCKET={os.environ['TVTIME_PIPES_BUCKET']!r} is not a bucket name: give the name alone, "
            "without s3:// or a prefix."
        )
    catalog = os.environ["TVTIME_LAKE_CATALOG"]
    if catalog != "glue" and not catalog.startswith(("postgresql://", "postgresql+")):
        raise DeploymentError(
            f"TVTIME_LAKE_CATALOG={catalog!r} is not a shared catalog: give glue (the AWS Glue Data Catalog) or a "
            "PostgreSQL URL such as postgresql+psycopg2://user@host/database; every process must see the same one."
        )
    queue = os.environ.get(LANDING_QUEUE_VARIABLE)
    if queue and not queue.startswith(("https://", "http://")):
        raise DeploymentError(
            f"{LANDING_QUEUE_VARIABLE}={queue!r} is not a queue URL: give the SQS queue's URL, "
            "e.g. https://sqs.us-east-1.amazonaws.com/123456789012/tvtime-landing, or leave it unset."
        )
    from dagster_snowflake import SnowflakeResource  # the Snowflake connector loads only here

    from tvtime_platform.resources.batch import BatchFactorization
    from tvtime_platform.resources.snowflake_warehouse import SnowflakeWarehouse

    endpoint: dict[str, str | int] = {
        arg: os.environ[v] for v, arg in SNOWFLAKE_ENDPOINT_SETTINGS.items() if os.environ.get(v)
    }
    if "port" in endpoint:
        if not str(endpoint["port"]).isdigit() or not 0 < int(endpoint["port"]) < 65536:
            raise DeploymentError(f"SNOWFLAKE_PORT={endpoint['port']!r} is not a port: use a number from 1 to 65535.")
        endpoint["port"] = int(endpoint["port"])
    snowflake = SnowflakeResource(
        account=dg.EnvVar("SNOWFLAKE_ACCOUNT"),
        user=dg.EnvVar("SNOWFLAKE_USER"),
        password=dg.EnvVar("SNOWFLAKE_PASSWORD"),
        database=dg.EnvVar("SNOWFLAKE_DATABASE"),
        schema=dg.EnvVar("SNOWFLAKE_SCHEMA"),
        warehouse=dg.EnvVar("SNOWFLAKE_WAREHOUSE"),
        additional_snowflake_connection_args=endpoint or None,
    )
    lake = Lake(
        url=dg.EnvVar("TVTIME_LAKE_URL"),
        catalog=dg.EnvVar("TVTIME_LAKE_CATALOG"),
        namespace=os.environ.get(LAKE_NAMESPACE_VARIABLE) or "lake",
    )
    landing = LandingZone(
        url=dg.EnvVar("TVTIME_LANDING_URL"), queue_url=dg.EnvVar(LANDING_QUEUE_VARIABLE) if queue else None
    )
    duckdb = DuckDBEngine(remote_protocols=["s3"])
    return {
        "landing": landing,
        "lake_storage": lake,
        "lake": LakeIOManager(lake=lake),
        "warehouse": SnowflakeWarehouse(snowflake=snowflake, stage=dg.EnvVar("TVTIME_SNOWFLAKE_STAGE")),
        "duckdb": duckdb,
        "set_based": SetBasedEngine(
            default=engine,
            spark_above_bytes=spark_above_bytes(),
            duckdb=duckdb,
            spark=emr_spark(engine),
            lake=lake,
            landing=landing,
        ),
        "factorization": BatchFactorization(
            job_queue=dg.EnvVar("TVTIME_BATCH_JOB_QUEUE"),
            job_definition=dg.EnvVar("TVTIME_BATCH_JOB_DEFINITION"),
            messages_bucket=dg.EnvVar("TVTIME_PIPES_BUCKET"),
        ),
        "alerts": alerts_resource(),
    }


def spark_above_bytes() -> int:
    """`$TVTIME_SPARK_ABOVE_BYTES`, where `auto` moves a run to Spark; the measured default when unset."""
    value = os.environ.get(SPARK_ABOVE_VARIABLE)
    if not value:
        return SPARK_ABOVE_BYTES
    if not value.isdigit() or int(value) <= 0:
        raise DeploymentError(f"{SPARK_ABOVE_VARIABLE}={value!r} is not a size: give a positive number of bytes.")
    return int(value)


def _is_s3_prefix(url: str) -> bool:
    return url.startswith("s3://") and len(url) > len("s3://") and not url.startswith("s3:///")


def emr_spark(engine: str) -> SparkJobs:
    """Spark steps on EMR, shaped by emr.yaml; with TVTIME_SET_BASED_ENGINE=duckdb and no EMR settings,
    local Spark, which refuses the S3 lake with a message saying so when a run asks for engine 'spark'."""
    if engine == "duckdb" and not all(os.environ.get(variable) for variable in EMR_SETTINGS):
        return LocalSpark()
    import yaml

    from tvtime_platform.resources.emr import EmrSpark  # boto3 and dagster-aws's Pipes clients load only here

    return EmrSpark(
        cluster_id=os.environ.get(EMR_CLUSTER_VARIABLE, ""),
        code_url=dg.EnvVar("TVTIME_EMR_CODE_URL"),
        log_uri=dg.EnvVar("TVTIME_EMR_LOG_URI"),
        messages_bucket=dg.EnvVar("TVTIME_PIPES_BUCKET"),
        **yaml.safe_load(EMR_CONFIG.read_text()),
    )

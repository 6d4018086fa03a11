"""What can be checked of the Kubernetes deployment without a cluster or Docker: the executor and run
launcher config against dagster-k8s's own schemas, the image's files, and the code location loading
with the Kubernetes executor as the image starts it."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dagster._config import process_config  # dagster-k8s's schemas are checked the way Dagster checks config
from dagster_k8s import K8sRunLauncher, k8s_job_executor

from tvtime_platform.resources.deployment import K8S_EXECUTOR_CONFIG
from tvtime_platform_tests.emulators import CLOUD_PLACEHOLDERS, clean_environment

REPO = Path(__file__).resolve().parents[2]
VALUES = yaml.safe_load((REPO / "deploy" / "k8s" / "values.yaml").read_text())


def snake(value):
    """The Helm chart's rendering of its camelCase values into Dagster's config (keys snake_case,
    `[{name: x}]` secret and config-map lists into `[x]`), enough to check field names and types."""
    if isinstance(value, dict):
        return {re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower(): snake(v) for k, v in value.items()}
    if isinstance(value, list):
        return [v["name"] if isinstance(v, dict) and set(v) == {"name"} else snake(v) for v in value]
    return value


def test_the_executor_config_is_valid_for_the_k8s_job_executor():
    result = process_config(k8s_job_executor.config_schema.config_type, yaml.safe_load(K8S_EXECUTOR_CONFIG.read_text()))
    assert result.success, [e.message for e in result.errors]
    broken = process_config(k8s_job_executor.config_schema.config_type, {"job_namespace": "tvtime", "max_concurent": 8})
    assert not broken.success  # a misspelt field is caught


def test_the_run_launcher_values_are_valid_for_the_k8s_run_launcher():
    launcher = VALUES["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    rendered = {
        **snake(launcher["config"]["k8sRunLauncher"]),
        "instance_config_map": "dagster-instance",  # the chart adds these
        "dagster_home": "/opt/dagster/dagster_home",
        "postgres_password_secret": "dagster-postgresql-secret",
    }
    result = process_config(K8sRunLauncher.config_type(), rendered)
    assert result.success, [e.message for e in result.errors]


def test_the_image_installs_the_wheel_alone_and_serves_the_module_of_the_values():
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    copied = [name for line in dockerfile.splitlines() if line.startswith("COPY ") for name in line.split()[1:-1]]
    assert copied == ["dist/"]  # what `make wheel` builds; nothing of the checkout besides
    assert re.search(r"^RUN pip install --no-cache-dir /tmp/dist/tvtime_platform-\*\.whl", dockerfile, re.MULTILINE)
    [deployment] = VALUES["dagster-user-deployments"]["deployments"]
    assert (
        deployment["dagsterApiGrpcArgs"] == ["-m", "tvtime_platform.definitions"]
        and "tvtime_platform.definitions" in dockerfile
    )


@pytest.mark.slow
def test_the_code_location_loads_with_the_kubernetes_executor(tmp_path):
    env = clean_environment(
        TVTIME_DEPLOYMENT="prod", TVTIME_EXECUTOR="k8s", DAGSTER_HOME=str(tmp_path), **CLOUD_PLACEHOLDERS
    )
    code = (
        "from tvtime_platform.definitions import build_definitions; from tvtime_platform.resources.deployment import "
        "Deployment; "
        "print(build_definitions(Deployment.from_environment()).executor.name)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "k8s_job_executor"

"""The wheel is the product: built from the project's files alone, installed without extras into a fresh virtual
environment outside the checkout, it loads the code location of every deployment with the same definitions as the
checkout (as the image does, `deploy/Dockerfile`); installed without dependencies beside the batch image's
requirements (`batch_images/factorization/Dockerfile`), it trains."""

import json
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tvtime_platform_tests.emulators import CLOUD_PLACEHOLDERS, clean_environment

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
PACKAGE_DATA = ("tvtime_platform/resources/emr.yaml", "tvtime_platform/resources/k8s_executor.yaml")
# What the installed code location defines, to compare with the checkout's.
KEYS = """
import json
from tvtime_platform.definitions import build_definitions
from tvtime_platform.resources.deployment import Deployment
defs = build_definitions(Deployment.from_environment())
defs.validate_loadable(defs)
graph = defs.resolve_asset_graph()
print(json.dumps({
    "assets": sorted(k.to_user_string() for k in graph.get_all_asset_keys()),
    "checks": sorted(f"{k.asset_key.to_user_string()}.{k.name}" for k in graph.asset_check_keys),
    "jobs": sorted(j.name for j in defs.resolve_all_job_defs()),
    "sensors": sorted(s.name for s in defs.sensors), "schedules": sorted(s.name for s in defs.schedules),
    "executor": defs.executor.name if defs.executor else None,
    "module": __import__("tvtime_platform").__file__,
}))
"""
TRAIN = """
import numpy as np
from tvtime_platform.factorization import entrypoint, model
users = np.repeat(np.arange(1, 41), 3)
data = model.from_columns(users, (users % 2) * 10 + np.tile([1, 2, 3], 40), np.ones(len(users)), np.arange(len(users)))
user_factors, show_factors, fit = model.train(data.matrix, model.Params(factors=4, iterations=3))
print(entrypoint.CHECK, user_factors.shape[0], show_factors.shape[0])
"""


def describe(python: Path, cwd: Path, env: dict[str, str]) -> dict:
    """What the code location of `python` defines in this environment (KEYS)."""
    loaded = subprocess.run([str(python), "-c", KEYS], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    return json.loads(loaded.stdout)


def project_files(target: Path) -> Path:
    """A copy of the files the project tracks (and new ones it does not ignore): no build/ left from earlier builds."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    return target


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wheel")
    source = project_files(root / "source")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(root / "dist"), str(source)],
        check=True,
        timeout=600,
        cwd=root,
    )
    [built] = (root / "dist").glob("tvtime_platform-*.whl")
    with zipfile.ZipFile(built) as archive:
        names = set(archive.namelist())
    assert set(PACKAGE_DATA) <= names
    assert not [n for n in names if n.startswith(("tvtime_platform_tests/", "deploy/", "batch_images/", "benchmarks/"))]
    return built


def fresh_venv(folder: Path, *installs: list[str]) -> Path:
    venv.create(folder, with_pip=True)
    python = folder / "bin" / "python"
    for arguments in installs:
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *arguments], check=True, timeout=1800, cwd=folder
        )
    return python


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """The Python of a fresh venv holding the wheel and its declared dependencies only."""
    return fresh_venv(tmp_path_factory.mktemp("venv"), [str(wheel)])


@pytest.mark.parametrize(
    "variables",
    [
        {},
        {"TVTIME_DEPLOYMENT": "staging", **CLOUD_PLACEHOLDERS},
        {"TVTIME_DEPLOYMENT": "prod", **CLOUD_PLACEHOLDERS},
        {"TVTIME_DEPLOYMENT": "prod", "TVTIME_EXECUTOR": "k8s", **CLOUD_PLACEHOLDERS},
    ],
    ids=["local", "staging", "prod", "prod-k8s"],
)
def test_the_installed_wheel_loads_every_deployment_with_the_checkouts_definitions(installed, tmp_path, variables):
    env = clean_environment(DAGSTER_HOME=str(tmp_path), TVTIME_DATA_DIR=str(tmp_path / "data"), **variables)
    env.pop("PYTHONPATH", None)
    validate = subprocess.run(
        [str(installed.with_name("dagster")), "definitions", "validate", "-m", "tvtime_platform.definitions"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert validate.returncode == 0, (validate.stdout + validate.stderr)[-3000:]
    found, checkout = (
        describe(python, cwd, env) for python, cwd in ((installed, tmp_path), (Path(sys.executable), REPO))
    )
    assert (
        "site-packages" in found["module"] and str(REPO) not in found["module"]
    )  # the installed package, not the checkout
    assert found.pop("module") != checkout.pop("module")
    # Dagster's default, which first warns of pool slots dead runs hold (lib/local_run_launcher.py).
    expected = "k8s_job_executor" if variables.get("TVTIME_EXECUTOR") else "multi_or_in_process_executor"
    assert found == checkout and found["executor"] == expected


def test_the_wheel_without_its_dependencies_trains_beside_the_images_requirements(wheel, tmp_path):
    requirements = REPO / "batch_images" / "factorization" / "requirements.txt"
    python = fresh_venv(tmp_path / "image", ["-r", str(requirements)], ["--no-deps", str(wheel)])
    result = subprocess.run(
        [str(python), "-c", TRAIN],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=clean_environment(OPENBLAS_NUM_THREADS="1"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["beats_popularity_baseline", "40", "6"]

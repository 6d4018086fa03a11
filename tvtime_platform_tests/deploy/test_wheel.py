"""The wheel is the product: built from the checkout, installed without extras into a fresh virtual environment
in a folder outside it, it loads the code location of every deployment, as the image does (`deploy/Dockerfile`)."""

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


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The Python of a fresh venv holding the wheel and its declared dependencies only."""
    root = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(root / "dist"), str(REPO)],
        check=True,
        timeout=600,
        cwd=root,
    )
    [wheel] = (root / "dist").glob("tvtime_platform-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert set(PACKAGE_DATA) <= names and not [
        n for n in names if n.startswith(("tvtime_platform_tests/", "deploy/", "batch_images/"))
    ]
    venv.create(root / "venv", with_pip=True)
    python = root / "venv" / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(wheel)], check=True, timeout=1800, cwd=root)
    return python


def load(python: Path, tmp_path: Path, **variables: str) -> subprocess.CompletedProcess:
    """`dagster definitions validate` of the installed module, from a folder that is not the checkout."""
    env = clean_environment(DAGSTER_HOME=str(tmp_path), TVTIME_DATA_DIR=str(tmp_path / "data"), **variables)
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [str(python.with_name("dagster")), "definitions", "validate", "-m", "tvtime_platform.definitions"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


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
def test_the_installed_wheel_loads_every_deployment(installed, tmp_path, variables):
    result = load(installed, tmp_path, **variables)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    where = subprocess.run(
        [str(installed), "-c", "import tvtime_platform; print(tvtime_platform.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "site-packages" in where and str(REPO) not in where  # the installed package, not the checkout


def test_the_installed_factorization_entrypoint_runs_as_the_batch_image_runs_it(installed, tmp_path):
    result = subprocess.run(
        [str(installed), "-c", "import tvtime_platform.factorization.entrypoint as e; print(e.CHECK)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and result.stdout.strip() == "beats_popularity_baseline", result.stderr[-2000:]

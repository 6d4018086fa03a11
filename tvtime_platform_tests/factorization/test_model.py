"""The batch image's trainer and evaluation on matrices small enough to check by hand, and the image's files."""

import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from tvtime_platform.factorization import model as mf

IMAGE_FOLDER = Path(__file__).resolve().parents[2] / "batch_images" / "factorization"


def interactions() -> object:
    # user 10: shows 1 (t=5), 2 (t=9: latest); user 20: show 2 only; user 30: shows 1 (t=7), 3 (t=7: tie, higher show
    # wins)
    users = np.array([10, 10, 20, 30, 30])
    shows = np.array([1, 2, 2, 1, 3])
    return mf.from_columns(users, shows, np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.array([5, 9, 4, 7, 7]))


def test_each_user_with_two_interactions_holds_out_the_latest():
    data = interactions()
    split = mf.hold_out_latest(data)
    assert list(data.user_ids[split.users]) == [10, 30]
    assert list(data.show_ids[split.held_out]) == [2, 3]
    assert split.train.toarray().tolist() == [[1.0, 0.0, 0.0], [0.0, 3.0, 0.0], [4.0, 0.0, 0.0]]


def test_top_k_skips_what_was_seen_and_orders_by_score():
    users = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    shows = np.array([[3.0, 0.0], [2.0, 1.0], [0.0, 5.0], [1.0, 1.0]], dtype=np.float32)
    seen = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 0, 0, 0]], dtype=np.float32))
    columns, scores = mf.top_k(users, shows, seen, np.array([0, 1]), 2, chunk=1)
    assert columns.tolist() == [[1, 3], [2, 1]] and scores.tolist() == [[2.0, 1.0], [5.0, 1.0]]


def test_popularity_baseline_skips_what_was_seen():
    train = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 0, 1], [1, 1, 0, 0]], dtype=np.float32))
    assert mf.popular_top_k(train, np.array([0, 1]), 2).tolist() == [[3, 2], [1, 2]]


def test_metrics_by_hand():
    recommended = np.array([[5, 7], [1, 2], [3, 4]])
    metrics = mf.evaluate(recommended, held_out=np.array([7, 9, 3]), n_shows=10)
    assert metrics["recall_at_2"] == 2 / 3 and metrics["precision_at_2"] == 1 / 3
    assert np.isclose(metrics["ndcg_at_2"], (1 / np.log2(3) + 0 + 1) / 3)
    assert metrics["catalog_coverage"] == 0.6


def test_training_learns_two_tastes():
    """Two groups of users with disjoint shows: each user's best unseen show is from its own group."""
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(200), 3)
    group = users % 2
    shows = group * 10 + rng.integers(0, 10, len(users))
    data = mf.from_columns(users, shows, np.ones(len(users)), np.arange(len(users)))
    user_factors, show_factors, fit = mf.train(
        data.matrix, mf.Params(factors=4, iterations=10, regularization=0.1, alpha=5)
    )
    best, _ = mf.top_k(user_factors, show_factors, data.matrix, np.arange(len(data.user_ids)), 1)
    assert (data.show_ids[best[:, 0]] // 10 == data.user_ids % 2).mean() > 0.95
    assert len(fit["loss_by_iteration"]) == 10 and fit["loss_by_iteration"][-1] <= fit["loss_by_iteration"][0]


def test_the_image_installs_the_platforms_wheel_and_this_environment_meets_the_pins():
    dockerfile = (IMAGE_FOLDER / "Dockerfile").read_text()
    assert re.search(r"^FROM python:\d+\.\d+\.\d+-slim-bookworm$", dockerfile, re.MULTILINE), (
        "base image pinned to a release"
    )
    copied = [name for line in dockerfile.splitlines() if line.startswith("COPY ") for name in line.split()[1:-1]]
    assert copied == ["batch_images/factorization/requirements.txt", "dist/"]  # the trainer comes from the wheel only
    assert "pip install --no-cache-dir --no-deps /app/dist/tvtime_platform-*.whl" in dockerfile
    assert 'CMD ["python", "-m", "tvtime_platform.factorization.entrypoint"]' in dockerfile
    pins = dict(line.split("==") for line in (IMAGE_FOLDER / "requirements.txt").read_text().split() if "==" in line)
    assert pins and {name: version(name) for name in pins} == pins


def test_the_entrypoint_needs_only_the_images_requirements():
    """The image installs the wheel without its dependencies: the entrypoint must not import the platform's."""
    code = (
        "import sys, tvtime_platform.factorization.entrypoint; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'dagster', 'duckdb', 'pyspark', 'pandas', 'sqlglot', 'yaml'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"

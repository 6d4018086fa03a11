"""Implicit-feedback matrix factorization of the user/show interactions, and its held-out evaluation.

The solver is `implicit`'s weighted ALS (Hu, Koren & Volinsky; conjugate-gradient updates). The
evaluation holds out each user's most recent interaction (users with at least two), trains on the
rest, and scores the top 10 shows recommended (already-seen shows excluded) against it, next to a
popularity baseline on the same split: precision@10, recall@10, NDCG@10 and catalog coverage. Once
the evaluation passes, the entrypoint refits the same model on every interaction and writes those.

Free of Dagster: `entrypoint.py` wires it to Dagster Pipes; benchmarks and tests call it directly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from tvtime_platform.transforms.columns import columns

TOP_K = 10
USER_FACTORS_COLUMNS = columns(
    ("user_id", "BIGINT", "the user"),
    ("factors", "FLOAT[]", "the user's latent factors (as many as the run's `factors`)"),
)
SHOW_FACTORS_COLUMNS = columns(
    ("show_id", "BIGINT", "the show"),
    ("factors", "FLOAT[]", "the show's latent factors; a user's score for a show is the dot product"),
)


@dataclass(frozen=True)
class Interactions:
    """The matrix: users x shows of confidence weights, with the ids behind each row and column."""

    user_ids: np.ndarray
    show_ids: np.ndarray
    matrix: sp.csr_matrix  # float32 confidence
    last_at: sp.csr_matrix  # epoch seconds of the last interaction, same pattern


def read_interactions(files: list[str]) -> Interactions:
    """The `user_show_interactions` Parquet files (paths, or s3:// URLs) the lake's snapshot names for the day."""
    if not files:
        raise FileNotFoundError("no Parquet files of user_show_interactions were given")
    columns = ["user_id", "show_id", "confidence", "last_interaction_at"]
    table = pa.concat_tables(
        pq.read_table(path, columns=columns, filesystem=fs)
        for fs, path in (fsspec.core.url_to_fs(url) for url in files)
    )
    return from_columns(
        table["user_id"].to_numpy(),
        table["show_id"].to_numpy(),
        table["confidence"].to_numpy(),
        table["last_interaction_at"].cast(pa.timestamp("s", tz="UTC"), safe=False).cast(pa.int64()).to_numpy(),
    )


def from_columns(users: np.ndarray, shows: np.ndarray, confidence: np.ndarray, last_at: np.ndarray) -> Interactions:
    user_ids, rows = np.unique(users, return_inverse=True)
    show_ids, cols = np.unique(shows, return_inverse=True)
    shape = (len(user_ids), len(show_ids))
    matrix = sp.csr_matrix((confidence.astype(np.float32), (rows, cols)), shape=shape)
    # +1 so that no stored time is zero (a sparse zero would vanish)
    last = sp.csr_matrix((last_at.astype(np.float64) + 1, (rows, cols)), shape=shape)
    return Interactions(user_ids, show_ids, matrix, last)


@dataclass(frozen=True)
class Split:
    train: sp.csr_matrix
    users: np.ndarray  # rows evaluated
    held_out: np.ndarray  # the show column held out for each


def hold_out_latest(data: Interactions) -> Split:
    """Each user's most recent interaction (ties: the higher show column) leaves the training matrix."""
    last = data.last_at
    n_rows, n_cols = last.shape
    counts = np.diff(last.indptr)
    key = last.data.astype(np.int64) * n_cols + last.indices  # latest first, then the higher column
    non_empty = np.flatnonzero(counts)
    latest = np.full(n_rows, -1, dtype=np.int64)
    latest[non_empty] = np.maximum.reduceat(key, last.indptr[non_empty]) % n_cols
    users = np.flatnonzero(counts >= 2)
    held_for_row = np.full(n_rows, -1, dtype=np.int64)
    held_for_row[users] = latest[users]
    matrix = data.matrix.tocoo()
    keep = matrix.col != held_for_row[matrix.row]
    train = sp.csr_matrix((matrix.data[keep], (matrix.row[keep], matrix.col[keep])), shape=matrix.shape)
    return Split(train, users, held_for_row[users])


@dataclass(frozen=True)
class Params:
    factors: int = 32
    iterations: int = 15
    regularization: float = 30.0
    alpha: float = 20.0
    seed: int = 0
    threads: int = 0


def train(matrix: sp.csr_matrix, params: Params) -> tuple[np.ndarray, np.ndarray, dict]:
    """User and show factors of weighted ALS, with the training loss per iteration and the time taken."""
    from implicit.cpu.als import AlternatingLeastSquares

    model = AlternatingLeastSquares(
        factors=params.factors,
        regularization=params.regularization,
        alpha=params.alpha,
        iterations=params.iterations,
        calculate_training_loss=True,
        num_threads=params.threads,
        random_state=params.seed,
    )
    losses: list[float] = []
    began = time.perf_counter()
    model.fit(matrix, show_progress=False, callback=lambda iteration, elapsed, loss: losses.append(float(loss)))
    return (
        np.asarray(model.user_factors),
        np.asarray(model.item_factors),
        {"training_seconds": time.perf_counter() - began, "loss_by_iteration": losses},
    )


def top_k(
    user_factors: np.ndarray,
    show_factors: np.ndarray,
    seen: sp.csr_matrix,
    users: np.ndarray,
    k: int,
    chunk: int = 2048,
) -> tuple[np.ndarray, np.ndarray]:
    """The k best-scoring shows per user (columns, scores), excluding shows the user has seen; in chunks of users."""
    columns = np.empty((len(users), k), dtype=np.int64)
    scores = np.empty((len(users), k), dtype=np.float32)
    for start in range(0, len(users), chunk):
        block = users[start : start + chunk]
        s = user_factors[block] @ show_factors.T
        rows = seen[block]
        s[np.repeat(np.arange(len(block)), np.diff(rows.indptr)), rows.indices] = -np.inf
        best = np.argpartition(-s, min(k, s.shape[1] - 1), axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(s, best, axis=1), axis=1, kind="stable")
        columns[start : start + chunk] = np.take_along_axis(best, order, axis=1)
        scores[start : start + chunk] = np.take_along_axis(s, columns[start : start + chunk], axis=1)
    return columns, scores


def popular_top_k(train: sp.csr_matrix, users: np.ndarray, k: int) -> np.ndarray:
    """The k shows most users interacted with in training, skipping those each user has seen."""
    popularity = np.diff(train.tocsc().indptr)
    longest = int(np.diff(train.indptr)[users].max(initial=0))
    candidates = np.argsort(-popularity, kind="stable")[: k + longest]
    seen = train[users][:, candidates].toarray() > 0
    order = np.argsort(seen, axis=1, kind="stable")[:, :k]  # unseen first, in popularity order
    return candidates[order]


def evaluate(recommended: np.ndarray, held_out: np.ndarray, n_shows: int) -> dict[str, float]:
    """precision@k, recall@k (one held-out show per user), NDCG@k and catalog coverage."""
    k = recommended.shape[1]
    hit = recommended == held_out[:, None]
    found = hit.any(axis=1)
    rank = hit.argmax(axis=1)
    ndcg = np.where(found, 1.0 / np.log2(rank + 2), 0.0)
    return {
        f"precision_at_{k}": float(found.mean() / k),
        f"recall_at_{k}": float(found.mean()),
        f"ndcg_at_{k}": float(ndcg.mean()),
        "catalog_coverage": float(len(np.unique(recommended)) / n_shows),
    }


def write_factors(url: str, ids: np.ndarray, factors: np.ndarray, id_column: str) -> None:
    """`<id_column>, factors FLOAT[n]` as one Parquet file at `url`."""
    flat = pa.array(factors.astype(np.float32).ravel())
    table = pa.table({id_column: pa.array(ids), "factors": pa.FixedSizeListArray.from_arrays(flat, factors.shape[1])})
    fs, path = fsspec.core.url_to_fs(url)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "wb") as f:
        pq.write_table(table, f, compression="zstd")

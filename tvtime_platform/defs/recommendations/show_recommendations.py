"""`show_recommendations`: the top shows per user from the day's factors, published by write-audit-publish.

Scores are the dot products of user and show factors; shows the user already interacted with in the
window are excluded. Scoring runs in NumPy, a block of users at a time, with the batch image's own
`top_k` (the function its evaluation used), then goes through the same staging, audit and swap as
the marts (`lib/write_audit_publish.py`).
"""

import datetime as dt

import duckdb as duckdb_api
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from tvtime_platform.factorization.model import top_k
from tvtime_platform.lib.write_audit_publish import mart_definitions
from tvtime_platform.resources.lake import LakeTable
from tvtime_platform.transforms.marts import RECOMMENDATIONS_PER_USER, SHOW_RECOMMENDATIONS

INPUTS = ("user_factors", "show_factors", "user_show_interactions")


def _factors(con: duckdb_api.DuckDBPyConnection, table: LakeTable, id_column: str) -> tuple[np.ndarray, np.ndarray]:
    rows = table.relation(con).project(f"{id_column}, factors").order(id_column).to_arrow_table()
    ids = rows[id_column].to_numpy()
    vectors = rows["factors"].combine_chunks()
    return ids, vectors.flatten().to_numpy().reshape(len(ids), -1)  # every vector has the same length


def recommend(
    con: duckdb_api.DuckDBPyConnection, day: dt.date, tables: dict[str, LakeTable]
) -> duckdb_api.DuckDBPyRelation:
    """The top RECOMMENDATIONS_PER_USER unseen shows of every user with factors."""
    user_ids, users = _factors(con, tables["user_factors"], "user_id")
    show_ids, shows = _factors(con, tables["show_factors"], "show_id")
    pairs = tables["user_show_interactions"].relation(con).project("user_id, show_id").to_arrow_table()
    pair_users, pair_shows = pairs["user_id"].to_numpy(), pairs["show_id"].to_numpy()
    rows = np.minimum(np.searchsorted(user_ids, pair_users), len(user_ids) - 1)
    cols = np.minimum(np.searchsorted(show_ids, pair_shows), len(show_ids) - 1)
    # Pairs of a user or show without factors are skipped.
    known = (user_ids[rows] == pair_users) & (show_ids[cols] == pair_shows)
    seen = sp.csr_matrix(
        (np.ones(known.sum(), dtype=np.float32), (rows[known], cols[known])), shape=(len(user_ids), len(show_ids))
    )
    k = min(RECOMMENDATIONS_PER_USER, len(show_ids))
    best, scores = top_k(users, shows, seen, np.arange(len(user_ids)), k)
    ranked = pa.table(
        {
            "dt": pa.array(np.full(best.size, day), pa.date32()),
            "user_id": np.repeat(user_ids, k),
            "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), len(user_ids)),
            "show_id": show_ids[best].ravel(),
            "score": scores.ravel().astype(np.float64),
        }
    )
    return con.from_arrow(ranked.filter(pc.is_finite(ranked["score"])))  # a user who has seen every show gets fewer


def _summary(con: duckdb_api.DuckDBPyConnection, day_table: str) -> dict:
    users, shows = con.execute(f"SELECT count(DISTINCT user_id), count(DISTINCT show_id) FROM {day_table}").fetchall()[
        0
    ]
    return {"users": users, "distinct_shows_recommended": shows}


defs = mart_definitions(SHOW_RECOMMENDATIONS, INPUTS, recommend, _summary, __file__, group="recommendations")

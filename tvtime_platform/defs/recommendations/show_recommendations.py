"""`show_recommendations`: the top shows per user from the day's factors, published by write-audit-publish.

Scores are the dot products of user and show factors. A show the viewer already made theirs is never
recommended back: any show in their interaction matrix, and any show they watched, rated (whatever the
rating) or followed on any day up to the recommendation day (`user_show_history` of the day, the state that
grows by the day). Negative feedback (a low rating) still shapes the model only as the matrix lets it: the
pair carries no positive feedback there. Scoring runs in NumPy, a block of users at a time, with the batch
image's own `top_k` (the function its evaluation used), then goes through the same staging, audit and
publication as the marts (`lib/write_audit_publish.py`); the audit also fails a day on which any
recommendation names a show its viewer touched. The build, the audit and the publish step's repeat of it
each read the one day of `user_show_history`, whatever the history in the lake.
"""

import datetime as dt

import duckdb as duckdb_api
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from tvtime_platform.factorization.model import top_k
from tvtime_platform.lake import LakeTable
from tvtime_platform.lib.write_audit_publish import Publication, mart_definitions
from tvtime_platform.transforms.marts import (
    RECOMMENDATIONS_PER_USER,
    SHOW_RECOMMENDATIONS,
    touched_recommendations_sql,
)

INPUTS = ("user_factors", "show_factors", "user_show_interactions", "user_show_history")


def _factors(con: duckdb_api.DuckDBPyConnection, table: LakeTable, id_column: str) -> tuple[np.ndarray, np.ndarray]:
    rows = table.relation(con).project(f"{id_column}, factors").order(id_column).to_arrow_table()
    ids = rows[id_column].to_numpy()
    vectors = rows["factors"].combine_chunks()
    return ids, vectors.flatten().to_numpy().reshape(len(ids), -1)  # every vector has the same length


def recommend(
    con: duckdb_api.DuckDBPyConnection, day: dt.date, tables: dict[str, LakeTable]
) -> duckdb_api.DuckDBPyRelation:
    """The top RECOMMENDATIONS_PER_USER shows of every user with factors, among those they never touched."""
    user_ids, users = _factors(con, tables["user_factors"], "user_id")
    show_ids, shows = _factors(con, tables["show_factors"], "show_id")
    pairs = tables["user_show_interactions"].relation(con).project("user_id, show_id").to_arrow_table()
    touched = tables["user_show_history"].relation(con).project("user_id, show_id").to_arrow_table()
    pair_users = np.concatenate([pairs["user_id"].to_numpy(), touched["user_id"].to_numpy()])
    pair_shows = np.concatenate([pairs["show_id"].to_numpy(), touched["show_id"].to_numpy()])
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


def never_touched(con: duckdb_api.DuckDBPyConnection, tables: dict[str, LakeTable]) -> dict[str, int]:
    """no recommendation names a show its viewer watched, rated or followed up to the day"""
    tables["user_show_history"].view(con, "user_show_history")
    touched = touched_recommendations_sql("day_rows", "(SELECT user_id, show_id FROM user_show_history)")
    return {"recommended_shows_the_viewer_touched": int(con.execute(touched).fetchall()[0][0])}


PUBLICATION = Publication(SHOW_RECOMMENDATIONS, rule_tables=("user_show_history",), lake_rules=never_touched)
defs = mart_definitions(PUBLICATION, INPUTS, recommend, _summary, __file__, group="recommendations")

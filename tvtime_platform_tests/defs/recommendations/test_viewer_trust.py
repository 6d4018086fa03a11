"""Recommendations a viewer can trust, on data written by hand: a show the viewer watched and rated one star is never
recommended back (and the audit fails a day that would), and the factors published after the evaluation know the
viewer's latest show."""

import datetime as dt
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.expressions import EqualTo

from tvtime_platform.defs.recommendations.show_recommendations import never_touched
from tvtime_platform.factorization import model as mf
from tvtime_platform.lib.write_audit_publish import Publication, mart_definitions
from tvtime_platform.resources.deployment import local_resources
from tvtime_platform.transforms.marts import SHOW_RECOMMENDATIONS, MartTable
from tvtime_platform_tests.support import ASSETS, CHECKS, lake_at, lake_files, lake_scan, lake_write

pytestmark = pytest.mark.slow
EARLIER, DAY = "2024-03-01", "2024-03-02"
VIEWER, OTHER, ONE_STAR_SHOW = 7, 8, 5


def write(lake: Path, table: str, day: str, rows: pa.Table) -> None:
    lake_write(lake, table, day, rows)


def events(rows: list[tuple[int, str, int, int | None]]) -> pa.Table:
    users, types, shows, ratings = zip(*rows, strict=True)
    return pa.table(
        {
            "event_id": [f"e{k}" for k in range(len(rows))],
            "user_id": pa.array(users, pa.int64()),
            "event_type": list(types),
            "show_id": pa.array(shows, pa.int64()),
            "rating": pa.array(ratings, pa.int64()),
        }
    )


def factors(ids: list[int], vectors: list[list[float]], column: str) -> pa.Table:
    return pa.table({column: pa.array(ids, pa.int64()), "factors": pa.array(vectors, pa.list_(pa.float32()))})


@pytest.fixture
def one_star_lake(tmp_path) -> Path:
    """Show 5 scores highest for both viewers; viewer 7 watched it and rated it one star the day before (a pair with no
    positive feedback, so not in the day's matrix); viewer 8 never touched it."""
    lake = tmp_path / "lake"
    write(
        lake,
        "app_events",
        EARLIER,
        events(
            [
                (VIEWER, "episode_watched", ONE_STAR_SHOW, None),
                (VIEWER, "episode_rated", ONE_STAR_SHOW, 1),
                (OTHER, "show_viewed", ONE_STAR_SHOW, None),
            ]
        ),
    )
    write(lake, "app_events", DAY, events([(OTHER, "episode_watched", 1, None)]))
    shows = list(range(1, 31))
    write(
        lake,
        "show_factors",
        DAY,
        factors(shows, [[10.0 if s == ONE_STAR_SHOW else 1.0 / s, 0.0] for s in shows], "show_id"),
    )
    write(lake, "user_factors", DAY, factors([VIEWER, OTHER], [[1.0, 0.0], [1.0, 0.0]], "user_id"))
    write(
        lake,
        "user_show_interactions",
        DAY,
        pa.table({"user_id": pa.array([OTHER], pa.int64()), "show_id": pa.array([1], pa.int64())}),
    )
    return tmp_path


def test_a_show_the_viewer_watched_and_rated_one_star_is_never_recommended(one_star_lake):
    result = dg.materialize(
        [*ASSETS, *CHECKS],
        selection=["user_show_history", "show_recommendations_staged", "show_recommendations"],
        partition_key=DAY,
        resources=local_resources(one_star_lake),
        raise_on_error=False,
    )
    assert result.success
    [audit] = [e for e in result.get_asset_check_evaluations() if e.check_name == "staging_table_passes_audit"]
    assert audit.passed and audit.metadata["recommended_shows_the_viewer_touched"].value == 0
    with duckdb.connect(str(one_star_lake / "warehouse.duckdb"), read_only=True) as con:
        picks = dict(
            con.execute(
                "SELECT user_id, list(show_id ORDER BY rank) FROM marts.show_recommendations GROUP BY user_id"
            ).fetchall()
        )
    assert ONE_STAR_SHOW not in picks[VIEWER] and len(picks[VIEWER]) == 20
    assert picks[OTHER][0] == ONE_STAR_SHOW  # the best-scoring show: only what viewer 7 did keeps it from them


def test_the_audit_fails_a_day_that_recommends_a_touched_show(one_star_lake):
    """A build that ignores the history (a defect) stages viewer 7's one-star show: the audit blocks the day."""
    mart = MartTable(
        "careless_recommendations", SHOW_RECOMMENDATIONS.columns, SHOW_RECOMMENDATIONS.key, SHOW_RECOMMENDATIONS.rules
    )

    def careless(con, day, tables):
        return con.sql(
            f"SELECT DATE '{DAY}' AS dt, {VIEWER} AS user_id, 1 AS rank, {ONE_STAR_SHOW} AS show_id, 9.0 AS score"
        )

    publication = Publication(mart, rule_tables=("user_show_history",), lake_rules=never_touched)
    built = mart_definitions(publication, (), careless, lambda con, table: {}, __file__, group="recommendations")
    for day in (EARLIER, DAY):  # the viewers' history, day by day
        history = [*ASSETS, *CHECKS]
        assert dg.materialize(
            history, selection=["user_show_history"], partition_key=day, resources=local_resources(one_star_lake)
        ).success
    result = dg.materialize(
        [*built.assets, *built.asset_checks],
        partition_key=DAY,
        resources=local_resources(one_star_lake),
        raise_on_error=False,
    )
    assert not result.success
    [audit] = result.get_asset_check_evaluations()
    assert not audit.passed and audit.metadata["recommended_shows_the_viewer_touched"].value == 1
    # Publishing by hand repeats the audit, the new rule included, and refuses.
    by_hand = dg.materialize(
        [*built.assets, *built.asset_checks],
        selection=["careless_recommendations"],
        partition_key=DAY,
        resources=local_resources(one_star_lake),
        raise_on_error=False,
    )
    failure = next(e for e in by_hand.all_events if e.is_step_failure).step_failure_data.error
    assert not by_hand.success and "recommended_shows_the_viewer_touched: 1" in failure.message
    assert "careless_recommendations" not in {
        e.asset_key.to_user_string() for e in result.get_asset_materialization_events()
    }


GENRE_A, GENRE_B = list(range(1, 11)), list(range(11, 21))
NEWCOMER = 10_000
# Two factors: the two genres are the whole structure of this data, so a genre is a direction of the factors.
TRAINING = {"factors": 2, "iterations": 15, "regularization": 1.0, "alpha": 10.0, "seed": 0, "threads": 1}


def two_genres() -> pa.Table:
    """300 viewers of each genre, five shows each; and one viewer of genre A whose latest show is of genre B."""
    rng = np.random.default_rng(3)
    users, shows, confidence, last = [], [], [], []
    for user in range(1, 601):
        genre = GENRE_A if user <= 300 else GENRE_B
        for show in rng.choice(genre, 5, replace=False):
            users.append(user), shows.append(int(show)), confidence.append(float(rng.uniform(1, 3)))
            last.append(int(rng.integers(0, 20)))
    for show, strength, day in ((1, 1.0, 2), (2, 1.0, 5), (3, 1.0, 8), (GENRE_B[0], 10.0, 27)):
        users.append(NEWCOMER), shows.append(show), confidence.append(strength), last.append(day)
    start = dt.datetime(2024, 2, 4, tzinfo=dt.UTC)
    return pa.table(
        {
            "user_id": pa.array(users, pa.int64()),
            "show_id": pa.array(shows, pa.int64()),
            "confidence": confidence,
            "last_interaction_at": pa.array([start + dt.timedelta(days=d) for d in last], pa.timestamp("us", tz="UTC")),
        }
    )


def genre_b_picks(user_factors: np.ndarray, show_factors: np.ndarray, data: mf.Interactions, seen) -> int:
    """How many of the newcomer's top 5 unseen shows are of genre B."""
    row = int(np.searchsorted(data.user_ids, NEWCOMER))
    best, _ = mf.top_k(user_factors, show_factors, seen, np.array([row]), 5)
    return int(np.isin(data.show_ids[best[0]], GENRE_B).sum())


def test_a_day_missing_from_the_history_is_refused_naming_it(one_star_lake):
    """A rule judged on part of the history proves nothing: a gap in app_events stops the viewers' history (built from
    every day of app_events when the day before has none), naming the days."""
    lake = one_star_lake / "lake"
    lake_write(
        lake,
        "app_events",
        "2024-02-28",
        duckdb.connect().sql(f"SELECT * FROM {lake_scan(lake, 'app_events', EARLIER)}"),
    )
    # The day is moved back: 2024-02-28 is held, 2024-02-29 and 2024-03-01 are not.
    lake_at(lake).iceberg_table(dg.AssetKey("app_events")).delete(EqualTo("dt", EARLIER))
    result = dg.materialize(
        [*ASSETS, *CHECKS],
        selection=["user_show_history"],
        partition_key=DAY,
        resources=local_resources(one_star_lake),
        raise_on_error=False,
    )
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error
    assert not result.success and "these days are not in the lake: 2024-02-29, 2024-03-01" in failure.message
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]  # no retry mends it


def test_the_published_factors_know_the_viewers_latest_show(tmp_path):
    table = two_genres()
    write(tmp_path / "lake", "user_show_interactions", DAY, table)
    result = dg.materialize(
        [*ASSETS, *CHECKS],
        selection=["user_factors", "show_factors"],
        partition_key=DAY,
        resources=local_resources(tmp_path),
        run_config={"ops": {"factors": {"config": TRAINING}}},
        raise_on_error=False,
    )
    assert result.success
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "beats_popularity_baseline"]
    assert check.passed  # two clean genres: the model beats popularity, so the factors are refit and published

    data = mf.from_columns(
        table["user_id"].to_numpy(),
        table["show_id"].to_numpy(),
        table["confidence"].to_numpy(),
        table["last_interaction_at"].cast(pa.int64()).to_numpy(),
    )
    published = {
        name: pq.read_table(lake_files(tmp_path / "lake", name, DAY)) for name in ("user_factors", "show_factors")
    }
    users = np.stack(published["user_factors"].sort_by("user_id")["factors"].to_numpy(zero_copy_only=False))
    shows = np.stack(published["show_factors"].sort_by("show_id")["factors"].to_numpy(zero_copy_only=False))
    assert genre_b_picks(users, shows, data, data.matrix) >= 4  # the refit model follows the newcomer into genre B

    # The evaluated model (the newcomer's latest show held out) would have kept them in genre A.
    split = mf.hold_out_latest(data)
    held_users, held_shows, _ = mf.train(split.train, mf.Params(**TRAINING))
    assert genre_b_picks(held_users, held_shows, data, data.matrix) == 0

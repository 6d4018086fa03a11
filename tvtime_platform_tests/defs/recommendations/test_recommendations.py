"""The recommendations job on generated viewers with tastes: factors from the batch entrypoint (a local
process through Pipes), its report as metadata and check, and the published top shows per user."""

import datetime as dt
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from tvtime_platform.cli import generate
from tvtime_platform.resources.deployment import local_resources
from tvtime_platform_tests.support import (
    ASSETS,
    CHECKS,
    columns_unlike_declared,
    lake_scan,
    materialize_all,
    schemas_unlike_declared,
)

pytestmark = pytest.mark.slow
DAYS = [f"2024-03-0{d}" for d in range(1, 7)]
RECOMMENDATIONS = dg.AssetSelection.groups("recommendations")


@pytest.fixture(scope="module")
def six_days(tmp_path_factory) -> Path:
    """Six days of 8,000 viewers over 500 shows: enough history for factors to beat popularity."""
    root = tmp_path_factory.mktemp("recommendations")
    generate(root / "landing", dt.date(2024, 3, 1), len(DAYS), users=8000, seed=11, shows=500)
    materialize_all(root, dg.DagsterInstance.ephemeral(), DAYS)
    return root


def train(root: Path, **training) -> dg.ExecuteInProcessResult:
    config = {"ops": {"factors": {"config": training}}} if training else None
    return dg.materialize(
        [*ASSETS, *CHECKS],
        selection=RECOMMENDATIONS,
        partition_key=DAYS[-1],
        resources=local_resources(root),
        run_config=config,
        raise_on_error=False,
    )


def test_factors_beat_popularity_and_recommendations_are_published(six_days):
    result = train(six_days)
    assert result.success
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "beats_popularity_baseline"]
    figures = {k: v.value for k, v in check.metadata.items()}
    assert (
        check.passed
        and figures["model_ndcg_at_10"] >= figures["required_ndcg_at_10"] > figures["popularity_ndcg_at_10"]
    )
    assert {
        "model_precision_at_10",
        "model_recall_at_10",
        "model_catalog_coverage",
        "popularity_catalog_coverage",
    } <= figures.keys()
    factors = {
        e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()
    }
    assert (
        factors["user_factors"]["library"].value == "implicit 0.7.3"
        and factors["user_factors"]["param_factors"].value == 32
    )
    assert (
        len(factors["user_factors"]["loss_by_iteration"].value) == 15
        and factors["show_factors"]["dagster/partition_row_count"].value > 0
    )

    interactions = lake_scan(six_days / "lake", "user_show_interactions", DAYS[-1])
    with duckdb.connect(str(six_days / "warehouse.duckdb"), read_only=True) as con:
        per_user = con.execute(
            "SELECT count(*), min(rank), max(rank) FROM marts.show_recommendations GROUP BY user_id"
        ).fetchall()
        assert per_user and all(row == (20, 1, 20) for row in per_user)
        descending = con.execute("""SELECT bool_and(score >= next) FROM (SELECT score, lead(score) OVER (PARTITION BY
            user_id ORDER BY rank) AS next
                                    FROM marts.show_recommendations) WHERE next IS NOT NULL""").fetchall()[0][0]
        assert descending
        seen_again = con.execute(
            f"SELECT count(*) FROM marts.show_recommendations JOIN {interactions} USING (user_id, show_id)"
        ).fetchall()[0][0]
        assert seen_again == 0  # nothing the user already watched, followed or rated in the window
        history = lake_scan(six_days / "lake", "app_events", hive=True)
        touched = con.execute(
            f"""SELECT count(*) FROM marts.show_recommendations r JOIN (
                SELECT DISTINCT user_id, show_id FROM {history}
                WHERE event_type IN ('episode_watched', 'episode_rated', 'show_followed') AND dt <= DATE '{DAYS[-1]}'
            ) t USING (user_id, show_id)"""
        ).fetchall()[0][0]
        low_rated = con.execute(
            f"SELECT count(*) FROM {history} WHERE event_type = 'episode_rated' AND rating <= 2"
        ).fetchall()[0][0]
        assert touched == 0 and low_rated > 0  # none ever touched, low ratings included (and there are some)
    assert factors["user_factors"]["trained_on"].value.startswith("all interactions")
    assert factors["user_factors"]["evaluation_training_seconds"].value > 0
    # Every lake table the graph wrote holds the columns its definition declares, in order.
    assert columns_unlike_declared(six_days / "lake") == {}
    assert schemas_unlike_declared([result]) == {}  # and the factors' materializations say so, described


def test_factors_that_do_not_beat_popularity_never_reach_the_recommendations(six_days):
    impossible = train(six_days, min_lift=10.0)  # 11 times the baseline's NDCG@10: cannot be met
    assert not impossible.success
    [check] = [e for e in impossible.get_asset_check_evaluations() if e.check_name == "beats_popularity_baseline"]
    assert not check.passed
    materialized = {e.asset_key.to_user_string() for e in impossible.get_asset_materialization_events()}
    assert {"user_factors", "show_factors"} <= materialized
    assert not materialized & {"show_recommendations_staged", "show_recommendations"}
    factors = {
        e.asset_key.to_user_string(): e.materialization.metadata for e in impossible.get_asset_materialization_events()
    }
    assert factors["user_factors"]["trained_on"].value.startswith("the evaluation split")  # no refit when held back
    assert (
        factors["user_factors"]["training_seconds"].value
        == factors["user_factors"]["evaluation_training_seconds"].value
    )

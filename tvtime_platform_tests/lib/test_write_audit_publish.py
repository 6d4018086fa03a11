"""Write-audit-publish of a mart, on DuckDB (local) and Snowflake (fakesnow, lake on moto's S3).

A small mart built with the same factory as the real ones is published twice, then a day that
breaks its rules is staged: the audit fails, the run stops before publishing, and the published
table and its backup stay exactly as they were.
"""

import dagster as dg
import duckdb as duckdb_api
import pytest

from tvtime_platform.lib.partitions import daily_partitions
from tvtime_platform.lib.write_audit_publish import Publication, mart_definitions, sql_build
from tvtime_platform.resources.deployment import Deployment, local_resources
from tvtime_platform.resources.duckdb_engine import DuckDBEngine
from tvtime_platform.transforms.marts import MartTable
from tvtime_platform_tests.emulators import snowflake_query

DAY = "2024-03-01"
SCORES = MartTable(
    name="team_scores",
    columns={"dt": "DATE", "team": "VARCHAR", "score": "BIGINT"},
    key=("dt", "team"),
    rules={"score_not_negative": "score >= 0"},
)


class Scores(dg.Config):
    teams: list[str]
    scores: list[int]


@dg.asset(io_manager_key="lake", partitions_def=daily_partitions)
def raw_scores(config: Scores, duckdb: DuckDBEngine) -> duckdb_api.DuckDBPyRelation:
    return duckdb.connect().sql(
        "SELECT unnest(CAST($teams AS VARCHAR[])) AS team, unnest(CAST($scores AS BIGINT[])) AS score",
        params={"teams": config.teams, "scores": config.scores},
    )


MART = mart_definitions(
    Publication(SCORES),
    ("raw_scores",),
    sql_build(lambda scores: f"SELECT CAST($day AS DATE) AS dt, team, score FROM {scores}", ("raw_scores",)),
    lambda con, day_table: {},
    __file__,
)
GRAPH = [raw_scores, *MART.assets, *MART.asset_checks]


def publish(
    resources: dict, teams: list[str], scores: list[int], instance: dg.DagsterInstance | None = None, day: str = DAY
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        GRAPH,
        partition_key=day,
        resources=resources,
        raise_on_error=False,
        instance=instance,
        run_config={"ops": {"raw_scores": {"config": {"teams": teams, "scores": scores}}}},
    )


@pytest.fixture(params=["local", "staging"])
def warehouse(request, tmp_path):
    """(resources, query, backup): a deployment's resources, a way to read its warehouse tables, and the teams and
    scores of the mart's backup (a file beside the DuckDB warehouse, a table in Snowflake)."""
    if request.param == "local":
        resources = local_resources(tmp_path)

        def query(sql: str) -> list[tuple]:
            with duckdb_api.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
                return con.execute(sql.replace("FROM ", "FROM marts.")).fetchall()

        def backup() -> list[tuple]:
            kept = tmp_path / "warehouse.duckdb.backups" / "team_scores" / f"dt={DAY}.parquet"
            return duckdb_api.execute("SELECT team, score FROM read_parquet(?) ORDER BY team", [str(kept)]).fetchall()

        return resources, query, backup
    environment = request.getfixturevalue("staging_environment")
    settings = request.getfixturevalue("snowflake_settings")

    def snowflake(sql: str) -> list[tuple]:
        return snowflake_query(settings, environment["SNOWFLAKE_DATABASE"], "MARTS", sql)

    return (
        Deployment.from_environment().resources(),
        snowflake,
        lambda: snowflake("SELECT team, score FROM team_scores__backup ORDER BY team"),
    )


@pytest.mark.slow
def test_a_failing_audit_leaves_the_published_table_and_its_backup_as_they_were(warehouse):
    resources, query, backup = warehouse
    assert publish(resources, ["a", "b"], [1, 2]).success
    assert publish(resources, ["a", "b", "c"], [10, 20, 30]).success
    everything = "SELECT team, score FROM {} ORDER BY team"
    assert query(everything.format("team_scores")) == [("a", 10), ("b", 20), ("c", 30)]
    assert backup() == [("a", 1), ("b", 2)]

    bad = publish(resources, ["a", "a", "b"], [5, 6, -1])  # a repeated key and a negative score
    assert not bad.success
    [evaluation] = bad.get_asset_check_evaluations()
    assert not evaluation.passed
    assert (
        evaluation.metadata["duplicate_keys"].value == 1 and evaluation.metadata["broken_score_not_negative"].value == 1
    )
    assert "team_scores" not in {e.asset_key.to_user_string() for e in bad.get_asset_materialization_events()}
    assert query(everything.format("team_scores")) == [("a", 10), ("b", 20), ("c", 30)]
    assert backup() == [("a", 1), ("b", 2)]


def test_publishing_by_hand_repeats_the_audit(tmp_path):
    """Selecting only the published asset cannot publish a staging table that fails its audit."""
    resources = local_resources(tmp_path)
    assert not publish(resources, ["a", "a"], [1, 2]).success
    by_hand = dg.materialize(
        GRAPH, selection=["team_scores"], partition_key=DAY, resources=resources, raise_on_error=False
    )
    assert not by_hand.success
    message = by_hand.get_step_failure_events()[0].step_failure_data.error.message
    assert "Not publishing team_scores for 2024-03-01" in message and "duplicate_keys: 1" in message


@pytest.mark.slow
def test_a_day_published_without_rows_is_not_taken_for_a_lost_one(warehouse):
    """A day with no rows leaves no trace in the mart; the warehouse's record of published days keeps it."""
    resources, query, _ = warehouse
    instance = dg.DagsterInstance.ephemeral()
    assert publish(resources, [], [], instance, day="2024-03-02").success
    assert publish(resources, ["a"], [1], instance).success  # would be refused if 2024-03-02 counted as lost
    assert query("SELECT CAST(dt AS VARCHAR) FROM team_scores__days ORDER BY 1") == [("2024-03-01",), ("2024-03-02",)]

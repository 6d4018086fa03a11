"""DuckDB and Spark (spark-submit in local mode, through Pipes) leave the same rows in the lake, defects included."""

import datetime as dt
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from tvtime_platform.resources.deployment import local_resources
from tvtime_platform.resources.set_based import EngineConfig, SetBasedEngine
from tvtime_platform.resources.spark import JOB_JAVA_OPTIONS, LocalSpark
from tvtime_platform.transforms import app_events as rules
from tvtime_platform_tests.support import ASSETS, CHECKS, START, event, lake_scan, write_landing_file

DAY = START.isoformat()
SET_BASED = ["app_events", "quarantined_events", "user_sessions", "tracked_episodes", "user_show_interactions"]
# On top of the generator's defects (malformed JSON, missing fields, string user ids, unknown
# platforms, retries, late arrivals, unknown episodes, an empty file): what else a line can get wrong.
MORE_DEFECTS = [
    event("float-user", user_id=7.5),
    event("huge-user", user_id=99999999999999999999),
    event("null-user", user_id=None) | {"user_id": None},
    event("bool-show", show_id=True),
    event("string-episode", episode_id="100"),
    event("neg-user", user_id=-3),
    event("bad-country", country="usa"),
    event("no-offset", ts="2024-03-01T20:15:03"),
    event("hour-offset", ts="2024-03-01T23:15:03+05"),
    event("bad-ts", ts="yesterday"),
    event("number-ts", ts=1709324103),
    event("bad-rating", event_type="episode_rated", rating=9),
    event("float-rating", event_type="episode_rated", rating=4.0),
    event("no-rating", event_type="episode_rated"),
    event("", event_type="app_open", show_id=None, episode_id=None),
    event("nested", country={"code": "US"}),
    event("unicode", country="ÉÉ"),
    event("extra-fields", app_version="7.1.0"),
    '{"event_id": "exponent-user", "event_type": "app_open", "user_id": 1e2, "ts": "2024-03-01T20:15:03Z", '
    '"platform": "tv", "country": "US"}',
    "[1, 2, 3]",
    '"just a string"',
    "null",
    "{}",
    '{"event_id": "cut", "user_id": 7',
]


def run_graph(data_dir: Path, spark_above_bytes: int, monkeypatch) -> dict[str, dict]:
    """The catalog, the day's set-based tables and the day's interactions, on the `auto` engine with the threshold
    given; the metadata of each."""
    monkeypatch.setenv("TVTIME_SPARK_ABOVE_BYTES", str(spark_above_bytes))
    resources = local_resources(data_dir, engine="auto", spark=LocalSpark(master="local[2]", driver_memory="1g"))
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize(ASSETS, selection=["show_catalog"], instance=instance, resources=resources).success
    day = dg.materialize(
        [*ASSETS, *CHECKS],
        selection=["app_events", "quarantined_events", "user_sessions", "tracked_episodes"],
        partition_key=DAY,
        instance=instance,
        resources=resources,
    )
    window = dg.materialize(
        ASSETS, selection=["user_show_interactions"], partition_key=DAY, instance=instance, resources=resources
    )
    assert day.success and window.success
    [balance] = [e for e in day.get_asset_check_evaluations() if e.check_name == "every_line_accounted_for"]
    assert balance.passed and balance.metadata["rows_written"].value > 0
    found = {}
    for name in SET_BASED:
        record = instance.get_latest_materialization_event(dg.AssetKey(name))
        found[name] = {k: getattr(v, "value", v) for k, v in record.asset_materialization.metadata.items()}
    return found


# Values computed with a logarithm: the JVM's `ln` and the C library's differ in the last bit or two
# (ln 3 is 1.0986122886681096 on one, ...098 on the other), so these are compared to 1e-12.
TRANSCENDENTAL = {"user_show_interactions": ("confidence", ("user_id", "show_id"))}


def rows_differing(a: str, b: str, inexact: str | None = None) -> tuple[int, int]:
    """Rows of `a` missing from `b` and of `b` missing from `a`, counting repeats (EXCEPT ALL), leaving out column
    `inexact`."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    columns = f"* EXCLUDE ({inexact})" if inexact else "*"
    return tuple(
        con.execute(
            f"SELECT count(*) FROM (SELECT {columns} FROM {x} EXCEPT ALL SELECT {columns} FROM {y})"
        ).fetchall()[0][0]
        for x, y in ((a, b), (b, a))
    )


def largest_relative_difference(a: str, b: str, column: str, key: tuple[str, ...]) -> float:
    on = " AND ".join(f"x.{k} = y.{k}" for k in key)
    return duckdb.sql(
        f"SELECT coalesce(max(abs(x.{column} - y.{column}) / abs(y.{column})), 0) FROM {a} x JOIN {b} y ON {on}"
    ).fetchall()[0][0]


@pytest.mark.slow
def test_duckdb_and_spark_leave_the_same_rows(tmp_path, generated_landing, monkeypatch):
    dirs = {engine: tmp_path / engine for engine in ("duckdb", "spark")}
    for folder in dirs.values():
        shutil.copytree(generated_landing, folder / "landing")
        write_landing_file(folder / "landing", DAY, 21, MORE_DEFECTS, name="part-more-defects.jsonl.gz")
    landed = sum(f.stat().st_size for f in generated_landing.glob("dt=*/hour=*/*.jsonl.gz"))
    # `auto` on both sides of its threshold: the whole landing zone is below one and above the other.
    thresholds = {"duckdb": landed * 10, "spark": 1}
    metadata = {engine: run_graph(folder, thresholds[engine], monkeypatch) for engine, folder in dirs.items()}
    for engine, relation in (("duckdb", "at most"), ("spark", "more than")):
        for table in ("app_events", "user_sessions", "tracked_episodes", "user_show_interactions"):
            assert metadata[engine][table]["engine"] == engine, (engine, table)
            assert metadata[engine][table]["engine_reason"].startswith("auto: "), (engine, table)
            assert f"landed, {relation} spark_above_bytes" in metadata[engine][table]["engine_reason"], (engine, table)

    for table in SET_BASED:
        # Rows name their landing file, which lies in each engine's own data folder.
        tables = {
            engine: f"(SELECT * REPLACE (replace(source_file, '{folder}', '') AS source_file) FROM "
            f"{lake_scan(folder / 'lake', table, DAY)})"
            if table == "quarantined_events"
            else lake_scan(folder / "lake", table, DAY)
            for engine, folder in dirs.items()
        }
        con = duckdb.connect()
        schemas = {engine: con.execute(f"DESCRIBE SELECT * FROM {sql}").fetchall() for engine, sql in tables.items()}
        assert schemas["duckdb"] == schemas["spark"], table
        inexact, key = TRANSCENDENTAL.get(table, (None, ()))
        assert rows_differing(tables["duckdb"], tables["spark"], inexact) == (0, 0), table
        if inexact:
            assert largest_relative_difference(tables["duckdb"], tables["spark"], inexact, key) < 1e-12, table
        assert (
            metadata["duckdb"][table]["dagster/partition_row_count"]
            == metadata["spark"][table]["dagster/partition_row_count"]
            > 0
        ), table

    # The same accounting whichever engine counted, and the Spark job's own report on top.
    ducks, sparks = metadata["duckdb"]["app_events"], metadata["spark"]["app_events"]
    for key in (
        "landed_lines",
        "kept",
        "quarantined",
        "duplicates",
        "late_arrivals_in",
        "quarantine_reasons",
        "distinct_users",
    ):
        assert ducks[key] == sparks[key], key
    reasons = ducks["quarantine_reasons"]
    for reason in (
        "malformed_json",
        "wrong_type:user_id",
        "invalid_value:user_id",
        "invalid_value:ts",
        "wrong_type:ts",
        "invalid_value:rating",
        "wrong_type:show_id",
        "wrong_type:episode_id",
        "invalid_value:country",
        "invalid_value:event_id",
        "duplicate_event_id",
        "missing_field:rating",
        "missing_field:user_id",
    ):
        assert reasons.get(reason, 0) > 0, reason
    assert "spark_version" not in ducks
    assert sparks["spark_version"].startswith("4.") and sparks["spark_master"] == "local[2]"
    for table in ("user_sessions", "tracked_episodes", "user_show_interactions"):
        assert {
            k: v
            for k, v in metadata["duckdb"][table].items()
            if not k.startswith(("spark_", "dagster/", "bytes", "path", "write_", "move_", "engine"))
        } == {
            k: v
            for k, v in metadata["spark"][table].items()
            if not k.startswith(("spark_", "dagster/", "bytes", "path", "write_", "move_", "engine"))
        }


@pytest.mark.slow
def test_the_spark_job_judges_the_balance_and_reports_it_through_pipes(tmp_path, monkeypatch):
    write_landing_file(tmp_path / "landing", DAY, 9, [event(f"e{k}") for k in range(20)] + ["not json"])
    keeping = rules.kept_sql  # a defect that drops a valid event on its way out
    monkeypatch.setattr(
        rules,
        "kept_sql",
        lambda owned, later: keeping(owned, later).replace(
            "WHERE reason IS NULL", "WHERE event_id <> 'e7' AND reason IS NULL"
        ),
    )
    resources = local_resources(tmp_path, engine="spark", spark=LocalSpark(master="local[1]", driver_memory="1g"))
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        ASSETS,
        selection=["app_events", "quarantined_events"],
        partition_key=DAY,
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )
    [balance] = result.get_asset_check_evaluations()
    assert balance.check_name == "every_line_accounted_for" and not balance.passed
    assert balance.metadata["rows_written"].value == 20 and balance.metadata["rows_expected"].value == 21
    assert balance.metadata["judged_by"].value == "the Spark job, on its written files"
    # The launcher's JVM options reached the job's JVM, as the job reports it was started.
    [started] = [e.user_message for e in instance.all_logs(result.run_id) if "driver JVM flags" in e.user_message]
    assert JOB_JAVA_OPTIONS in started.split("driver JVM flags: ")[1].split()


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_a_data_folder_named_with_quotes_brackets_and_stars_works_on_both_engines(tmp_path, engine):
    data_dir = tmp_path / "it's [a] *data* {x,y} %1?"
    write_landing_file(
        data_dir / "landing", DAY, 9, [event(f"e{k}", user_id=k % 3 + 1) for k in range(99)] + ["not json"]
    )
    resources = local_resources(data_dir, engine=engine, spark=LocalSpark(master="local[1]", driver_memory="1g"))
    result = dg.materialize(
        [*ASSETS, *CHECKS],
        selection=["app_events", "quarantined_events", "user_sessions"],
        partition_key=DAY,
        resources=resources,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert result.success, [str(e.step_failure_data.error)[-2000:] for e in result.all_events if e.is_step_failure]
    assert all(e.passed for e in result.get_asset_check_evaluations())
    sessions = [m for m in result.get_asset_materialization_events() if m.asset_key == dg.AssetKey("user_sessions")]
    assert sessions[0].materialization.metadata["dagster/partition_row_count"].value == 3


def test_auto_picks_the_engine_by_the_bytes_landed_for_the_days_a_run_covers(tmp_path):
    landing = tmp_path / "landing"
    for day, size in (("2024-03-01", 1000), ("2024-03-02", 300), ("2024-03-03", 50)):
        (landing / f"dt={day}" / "hour=00").mkdir(parents=True)
        (landing / f"dt={day}" / "hour=00" / "part-0.jsonl.gz").write_bytes(b"x" * size)
    engine = local_resources(tmp_path, engine="auto")["set_based"]
    engine = SetBasedEngine(**{**engine_fields(engine), "spark_above_bytes": 1300})
    first, second = dt.date(2024, 3, 1), dt.date(2024, 3, 2)
    # A day reads its own files and its late window's (one day): 1,000 + 300 bytes, at the threshold.
    assert engine.landed_bytes([first]) == 1300 and engine.landed_bytes([first, second]) == 1350  # each day once
    at = engine.choose(EngineConfig(), [first])
    assert at == ("duckdb", "auto: 1.3 KiB landed, at most spark_above_bytes (1.3 KiB)", 1300)
    assert at.metadata()["landed_bytes"] == 1300
    above = engine.choose(EngineConfig(), [first, second])
    assert above.engine == "spark" and above.reason.startswith("auto: 1.3 KiB landed, more than")
    assert engine.choose(EngineConfig(engine="duckdb"), [first, second]) == ("duckdb", "the run's engine config", None)
    fixed = SetBasedEngine(**{**engine_fields(engine), "default": "spark"})
    assert fixed.choose(EngineConfig(), []) == ("spark", "the deployment's engine", None)
    assert engine.choose(EngineConfig(), [dt.date(2024, 3, 9)]).engine == "duckdb"  # nothing landed: 0 bytes


def engine_fields(engine: SetBasedEngine) -> dict:
    return {name: getattr(engine, name) for name in SetBasedEngine.model_fields}

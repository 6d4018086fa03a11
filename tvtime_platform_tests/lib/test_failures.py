"""Retries only for what a retry can mend: real errors (a full device, a corrupt file, a value out of range) fail at
once with what to do; a service that was away is retried."""

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest

from tvtime_platform.lib.failures import deterministic_failures_not_retried
from tvtime_platform.resources.deployment import local_resources
from tvtime_platform_tests.support import ASSETS, CHECKS, START, lake_write

RETRY_AT_ONCE = dg.RetryPolicy(max_retries=2)


def write_to_full_device() -> None:
    with open("/dev/full", "wb") as device:
        device.write(b"x" * 65536)
        device.flush()


def duckdb_to_full_device() -> None:
    duckdb.sql("SELECT range AS x FROM range(100000)").to_csv("/dev/full")


def read_corrupt_parquet(tmp_path) -> None:
    (tmp_path / "part-0.parquet").write_bytes(b"not parquet at all")
    pq.read_table(tmp_path / "part-0.parquet")


def run(raiser) -> dg.ExecuteInProcessResult:
    @dg.asset(retry_policy=RETRY_AT_ONCE)
    def failing_step(context: dg.AssetExecutionContext) -> None:
        with deterministic_failures_not_retried():
            raiser()

    return dg.materialize([failing_step], raise_on_error=False)


def retries(result: dg.ExecuteInProcessResult) -> int:
    return len([e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"])


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    return result.get_step_failure_events()[0].step_failure_data.error.message


@pytest.mark.skipif(not __import__("os").path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("raiser", [write_to_full_device, duckdb_to_full_device])
def test_a_full_disk_fails_at_once_saying_so(raiser):
    result = run(raiser)
    assert not result.success and retries(result) == 0
    assert "The disk the run writes to is full" in failure_message(result)


def test_a_corrupt_file_fails_at_once_saying_what_to_rewrite(tmp_path):
    result = run(lambda: read_corrupt_parquet(tmp_path))
    assert retries(result) == 0 and "materialize the table it belongs to again" in failure_message(result)


def test_a_lake_file_deleted_by_hand_fails_at_once_saying_what_to_rebuild(tmp_path):
    gone = str(tmp_path / "app_events" / "dt=2024-03-01" / "v1" / "part-0.parquet")
    result = run(lambda: duckdb.execute("SELECT count(*) FROM read_parquet(?)", [[gone]]).fetchall())
    assert retries(result) == 0 and "is gone" in (said := failure_message(result)) and "materialize the table" in said


def test_a_warehouse_file_that_is_not_duckdb_fails_at_once_saying_how_to_rebuild(tmp_path):
    (tmp_path / "warehouse.duckdb").write_bytes(b"garbage" * 1000)
    result = run(lambda: duckdb.connect(str(tmp_path / "warehouse.duckdb")))
    assert retries(result) == 0 and "make rebuild-warehouse" in failure_message(result)


def test_a_service_that_was_away_is_retried():
    result = run(lambda: (_ for _ in ()).throw(ConnectionResetError(104, "Connection reset by peer")))
    assert not result.success and retries(result) == 2


def test_a_config_value_out_of_range_fails_at_once_naming_it(tmp_path):
    events = duckdb.sql(
        "SELECT 'e1' AS event_id, 1::BIGINT AS user_id, TIMESTAMPTZ '2024-03-01 10:00:00+00' AS ts, "
        "'app_open' AS event_type, 'ios' AS platform, 'FR' AS country, NULL::BIGINT AS show_id, "
        "NULL::BIGINT AS episode_id, NULL::BIGINT AS rating, DATE '2024-03-01' AS landing_date"
    )
    lake_write(tmp_path / "lake", "app_events", START.isoformat(), events)
    for gap in (1e400, -5, 10_000, 0, 1e-9, 0.008):  # 0.008 minutes: 0.48 s, which would round to no gap
        result = dg.materialize(
            [*ASSETS, *CHECKS],
            selection=["user_sessions"],
            partition_key=START.isoformat(),
            resources=local_resources(tmp_path),
            run_config={"ops": {"user_sessions": {"config": {"gap_minutes": gap}}}},
            raise_on_error=False,
        )
        assert not result.success and retries(result) == 0, gap
        message = failure_message(result)
        assert "Invalid run config for SessionsConfig: gap_minutes" in message, message

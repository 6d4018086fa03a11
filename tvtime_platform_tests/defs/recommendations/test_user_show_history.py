"""`user_show_history`, grown day by day, holds exactly what every day of `app_events` up to the day holds (the
exclusions as computed before it existed), through a late file that changes a day already folded in."""

import dagster as dg
import duckdb
import pytest

from tvtime_platform.resources.deployment import local_resources
from tvtime_platform.transforms.marts import touched_shows_sql
from tvtime_platform_tests.support import ASSETS, CHECKS, event, lake_files, landed_days, write_landing_file

pytestmark = pytest.mark.slow


def materialize(data_dir, selection: list[str], day: str, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    result = dg.materialize(
        [*ASSETS, *CHECKS],
        selection=selection,
        partition_key=day,
        resources=local_resources(data_dir),
        instance=instance,
    )
    assert result.success
    return result


def every_day_up_to(data_dir, day: str) -> set[tuple[int, int]]:
    """The touched pairs from every day of app_events up to the day, read as any reader would."""
    files = [f for d in landed_days(data_dir) if d <= day for f in lake_files(data_dir / "lake", "app_events", d)]
    rows = duckdb.execute(touched_shows_sql("read_parquet($files)"), {"files": files}).fetchall()
    return set(rows)


def history(data_dir, day: str) -> set[tuple[int, int]]:
    files = lake_files(data_dir / "lake", "user_show_history", day)
    return set(duckdb.execute("SELECT user_id, show_id FROM read_parquet($files)", {"files": files}).fetchall())


def test_the_state_grown_by_the_day_holds_what_every_day_of_app_events_holds(data_dir):
    instance = dg.DagsterInstance.ephemeral()
    days = landed_days(data_dir)
    for day in days:
        materialize(data_dir, ["app_events", "quarantined_events"], day, instance)
    for day in days:
        built = materialize(data_dir, ["user_show_history"], day, instance)
        [materialization] = built.get_asset_materialization_events()
        expected = every_day_up_to(data_dir, day)
        assert history(data_dir, day) == expected and expected
        source = materialization.materialization.metadata["built_from"].value
        assert source == (
            "every day of app_events up to it" if day == days[0] else "the day before's state and the day's app_events"
        )

    # A late file lands the day after the first day: it touches a show no one had, on the first day.
    first, second = days[0], days[1]
    late = event(
        "late-follow",
        event_type="show_followed",
        user_id=424242,
        show_id=9999,
        episode_id=None,
        ts=f"{first}T23:59:00Z",
    )
    write_landing_file(data_dir / "landing", second, 23, [late], name="late.jsonl.gz")
    materialize(data_dir, ["app_events", "quarantined_events"], first, instance)  # its late window reads the file
    last = materialize(data_dir, ["user_show_history"], days[-1], instance)
    refolded = sorted(e.partition for e in last.get_asset_materialization_events())
    assert refolded == days  # every day from the changed one folded again, oldest first, then the day
    for day in days:
        assert history(data_dir, day) == every_day_up_to(data_dir, day)
    assert (424242, 9999) in history(data_dir, days[-1])
    # Nothing changed since: the next run folds the day alone.
    again = materialize(data_dir, ["user_show_history"], days[-1], instance)
    assert [e.partition for e in again.get_asset_materialization_events()] == [days[-1]]

"""Sessionization rules, with expectations computed by hand."""

import duckdb
import pytest

from tvtime_platform.transforms.user_sessions import gap_params, sessionize_sql


def sessionize(events: list[tuple], gap_seconds: int = 1800) -> list[tuple]:
    """events: (user_id, event_id, 'HH:MM:SS' on 2024-03-01 or a full timestamp, event_type, platform)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        "CREATE TABLE events (user_id BIGINT, event_id VARCHAR, ts TIMESTAMPTZ, event_type VARCHAR, platform VARCHAR, "
        "country VARCHAR)"
    )
    for user, eid, ts, kind, platform in events:
        stamp = ts if "T" in ts else f"2024-03-01T{ts}Z"
        con.execute("INSERT INTO events VALUES (?, ?, ?::TIMESTAMPTZ, ?, ?, 'US')", [user, eid, stamp, kind, platform])
    return con.execute(
        f"SELECT user_id, strftime(session_start, '%H:%M:%S'), strftime(session_end, '%H:%M:%S'), duration_seconds, "
        f"event_count, "
        f"episodes_watched, platform, session_id FROM ({sessionize_sql('events')}) ORDER BY user_id, session_start",
        gap_params(gap_seconds),
    ).fetchall()


def test_gap_exactly_the_threshold_continues_the_session():
    rows = sessionize([(1, "a", "10:00:00", "app_open", "ios"), (1, "b", "10:30:00", "episode_watched", "ios")])
    assert [(r[1], r[2], r[3], r[4], r[5]) for r in rows] == [("10:00:00", "10:30:00", 1800.0, 2, 1)]


def test_a_gap_longer_than_the_threshold_starts_a_new_session():
    rows = sessionize([(1, "a", "10:00:00", "app_open", "ios"), (1, "b", "10:30:01", "app_open", "ios")])
    assert [(r[1], r[2], r[4]) for r in rows] == [("10:00:00", "10:00:00", 1), ("10:30:01", "10:30:01", 1)]


def test_out_of_order_events_are_ordered_by_event_time():
    # Arrival order 3, 1, 2; by event time the gaps are 20 and 45 minutes: two sessions.
    rows = sessionize(
        [
            (1, "c", "11:05:00", "episode_watched", "tv"),
            (1, "a", "10:00:00", "app_open", "ios"),
            (1, "b", "10:20:00", "episode_watched", "ios"),
        ]
    )
    assert [(r[1], r[2], r[4], r[5], r[6]) for r in rows] == [
        ("10:00:00", "10:20:00", 2, 1, "ios"),
        ("11:05:00", "11:05:00", 1, 1, "tv"),
    ]


def test_users_are_sessionized_separately_and_ids_are_stable():
    rows = sessionize([(1, "a", "10:00:00", "app_open", "ios"), (2, "b", "10:05:00", "app_open", "web")])
    assert [(r[0], r[4]) for r in rows] == [(1, 1), (2, 1)]
    assert rows[0][7] == f"1-{1709287200000}"  # user 1 at 2024-03-01T10:00:00Z in epoch ms
    assert rows[1][7] == f"2-{1709287500000}"


def test_a_session_crossing_midnight_is_cut_at_the_day_boundary():
    # The partition holds one UTC day; a session still open at midnight ends with the day's last event.
    day_one = sessionize(
        [
            (1, "a", "2024-03-01T23:50:00Z", "app_open", "ios"),
            (1, "b", "2024-03-01T23:59:00Z", "episode_watched", "ios"),
        ]
    )
    day_two = sessionize([(1, "c", "2024-03-02T00:10:00Z", "episode_watched", "ios")])
    assert [(r[1], r[2], r[4]) for r in day_one] == [("23:50:00", "23:59:00", 2)]
    assert [(r[1], r[2], r[4]) for r in day_two] == [("00:10:00", "00:10:00", 1)]


@pytest.mark.parametrize("gap_seconds, sessions", [(60, 3), (600, 2), (3600, 1)])
def test_the_gap_is_configurable(gap_seconds, sessions):
    events = [
        (1, "a", "10:00:00", "app_open", "ios"),
        (1, "b", "10:05:00", "app_open", "ios"),
        (1, "c", "10:50:00", "app_open", "ios"),
    ]
    assert len(sessionize(events, gap_seconds)) == sessions


def test_ties_in_event_time_keep_every_event_and_pick_attributes_deterministically():
    rows = sessionize([(1, "a", "10:00:00", "app_open", "ios"), (1, "b", "10:00:00", "show_viewed", "android")])
    assert [(r[4], r[3], r[6]) for r in rows] == [(2, 0.0, "android")]  # same instant: alphabetical platform

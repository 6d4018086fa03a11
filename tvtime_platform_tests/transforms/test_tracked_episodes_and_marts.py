"""tracked_episodes and the marts on a handful of rows, with expectations computed by hand."""

import datetime as dt

import duckdb
import pytest

from tvtime_platform.transforms.marts import daily_active_users_sql, show_popularity_sql
from tvtime_platform.transforms.tracked_episodes import tracked_episodes_sql

DAY = dt.date(2024, 3, 1)


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("""CREATE TABLE events AS SELECT * FROM (VALUES
        ('e1', 'episode_watched', 1, TIMESTAMPTZ '2024-03-01 20:00:00+00', 'ios', 'US', 10, 100),
        ('e2', 'episode_watched', 1, TIMESTAMPTZ '2024-03-01 20:40:00+00', 'tv',  'US', 10, 100),  -- same episode again
        ('e3', 'episode_watched', 1, TIMESTAMPTZ '2024-03-01 21:00:00+00', 'tv',  'US', 10, 101),
        ('e4', 'episode_watched', 2, TIMESTAMPTZ '2024-03-01 09:00:00+00', 'web', 'DE', 10, 100),
        ('e5', 'episode_watched', 2, TIMESTAMPTZ '2024-03-01 09:30:00+00', 'web', 'DE', 11, 999),  -- unknown episode
        ('e6', 'episode_watched', 3, TIMESTAMPTZ '2024-03-01 12:00:00+00', 'ios', 'US', 20, 101),  -- names another show
        ('e7', 'show_followed',   3, TIMESTAMPTZ '2024-03-01 12:05:00+00', 'ios', 'US', 20, NULL),
        ('e8', 'app_open',        4, TIMESTAMPTZ '2024-03-01 13:00:00+00', 'android', 'BR', NULL, NULL)
    ) t(event_id, event_type, user_id, ts, platform, country, show_id, episode_id)""")
    con.execute("""CREATE TABLE catalog AS SELECT * FROM (VALUES
        (100, 10, 'The Silent Harbor 10', 'drama', 1, 1, 45),
        (101, 10, 'The Silent Harbor 10', 'drama', 1, 2, 45),
        (200, 20, 'The Lost Station 20', 'comedy', 1, 1, 22)
    ) t(episode_id, show_id, show_title, genre, season_number, episode_number, runtime_min)""")
    con.execute("""CREATE TABLE sessions AS SELECT * FROM (VALUES
        (1, 'ios', 'US', 2400.0), (1, 'tv', 'US', 0.0), (2, 'web', 'DE', 1800.0), (3, 'ios', 'US', 300.0), (4,
        'android', 'BR', 0.0)
    ) t(user_id, platform, country, duration_seconds)""")
    return con


def test_tracked_episodes_one_row_per_user_and_episode_with_flags(con):
    rows = con.execute(f"""SELECT user_id, episode_id, show_id, season_number, episode_number, watch_count, platform,
                                  in_catalog, show_matches_catalog, strftime(first_watched_at, '%H:%M'),
                                  strftime(last_watched_at, '%H:%M')
                           FROM ({tracked_episodes_sql("events", "catalog")}) ORDER BY ALL""").fetchall()
    assert rows == [
        (1, 100, 10, 1, 1, 2, "ios", True, True, "20:00", "20:40"),
        (1, 101, 10, 1, 2, 1, "tv", True, True, "21:00", "21:00"),
        (2, 100, 10, 1, 1, 1, "web", True, True, "09:00", "09:00"),
        (2, 999, 11, None, None, 1, "web", False, False, "09:30", "09:30"),
        (3, 101, 20, 1, 2, 1, "ios", True, False, "12:00", "12:00"),
    ]


def test_daily_active_users_by_platform_and_country(con):
    rows = con.execute(
        f"SELECT * EXCLUDE (dt) FROM ({daily_active_users_sql('events', 'sessions')}) ORDER BY ALL",
        {"day": DAY.isoformat()},
    ).fetchall()
    # (platform, country, active users, events, sessions, average session seconds)
    assert rows == [
        ("android", "BR", 1, 1, 1, 0.0),
        ("ios", "US", 2, 3, 2, 1350.0),  # users 1 and 3; sessions of 2400 s and 300 s
        ("tv", "US", 1, 2, 1, 0.0),
        ("web", "DE", 1, 2, 1, 1800.0),
    ]


def test_show_popularity_counts_viewers_in_catalog_and_new_followers(con):
    con.execute(f"CREATE TABLE tracked AS {tracked_episodes_sql('events', 'catalog')}")
    rows = con.execute(
        f"SELECT * EXCLUDE (dt) FROM ({show_popularity_sql('tracked', 'events', 'catalog')}) ORDER BY ALL",
        {"day": DAY.isoformat()},
    ).fetchall()
    # (show, title, genre, viewers, episodes tracked, watch events, new followers, rank)
    # Show 10: users 1 and 2 (user 2's episode 999 is not in the catalog). User 3 named show 20 for
    # an episode of show 10, so that row counts for neither; show 20 has only its new follower.
    assert rows == [
        (10, "The Silent Harbor 10", "drama", 2, 3, 4, 0, 1),
        (20, "The Lost Station 20", "comedy", 0, 0, 0, 1, 2),
    ]

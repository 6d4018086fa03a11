"""Warehouse marts: small daily aggregates the analysts query, computed in DuckDB from the lake."""

from __future__ import annotations

import datetime as dt


def daily_active_users_sql(day: dt.date, events_sql: str, sessions_sql: str) -> str:
    """Active users, events and sessions of a day by platform and country (a user active on two platforms counts in both).

    The average is summed in exact decimals so that re-runs give identical rows whatever the order of parallel summation.
    """
    return f"""
    WITH activity AS (
        SELECT platform, country, count(DISTINCT user_id) AS active_users, count(*) AS events
        FROM {events_sql} GROUP BY platform, country
    ), sessions AS (
        SELECT platform, country, count(*) AS sessions, CAST(avg(CAST(duration_seconds AS DECIMAL(18, 3))) AS DOUBLE) AS avg_session_seconds
        FROM {sessions_sql} GROUP BY platform, country
    )
    SELECT DATE '{day}' AS dt, a.platform, a.country, a.active_users, a.events,
        coalesce(s.sessions, 0) AS sessions, coalesce(s.avg_session_seconds, 0.0) AS avg_session_seconds
    FROM activity a LEFT JOIN sessions s USING (platform, country)
    ORDER BY a.platform, a.country"""


def show_popularity_sql(day: dt.date, tracked_sql: str, events_sql: str, catalog_sql: str) -> str:
    """Per show and day: distinct viewers, episodes tracked, new followers, and the rank by viewers.

    Tracked episodes unknown to the catalog, or naming another show than the catalog's, are left out
    (the tracked_episodes integrity check counts them).
    """
    return f"""
    WITH watching AS (
        SELECT show_id, count(DISTINCT user_id) AS viewers, count(*) AS episodes_tracked, sum(watch_count) AS watch_events
        FROM {tracked_sql} WHERE in_catalog AND show_matches_catalog GROUP BY show_id
    ), following AS (
        SELECT show_id, count(DISTINCT user_id) AS new_followers
        FROM {events_sql} WHERE event_type = 'show_followed' GROUP BY show_id
    ), shows AS (
        SELECT show_id, any_value(show_title) AS title, any_value(genre) AS genre FROM {catalog_sql} GROUP BY show_id
    )
    SELECT DATE '{day}' AS dt, show_id, s.title, s.genre,
        coalesce(w.viewers, 0) AS viewers, coalesce(w.episodes_tracked, 0) AS episodes_tracked,
        coalesce(w.watch_events, 0) AS watch_events, coalesce(f.new_followers, 0) AS new_followers,
        rank() OVER (ORDER BY coalesce(w.viewers, 0) DESC) AS rank_by_viewers
    FROM watching w FULL JOIN following f USING (show_id) JOIN shows s USING (show_id)
    ORDER BY rank_by_viewers, show_id"""

"""Sessionization: a user's events, ordered by event time, split wherever they go quiet for too long.

Definitions (each has a test):
- Events are ordered by `ts`, whatever order they arrived in. Events with the same `ts` are 0 s
  apart, so they share a session whichever comes first; the sort needs no tie-breaker.
- Two consecutive events of a user belong to the same session when the gap between them is at most
  `gap_seconds` (default 30 minutes); a gap *exactly* equal to the threshold continues the session,
  a longer one starts a new session.
- Sessions never span two days: the partition is one UTC day of events, so a session still open at
  midnight ends with the day's last event and the next day's first event opens a new one (the
  convention web analytics tools use; it keeps every day's partition independent and idempotent).
- `session_id` is `<user_id>-<epoch milliseconds of the first event>`: stable across re-runs.
- `platform` and `country` are those of the session's first event; of events at the same instant,
  the first by platform, then country (alphabetical), so re-runs agree.
"""

from __future__ import annotations

from tvtime_platform.transforms.columns import columns
from tvtime_platform.transforms.plan import TABLE, Plan, Step

DEFAULT_GAP_SECONDS = 30 * 60
USER_SESSIONS_COLUMNS = columns(
    ("session_id", "VARCHAR", "<user_id>-<epoch milliseconds of the session's first event>"),
    ("user_id", "BIGINT", "the user"),
    ("session_start", "TIMESTAMP WITH TIME ZONE", "the session's first event, UTC"),
    ("session_end", "TIMESTAMP WITH TIME ZONE", "its last event, UTC (sessions are cut at midnight UTC)"),
    ("duration_seconds", "DOUBLE", "session_end - session_start, in seconds"),
    ("event_count", "BIGINT", "events in the session"),
    ("episodes_watched", "BIGINT", "its episode_watched events"),
    ("platform", "VARCHAR", "the platform of its first event"),
    ("country", "VARCHAR", "the country of its first event"),
)


def sessionize_sql(events_sql: str) -> str:
    """One row per session of the events in `events_sql` (a relation of app_events rows), the gap being the
    parameter `$gap_us` (`gap_params`).

    Only narrow columns go through the two window passes (no event ids): that halves the time
    and memory of a 10M-event day.
    """
    first = "(t_us, platform, country)"
    return f"""
    WITH stamped AS (
        SELECT user_id, event_type = 'episode_watched' AS watched, platform, country, epoch_us(ts) AS t_us
        FROM {events_sql}
    ), flagged AS (
        SELECT *,
            CASE WHEN t_us - lag(t_us) OVER (PARTITION BY user_id ORDER BY t_us) <= $gap_us THEN 0 ELSE 1 END AS
            starts_session
        FROM stamped
    ), numbered AS (
        SELECT *, sum(starts_session) OVER (PARTITION BY user_id ORDER BY t_us ROWS UNBOUNDED PRECEDING) AS
        session_number
        FROM flagged
    )
    SELECT
        user_id || '-' || (min(t_us) // 1000) AS session_id,
        user_id,
        make_timestamptz(min(t_us)) AS session_start,
        make_timestamptz(max(t_us)) AS session_end,
        (max(t_us) - min(t_us)) / 1e6 AS duration_seconds,
        count(*) AS event_count,
        count(*) FILTER (WHERE watched) AS episodes_watched,
        arg_min(platform, {first}) AS platform,
        arg_min(country, {first}) AS country
    FROM numbered
    GROUP BY user_id, session_number"""


SUMMARY_SQL = (
    "SELECT count(*), count(DISTINCT user_id), coalesce(sum(event_count), 0), median(duration_seconds) FROM sessions"
)


def gap_params(gap_seconds: int = DEFAULT_GAP_SECONDS) -> dict[str, int]:
    """The values `sessionize_sql` is run with."""
    return {"gap_us": int(gap_seconds) * 1_000_000}


def user_sessions_plan(gap_seconds: int = DEFAULT_GAP_SECONDS) -> Plan:
    """Sessions of a day: input `app_events` (one partition), output `user_sessions`."""
    return Plan(
        inputs=("app_events",),
        steps=(Step("sessions", sessionize_sql("app_events"), TABLE),),
        outputs={"user_sessions": "SELECT * FROM sessions"},
        facts={"summary": SUMMARY_SQL},
        params=gap_params(gap_seconds),
    )

"""Tracked episodes: who marked which episode watched on a day, joined to the show catalog.

One row per user, episode and day. Events whose episode is not in the catalog are kept (with
`in_catalog` false and no catalog columns) so that nothing is lost and the referential-integrity
check can count them; `show_matches_catalog` flags events that name another show than the catalog.
"""

from __future__ import annotations

from tvtime_platform.transforms.columns import columns
from tvtime_platform.transforms.plan import TABLE, Plan, Step

TRACKED_EPISODES_COLUMNS = columns(
    ("user_id", "BIGINT", "the user"),
    ("episode_id", "BIGINT", "the episode watched"),
    ("show_id", "BIGINT", "its show, as the event named it"),
    ("season_number", "INTEGER", "from the catalog (null if the episode is not in it)"),
    ("episode_number", "INTEGER", "from the catalog (null if the episode is not in it)"),
    ("runtime_min", "INTEGER", "the episode's length in minutes, from the catalog"),
    ("first_watched_at", "TIMESTAMP WITH TIME ZONE", "the day's first episode_watched of it by the user, UTC"),
    ("last_watched_at", "TIMESTAMP WITH TIME ZONE", "the day's last, UTC"),
    ("watch_count", "BIGINT", "how many times the user watched it that day"),
    ("platform", "VARCHAR", "the platform of the first watch"),
    ("in_catalog", "BOOLEAN", "whether the catalog knows the episode (the rows it does not are kept, flagged)"),
    ("show_matches_catalog", "BOOLEAN", "whether the event's show is the catalog's show of the episode"),
)


def tracked_episodes_sql(events_sql: str, catalog_sql: str) -> str:
    return f"""
    WITH watched AS (
        SELECT user_id, episode_id, show_id, ts, platform, event_id
        FROM {events_sql} WHERE event_type = 'episode_watched'
    ), per_episode AS (
        SELECT user_id, episode_id,
            arg_min(show_id, (ts, event_id)) AS show_id,
            min(ts) AS first_watched_at,
            max(ts) AS last_watched_at,
            count(*) AS watch_count,
            arg_min(platform, (ts, event_id)) AS platform
        FROM watched GROUP BY user_id, episode_id
    )
    SELECT p.user_id, p.episode_id, p.show_id, c.season_number, c.episode_number, c.runtime_min,
        p.first_watched_at, p.last_watched_at, p.watch_count, p.platform,
        c.episode_id IS NOT NULL AS in_catalog,
        coalesce(c.show_id = p.show_id, false) AS show_matches_catalog
    FROM per_episode p LEFT JOIN {catalog_sql} c ON c.episode_id = p.episode_id
    ORDER BY p.user_id, p.episode_id"""


SUMMARY_SQL = (
    "SELECT count(DISTINCT user_id), count(DISTINCT show_id), count(*) FILTER (WHERE NOT in_catalog) FROM tracked"
)


def tracked_episodes_plan() -> Plan:
    """Tracked episodes of a day: inputs `app_events` (one partition) and `show_catalog`, output `tracked_episodes`."""
    return Plan(
        inputs=("app_events", "show_catalog"),
        steps=(Step("tracked", tracked_episodes_sql("app_events", "show_catalog"), TABLE),),
        outputs={"tracked_episodes": "SELECT * FROM tracked"},
        facts={"summary": SUMMARY_SQL},
    )

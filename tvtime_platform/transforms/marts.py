"""Warehouse marts: small daily aggregates the analysts query, computed in DuckDB from the lake.

Each mart's table is declared once (`MartTable`): its typed columns, its key and the rules every
row must satisfy. The same declaration creates the warehouse tables and drives the audits that
gate publication, in DuckDB and in Snowflake alike (the audit SQL is common to both).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tvtime_platform.transforms.columns import Column, Columns

PARTITION_COLUMN = "dt"


@dataclass(frozen=True)
class MartTable:
    """A warehouse table: typed columns, the key that identifies a row, and rules every row obeys."""

    name: str
    columns: dict[str, str]
    key: tuple[str, ...]
    rules: dict[str, str]
    descriptions: dict[str, str] = field(default_factory=dict)  # what each column holds, for the catalog

    def __post_init__(self) -> None:
        if self.descriptions and list(self.descriptions) != list(self.columns):
            raise ValueError(f"{self.name}: describe exactly its columns, in order: {list(self.columns)}")

    def described(self) -> Columns:
        return tuple(Column(c, t, self.descriptions.get(c, "")) for c, t in self.columns.items())

    def typed_sql(self, sql: str) -> str:
        """`sql` cast to the declared columns, so the lake files match the warehouse table exactly."""
        return f"SELECT {', '.join(f'CAST({c} AS {t}) AS {c}' for c, t in self.columns.items())} FROM ({sql})"

    def create_sql(self, table: str) -> str:
        return f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(f'{c} {t}' for c, t in self.columns.items())})"

    def duplicate_keys_sql(self, table: str) -> str:
        keys = ", ".join(self.key)
        return f"SELECT count(*) FROM (SELECT {keys} FROM {table} GROUP BY {keys} HAVING count(*) > 1) AS repeated"

    def rule_violations_sql(self, table: str) -> str:
        """One count per rule of the rows breaking it (a NULL verdict breaks it too)."""
        counts = ", ".join(f"sum(CASE WHEN {rule} THEN 0 ELSE 1 END) AS {name}" for name, rule in self.rules.items())
        return f"SELECT {counts} FROM {table}"


DAILY_ACTIVE_USERS = MartTable(
    name="daily_active_users",
    columns={
        "dt": "DATE",
        "platform": "VARCHAR",
        "country": "VARCHAR",
        "active_users": "BIGINT",
        "events": "BIGINT",
        "sessions": "BIGINT",
        "avg_session_seconds": "DOUBLE",
    },
    key=("dt", "platform", "country"),
    rules={
        "has_active_users": "active_users > 0",
        "events_at_least_users": "events >= active_users",
        "sessions_not_negative": "sessions >= 0",
        "durations_not_negative": "avg_session_seconds >= 0",
    },
    descriptions={
        "dt": "the day (UTC)",
        "platform": "ios, android, web or tv",
        "country": "two capital letters",
        "active_users": "users with at least one event that day on the platform in the country",
        "events": "their events",
        "sessions": "their sessions (a session counts for its first event's platform and country)",
        "avg_session_seconds": "the sessions' average length in seconds",
    },
)
SHOW_POPULARITY = MartTable(
    name="show_popularity",
    columns={
        "dt": "DATE",
        "show_id": "BIGINT",
        "title": "VARCHAR",
        "genre": "VARCHAR",
        "viewers": "BIGINT",
        "episodes_tracked": "BIGINT",
        "watch_events": "BIGINT",
        "new_followers": "BIGINT",
        "rank_by_viewers": "BIGINT",
    },
    key=("dt", "show_id"),
    rules={
        "counts_not_negative": "viewers >= 0 AND new_followers >= 0",
        "episodes_at_least_viewers": "episodes_tracked >= viewers",
        "rank_positive": "rank_by_viewers >= 1",
        "titled": "title IS NOT NULL",
    },
    descriptions={
        "dt": "the day (UTC)",
        "show_id": "the show",
        "title": "its title, from the catalog",
        "genre": "its genre, from the catalog",
        "viewers": "users who tracked at least one of its episodes that day",
        "episodes_tracked": "(user, episode) pairs tracked that day",
        "watch_events": "episode_watched events of the show that day",
        "new_followers": "show_followed events that day",
        "rank_by_viewers": "1 for the show with the most viewers that day",
    },
)


def daily_active_users_sql(events_sql: str, sessions_sql: str) -> str:
    """Active users, events and sessions of the day `$day` by platform and country (a user active on two platforms
    counts
    in both).

    The average is summed in exact decimals so that re-runs give identical rows whatever the order of parallel
    summation.
    """
    return f"""
    WITH activity AS (
        SELECT platform, country, count(DISTINCT user_id) AS active_users, count(*) AS events
        FROM {events_sql} GROUP BY platform, country
    ), sessions AS (
        SELECT platform, country, count(*) AS sessions, CAST(avg(CAST(duration_seconds AS DECIMAL(18, 3))) AS DOUBLE)
        AS avg_session_seconds
        FROM {sessions_sql} GROUP BY platform, country
    )
    SELECT CAST($day AS DATE) AS dt, a.platform, a.country, a.active_users, a.events,
        coalesce(s.sessions, 0) AS sessions, coalesce(s.avg_session_seconds, 0.0) AS avg_session_seconds
    FROM activity a LEFT JOIN sessions s USING (platform, country)
    ORDER BY a.platform, a.country"""


def show_popularity_sql(tracked_sql: str, events_sql: str, catalog_sql: str) -> str:
    """Per show on the day `$day`: distinct viewers, episodes tracked, new followers, and the rank by viewers.

    Tracked episodes unknown to the catalog, or naming another show than the catalog's, are left out
    (the tracked_episodes integrity check counts them).
    """
    return f"""
    WITH watching AS (
        SELECT show_id, count(DISTINCT user_id) AS viewers, count(*) AS episodes_tracked, sum(watch_count) AS
        watch_events
        FROM {tracked_sql} WHERE in_catalog AND show_matches_catalog GROUP BY show_id
    ), following AS (
        SELECT show_id, count(DISTINCT user_id) AS new_followers
        FROM {events_sql} WHERE event_type = 'show_followed' GROUP BY show_id
    ), shows AS (
        SELECT show_id, any_value(show_title) AS title, any_value(genre) AS genre FROM {catalog_sql} GROUP BY show_id
    )
    SELECT CAST($day AS DATE) AS dt, show_id, s.title, s.genre,
        coalesce(w.viewers, 0) AS viewers, coalesce(w.episodes_tracked, 0) AS episodes_tracked,
        coalesce(w.watch_events, 0) AS watch_events, coalesce(f.new_followers, 0) AS new_followers,
        rank() OVER (ORDER BY coalesce(w.viewers, 0) DESC) AS rank_by_viewers
    FROM watching w FULL JOIN following f USING (show_id) JOIN shows s USING (show_id)
    ORDER BY rank_by_viewers, show_id"""


RECOMMENDATIONS_PER_USER = 20
# What a viewer did to a show that makes it theirs already: never recommended back, whatever the rating.
TOUCHING_EVENT_TYPES = ("episode_watched", "episode_rated", "show_followed")


def touched_shows_sql(events_sql: str) -> str:
    """Every (user_id, show_id) a viewer watched, rated or followed in the events given (their history to the day)."""
    types = ", ".join(f"'{t}'" for t in TOUCHING_EVENT_TYPES)
    return f"SELECT DISTINCT user_id, show_id FROM {events_sql} WHERE event_type IN ({types}) AND show_id IS NOT NULL"


def touched_recommendations_sql(recommendations_sql: str, touched_sql: str) -> str:
    """How many recommendations name a show their viewer already touched (must be none)."""
    return f"SELECT count(*) FROM {recommendations_sql} r JOIN {touched_sql} t USING (user_id, show_id)"


SHOW_RECOMMENDATIONS = MartTable(
    name="show_recommendations",
    columns={"dt": "DATE", "user_id": "BIGINT", "rank": "INTEGER", "show_id": "BIGINT", "score": "DOUBLE"},
    key=("dt", "user_id", "rank"),
    rules={
        "rank_in_range": f"rank BETWEEN 1 AND {RECOMMENDATIONS_PER_USER}",
        "scored": "score IS NOT NULL AND NOT isnan(score)",
    },
    descriptions={
        "dt": "the day the recommendations were made for (trained on the window ending that day)",
        "user_id": "the viewer",
        "rank": f"1 to {RECOMMENDATIONS_PER_USER}, 1 the best",
        "show_id": "a show the viewer never watched, rated or followed up to the day",
        "score": "the dot product of the viewer's and the show's factors",
    },
)

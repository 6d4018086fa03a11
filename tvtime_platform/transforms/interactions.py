"""The implicit-feedback matrix: how strongly each user is drawn to each show over a window of days.

Signals per user and show in the window: episodes tracked (in the catalog, of the right show),
a follow, and episode ratings. Their strength is `ln(1 + episodes) + follow_weight * followed +
rating_weight * (average rating - 3)`, and it fades with the days since the last interaction
(`0.5 ** (age_days / half_life_days)`), which makes the confidence weight of weighted ALS
(Hu, Koren & Volinsky). Pairs whose strength is not positive (a low rating alone) carry no
positive feedback: `POSITIVE` selects the others.
"""

from __future__ import annotations

import datetime as dt

from tvtime_platform.transforms.columns import columns
from tvtime_platform.transforms.plan import TABLE, Plan, Step

POSITIVE = "strength > 0"
USER_SHOW_INTERACTIONS_COLUMNS = columns(
    ("user_id", "BIGINT", "the user"),
    ("show_id", "BIGINT", "a show they interacted with in the window"),
    ("episodes_watched", "BIGINT", "episodes of the show they tracked in the window"),
    ("followed", "BOOLEAN", "whether they followed the show in the window"),
    ("avg_rating", "DOUBLE", "their average rating of its episodes in the window (null if none)"),
    ("last_interaction_at", "TIMESTAMP WITH TIME ZONE", "their latest interaction with it, UTC"),
    ("age_days", "BIGINT", "days from that interaction to the window's last day"),
    (
        "confidence",
        "DOUBLE",
        "the weight the factorization gives the pair: the strength of the signal, fading with age",
    ),
)
PAIR_COLUMNS = ", ".join(c.name for c in USER_SHOW_INTERACTIONS_COLUMNS)


def _double(name: str) -> str:
    """A float parameter as a DOUBLE (a bare `0.5` is a DECIMAL, whose division rounds differently per engine)."""
    return f"CAST(${name} AS DOUBLE)"


def interaction_pairs_sql(tracked_sql: str, events_sql: str) -> str:
    """Per user and show, the strength of the signals and its confidence, aged to the parameter `$window_end`."""
    return f"""
    WITH watched AS (
        SELECT user_id, show_id, count(*) AS episodes, max(last_watched_at) AS last_at
        FROM {tracked_sql} WHERE in_catalog AND show_matches_catalog GROUP BY user_id, show_id
    ), social AS (
        SELECT user_id, show_id, bool_or(event_type = 'show_followed') AS followed,
            avg(rating) FILTER (WHERE event_type = 'episode_rated') AS avg_rating, max(ts) AS last_at
        FROM {events_sql} WHERE event_type IN ('show_followed', 'episode_rated') GROUP BY user_id, show_id
    ), combined AS (
        SELECT user_id, show_id, coalesce(w.episodes, 0) AS episodes_watched, coalesce(s.followed, false) AS followed,
            s.avg_rating, greatest(w.last_at, s.last_at) AS last_interaction_at
        FROM watched w FULL JOIN social s USING (user_id, show_id)
    ), scored AS (
        SELECT *, ln(1 + episodes_watched) + {_double("follow_weight")} * CAST(followed AS INT) +
        {_double("rating_weight")} * coalesce(avg_rating - 3, 0) AS strength,
            CAST(date_diff('day', CAST(last_interaction_at AS DATE), CAST($window_end AS DATE)) AS BIGINT) AS age_days
        FROM combined
    )
    SELECT user_id, show_id, episodes_watched, followed, avg_rating, last_interaction_at, age_days, strength,
        CAST(strength * pow(CAST(0.5 AS DOUBLE), age_days / {_double("half_life_days")}) AS DOUBLE) AS confidence
    FROM scored"""


SUMMARY_SQL = f"""SELECT count(DISTINCT user_id) FILTER (WHERE {POSITIVE}), count(DISTINCT show_id) FILTER (WHERE
    {POSITIVE}),
    count(*) FILTER (WHERE {POSITIVE}), count(*) FILTER (WHERE NOT ({POSITIVE})) FROM pairs"""


def interactions_plan(window_end: dt.date, follow_weight: float, rating_weight: float, half_life_days: float) -> Plan:
    """The matrix of a window: inputs `tracked_episodes` and `app_events` (the window's days), output
    `user_show_interactions`."""
    pairs = interaction_pairs_sql("tracked_episodes", "app_events")
    return Plan(
        inputs=("tracked_episodes", "app_events"),
        steps=(Step("pairs", pairs, TABLE),),
        outputs={
            "user_show_interactions": f"SELECT {PAIR_COLUMNS} FROM pairs WHERE {POSITIVE} ORDER BY user_id, show_id"
        },
        facts={"summary": SUMMARY_SQL},
        params={
            "window_end": window_end.isoformat(),
            "follow_weight": float(follow_weight),
            "rating_weight": float(rating_weight),
            "half_life_days": float(half_life_days),
        },
    )

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

POSITIVE = "strength > 0"


def interaction_pairs_sql(window_end: dt.date, tracked_sql: str, events_sql: str, follow_weight: float, rating_weight: float,
                     half_life_days: float) -> str:
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
        SELECT *, ln(1 + episodes_watched) + {follow_weight} * followed::INT + {rating_weight} * coalesce(avg_rating - 3, 0) AS strength,
            date_diff('day', CAST(last_interaction_at AS DATE), DATE '{window_end}') AS age_days
        FROM combined
    )
    SELECT user_id, show_id, episodes_watched, followed, avg_rating, last_interaction_at, age_days, strength,
        CAST(strength * pow(0.5, age_days / {half_life_days}) AS DOUBLE) AS confidence
    FROM scored
    ORDER BY user_id, show_id"""

"""What each viewer has made theirs up to a day: every show they watched, rated or followed, on that day or before.

The state grows by the day: a day's history is the day before's and the day's own touches
(`touched_shows_sql` of its `app_events`), so a day reads one day of events and one earlier state,
not every day of events since the first. Recommendations never name these shows back.
"""

from __future__ import annotations

from tvtime_platform.transforms.columns import columns
from tvtime_platform.transforms.marts import touched_shows_sql

USER_SHOW_HISTORY_COLUMNS = columns(
    ("user_id", "BIGINT", "the viewer"),
    ("show_id", "BIGINT", "a show they watched, rated or followed on the day or before"),
)


def user_show_history_sql(events_sql: str, previous_sql: str | None) -> str:
    """The distinct pairs of the earlier state (none on the first day) and the events' touches, in key order."""
    touched = touched_shows_sql(events_sql)
    pairs = touched if previous_sql is None else f"SELECT user_id, show_id FROM {previous_sql} UNION {touched}"
    return f"SELECT DISTINCT user_id, show_id FROM ({pairs}) ORDER BY user_id, show_id"

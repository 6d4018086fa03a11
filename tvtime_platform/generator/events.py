"""Simulated app activity: users, their sessions in a day, and the events of each session.

Sessions are bursts of events separated by idle gaps, start mostly in the local evening
(diurnal rhythm shifted by each user's country), and binge-watch consecutive episodes of one
show. Viewers have a favourite genre that most of their shows belong to. Everything is computed on whole NumPy columns
per chunk of users; no per-event Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tvtime_platform.generator.catalog import Catalog
from tvtime_platform.transforms import app_events as schema

EVENT_TYPES = np.array(schema.EVENT_TYPES)
APP_OPEN, SHOW_VIEWED, EPISODE_WATCHED, EPISODE_RATED, SHOW_FOLLOWED, APP_BACKGROUND = (
    list(schema.EVENT_TYPES).index(name)
    for name in ("app_open", "show_viewed", "episode_watched", "episode_rated", "show_followed", "app_background")
)
PLATFORMS = np.array(schema.PLATFORMS)
_PLATFORM_P = np.array([0.45, 0.35, 0.12, 0.08])
COUNTRIES = np.array(
    [
        "US",
        "GB",
        "DE",
        "FR",
        "BR",
        "IN",
        "JP",
        "CA",
        "AU",
        "MX",
        "ES",
        "IT",
        "NL",
        "TR",
        "PL",
        "SE",
        "KR",
        "AR",
        "ZA",
        "IE",
    ]
)
_COUNTRY_P = np.array([30, 9, 7, 6, 8, 6, 4, 5, 3, 4, 3, 3, 2, 2, 2, 1, 2, 1, 1, 1], dtype=float)
_COUNTRY_OFFSET_MIN = np.array(
    [-300, 0, 60, 60, -180, 330, 540, -300, 600, -360, 60, 60, 60, 180, 60, 60, 540, -180, 120, 0]
)
# Share of sessions starting in each local hour: low at night, a peak in the evening.
_HOUR_P = np.array([3, 2, 1, 1, 1, 1, 2, 3, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 7, 8, 10, 10, 8, 5], dtype=float)
_MIDDLE_TYPES = np.array([SHOW_VIEWED, EPISODE_WATCHED, EPISODE_RATED, SHOW_FOLLOWED])
_MIDDLE_P = np.array([0.25, 0.55, 0.12, 0.08])
_RATING_P = np.array([0.05, 0.07, 0.18, 0.35, 0.35])
DAY_MS = 86_400_000


@dataclass
class Events:
    """One chunk of simulated events as parallel columns (ids are 1-based, -1 where absent)."""

    user_id: np.ndarray
    event_type: np.ndarray
    ts_ms: np.ndarray
    offset_min: np.ndarray
    platform: np.ndarray
    country: np.ndarray
    show_id: np.ndarray
    episode_id: np.ndarray
    rating: np.ndarray

    def __len__(self) -> int:
        return len(self.user_id)


def simulate_chunk(catalog: Catalog, seed: int, day_ordinal: int, first_user: int, n_users: int) -> Events:
    """Events of users `first_user .. first_user + n_users - 1` on one UTC day (epoch day number)."""
    urng = np.random.default_rng([seed, 1, first_user])  # user traits: the same every day
    platform = urng.choice(len(PLATFORMS), n_users, p=_PLATFORM_P)
    country = urng.choice(len(COUNTRIES), n_users, p=_COUNTRY_P / _COUNTRY_P.sum())
    activity = np.minimum(urng.lognormal(np.log(0.45), 0.9, n_users), 8.0)
    taste = urng.integers(0, catalog.n_genres, n_users)  # the genre a viewer mostly watches
    favourites = catalog.sample_shows(urng, n_users * 3, genres=np.repeat(taste, 3)).reshape(n_users, 3)

    rng = np.random.default_rng([seed, 2, day_ordinal, first_user])
    n_sessions = rng.poisson(activity)
    s_user = np.repeat(np.arange(n_users), n_sessions)
    n_s = len(s_user)
    local_start_ms = rng.choice(24, n_s, p=_HOUR_P / _HOUR_P.sum()) * 3_600_000 + rng.integers(0, 3_600_000, n_s)
    s_offset = _COUNTRY_OFFSET_MIN[country[s_user]]
    s_start = day_ordinal * DAY_MS + (local_start_ms - s_offset * 60_000) % DAY_MS
    s_len = np.minimum(rng.geometric(0.14, n_s), 60)
    s_platform = np.where(rng.random(n_s) < 0.05, rng.integers(0, len(PLATFORMS), n_s), platform[s_user])
    s_show = np.where(
        rng.random(n_s) < 0.7,
        favourites[s_user, rng.integers(0, 3, n_s)],
        catalog.sample_shows(rng, n_s, genres=taste[s_user]),
    )
    s_first_ep = (rng.random(n_s) * catalog.n_episodes[s_show]).astype(np.int64)

    e_session = np.repeat(np.arange(n_s), s_len)
    n = len(e_session)
    session_first_event = np.cumsum(s_len) - s_len
    position = np.arange(n) - session_first_event[e_session]
    gaps = rng.exponential(75_000.0, n)
    pause = rng.random(n) < 0.02  # an occasional long pause, sometimes long enough to split a session
    gaps[pause] = rng.uniform(600_000, 3_000_000, int(pause.sum()))
    gaps[position == 0] = 0.0
    offsets = np.cumsum(gaps.astype(np.int64))
    offsets -= offsets[session_first_event][e_session]
    ts_ms = s_start[e_session] + offsets

    kind = _MIDDLE_TYPES[rng.choice(len(_MIDDLE_TYPES), n, p=_MIDDLE_P)]
    kind[position == 0] = APP_OPEN
    last = position == s_len[e_session] - 1
    kind[last & (s_len[e_session] >= 3)] = APP_BACKGROUND
    watched = kind == EPISODE_WATCHED
    watched_so_far = np.cumsum(watched)
    watched_so_far -= (watched_so_far - watched)[session_first_event][e_session]
    # Binge: each watch takes the next episode; a rating refers to the last one watched.
    ep_step = np.where(watched, watched_so_far - 1, np.maximum(watched_so_far - 1, 0))
    show = s_show[e_session]
    ep_index = (s_first_ep[e_session] + ep_step) % catalog.n_episodes[show]
    has_show = (kind != APP_OPEN) & (kind != APP_BACKGROUND)
    has_episode = (kind == EPISODE_WATCHED) | (kind == EPISODE_RATED)
    user = s_user[e_session]
    return Events(
        user_id=first_user + user,
        event_type=kind,
        ts_ms=ts_ms,
        offset_min=s_offset[e_session],
        platform=s_platform[e_session],
        country=country[user],
        show_id=np.where(has_show, show + 1, -1),
        episode_id=np.where(has_episode, catalog.first_episode_id[show] + ep_index, -1),
        rating=np.where(kind == EPISODE_RATED, rng.choice(5, n, p=_RATING_P) + 1, -1),
    )

"""The generated show catalog: shows, seasons and episodes, with Zipf-like popularity.

Episode ids are contiguous per show (a show's episodes are `first_episode_id ..
first_episode_id + n_episodes - 1`, season by season), so the event simulator can pick "the next
episode" of a show with integer arithmetic instead of lookups.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa

from tvtime_platform.generator import text
from tvtime_platform.transforms.show_catalog import EPISODES_FILE, SEASONS_FILE, SHOWS_FILE

GENRES = np.array(
    ["drama", "comedy", "crime", "sci-fi", "fantasy", "documentary", "reality", "animation", "thriller", "romance"]
)
NETWORKS = np.array(
    ["HBO", "Netflix", "BBC One", "AMC", "NBC", "Prime Video", "Disney+", "FX", "Apple TV+", "Hulu", "CBS", "Channel 4"]
)
_ADJECTIVES = np.array(
    ["Silent", "Broken", "Golden", "Last", "Hidden", "Crimson", "Lost", "Northern", "Wild", "Bright", "Dark", "Little"]
)
_NOUNS = np.array(
    [
        "Harbor",
        "Kingdom",
        "Signal",
        "Frontier",
        "Station",
        "Empire",
        "Garden",
        "Circuit",
        "Valley",
        "Academy",
        "Bureau",
        "Tide",
    ]
)


@dataclass(frozen=True)
class Catalog:
    """What the event simulator needs to know of the catalog; index i describes show_id i + 1."""

    popularity_cdf: np.ndarray
    first_episode_id: np.ndarray
    n_episodes: np.ndarray
    genre: np.ndarray  # index into GENRES

    @property
    def n_shows(self) -> int:
        return len(self.n_episodes)

    @property
    def n_genres(self) -> int:
        return len(GENRES)

    @property
    def max_episode_id(self) -> int:
        return int(self.first_episode_id[-1] + self.n_episodes[-1] - 1)

    def sample_shows(
        self, rng: np.random.Generator, n: int, genres: np.ndarray | None = None, loyalty: float = 0.8
    ) -> np.ndarray:
        """Show indices (0-based) drawn by popularity; with `genres` (one per draw), a share `loyalty`
        of the draws stays within that genre, which gives viewers tastes a recommender can learn."""
        u = rng.random(n)
        shows = np.minimum(np.searchsorted(self.popularity_cdf, u), self.n_shows - 1)
        if genres is None:
            return shows
        within = rng.random(n) < loyalty
        for g, (members, cdf) in enumerate(self._by_genre):
            pick = within & (genres == g)
            if len(members) and pick.any():
                shows[pick] = members[np.minimum(np.searchsorted(cdf, u[pick]), len(members) - 1)]
        return shows

    @cached_property
    def _by_genre(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per genre, its shows and the cumulative popularity among them."""
        weight = np.diff(self.popularity_cdf, prepend=0.0)
        groups = []
        for g in range(len(GENRES)):
            members = np.flatnonzero(self.genre == g)
            w = weight[members]
            groups.append((members, np.cumsum(w) / w.sum() if len(members) else w))
        return groups


def build_catalog(n_shows: int, seed: int, folder: Path | None = None) -> Catalog:
    """Make the catalog for a seed and, given a folder, write its three files there."""
    rng = np.random.default_rng([seed, 0])
    show_ids = np.arange(1, n_shows + 1)
    n_seasons = np.minimum(rng.geometric(0.35, n_shows), 15)
    season_show = np.repeat(np.arange(n_shows), n_seasons)
    season_number = np.arange(len(season_show)) - np.repeat(np.cumsum(n_seasons) - n_seasons, n_seasons) + 1
    season_episodes = rng.integers(6, 25, len(season_show))
    n_episodes = np.bincount(season_show, weights=season_episodes, minlength=n_shows).astype(np.int64)
    first_episode_id = np.cumsum(n_episodes) - n_episodes + 1
    # Zipf-like popularity over a random ranking, so popular shows are spread over the id space.
    rank = rng.permutation(n_shows) + 1
    weight = 1.0 / rank**1.1
    genre = rng.integers(0, len(GENRES), n_shows)
    catalog = Catalog(np.cumsum(weight) / weight.sum(), first_episode_id, n_episodes, genre)
    if folder is not None:
        premiere = rng.integers(1960, 2026, n_shows)
        _write_shows(folder, rng, show_ids, premiere, rank, genre)
        _write_seasons_and_episodes(folder, rng, season_show, season_number, season_episodes, premiere)
    return catalog


def _write_shows(
    folder: Path,
    rng: np.random.Generator,
    show_ids: np.ndarray,
    premiere: np.ndarray,
    rank: np.ndarray,
    genre: np.ndarray,
) -> None:
    n = len(show_ids)
    titles = text.join(
        "The ",
        pa.array(_ADJECTIVES[rng.integers(0, len(_ADJECTIVES), n)]),
        " ",
        pa.array(_NOUNS[rng.integers(0, len(_NOUNS), n)]),
        " ",
        text.ints(show_ids),
    )
    lines = text.join(
        '{"show_id":',
        text.ints(show_ids),
        ',"title":"',
        titles,
        '","genre":"',
        pa.array(GENRES[genre]),
        '","network":"',
        pa.array(NETWORKS[rng.integers(0, len(NETWORKS), n)]),
        '","premiere_year":',
        text.ints(premiere),
        ',"popularity_rank":',
        text.ints(rank),
        "}\n",
    )
    text.gzip_write(folder / SHOWS_FILE, lines)


def _write_seasons_and_episodes(
    folder: Path,
    rng: np.random.Generator,
    season_show: np.ndarray,
    season_number: np.ndarray,
    season_episodes: np.ndarray,
    premiere: np.ndarray,
) -> None:
    season_ids = np.arange(1, len(season_show) + 1)
    season_year = premiere[season_show] + season_number - 1
    seasons = text.join(
        '{"season_id":',
        text.ints(season_ids),
        ',"show_id":',
        text.ints(season_show + 1),
        ',"season_number":',
        text.ints(season_number),
        ',"episode_count":',
        text.ints(season_episodes),
        ',"year":',
        text.ints(season_year),
        "}\n",
    )
    text.gzip_write(folder / SEASONS_FILE, seasons)
    ep_season = np.repeat(np.arange(len(season_show)), season_episodes)
    ep_number = np.arange(len(ep_season)) - np.repeat(np.cumsum(season_episodes) - season_episodes, season_episodes) + 1
    episodes = text.join(
        '{"episode_id":',
        text.ints(np.arange(1, len(ep_season) + 1)),
        ',"show_id":',
        text.ints(season_show[ep_season] + 1),
        ',"season_id":',
        text.ints(season_ids[ep_season]),
        ',"season_number":',
        text.ints(season_number[ep_season]),
        ',"episode_number":',
        text.ints(ep_number),
        ',"runtime_min":',
        text.ints(rng.choice(np.array([22, 30, 45, 55, 60]), len(ep_season))),
        "}\n",
    )
    text.gzip_write(folder / EPISODES_FILE, episodes)

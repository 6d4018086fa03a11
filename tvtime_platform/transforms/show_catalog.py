"""The show catalog, denormalized to one row per episode with its season and show.

The catalog is reference data: a broken catalog file is an error to fix at the source, so the
asset fails with the count of broken rows instead of quarantining them.
"""

from __future__ import annotations

from tvtime_platform.transforms.columns import columns

SHOWS_FILE, SEASONS_FILE, EPISODES_FILE = "shows.jsonl.gz", "seasons.jsonl.gz", "episodes.jsonl.gz"
CATALOG_FILES = (SHOWS_FILE, SEASONS_FILE, EPISODES_FILE)


SHOW_CATALOG_COLUMNS = columns(
    ("episode_id", "BIGINT", "the episode, one row each"),
    ("show_id", "BIGINT", "its show"),
    ("show_title", "VARCHAR", "the show's title"),
    ("genre", "VARCHAR", "the show's genre"),
    ("network", "VARCHAR", "the network or service that airs it"),
    ("premiere_year", "INTEGER", "the year the show premiered"),
    ("popularity_rank", "INTEGER", "the show's rank by popularity in the export, 1 the most popular"),
    ("season_id", "BIGINT", "the episode's season"),
    ("season_number", "INTEGER", "the season's number in its show"),
    ("season_year", "INTEGER", "the year the season aired"),
    ("episode_number", "INTEGER", "the episode's number in its season"),
    ("runtime_min", "INTEGER", "its length in minutes"),
)


def _read(parameter: str, columns: dict[str, str]) -> str:
    spec = ", ".join(f"{name}: '{kind}'" for name, kind in columns.items())
    return f"read_json(${parameter}, format = 'newline_delimited', columns = {{{spec}}})"


def show_catalog_params(folder: str) -> dict[str, str]:
    """The catalog files' URLs in `folder`, bound to the parameters of `SHOW_CATALOG_SQL`."""
    return {
        name: f"{folder}/{file}" for name, file in zip(("shows", "seasons", "episodes"), CATALOG_FILES, strict=True)
    }


def _show_catalog_sql() -> str:
    """The catalog files joined into one row per episode (their URLs are the parameters $shows, $seasons, $episodes)."""
    shows = _read(
        "shows",
        {
            "show_id": "BIGINT",
            "title": "VARCHAR",
            "genre": "VARCHAR",
            "network": "VARCHAR",
            "premiere_year": "INTEGER",
            "popularity_rank": "INTEGER",
        },
    )
    seasons = _read(
        "seasons",
        {
            "season_id": "BIGINT",
            "show_id": "BIGINT",
            "season_number": "INTEGER",
            "episode_count": "INTEGER",
            "year": "INTEGER",
        },
    )
    episodes = _read(
        "episodes",
        {
            "episode_id": "BIGINT",
            "show_id": "BIGINT",
            "season_id": "BIGINT",
            "season_number": "INTEGER",
            "episode_number": "INTEGER",
            "runtime_min": "INTEGER",
        },
    )
    return f"""
    SELECT e.episode_id, e.show_id, s.title AS show_title, s.genre, s.network, s.premiere_year, s.popularity_rank,
        e.season_id, e.season_number, se.year AS season_year, e.episode_number, e.runtime_min
    FROM {episodes} e
    LEFT JOIN {shows} s ON s.show_id = e.show_id
    LEFT JOIN {seasons} se ON se.season_id = e.season_id
    ORDER BY e.episode_id"""


SHOW_CATALOG_SQL = _show_catalog_sql()


def broken_rows_sql(catalog_table: str) -> str:
    """Catalog rows that would corrupt joins: duplicate episode ids, or an episode whose show or season is unknown."""
    return f"""
    SELECT
        count(*) - count(DISTINCT episode_id) AS duplicate_episode_ids,
        count(*) FILTER (WHERE episode_id IS NULL OR show_id IS NULL) AS missing_ids,
        count(*) FILTER (WHERE show_title IS NULL) AS episodes_of_unknown_shows,
        count(*) FILTER (WHERE season_year IS NULL) AS episodes_of_unknown_seasons
    FROM {catalog_table}"""

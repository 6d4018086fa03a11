"""The generator: deterministic for a seed, realistic shape, defects where asked."""

import datetime as dt
import gzip
import hashlib
import json

import numpy as np

from tvtime_platform.cli import generate
from tvtime_platform.generator.catalog import build_catalog
from tvtime_platform.generator.events import simulate_chunk


def digest(landing) -> dict[str, str]:
    return {
        str(p.relative_to(landing)): hashlib.sha256(gzip.decompress(p.read_bytes())).hexdigest()
        for p in sorted(landing.rglob("*.gz"))
    }


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    generate(tmp_path / "a", dt.date(2024, 3, 1), 1, users=300, seed=1, shows=50)
    generate(tmp_path / "b", dt.date(2024, 3, 1), 1, users=300, seed=1, shows=50)
    generate(tmp_path / "c", dt.date(2024, 3, 1), 1, users=300, seed=2, shows=50)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


def test_layout_events_and_defects(tmp_path):
    landing = tmp_path / "landing"
    stats = generate(landing, dt.date(2024, 3, 1), 1, users=2000, seed=3, shows=200)
    assert {p.name for p in (landing / "catalog").iterdir()} == {
        "shows.jsonl.gz",
        "seasons.jsonl.gz",
        "episodes.jsonl.gz",
    }
    hours = {p.parent.name for p in (landing / "dt=2024-03-01").rglob("*.jsonl.gz")}
    assert len(hours) >= 20  # activity around the clock, hourly files
    assert (landing / "dt=2024-03-02").is_dir()  # late events and sessions past midnight land the next day
    lines = [
        line
        for p in landing.glob("dt=*/hour=*/*.jsonl.gz")
        for line in gzip.decompress(p.read_bytes()).decode().splitlines()
    ]
    assert len(lines) == stats.lines and stats.lines == stats.events + stats.defects["duplicate"]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    assert len(lines) - len(parsed) == stats.defects["malformed_json"]
    kinds = {p.get("event_type") for p in parsed}
    assert {"app_open", "show_viewed", "episode_watched", "episode_rated", "show_followed", "app_background"} <= kinds
    assert stats.defects["empty_file"] == 1 and any(
        gzip.decompress(p.read_bytes()) == b"" for p in landing.rglob("*empty*.jsonl.gz")
    )
    # Binge watching: consecutive episode ids within a user's burst are common.
    watched = sorted(
        (p["user_id"], p["ts"], p["episode_id"])
        for p in parsed
        if p.get("event_type") == "episode_watched"
        and all(isinstance(p.get(f), t) for f, t in (("user_id", int), ("ts", str), ("episode_id", int)))
    )  # defects aside
    steps = sum(1 for a, b in zip(watched, watched[1:], strict=False) if a[0] == b[0] and b[2] == a[2] + 1)
    assert steps > len(watched) * 0.2


def test_defect_scale_zero_writes_clean_data(tmp_path):
    stats = generate(tmp_path / "landing", dt.date(2024, 3, 1), 1, users=500, seed=4, shows=50, defect_scale=0)
    assert all(v == 0 for v in stats.defects.values())


def test_viewers_have_a_favourite_genre():
    """Most of a viewer's shows share a genre (a recommender has something to learn); with 10 genres, chance is ~10%."""
    catalog = build_catalog(400, seed=5)
    events = simulate_chunk(catalog, seed=5, day_ordinal=19_783, first_user=1, n_users=3000)
    shown = events.show_id > 0
    genre = catalog.genre[events.show_id[shown] - 1]
    users = events.user_id[shown]
    per_user = np.zeros((users.max() + 1, catalog.n_genres))
    np.add.at(per_user, (users, genre), 1)
    active = per_user.sum(axis=1) >= 5
    assert (per_user[active].max(axis=1) / per_user[active].sum(axis=1)).mean() > 0.5

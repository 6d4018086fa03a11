"""show_catalog: the generated catalog loads whole; a broken export fails with what is wrong."""

import gzip
import shutil

import dagster as dg
import pytest

from tvtime_platform.resources.deployment import local_resources
from tvtime_platform_tests.support import defs

CATALOG = [defs.get_assets_def("show_catalog")]


def test_generated_catalog_loads_one_row_per_episode(tmp_path, generated_landing):
    shutil.copytree(generated_landing / "catalog", tmp_path / "landing" / "catalog")
    result = dg.materialize(CATALOG, resources=local_resources(tmp_path))
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    episodes = len(gzip.decompress((generated_landing / "catalog" / "episodes.jsonl.gz").read_bytes()).splitlines())
    assert metadata["episodes"].value == metadata["dagster/row_count"].value == episodes
    assert metadata["shows"].value == 400


def test_duplicate_episode_ids_fail_with_the_count(tmp_path, generated_landing):
    shutil.copytree(generated_landing / "catalog", tmp_path / "landing" / "catalog")
    episodes = tmp_path / "landing" / "catalog" / "episodes.jsonl.gz"
    lines = gzip.decompress(episodes.read_bytes()).splitlines()
    episodes.write_bytes(gzip.compress(b"\n".join(lines + lines[:3]) + b"\n"))
    with pytest.raises(dg.Failure, match="'duplicate_episode_ids': 3"):
        dg.materialize(CATALOG, resources=local_resources(tmp_path))


def test_a_missing_catalog_file_is_named(tmp_path):
    (tmp_path / "landing" / "catalog").mkdir(parents=True)
    with pytest.raises(dg.Failure, match="shows.jsonl.gz, seasons.jsonl.gz, episodes.jsonl.gz not found"):
        dg.materialize(CATALOG, resources=local_resources(tmp_path))

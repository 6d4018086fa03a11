"""Every asset reads well in the UI: a group, a description, owners, a code version and kinds that say
what computes it and where it lives in the deployment at hand."""

import json
import subprocess
import sys

from tvtime_platform.definitions import defs
from tvtime_platform_tests.emulators import CLOUD_PLACEHOLDERS, clean_environment


def catalog() -> dict[str, dict]:
    graph = defs.resolve_asset_graph()
    return {key.to_user_string(): {"group": node.group_name, "description": node.description, "owners": node.owners,
                                   "code_version": node.code_version, "kinds": sorted(node.kinds)}
            for key, node in ((k, graph.get(k)) for k in graph.get_all_asset_keys())}


def test_every_asset_has_group_description_owners_version_and_kinds():
    for key, entry in catalog().items():
        assert entry["group"] in {"ingestion", "activity", "marts", "recommendations"}, key
        assert entry["description"] and entry["owners"] and entry["code_version"], key
        assert 1 <= len(entry["kinds"]) <= 3, key


def staging_kinds(**variables: str) -> dict[str, list[str]]:
    env = clean_environment(TVTIME_DEPLOYMENT="staging", **CLOUD_PLACEHOLDERS, **variables)
    code = ("import json; from tvtime_platform_tests.assets.test_asset_catalog import catalog; "
            "print(json.dumps({k: v['kinds'] for k, v in catalog().items()}))")
    return json.loads(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout)


def test_kinds_follow_the_deployment():
    local = catalog()
    assert local["user_sessions"]["kinds"] == ["duckdb", "parquet"] and local["daily_active_users"]["kinds"] == ["duckdb", "table"]
    staging = staging_kinds()
    for table in ("app_events", "user_sessions", "tracked_episodes", "user_show_interactions"):
        assert staging[table] == ["parquet", "s3", "spark"], table
    assert staging["show_catalog"] == ["duckdb", "parquet", "s3"] and staging["daily_active_users"] == ["snowflake", "table"]
    assert staging["user_factors"] == ["aws", "python", "s3"]
    assert staging_kinds(TVTIME_SET_BASED_ENGINE="duckdb")["user_sessions"] == ["duckdb", "parquet", "s3"]

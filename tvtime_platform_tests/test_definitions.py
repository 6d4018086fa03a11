"""The code location's definitions: every asset reads well in the UI (a group, a description, owners, a code
version, a link to its source and kinds that say what computes it and where it lives in the deployment at
hand), and a snapshot of the graph, so that a change to it shows in review."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from tvtime_platform.definitions import build_definitions
from tvtime_platform.resources.deployment import Deployment
from tvtime_platform_tests.emulators import CLOUD_PLACEHOLDERS, clean_environment

SNAPSHOT = Path(__file__).with_name("definitions_snapshot.json")
UPDATE_VARIABLE = "TVTIME_UPDATE_SNAPSHOT"


def catalog(deployment: Deployment | None = None) -> dict[str, dict]:
    graph = build_definitions(deployment or Deployment()).resolve_asset_graph()
    return {
        key.to_user_string(): {
            "group": node.group_name,
            "description": node.description,
            "owners": node.owners,
            "code_version": node.code_version,
            "kinds": sorted(node.kinds),
        }
        for key, node in ((k, graph.get(k)) for k in graph.get_all_asset_keys())
    }


def test_every_asset_has_group_description_owners_version_and_kinds():
    for key, entry in catalog().items():
        assert entry["group"] in {"ingestion", "activity", "marts", "recommendations"}, key
        assert entry["description"] and entry["owners"] and entry["code_version"], key
        assert 1 <= len(entry["kinds"]) <= 3, key


def staging_kinds(**variables: str) -> dict[str, list[str]]:
    env = clean_environment(TVTIME_DEPLOYMENT="staging", **CLOUD_PLACEHOLDERS, **variables)
    code = (
        "import json; from tvtime_platform_tests.test_definitions import catalog; "
        "from tvtime_platform.resources.deployment import Deployment; "
        "print(json.dumps({k: v['kinds'] for k, v in catalog(Deployment.from_environment()).items()}))"
    )
    return json.loads(
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    )


def test_kinds_follow_the_deployment():
    local = catalog()
    assert local["user_sessions"]["kinds"] == ["duckdb", "parquet"] and local["daily_active_users"]["kinds"] == [
        "duckdb",
        "table",
    ]
    staging = staging_kinds()
    for table in ("app_events", "user_sessions", "tracked_episodes", "user_show_interactions"):
        assert staging[table] == ["parquet", "s3", "spark"], table
    assert staging["show_catalog"] == ["duckdb", "parquet", "s3"] and staging["daily_active_users"] == [
        "snowflake",
        "table",
    ]
    assert staging["user_factors"] == ["aws", "python", "s3"]
    assert staging_kinds(TVTIME_SET_BASED_ENGINE="duckdb")["user_sessions"] == ["duckdb", "parquet", "s3"]


def test_every_asset_links_to_its_source_in_its_domain_folder():
    for spec in build_definitions(Deployment()).resolve_all_asset_specs():
        reference = spec.metadata["dagster/code_references"].code_references[0]
        path = Path(reference.file_path)
        assert path.parent.parent.name == "defs" and path.parent.name == spec.group_name, (spec.key, path)
        assert (
            path.is_file()
            and reference.line_number > 0
            and spec.key.to_user_string().removesuffix("_staged") in path.read_text()
        )


def snapshot(defs: dg.Definitions) -> dict:
    """What a reviewer should see change: assets with their dependencies, checks, automation; jobs, schedules,
    sensors."""
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys()):
        node = graph.get(key)
        condition = node.automation_condition
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "checks": sorted(check.name for check in node.check_keys),
            "partitioned": node.partitions_def is not None,
            "automation": condition.get_label() or type(condition).__name__ if condition else None,
        }
    return {
        "assets": assets,
        "jobs": sorted(job.name for job in defs.resolve_all_job_defs() if not job.name.startswith("__")),
        "schedules": {
            schedule.name: defs.resolve_schedule_def(schedule.name).cron_schedule for schedule in defs.schedules
        },
        "sensors": sorted(sensor.name for sensor in defs.sensors),
    }


def test_the_graph_matches_its_snapshot():
    """A change to the graph changes `definitions_snapshot.json` (rewrite it with TVTIME_UPDATE_SNAPSHOT=1)."""
    current = snapshot(build_definitions(Deployment()))
    if os.environ.get(UPDATE_VARIABLE):
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text()), (
        f"the graph changed: review it, then rerun with {UPDATE_VARIABLE}=1"
    )

"""The code location's definitions: every asset reads well in the UI (a group, a description, owners, a code
version, a link to its source and kinds that say what computes it and where it lives in the deployment at
hand), and a snapshot of the graph, so that a change to it shows in review."""

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster_shared.serdes import serialize_value

from tvtime_platform.definitions import build_definitions
from tvtime_platform.lib.attributes import ROLE_TAG
from tvtime_platform.resources.deployment import Deployment
from tvtime_platform_tests.emulators import CLOUD_PLACEHOLDERS, clean_environment
from tvtime_platform_tests.support import CHECKS, defs

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


def test_every_asset_declares_its_columns_each_described():
    undeclared = []
    for spec in defs.resolve_all_asset_specs():
        schema = spec.metadata.get("dagster/column_schema")
        if schema is None or not schema.columns or not all(c.description for c in schema.columns):
            undeclared.append(spec.key.to_user_string())
    assert undeclared == []


def test_every_job_sensor_and_schedule_says_what_it_does():
    repository = defs.get_repository_def()
    named = [
        *(j for j in repository.get_all_jobs() if not j.name.startswith("__")),
        *repository.sensor_defs,
        *repository.schedule_defs,
    ]
    assert len(named) >= 13 and [d.name for d in named if not d.description] == []


def test_every_lake_table_has_the_column_schema_change_check():
    in_the_lake = {
        spec.key
        for spec in defs.resolve_all_asset_specs()
        if spec.tags.get(ROLE_TAG) in ("lake", "set_based", "training")
    }
    checked = {key.asset_key for check in CHECKS for key in check.check_keys if key.name == "column_schema_change"}
    assert checked == in_the_lake


def test_every_blocking_check_is_partitioned_like_its_asset():
    # Automation reads a blocking check's latest result for the partition it would run: an unpartitioned check's
    # result on one day would hold back, or let through, every other day.
    graph = defs.resolve_asset_graph()
    checks = {key: graph.get(key) for key in graph.asset_check_keys}
    blocking = {key: check for key, check in checks.items() if check.blocking}
    assert blocking
    for key, check in blocking.items():
        assert check.partitions_def == graph.get(key.asset_key).partitions_def, key


def test_kinds_follow_the_deployment():
    local = catalog()
    assert local["user_sessions"]["kinds"] == ["duckdb", "parquet"] and local["daily_active_users"]["kinds"] == [
        "duckdb",
        "table",
    ]
    staging = staging_kinds()
    for table in ("app_events", "user_sessions", "tracked_episodes", "user_show_interactions"):
        assert staging[table] == ["duckdb", "parquet", "s3", "spark"], table  # auto: either, by size
    assert staging["show_catalog"] == ["duckdb", "parquet", "s3"] and staging["daily_active_users"] == [
        "snowflake",
        "table",
    ]
    assert staging["user_factors"] == ["aws", "python", "s3"]
    assert staging_kinds(TVTIME_SET_BASED_ENGINE="duckdb")["user_sessions"] == ["duckdb", "parquet", "s3"]
    assert staging_kinds(TVTIME_SET_BASED_ENGINE="spark")["user_sessions"] == ["parquet", "s3", "spark"]


def test_every_asset_links_to_its_source_in_its_domain_folder():
    for spec in defs.resolve_all_asset_specs():
        reference = spec.metadata["dagster/code_references"].code_references[0]
        path = Path(reference.file_path)
        assert path.parent.parent.name == "defs" and path.parent.name == spec.group_name, (spec.key, path)
        assert (
            path.is_file()
            and reference.line_number > 0
            and spec.key.to_user_string().removesuffix("_staged") in path.read_text()
        )


def snapshot(defs: dg.Definitions) -> dict:
    """What a reviewer should see change: each asset's dependencies, checks (blocking or not), automation, pool, retries
    and freshness; the automation conditions in full; each job's assets; schedules and sensors with their targets."""
    graph = defs.resolve_asset_graph()
    assets, conditions = {}, {}
    for key in sorted(graph.get_all_asset_keys()):
        node, op = graph.get(key), defs.resolve_assets_def(key).node_def
        condition = node.automation_condition
        if condition is not None:
            conditions[condition.get_label() or type(condition).__name__] = json.loads(serialize_value(condition))
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "checks": {check.name: graph.get_check_spec(check).blocking for check in sorted(node.check_keys)},
            "partitioned": node.partitions_def is not None,
            "automation": condition and (condition.get_label() or type(condition).__name__),
            "pool": op.pool,
            "max_retries": op.retry_policy.max_retries if op.retry_policy else 0,
            "freshness": bool(node.freshness_policy),
        }
    jobs = {
        job.name: sorted(k.to_user_string() for k in job.asset_layer.executable_asset_keys)
        for job in defs.resolve_all_job_defs()
        if not job.name.startswith("__")
    }
    schedules = {}
    for schedule in defs.schedules:
        resolved = defs.resolve_schedule_def(schedule.name)
        schedules[schedule.name] = [resolved.cron_schedule, resolved.job_name, resolved.default_status.value]
    sensors = {}
    for sensor in defs.sensors:
        resolved = defs.resolve_sensor_def(sensor.name)
        targets = sorted(job.name for job in resolved.jobs) if resolved.has_jobs else []
        sensors[sensor.name] = [type(resolved).__name__, targets, resolved.default_status.value]
    return {
        "assets": assets,
        "automation_conditions": conditions,
        "jobs": jobs,
        "schedules": schedules,
        "sensors": sensors,
    }


def test_the_graph_matches_its_snapshot():
    """A change to the graph changes `definitions_snapshot.json`: rewrite it (TVTIME_UPDATE_SNAPSHOT=1), review it."""
    current = snapshot(defs)
    if os.environ.get(UPDATE_VARIABLE):
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
        pytest.skip(f"{SNAPSHOT.name} rewritten: review the change, then run the test again without {UPDATE_VARIABLE}")
    assert current == json.loads(SNAPSHOT.read_text()), (
        f"the graph changed: review it, then rerun with {UPDATE_VARIABLE}=1"
    )


def test_the_snapshot_sees_what_a_reviewer_must():
    """The snapshot changes when a check stops blocking, a job's selection or a sensor's default changes, or automation
    looks back another number of days: each edit below, made to a copy of the definitions, shows in it."""
    base = snapshot(defs)
    narrower = dg.Definitions(
        assets=defs.assets,
        asset_checks=defs.asset_checks,
        sensors=defs.sensors,
        schedules=defs.schedules,
        resources=defs.resources,
        jobs=[
            dg.define_asset_job("daily_pipeline", selection=dg.AssetSelection.assets("app_events")),
            *[j for j in defs.jobs if j.name != "daily_pipeline"],
        ],
    )
    assert snapshot(narrower)["jobs"]["daily_pipeline"] != base["jobs"]["daily_pipeline"]
    stopped = [
        dg.SensorDefinition(s.name, evaluation_fn=lambda _: None, job_name="ingest_events")
        if s.name == "landing_sensor"
        else s
        for s in defs.sensors
    ]
    quiet = dg.Definitions(
        assets=defs.assets,
        asset_checks=defs.asset_checks,
        jobs=defs.jobs,
        schedules=defs.schedules,
        sensors=stopped,
        resources=defs.resources,
    )
    assert snapshot(quiet)["sensors"]["landing_sensor"] != base["sensors"]["landing_sensor"]
    longer = dg.AutomationCondition.in_latest_time_window(dt.timedelta(days=8)) & dg.AutomationCondition.eager()
    relabelled = defs.map_asset_specs(
        func=lambda spec: (
            spec.replace_attributes(automation_condition=longer.with_label("follow_upstream"))
            if spec.automation_condition
            else spec
        )
    )
    assert (
        snapshot(relabelled)["automation_conditions"]["follow_upstream"]
        != base["automation_conditions"]["follow_upstream"]
    )
    # Blocking is recorded per check, so a check that stops blocking shows too.
    assert base["assets"]["daily_active_users_staged"]["checks"]["staging_table_passes_audit"] is True
    assert base["assets"]["user_sessions"]["checks"]["session_ids_unique"] is False


def test_an_unknown_deployment_is_said_on_one_line_before_the_loaders_traceback(tmp_path):
    venv, repo = Path(sys.executable).parents[1], Path(__file__).resolve().parents[1]
    shutil.copy(repo / ".dagster_home" / "dagster.yaml", tmp_path / "dagster.yaml")  # no first-use banner
    env = clean_environment(TVTIME_DEPLOYMENT="bogus", VIRTUAL_ENV=str(venv), DAGSTER_HOME=str(tmp_path))
    launch = subprocess.run(
        [str(venv / "bin" / "dg"), "launch", "--job", "ingest_events", "--partition", "2024-03-01"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    said = [line for line in launch.stderr.splitlines() if line.strip()]
    assert launch.returncode != 0 and said[0].startswith("tvtime_platform cannot load: TVTIME_DEPLOYMENT='bogus' is")
    assert "use one of local, staging, prod." in said[0] and "Traceback" in launch.stderr

"""The code location: the definitions of every domain folder under `defs/`, with the running deployment's resources.

`$TVTIME_DEPLOYMENT` (and the settings it needs) picks the resources, `$TVTIME_SET_BASED_ENGINE` the
set-based engine, `$TVTIME_EXECUTOR` the executor (`resources/deployment.py`); every asset gets its
role's kinds in that deployment, its group's owners (`lib/attributes.py`) and a link to its source.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import dagster as dg

import tvtime_platform.defs
from tvtime_platform.defs.operations.column_schema_checks import column_schema_checks
from tvtime_platform.lib.attributes import shared_attributes
from tvtime_platform.lib.local_run_launcher import local_executor
from tvtime_platform.resources.deployment import Deployment, DeploymentError

PACKAGE = Path(__file__).resolve().parent


def build_definitions(deployment: Deployment) -> dg.Definitions:
    """The domain folders' definitions, their assets given the deployment's attributes, with its resources and
    executor."""
    with warnings.catch_warnings():
        # Dagster labels its own folder loader and spec mapping preview, and code references beta; they are its
        # documented way of doing these things, so their warnings are not repeated on every load.
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)
        warnings.filterwarnings("ignore", category=dg.BetaWarning)
        # Loaded from the package itself rather than through pyproject.toml, so that an installed wheel loads alike;
        # built at the root's children (the defs folder), not at the root, which would also import every installed
        # integration (Snowflake, AWS, Kubernetes) to list its component types, whether the deployment uses them or not.
        tree = dg.ComponentTree.from_module(defs_module=tvtime_platform.defs, project_root=PACKAGE.parent)
        folders = tree.find_root_decl().iterate_child_component_decls()
        loaded = dg.Definitions.merge(*(tree.build_defs(folder.loc) for folder in folders))
        attributed = loaded.map_asset_specs(
            func=lambda spec: shared_attributes(spec, deployment.cloud, deployment.engine)
        )
        assets = dg.with_source_code_references(list(attributed.assets or []))
        schema_checks = column_schema_checks(spec for a in assets for spec in a.specs)
    return dg.Definitions(
        assets=assets,
        asset_checks=[*(attributed.asset_checks or []), *schema_checks],
        jobs=attributed.jobs,
        sensors=attributed.sensors,
        schedules=attributed.schedules,
        resources=deployment.resources(),
        executor=deployment.executor_definition() or local_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    try:
        deployment = Deployment.from_environment()
    except DeploymentError as error:
        # Said first, on its own line: whoever loads the location (dg, the webserver, a run worker) prints its own
        # traceback after it.
        print(f"tvtime_platform cannot load: {error}", file=sys.stderr, flush=True)
        raise
    return build_definitions(deployment)

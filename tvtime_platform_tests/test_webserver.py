"""The real dagster-webserver on 127.0.0.1: the code location loads, its GraphQL API shows the whole asset
graph (every asset and check, with groups and dependencies), and headless Chromium renders the graph page.

The screenshot is saved as a test artifact, `test-artifacts/asset_graph.png`.
"""

import json
import os
import shutil
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tvtime_platform_tests.conftest import defs
from tvtime_platform_tests.emulators import free_port

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
WEBSERVER = str(Path(sys.executable).with_name("dagster-webserver"))
GRAPH = """{
  workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError {
    __typename ... on PythonError { message } } } } }
  assetNodes { assetKey { path } groupName dependencyKeys { path }
    assetChecksOrError { ... on AssetChecks { checks { name } } } }
}"""


@pytest.fixture(scope="module")
def webserver(tmp_path_factory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("home")
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "TVTIME_DATA_DIR": str(home / "data"), "TVTIME_DEPLOYMENT": "local"}
    process = subprocess.Popen(
        [WEBSERVER, "-m", "tvtime_platform.definitions", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("dagster-webserver did not start") from None
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(30)


def graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql", data=json.dumps({"query": query}).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.load(response)
    assert "errors" not in body, body["errors"]
    return body["data"]


def test_the_code_location_loads_with_every_asset_check_group_and_dependency(webserver):
    data = graphql(webserver, GRAPH)
    [location] = data["workspaceOrError"]["locationEntries"]
    assert location["locationOrLoadError"]["__typename"] == "RepositoryLocation", location["locationOrLoadError"].get(
        "message"
    )

    graph = defs.resolve_asset_graph()
    nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    expected = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert set(nodes) == expected
    for key in graph.get_all_asset_keys():
        node = nodes[key.to_user_string()]
        assert node["groupName"] == graph.get(key).group_name
        assert {"/".join(d["path"]) for d in node["dependencyKeys"]} == {
            p.to_user_string() for p in graph.get(key).parent_keys
        }
    checks = {f"{key}.{c['name']}" for key, n in nodes.items() for c in (n["assetChecksOrError"].get("checks") or [])}
    assert checks == {f"{c.asset_key.to_user_string()}.{c.name}" for c in graph.asset_check_keys}


def test_the_asset_graph_page_renders_in_headless_chromium(webserver, tmp_path):
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: `make system-packages` installs it"
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "asset_graph.png"
    shot.unlink(missing_ok=True)
    graphql(webserver, "mutation { setNuxSeen }")  # the first-visit community dialog would cover the graph
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1600,1000",
            "--hide-scrollbars",
            "--virtual-time-budget=30000",
            f"--screenshot={shot}",
            f"{webserver}/asset-groups",
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    header = shot.read_bytes()[:24]
    width, height = struct.unpack(">II", header[16:24])
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and (width, height) == (1600, 1000)
    assert shot.stat().st_size > 30_000  # a rendered graph, not an empty page

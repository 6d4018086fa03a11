"""The real dagster-webserver on 127.0.0.1: the code location loads, its GraphQL API shows the whole asset
graph (every asset and check, with groups and dependencies), and headless Chromium renders the graph page and
`app_events`' plots over a week of partitions.

The screenshots are saved as test artifacts, `test-artifacts/asset_graph.png` and `test-artifacts/app_events_plots.png`
(the README shows both, copied to `docs/`).
"""

import base64
import datetime as dt
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

import dagster as dg
import pytest
import websocket

from tvtime_platform.cli import generate
from tvtime_platform.resources.deployment import local_resources
from tvtime_platform_tests.emulators import free_port
from tvtime_platform_tests.support import ASSETS, CHECKS, defs

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
WIDTH, HEIGHT = 1600, 1000
HISTORY_DAYS = 60
PLOTTED = ["kept", "landed_lines", "quarantine_rate"]  # three rows of the page's plots: they fit in the window


def materialize_history(home: Path) -> None:
    """Two months of `app_events` (with its checks) in the instance the webserver serves, so its plots have points:
    the days before yesterday, since the UI plots the latest 120 partitions."""
    start = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=HISTORY_DAYS + 1)
    generate(home / "data" / "landing", start, HISTORY_DAYS, users=150, seed=5, shows=100, defect_scale=3.0)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for k in range(HISTORY_DAYS):
            result = dg.materialize(
                [*ASSETS, *CHECKS],
                selection=dg.AssetSelection.assets("app_events", "quarantined_events"),  # and their checks
                partition_key=str(start + dt.timedelta(days=k)),
                instance=instance,
                resources=local_resources(home / "data"),
                raise_on_error=False,
            )
            assert result.get_asset_materialization_events(), f"day {k}: nothing materialized"


@pytest.fixture(scope="module")
def webserver(tmp_path_factory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("home")
    materialize_history(home)
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


class Page:
    """A headless Chromium tab driven over the DevTools protocol (on 127.0.0.1): open, wait, click, screenshot."""

    def __init__(self, socket: websocket.WebSocket) -> None:
        self.socket, self.sent = socket, 0

    def send(self, method: str, **params) -> dict:
        self.sent += 1
        self.socket.send(json.dumps({"id": self.sent, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.sent:
                assert "error" not in message, message["error"]
                return message["result"]

    def evaluate(self, expression: str):
        return self.send("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def wait_for(self, expression: str, what: str, timeout: float = 90):
        deadline = time.monotonic() + timeout
        while not (value := self.evaluate(expression)):
            assert time.monotonic() < deadline, f"the page never showed {what}"
            time.sleep(0.5)
        return value

    def open(self, url: str) -> None:
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'", "a loaded document")

    def click(self, label: str) -> None:
        """Click the last button labelled `label` (the innermost panel's, where a label repeats)."""
        assert self.evaluate(f"""(() => {{
            const found = [...document.querySelectorAll("button")].filter(b => b.textContent.trim() === {label!r});
            if (found.length) found[found.length - 1].click();
            return found.length > 0 }})()"""), f"no button {label!r}"

    def screenshot(self, path: Path, clip: dict | None = None) -> None:
        shot = self.send("Page.captureScreenshot", format="png", **({"clip": {**clip, "scale": 1}} if clip else {}))
        path.write_bytes(base64.b64decode(shot["data"]))


@pytest.fixture
def page(webserver, tmp_path) -> Iterator[Page]:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: `make system-packages` installs it"
    graphql(webserver, "mutation { setNuxSeen }")  # the first-visit community dialog would cover the page
    port = free_port()
    process = subprocess.Popen(
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
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--window-size={WIDTH},{HEIGHT}",
            "--remote-debugging-address=127.0.0.1",
            f"--remote-debugging-port={port}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as response:
                    tab = next(t for t in json.load(response) if t["type"] == "page")
                break
            except (OSError, StopIteration):
                assert process.poll() is None and time.monotonic() < deadline, "chromium did not start"
                time.sleep(0.5)
        socket = websocket.create_connection(tab["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        try:
            page = Page(socket)
            page.send(
                "Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1, mobile=False
            )
            yield page
        finally:
            socket.close()
    finally:
        process.terminate()
        process.wait(30)


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


def test_the_asset_graph_page_renders_in_headless_chromium(webserver, page):
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "asset_graph.png"
    shot.unlink(missing_ok=True)
    page.open(f"{webserver}/asset-groups")
    groups = sorted({spec.group_name for spec in defs.resolve_all_asset_specs()})
    page.wait_for(
        f"{json.dumps(groups)}.every(g => document.body.textContent.includes(g))", f"the groups {groups} in the graph"
    )
    time.sleep(2)  # the graph's layout settles, and its groups start fetching their assets' statuses
    page.wait_for("!document.body.textContent.includes('fetching statuses')", "every group's statuses")
    page.screenshot(shot)
    assert png_size(shot) == (WIDTH, HEIGHT)
    assert shot.stat().st_size > 30_000  # a rendered graph, not an empty page


def test_app_events_plots_its_accounting_per_partition(webserver, page):
    """The asset's page plots each numeric metadata entry over its partitions: the accounting a data engineer
    watches day by day. The screenshot keeps the rows from `kept` to `quarantined`."""
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "app_events_plots.png"
    shot.unlink(missing_ok=True)
    page.open(f"{webserver}/assets/app_events?view=overview")
    page.wait_for("[...document.querySelectorAll('button')].some(b => b.textContent.trim() === 'Plots')", "Plots")
    page.click("Plots")
    # Each plotted key's title, and the box of its plot (the nearest ancestor holding a canvas), once drawn; the
    # last is scrolled to the bottom of the window, the others above it and below the page's sticky header (the page
    # scrolls inside, not the window).
    boxes = f"""(() => {{
        const boxes = {json.dumps(PLOTTED)}.map(key => {{
            const title = [...document.querySelectorAll("div, span")].find(e => e.textContent.trim() === key
                && e.children.length === 0);
            let box = title;
            while (box && !box.querySelector("canvas")) box = box.parentElement;
            return box && box !== document.body ? box : null;
        }});
        if (!boxes.every(b => b)) return null;
        if (SCROLL) boxes[boxes.length - 1].scrollIntoView({{block: "end"}});
        return boxes.map(b => {{ const r = b.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; }});
        }})()"""
    page.wait_for(boxes.replace("SCROLL", "true"), f"a plot for each of {PLOTTED}")
    time.sleep(2)  # the charts' animation ends
    placed = page.evaluate(boxes.replace("SCROLL", "false"))
    left, top = min(b[0] for b in placed), min(b[1] for b in placed)
    right, bottom = max(b[2] for b in placed), min(max(b[3] for b in placed), HEIGHT)  # less a scrolled fraction
    assert top > 0 and bottom - top > 600, f"the plots of {PLOTTED} do not fit in the window: {placed}"
    page.screenshot(shot, clip={"x": left, "y": top, "width": right - left, "height": bottom - top})
    width, height = png_size(shot)
    assert width >= 600 and height >= 400 and shot.stat().st_size > 30_000  # drawn plots, not an empty panel

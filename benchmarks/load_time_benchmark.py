"""How long each deployment's code location takes to load, against the floor of importing Dagster alone.

Each measurement is a fresh interpreter that imports `tvtime_platform.definitions` and validates
that the definitions load (what `dagster definitions validate` and every code-server start do);
the baseline is a fresh interpreter importing `dagster` only. Medians of `--repeat` runs.

    python benchmarks/load_time_benchmark.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tvtime_platform.resources.deployment import CLOUD_MODULES, CLOUD_SETTINGS, EMR_SETTINGS  # noqa: E402

TARGET_SECONDS = 2.0
BASELINE = "import time; t = time.perf_counter(); import dagster; print(time.perf_counter() - t)"
LOAD = f"""
import json, sys, time
t = time.perf_counter()
import dagster as dg
from tvtime_platform.definitions import build_definitions
from tvtime_platform.resources.deployment import Deployment
dg.Definitions.validate_loadable(build_definitions(Deployment.from_environment()))
print(json.dumps({{"seconds": time.perf_counter() - t, "heavy": [m for m in {CLOUD_MODULES!r} if m in sys.modules]}}))
"""


def environment(deployment: str) -> dict[str, str]:
    settings = {**CLOUD_SETTINGS, **EMR_SETTINGS}
    env = {k: v for k, v in os.environ.items() if k not in settings}
    env["TVTIME_DEPLOYMENT"] = deployment
    if deployment != "local":  # placeholders: loading connects to nothing
        env.update({name: "s3://example/prefix" if name.endswith(("_URL", "_URI")) else "example" for name in settings})
    return env


def measure(code: str, env: dict[str, str], repeat: int) -> tuple[float, list[str]]:
    seconds, heavy = [], []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
        ).stdout
        last = out.strip().splitlines()[-1]
        if last.startswith("{"):
            record = json.loads(last)
            seconds.append(record["seconds"])
            heavy = record["heavy"]
        else:
            seconds.append(float(last))
    return statistics.median(seconds), heavy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    measure(BASELINE, environment("local"), 1)  # warm the file cache before anything is timed
    baseline, _ = measure(BASELINE, environment("local"), args.repeat)
    print(f"{'code location':<16}{'load s':>9}{'x import dagster':>18}  cloud libraries imported")
    print(f"{'(import dagster)':<16}{baseline:>9.2f}{1.0:>18.2f}")
    for deployment in ("local", "staging", "prod"):
        seconds, heavy = measure(LOAD, environment(deployment), args.repeat)
        verdict = (
            f"  (target <= {TARGET_SECONDS:.0f} s: {'met' if seconds <= TARGET_SECONDS else 'MISSED'})"
            if deployment == "local"
            else ""
        )
        print(f"{deployment:<16}{seconds:>9.2f}{seconds / baseline:>18.2f}  {', '.join(heavy) or 'none'}{verdict}")


if __name__ == "__main__":
    main()

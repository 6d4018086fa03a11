"""Where the factorization runs: the batch image's entrypoint, launched through Dagster Pipes.

Locally it is a subprocess of this machine's Python running `batch_images/factorization/entrypoint.py`;
in staging and prod the same file runs as an AWS Batch job (`resources/batch.py`). Either way the
asset gets back the metadata and the check result the entrypoint reports.
"""

from __future__ import annotations

import abc
import functools
import importlib.util
import sys
from types import ModuleType
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

IMAGE_FOLDER = Path(__file__).resolve().parents[2] / "batch_images" / "factorization"


@functools.cache
def image_module() -> ModuleType:
    """The image's `factorization` module, so recommendations are scored by the code the evaluation used."""
    spec = importlib.util.spec_from_file_location("tvtime_batch_factorization", IMAGE_FOLDER / "factorization.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class Factorization(dg.ConfigurableResource, abc.ABC):
    """Launches the factorization entrypoint and returns what it reported."""

    @abc.abstractmethod
    def run(self, context: dg.AssetExecutionContext, extras: dict[str, Any]) -> list:
        """Run the entrypoint with these Pipes extras; the materializations and check results it reported."""


class LocalFactorization(Factorization):
    """The entrypoint as a local process, with this interpreter (which has the image's requirements)."""

    python: str = Field(default=sys.executable, description="interpreter that runs the entrypoint")

    def run(self, context: dg.AssetExecutionContext, extras: dict[str, Any]) -> list:
        client = dg.PipesSubprocessClient(cwd=str(IMAGE_FOLDER))
        return client.run(context=context, command=[self.python, str(IMAGE_FOLDER / "entrypoint.py")], extras=extras).get_results()

"""Where the factorization runs: the batch image's entrypoint, launched through Dagster Pipes.

Locally it is a subprocess of this machine's Python running `python -m tvtime_platform.factorization.entrypoint`;
in staging and prod the same module runs as an AWS Batch job (`resources/batch.py`) in the image
`batch_images/factorization` builds from the platform's wheel. Either way the
asset gets back the metadata and the check result the entrypoint reports.
"""

from __future__ import annotations

import abc
import sys
from typing import Any

import dagster as dg
from pydantic import Field

ENTRYPOINT = "tvtime_platform.factorization.entrypoint"


class Factorization(dg.ConfigurableResource, abc.ABC):
    """Launches the factorization entrypoint and returns what it reported."""

    @abc.abstractmethod
    def run(self, context: dg.AssetExecutionContext, extras: dict[str, Any]) -> list:
        """Run the entrypoint with these Pipes extras; the materializations and check results it reported."""


class LocalFactorization(Factorization):
    """The entrypoint as a local process, with this interpreter (which has the image's requirements)."""

    python: str = Field(default=sys.executable, description="interpreter that runs the entrypoint")

    def run(self, context: dg.AssetExecutionContext, extras: dict[str, Any]) -> list:
        client = dg.PipesSubprocessClient()
        return client.run(context=context, command=[self.python, "-m", ENTRYPOINT], extras=extras).get_results()

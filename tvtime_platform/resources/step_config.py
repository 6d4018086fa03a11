"""The base of the assets' run config: a value out of its range fails the step at once, naming it, without retry.

Dagster checks a run's config against the fields' types before the run starts, but ranges and
finiteness (pydantic's `ge`, `le`, `allow_inf_nan`) only when the step builds its config; pydantic's
error would then be retried like a service that was away. Raised as a `dg.Failure` without
retries instead, it ends the run in seconds with the field and the rule.
"""

from __future__ import annotations

import dagster as dg
from pydantic import ConfigDict, ValidationError, model_validator


class StepConfig(dg.Config):
    model_config = ConfigDict(allow_inf_nan=False)  # every number finite

    @model_validator(mode="wrap")
    @classmethod
    def _not_retried(cls, data, handler):
        try:
            return handler(data)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(config)'}: {e['msg']} (got {e.get('input')!r})"
                for e in error.errors()
            )
            raise dg.Failure(
                f"Invalid run config for {cls.__name__}: {problems}. Fix it in the launchpad or the run's config; a "
                "retry would fail the same way.",
                allow_retries=False,
            ) from None

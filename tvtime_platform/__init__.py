"""tvtime_platform: the data platform of a TV-tracking app, as Dagster software-defined assets."""

from tvtime_platform.definitions import defs

__all__ = ["defs"]

"""tvtime_platform: the data platform of a TV-tracking app, as Dagster software-defined assets.

The code location is `tvtime_platform.definitions`; importing this package loads nothing else, so the
batch image can run `tvtime_platform.factorization` with the image's few requirements.
"""

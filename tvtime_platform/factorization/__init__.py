"""The recommendation factors' trainer (`model`, free of Dagster) and the batch image's Pipes entrypoint."""

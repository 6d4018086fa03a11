"""Resources and IO managers: where data lives and which engine computes on it."""

import warnings

import dagster as dg

# Every Pipes session (the Spark job, the factorization) calls a method of Dagster's own that it labels preview; the
# warning says nothing about the platform's code, so it is not printed on every run.
warnings.filterwarnings(
    "ignore", message="Function `PipesMessageReader.expected_writer_count`", category=dg.PreviewWarning
)

"""Which failures a retry can mend: `SERVICE_RETRIES` tries a failed step again, which helps a service that was away
(S3, EMR, Snowflake, a lock held too long) and nothing else.

`with deterministic_failures_not_retried():` around an asset's body: an error no retry can mend (a
full disk, a permission, a corrupt file, a value out of range, a defect in the code) is raised
again as a `dg.Failure` that Dagster does not retry, saying what to do; anything else is left to
the policy.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
FORBIDDEN = {errno.EACCES, errno.EPERM, errno.EROFS}
# DuckDB and Arrow report the same conditions in their own exception types; their messages carry the cause.
FULL_MESSAGES = ("No space left on device", "Disk quota exceeded")
FORBIDDEN_MESSAGES = ("Permission denied", "Read-only file system", "Operation not permitted")
# DuckDB's word for a file named to it that is not there (a lake file its record names, deleted by hand).
MISSING_MESSAGES = ("No files found that match the pattern",)
CORRUPT_MESSAGES = (
    "not a Parquet file",
    "Parquet magic bytes not found",
    "No magic bytes found",
    "too small to be a Parquet file",
    "Corrupt",
)
# Errors of values and code: the same inputs fail the same way on every try (DuckDB's by name: SQL that does not bind or
# parse, a value that does not convert or fit).
DETERMINISTIC_TYPES = (ArithmeticError, LookupError, TypeError, ValueError, AttributeError, NameError, AssertionError)
DETERMINISTIC_DUCKDB = {"BinderException", "ParserException", "ConversionException", "OutOfRangeException"}


def no_retry_failure(error: Exception) -> dg.Failure | None:
    """A failure that says what to do about an error no retry can mend; None if a retry may."""
    message = f"{type(error).__name__}: {error}"
    code = error.errno if isinstance(error, OSError) else None
    where = f" ({error.filename})" if isinstance(error, OSError) and error.filename else ""
    if code in FULL or any(m in message for m in FULL_MESSAGES):
        advice = f"The disk the run writes to is full{where}: free space (or point the lake or DuckDB's temp_directory "
        return _failure(advice + "at a larger disk), then run the step again.", message)
    if code in FORBIDDEN or any(m in message for m in FORBIDDEN_MESSAGES):
        advice = f"The run may not write where it must{where}: give its user write access (or fix the path), then run "
        return _failure(advice + "the step again.", message)
    if "not a valid DuckDB database file" in message:
        advice = "The DuckDB warehouse file is damaged or not a DuckDB database: move it aside, then rebuild the "
        return _failure(advice + "marts from the lake (`make rebuild-warehouse`).", message)
    if any(m in message for m in MISSING_MESSAGES):
        advice = "A file the step reads is gone (the error names it): deleted outside the lake's sweep. Restore it, or "
        return _failure(advice + "materialize the table it belongs to again for that day.", message)
    if any(m in message for m in CORRUPT_MESSAGES):
        advice = "A file the step reads is not the Parquet it should be: materialize the table it belongs to again "
        return _failure(advice + "for that day (the error names the file).", message)
    deterministic_duckdb = type(error).__module__.startswith("duckdb") and type(error).__name__ in DETERMINISTIC_DUCKDB
    if (isinstance(error, DETERMINISTIC_TYPES) and not isinstance(error, OSError)) or deterministic_duckdb:
        return _failure(
            "The same inputs and settings would fail the same way again: fix the value or the code.", message
        )
    return None


def _failure(advice: str, message: str) -> dg.Failure:
    return dg.Failure(f"{advice} Not retried. {message}", metadata={"error": message}, allow_retries=False)


@contextmanager
def deterministic_failures_not_retried() -> Iterator[None]:
    """Around an asset's body: an error no retry can mend is raised again as a failure Dagster does not retry (see the
    module); any other goes to the retry policy as it is."""
    try:
        yield
    except (dg.Failure, dg.DagsterError):
        raise
    except Exception as error:
        failure = no_retry_failure(error)
        if failure is None:
            raise
        raise failure from error

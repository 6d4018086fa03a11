"""The warehouse the marts are published to, by write-audit-publish, and its embedded DuckDB form.

As the old scripts did (copy to a new table, check, back up, rename), a day of a mart is
1. *written* from its Parquet files in the lake into a staging table of its own,
2. *audited* there by blocking asset checks (the queries are `audit`, below),
3. *published*: in one transaction, the day's rows of the published table are deleted and the
   staging table's inserted, the rows they replace kept as the day's backup (`<table>__backup` in
   Snowflake, a row per replaced row; a Parquet file per day beside the DuckDB file, so that it
   survives the file's loss), and the day recorded as published (`<table>__days`). A publication
   costs the day, not the table.
A failed audit stops at step 2: the published table is never touched. Each staging table belongs to
one lake version of the day (`<mart>__stage_<day>_<version>`), so runs of the same day never share
one; those of versions older than `keep_staging_seconds` are dropped by the next publication.
`SnowflakeWarehouse` (staging and prod) differs only in how it loads and keeps the backup.
"""

from __future__ import annotations

import abc
import contextlib
import datetime as dt
import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import dagster as dg
import duckdb
from pydantic import Field, PrivateAttr

from tvtime_platform.transforms.marts import PARTITION_COLUMN, MartTable

# A statement, or a statement and the values bound to its placeholders (`Warehouse.PLACEHOLDER`): values from data
# (partition keys, file names) are always bound, never spliced into the SQL text.
Statement = str | tuple[str, Sequence]


# A lake version's name (`Lake.stage`), as it appears in a staging table's name.
VERSION = re.compile(r"v([0-9]{8}T[0-9]{12})-([0-9a-f]+)")
STAGE_VERSION = re.compile(r"__stage_[0-9]{8}_v([0-9]{8}t[0-9]{12})_[0-9a-f]+$")
LEGACY_STAGE = re.compile(r"__stage_[0-9]{8}$")


def sql_and_params(statement: Statement) -> tuple[str, Sequence | None]:
    """A statement's SQL and the values bound to it (none for a bare statement)."""
    return (statement, None) if isinstance(statement, str) else statement


@dataclass(frozen=True)
class Load:
    """What loading a day's lake files into its staging table did; nothing rejected is left unreported."""

    staging_table: str
    files: int
    rows_loaded: int
    rejected: int
    errors: list[str] = field(default_factory=list)

    def metadata(self) -> dict[str, dg.RawMetadataValue]:
        return {
            "staging_table": self.staging_table,
            "files_loaded": self.files,
            "rows_loaded": self.rows_loaded,
            "rows_rejected": self.rejected,
            "load_errors": dg.MetadataValue.json(self.errors),
        }


@dataclass(frozen=True)
class Audit:
    """The staging table against the rules: every count must be zero to publish."""

    counts: dict[str, int]

    @property
    def passed(self) -> bool:
        return not any(self.counts.values())

    def failures(self) -> str:
        return ", ".join(f"{name}: {n}" for name, n in self.counts.items() if n)


class Warehouse(dg.ConfigurableResource, abc.ABC):
    """Write-audit-publish of a mart's daily partition; subclasses say how to run SQL, load and keep backups."""

    PLACEHOLDER: ClassVar[str] = "?"  # how the driver's SQL marks a bound value

    keep_staging_seconds: float = Field(
        default=3600,
        ge=0,
        description="staging tables of lake versions older than this, other than the one published, are dropped by "
        "the next publication of their mart (a run still auditing one must be done by then)",
    )

    @abc.abstractmethod
    def run(self, statements: Iterable[Statement]) -> list[tuple]:
        """Run statements in order on one connection; the rows of the last."""

    @abc.abstractmethod
    def load_stage(self, mart: MartTable, partition: str, version: str, files: list[str], lake_url: str) -> Load:
        """Create the staging table of a lake version of the day from its files, counting what was rejected."""

    @abc.abstractmethod
    def keep_backup_sql(self, mart: MartTable, partition: str, publication: str) -> list[Statement]:
        """Statements, in the publication's transaction, keeping the day's published rows it is about to replace as
        that day's backup (`publication`: a name of this publication's own)."""

    @abc.abstractmethod
    def backup_location(self, mart: MartTable, partition: str) -> str:
        """Where the backup of a published day (the rows its last publication replaced) is."""

    @abc.abstractmethod
    def table_names(self, prefix: str) -> list[str]:
        """The tables of the marts' schema whose (lower-case) name starts with `prefix`."""

    def has_table(self, name: str) -> bool:
        return name.lower() in self.table_names(name)

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """The statements run inside share one connection where opening one costs (a DuckDB file reads its metadata
        at each open, and is checked then); by default each `run` connects on its own."""
        yield

    def run_atomically(self, statements: list[Statement]) -> None:
        """Run statements as one transaction on one connection: readers see all of them or none."""
        self.run(["BEGIN", *statements, "COMMIT"])

    def prepare_backup_sql(self, mart: MartTable) -> list[Statement]:
        """Statements (outside the publication's transaction: DDL) making where the backups go, if need be."""
        return []

    def after_publish(self, mart: MartTable, partition: str, publication: str) -> None:
        """What a publication does once its transaction is committed."""

    def qualified(self, name: str) -> str:
        return name

    def staging_table(self, mart: MartTable, partition: str, version: str) -> str:
        """The staging table of one lake version of the day, named from the day as a date (digits only) and the
        version's name as the lake makes it (checked), never from a key's text."""
        match = VERSION.fullmatch(version)
        if not match:
            raise ValueError(f"{version!r} is not a lake version name (v<time>-<id>)")
        return f"{mart.name}__stage_{dt.date.fromisoformat(partition):%Y%m%d}_v{match[1]}_{match[2]}".lower()

    def _on_day(self) -> str:
        return f"{PARTITION_COLUMN} = CAST({self.PLACEHOLDER} AS DATE)"

    def days_table(self, mart: MartTable) -> str:
        """The table recording each day published, rows or none (a day without rows leaves no trace in the mart)."""
        return f"{mart.name}__days"

    def published_days(self, mart: MartTable) -> set[str]:
        """The days published into this warehouse, from its record of them (a small table, a row a day); from the
        table itself only where it was published before the record existed; none if neither exists."""
        names = self.table_names(mart.name)
        source = next((name for name in (self.days_table(mart), mart.name) if name in names), None)
        if source is None:
            return set()
        query = f"SELECT DISTINCT CAST({PARTITION_COLUMN} AS VARCHAR) FROM {self.qualified(source)}"
        return {str(day) for (day,) in self.run([query])}

    def audit(self, mart: MartTable, partition: str, version: str, expected_rows: int) -> Audit:
        """Count what is wrong with the staging table of a lake version of the day: rows missing against the lake,
        repeated keys, broken rules; a staging table that does not exist (a lost warehouse) is `staging_missing`."""
        name = self.staging_table(mart, partition, version)
        if not self.has_table(name):
            return Audit({"staging_missing": 1})
        stage = self.qualified(name)
        rows, repeated, outside, *broken = self.run(
            [
                (
                    f"""
            SELECT (SELECT count(*) FROM {stage}), ({mart.duplicate_keys_sql(stage)}),
                   (SELECT count(*) FROM {stage} WHERE NOT ({self._on_day()})), rules.*
            FROM ({mart.rule_violations_sql(stage)}) AS rules""",
                    [partition],
                )
            ]
        )[0]
        return Audit(
            {
                "rows_missing": expected_rows - rows,
                "duplicate_keys": repeated,
                "rows_of_other_days": outside,
                **{f"broken_{name}": int(n or 0) for name, n in zip(mart.rules, broken, strict=True)},
            }
        )

    def publish(self, mart: MartTable, partition: str, version: str) -> dict[str, dg.RawMetadataValue]:
        """Replace the day's rows of the published table by the version's staging table, in one transaction (readers
        see the day as it was or as it is now, never both or neither), keeping the rows it replaces as the day's
        backup and recording the day as published; then drop stale staging tables. What it reads and writes is the
        day's: the table's other days are neither copied nor scanned (a day's rows are found by the table's
        per-block day ranges, and counting a whole table reads its metadata). One session: a DuckDB file that cannot be
        trusted (cut short) is refused as it opens."""
        with self.session():
            return self._publish(mart, partition, version)

    def _publish(self, mart: MartTable, partition: str, version: str) -> dict[str, dg.RawMetadataValue]:
        """`publish`, inside its session."""
        stage_name = self.staging_table(mart, partition, version)
        table, stage = self.qualified(mart.name), self.qualified(stage_name)
        columns = ", ".join(mart.columns)
        days = self.qualified(self.days_table(mart))
        self.run(
            [
                mart.create_sql(table),
                # Seeded from the table itself where it was published before the record existed (once).
                f"CREATE TABLE IF NOT EXISTS {days} AS SELECT DISTINCT {PARTITION_COLUMN} FROM {table}",
                *self.prepare_backup_sql(mart),
            ]
        )
        self.run_atomically(
            [
                (f"DELETE FROM {days} WHERE {self._on_day()}", [partition]),
                (f"INSERT INTO {days} ({PARTITION_COLUMN}) VALUES (CAST({self.PLACEHOLDER} AS DATE))", [partition]),
                *self.keep_backup_sql(mart, partition, stage_name),
                (f"DELETE FROM {table} WHERE {self._on_day()}", [partition]),
                f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {stage}",
            ]
        )
        self.after_publish(mart, partition, stage_name)
        self._drop_stale_stages(mart, keep=stage_name)
        # The staging table holds the day's rows only (the audit counts any other day's).
        day_rows, total = self.run([f"SELECT (SELECT count(*) FROM {stage}), (SELECT count(*) FROM {table})"])[0]
        return {
            "dagster/partition_row_count": int(day_rows),
            "dagster/row_count": int(total),
            "dagster/table_name": self.table_name(mart),
            "backup": self.backup_location(mart, partition),
        }

    def table_name(self, mart: MartTable) -> str:
        """The published table's full name, as the catalog shows it."""
        return self.qualified(mart.name)

    def _drop_stale_stages(self, mart: MartTable, keep: str) -> None:
        """Drop the mart's staging tables of versions older than `keep_staging_seconds` (a killed run's, an audit
        that failed, the ones published before), except `keep`."""
        now = dt.datetime.now(dt.UTC)
        stale = []
        for name in self.table_names(f"{mart.name}__stage_"):
            match = STAGE_VERSION.search(name)
            made = dt.datetime.strptime(match[1].upper(), "%Y%m%dT%H%M%S%f").replace(tzinfo=dt.UTC) if match else None
            old = made is not None and (now - made).total_seconds() > self.keep_staging_seconds
            if name != keep and (old or LEGACY_STAGE.search(name)):  # or one of the days before lake versions
                stale.append(f"DROP TABLE IF EXISTS {self.qualified(name)}")
        if stale:
            self.run(stale)


# A DuckDB file's headers (the file header and two database headers) before its blocks.
HEADER_BYTES = 3 * 4096


class WarehouseUnusable(dg.Failure):
    """The warehouse cannot be used as it is (damaged, read-only, held too long by another process): the message says
    what to do. Not retried when `retry` is False."""

    def __init__(self, description: str, retry: bool = False) -> None:
        super().__init__(description, allow_retries=retry)


def damaged(database: str, why: str) -> WarehouseUnusable:
    return WarehouseUnusable(
        f"The DuckDB warehouse file {database} is damaged ({why}). Move it aside (keep it for inspection), then "
        "publish every day again from the lake: make rebuild-warehouse."
    )


def open_duckdb_warehouse(
    database: str, lock_timeout_seconds: float, read_only: bool = False
) -> duckdb.DuckDBPyConnection:
    """A connection to a DuckDB warehouse file, waiting up to `lock_timeout_seconds` while another process holds it; a
    file that is held past that, damaged, or that may not be written fails as `WarehouseUnusable`, naming the
    remedy."""
    deadline, pause = time.monotonic() + lock_timeout_seconds, 0.05
    while True:
        try:
            return duckdb.connect(database, read_only=read_only, config={"autoinstall_known_extensions": False})
        except duckdb.IOException as error:
            message = str(error)
            if "Could not set lock" in message:
                if time.monotonic() <= deadline:
                    time.sleep(pause)
                    pause = min(pause * 2, 2.0)
                    continue
                holder = message.split("Conflicting lock is held in", 1)[-1].split(". See", 1)[0].strip()
                raise WarehouseUnusable(
                    f"The DuckDB warehouse file {database} is held by another process ({holder}) and was not released "
                    f"within {lock_timeout_seconds:g} s: wait for that run or command to end, then try again.",
                    retry=True,
                ) from error
            if any(m in message for m in UNREADABLE) or Path(database).is_dir():
                raise damaged(database, message.removeprefix("IO Error: ")) from error
            if any(m in message for m in ("Permission denied", "Read-only file system", "Operation not permitted")):
                raise WarehouseUnusable(
                    f"The DuckDB warehouse file {database} may not be written by this user ({message}): give the "
                    "runs' user write access to it and its folder (or remove an immutable flag: chattr -i), then "
                    "try again."
                ) from error
            raise
        except duckdb.Error as error:  # a file of other bytes, a block whose checksum fails
            if isinstance(error, duckdb.SerializationException | duckdb.InternalException) or any(
                m in str(error) for m in UNREADABLE
            ):
                raise damaged(database, str(error)) from error
            raise


# What DuckDB says of a file that is not (or no longer) a whole DuckDB database.
UNREADABLE = ("Could not read enough bytes", "not a valid DuckDB database file", "Corrupt", "corrupt", "checksum")


class DuckDBWarehouse(Warehouse):
    """The local deployment's warehouse: a DuckDB file, marts in one schema."""

    database: str = Field(description="path of the DuckDB warehouse file")
    schema_name: str = Field(
        default="marts", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="schema holding the marts"
    )
    lock_timeout_seconds: float = Field(default=60, description="how long to wait for another run to release the file")
    _held: duckdb.DuckDBPyConnection | None = PrivateAttr(default=None)

    def run(self, statements: Iterable[Statement]) -> list[tuple]:
        with self.session():
            con = self._held
            assert con is not None
            rows: list[tuple] = []
            try:
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema_name}")
                for statement in statements:
                    rows = con.execute(*sql_and_params(statement)).fetchall()
            except duckdb.Error as error:  # a block that does not read back as written
                if any(m in str(error) for m in UNREADABLE):
                    raise damaged(self.database, str(error)) from error
                raise
        return rows

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """One open of the file for every statement run inside (an open reads the file's metadata: it was half of a
        day's publication); other processes wait for the file meanwhile, so a session is a day's work, not more."""
        if self._held is not None:
            yield
            return
        with self._connect() as con:
            self._check_blocks(con)
            self._held = con
            try:
                yield
            finally:
                self._held = None

    def qualified(self, name: str) -> str:
        return f"{self.schema_name}.{name}"

    def table_name(self, mart: MartTable) -> str:
        return f"{Path(self.database).stem}.{self.qualified(mart.name)}"

    def _check_blocks(self, con: duckdb.DuckDBPyConnection) -> None:
        """Fail unless the file holds at least the blocks its header counts in use: DuckDB opens a file cut short (a
        copy or a disk that failed half-way) as long as the blocks it reads first are there, and would publish into it.
        Checked as the file opens, before this connection writes anything. (Free blocks at the end of a file may be
        cut off by DuckDB itself, so those are not counted.)"""
        [(block_size, used)] = con.execute("SELECT block_size, used_blocks FROM pragma_database_size()").fetchall()
        size, needed = Path(self.database).stat().st_size, HEADER_BYTES + used * block_size
        if size < needed:
            raise damaged(
                self.database, f"it holds {size:,} bytes; the {used} blocks its header counts in use need {needed:,}"
            )

    def _connect(self) -> duckdb.DuckDBPyConnection:
        """Open the file, waiting while another run's process holds it (DuckDB allows one writer process)."""
        return open_duckdb_warehouse(self.database, self.lock_timeout_seconds)

    def table_names(self, prefix: str) -> list[str]:
        rows = self.run(
            [
                (
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND starts_with(lower("
                    "table_name), ?) ORDER BY 1",
                    [self.schema_name, prefix.lower()],
                )
            ]
        )
        return [name.lower() for (name,) in rows]

    def load_stage(self, mart: MartTable, partition: str, version: str, files: list[str], lake_url: str) -> Load:
        """Insert the lake rows whose every value fits its column; a row with a value that does not is rejected and
        counted."""
        stage = self.qualified(self.staging_table(mart, partition, version))
        source = "read_parquet(?, union_by_name = true)"  # the files, bound as a list
        fits = " AND ".join(f"({c} IS NULL OR TRY_CAST({c} AS {t}) IS NOT NULL)" for c, t in mart.columns.items())
        casts = ", ".join(f"TRY_CAST({c} AS {t})" for c, t in mart.columns.items())
        [(loaded, rejected)] = self.run(
            [
                f"DROP TABLE IF EXISTS {stage}",
                mart.create_sql(stage),
                (f"INSERT INTO {stage} SELECT {casts} FROM {source} WHERE {fits}", [files]),
                (f"SELECT (SELECT count(*) FROM {stage}), (SELECT count(*) FROM {source} WHERE NOT ({fits}))", [files]),
            ]
        )
        examples = self.run([(f"SELECT * FROM {source} WHERE NOT ({fits}) LIMIT 5", [files])]) if rejected else []
        errors = [f"value does not fit {mart.name}'s columns: {row}" for row in examples]
        return Load(self.staging_table(mart, partition, version), len(files), loaded, rejected, errors)

    def backup_location(self, mart: MartTable, partition: str) -> str:
        """`<warehouse file>.backups/<mart>/dt=YYYY-MM-DD.parquet`: beside the file, so the backup outlives it."""
        return str(Path(f"{self.database}.backups") / mart.name / f"{PARTITION_COLUMN}={partition}.parquet")

    def keep_backup_sql(self, mart: MartTable, partition: str, publication: str) -> list[Statement]:
        """Write the day's published rows to a file beside the warehouse (moved into place once committed)."""
        Path(self.backup_location(mart, partition)).parent.mkdir(parents=True, exist_ok=True)
        being_written = self._backup_being_written(mart, partition, publication)
        day = f"SELECT * FROM {self.qualified(mart.name)} WHERE {self._on_day()}"
        return [(f"COPY ({day}) TO ? (FORMAT parquet)", [partition, being_written])]

    def after_publish(self, mart: MartTable, partition: str, publication: str) -> None:
        """Move the backup into place; remove those a killed publication left half-way, once as old as a stale
        staging table."""
        location = Path(self.backup_location(mart, partition))
        os.replace(self._backup_being_written(mart, partition, publication), location)
        for left in location.parent.glob(f".{location.name}.*.writing"):
            if time.time() - left.stat().st_mtime > self.keep_staging_seconds:
                left.unlink(missing_ok=True)

    def _backup_being_written(self, mart: MartTable, partition: str, publication: str) -> str:
        """A name of this publication's own, so overlapping ones never share it."""
        location = Path(self.backup_location(mart, partition))
        return str(location.with_name(f".{location.name}.{publication}.writing"))

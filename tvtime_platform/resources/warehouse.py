"""The warehouse the marts are published to, by write-audit-publish, and its embedded DuckDB form.

As the old scripts did (copy to a new table, check, back up, rename), a day of a mart is
1. *written* from its Parquet files in the lake into a staging table of its own,
2. *audited* there by blocking asset checks (the queries are `audit`, below),
3. *published*: a next version of the table (the published one, that day's rows replaced by the
   staging table's) is built beside it and swapped in atomically; the version it replaces is kept
   as `<table>__backup`.
A failed audit stops at step 2: the published table is never touched. `SnowflakeWarehouse`
(staging and prod) differs only in how it loads and how it swaps.
"""

from __future__ import annotations

import abc
import datetime as dt
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import dagster as dg
import duckdb
from pydantic import Field

from tvtime_platform.transforms.marts import PARTITION_COLUMN, MartTable

# A statement, or a statement and the values bound to its placeholders (`Warehouse.PLACEHOLDER`): values from data
# (partition keys, file names) are always bound, never spliced into the SQL text.
Statement = str | tuple[str, Sequence]


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
    """Write-audit-publish of a mart's daily partition; subclasses say how to run SQL, load and swap."""

    PLACEHOLDER: ClassVar[str] = "?"  # how the driver's SQL marks a bound value

    @abc.abstractmethod
    def run(self, statements: Iterable[Statement]) -> list[tuple]:
        """Run statements in order on one connection; the rows of the last."""

    @abc.abstractmethod
    def load_stage(self, mart: MartTable, partition: str, files: list[str], lake_url: str) -> Load:
        """(Re)create the day's staging table from the mart's lake files, counting what was rejected."""

    @abc.abstractmethod
    def clone_sql(self, table: str, source: str) -> str:
        """A statement creating `table` as a copy of `source`."""

    @abc.abstractmethod
    def swap(self, table: str, other: str) -> None:
        """Exchange two tables' contents atomically: readers see one version or the other."""

    def qualified(self, name: str) -> str:
        return name

    def staging_table(self, mart: MartTable, partition: str) -> str:
        """The day's staging table; its name is made from the day as a date (digits only), not from the key's text."""
        return f"{mart.name}__stage_{dt.date.fromisoformat(partition):%Y%m%d}"

    def _on_day(self) -> str:
        return f"{PARTITION_COLUMN} = CAST({self.PLACEHOLDER} AS DATE)"

    def backup_table(self, mart: MartTable) -> str:
        return f"{mart.name}__backup"

    def audit(self, mart: MartTable, partition: str, expected_rows: int) -> Audit:
        """Count what is wrong with the day's staging table: rows missing against the lake, repeated keys, broken
        rules."""
        stage = self.qualified(self.staging_table(mart, partition))
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

    def publish(self, mart: MartTable, partition: str) -> dict[str, dg.RawMetadataValue]:
        """Swap in the published table with the day's rows replaced by the staging table's; keep the old one as
        backup."""
        table, stage = self.qualified(mart.name), self.qualified(self.staging_table(mart, partition))
        following, backup = self.qualified(f"{mart.name}__next"), self.qualified(self.backup_table(mart))
        columns = ", ".join(mart.columns)
        self.run(
            [
                mart.create_sql(table),
                self.clone_sql(following, table),
                (f"DELETE FROM {following} WHERE {self._on_day()}", [partition]),
                f"INSERT INTO {following} ({columns}) SELECT {columns} FROM {stage}",
            ]
        )
        self.swap(table, following)
        self.run(
            [
                f"DROP TABLE IF EXISTS {backup}",
                f"ALTER TABLE {following} RENAME TO {self.backup_table(mart)}",
                f"DROP TABLE {stage}",
            ]
        )
        day_rows, total = self.run(
            [(f"SELECT sum(CASE WHEN {self._on_day()} THEN 1 ELSE 0 END), count(*) FROM {table}", [partition])]
        )[0]
        return {
            "dagster/row_count": int(day_rows or 0),
            "table_rows": int(total),
            "table": table,
            "backup_table": backup,
        }


class DuckDBWarehouse(Warehouse):
    """The local deployment's warehouse: a DuckDB file, marts in one schema."""

    database: str = Field(description="path of the DuckDB warehouse file")
    schema_name: str = Field(
        default="marts", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="schema holding the marts"
    )
    lock_timeout_seconds: float = Field(default=60, description="how long to wait for another run to release the file")

    def run(self, statements: Iterable[Statement]) -> list[tuple]:
        rows: list[tuple] = []
        with self._connect() as con:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema_name}")
            for statement in statements:
                rows = con.execute(*sql_and_params(statement)).fetchall()
        return rows

    def qualified(self, name: str) -> str:
        return f"{self.schema_name}.{name}"

    def _connect(self) -> duckdb.DuckDBPyConnection:
        """Open the file, waiting while another run's process holds it (DuckDB allows one writer process)."""
        deadline, pause = time.monotonic() + self.lock_timeout_seconds, 0.05
        while True:
            try:
                return duckdb.connect(self.database, config={"autoinstall_known_extensions": False})
            except duckdb.IOException as error:
                if "lock" not in str(error).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 2.0)

    def load_stage(self, mart: MartTable, partition: str, files: list[str], lake_url: str) -> Load:
        """Insert the lake rows whose every value fits its column; a row with a value that does not is rejected and
        counted."""
        stage = self.qualified(self.staging_table(mart, partition))
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
        return Load(self.staging_table(mart, partition), len(files), loaded, rejected, errors)

    def clone_sql(self, table: str, source: str) -> str:
        return f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM {source}"

    def swap(self, table: str, other: str) -> None:
        """DuckDB has no SWAP: three renames in one transaction do the same."""
        name, other_name = table.rsplit(".", 1)[1], other.rsplit(".", 1)[1]
        parked = f"{name}__swapping"
        self.run(
            [
                "BEGIN",
                f"ALTER TABLE {table} RENAME TO {parked}",
                f"ALTER TABLE {other} RENAME TO {name}",
                f"ALTER TABLE {self.qualified(parked)} RENAME TO {other_name}",
                "COMMIT",
            ]
        )

"""The staging/prod warehouse: Snowflake, loaded with `COPY INTO` from the lake's stage; a day published in a
transaction of its own.

Imported only by the staging and prod deployments, so the local code location never loads the
Snowflake connector.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import ClassVar

from dagster_snowflake import SnowflakeResource
from pydantic import Field

from tvtime_platform.resources.warehouse import Load, Statement, Warehouse, sql_and_params
from tvtime_platform.transforms.marts import MartTable

# Load every row that fits and report the others: the audit on rows_missing then blocks publication,
# so a rejected row is counted and shown, never silently dropped and never published around.
ON_ERROR = "CONTINUE"
# COPY INTO takes its FILES as literals, not bind variables: a stage path is spliced only if it is one the lake writes
# (`<table>/dt=YYYY-MM-DD/v<time>-<id>/part-<k>.parquet`), which holds no quote, backslash or anything else SQL could
# read.
STAGE_PATH = re.compile(r"[A-Za-z0-9_]+(/[A-Za-z0-9_]+=[0-9-]+)?(/v[0-9T]+-[0-9a-f]+)?/[A-Za-z0-9_.-]+\.parquet")


class SnowflakeWarehouse(Warehouse):
    """Marts in the Snowflake database and schema of the connection."""

    PLACEHOLDER: ClassVar[str] = (
        "%s"  # the connector's default paramstyle (pyformat): it quotes each bound value itself
    )

    snowflake: SnowflakeResource
    stage: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*){0,2}$",
        description="external stage whose URL is the lake's root, e.g. LAKE_STAGE (without the @)",
    )

    def run(self, statements: Iterable[Statement]) -> list[tuple]:
        rows: list[tuple] = []
        with self.snowflake.get_connection() as conn:
            cursor = conn.cursor()
            for statement in statements:
                rows = cursor.execute(*sql_and_params(statement)).fetchall()
        return rows

    def table_names(self, prefix: str) -> list[str]:
        rows = self.run(
            [
                (
                    "SELECT lower(table_name) FROM information_schema.tables WHERE table_schema = CURRENT_SCHEMA() "
                    "AND startswith(lower(table_name), %s) ORDER BY 1",
                    [prefix.lower()],
                )
            ]
        )
        return [name for (name,) in rows]

    def load_stage(self, mart: MartTable, partition: str, version: str, files: list[str], lake_url: str) -> Load:
        """`COPY INTO` the staging table from the files' stage paths, by column name, every rejected row counted."""
        stage = self.staging_table(mart, partition, version)
        root = lake_url.rstrip("/") + "/"
        outside = [f for f in files if not f.startswith(root)]
        if outside:
            raise ValueError(
                f"{outside[0]} is not under the lake {lake_url}, which stage @{self.stage} is expected to point at"
            )
        paths = [f[len(root) :] for f in files]
        unsafe = [p for p in paths if not STAGE_PATH.fullmatch(p)]
        if unsafe:
            raise ValueError(
                f"{unsafe[0]!r} is not a path the lake writes (<table>/dt=YYYY-MM-DD/<version>/<file>.parquet); "
                "refusing to name it in COPY INTO"
            )
        relative = ", ".join(f"'{p}'" for p in paths)
        results = self.run(
            [
                f"DROP TABLE IF EXISTS {stage}",
                mart.create_sql(stage),
                f"COPY INTO {stage} FROM @{self.stage}/ FILES = ({relative}) FILE_FORMAT = (TYPE = PARQUET) "
                f"MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE ON_ERROR = {ON_ERROR} FORCE = TRUE",
            ]
        )
        # One result row per file: file, status, rows_parsed, rows_loaded, error_limit, errors_seen, first_error, ...
        parsed = sum(int(r[2] or 0) for r in results)
        loaded = sum(int(r[3] or 0) for r in results)
        errors = [f"{r[0]}: {r[5]} error(s), first: {r[6]}" for r in results if r[5]]
        return Load(stage, len(results), loaded, parsed - loaded, errors)

    def table_name(self, mart: MartTable) -> str:
        return f"{self.snowflake.database}.{self.snowflake.schema_}.{mart.name}".lower()

    def backup_location(self, mart: MartTable, partition: str) -> str:
        """`<mart>__backup`: the rows each day's last publication replaced, by their `dt`."""
        return f"{mart.name}__backup"

    def prepare_backup_sql(self, mart: MartTable) -> list[Statement]:
        return [mart.create_sql(self.backup_location(mart, ""))]

    def keep_backup_sql(self, mart: MartTable, partition: str, publication: str) -> list[Statement]:
        backup, columns = self.backup_location(mart, partition), ", ".join(mart.columns)
        return [
            (f"DELETE FROM {backup} WHERE {self._on_day()}", [partition]),
            (f"INSERT INTO {backup} ({columns}) SELECT {columns} FROM {mart.name} WHERE {self._on_day()}", [partition]),
        ]

"""The staging/prod warehouse: Snowflake, loaded with `COPY INTO` from the lake's stage and swapped with `SWAP WITH`.

Imported only by the staging and prod deployments, so the local code location never loads the
Snowflake connector.
"""

from __future__ import annotations

from collections.abc import Iterable

from dagster_snowflake import SnowflakeResource
from pydantic import Field

from tvtime_platform.resources.warehouse import Load, Warehouse
from tvtime_platform.transforms.marts import MartTable

# Load every row that fits and report the others: the audit on rows_missing then blocks publication,
# so a rejected row is counted and shown, never silently dropped and never published around.
ON_ERROR = "CONTINUE"


class SnowflakeWarehouse(Warehouse):
    """Marts in the Snowflake database and schema of the connection."""

    snowflake: SnowflakeResource
    stage: str = Field(description="external stage whose URL is the lake's root, e.g. LAKE_STAGE (without the @)")

    def run(self, statements: Iterable[str]) -> list[tuple]:
        rows: list[tuple] = []
        with self.snowflake.get_connection() as conn:
            cursor = conn.cursor()
            for statement in statements:
                rows = cursor.execute(statement).fetchall()
        return rows

    def load_stage(self, mart: MartTable, partition: str, files: list[str], lake_url: str) -> Load:
        """`COPY INTO` the staging table from the files' stage paths, by column name, every rejected row counted."""
        stage = self.staging_table(mart, partition)
        root = lake_url.rstrip("/") + "/"
        outside = [f for f in files if not f.startswith(root)]
        if outside:
            raise ValueError(f"{outside[0]} is not under the lake {lake_url}, which stage @{self.stage} is expected to point at")
        relative = ", ".join(f"'{f[len(root):]}'" for f in files)
        results = self.run([
            f"DROP TABLE IF EXISTS {stage}",
            mart.create_sql(stage),
            f"COPY INTO {stage} FROM @{self.stage}/ FILES = ({relative}) FILE_FORMAT = (TYPE = PARQUET) "
            f"MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE ON_ERROR = {ON_ERROR} FORCE = TRUE",
        ])
        # One result row per file: file, status, rows_parsed, rows_loaded, error_limit, errors_seen, first_error, ...
        parsed = sum(int(r[2] or 0) for r in results)
        loaded = sum(int(r[3] or 0) for r in results)
        errors = [f"{r[0]}: {r[5]} error(s), first: {r[6]}" for r in results if r[5]]
        return Load(stage, len(results), loaded, parsed - loaded, errors)

    def clone_sql(self, table: str, source: str) -> str:
        return f"CREATE OR REPLACE TABLE {table} CLONE {source}"

    def swap(self, table: str, other: str) -> None:
        self.run([f"ALTER TABLE {table} SWAP WITH {other}"])

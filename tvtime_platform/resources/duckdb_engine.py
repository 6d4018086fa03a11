"""The embedded set-based engine: DuckDB in this process, over the lake's Parquet files."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import Field

from tvtime_platform.resources.lake import LakeTable, create_views
from tvtime_platform.resources.scratch import scratch_folder
from tvtime_platform.resources.storage import protocol_filesystem
from tvtime_platform.transforms.plan import NUMBERED, TABLE, Plan

Facts = dict[str, list[list]]


class DuckDBEngine(dg.ConfigurableResource):
    """Opens in-memory DuckDB connections with the memory bound and time zone every transform assumes.

    The connection holds no tables of its own: inputs are read from Parquet, results written back by
    the lake IO manager. A bounded memory limit makes DuckDB spill to `temp_directory` instead of
    failing on a large day.
    """

    memory_limit: str = Field(
        default="1280MB", description="DuckDB memory_limit, e.g. '2GB'; larger work spills to disk"
    )
    threads: int = Field(default=0, description="worker threads; 0 uses every core")
    temp_directory: str = Field(default="", description="where DuckDB spills; empty uses DuckDB's default")
    remote_protocols: list[str] = Field(
        default=[],
        description="object-store protocols DuckDB reads and writes through fsspec, e.g. ['s3'] when the lake is on S3",
    )

    def connect(self) -> duckdb.DuckDBPyConnection:
        # Never download an extension at run time: what the platform needs is built into the wheel
        # (json, parquet, icu) or reached through fsspec (s3://).
        config: dict[str, str | int | bool] = {"memory_limit": self.memory_limit, "autoinstall_known_extensions": False}
        if self.threads:
            config["threads"] = self.threads
        if self.temp_directory:
            config["temp_directory"] = self._temp_folder()
        con = duckdb.connect(":memory:", config=config)
        # Day boundaries are UTC whatever the machine's zone (set after connecting: ICU loads lazily).
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")  # run logs are not a terminal
        for protocol in self.remote_protocols:
            con.register_filesystem(protocol_filesystem(protocol))
        return con

    def fetch_one(self, sql: str, tables: dict[str, LakeTable], params: list | None = None) -> tuple:
        """The single row of an aggregate query over lake tables (each a view by its name), on a connection of its own
        (checks ask one question each)."""
        with self.connect() as con:
            create_views(con, tables)
            return con.execute(sql, params).fetchall()[0]

    def run_plan(
        self, con: duckdb.DuckDBPyConnection, plan: Plan, scratch: str, log: Callable[[str], None] | None = None
    ) -> tuple[dict[str, duckdb.DuckDBPyRelation], Facts]:
        """Run a plan's steps on a connection where its inputs are already relations; returns the outputs and the facts.

        A numbered step is written to a Parquet file in `scratch` (it may be larger than memory) and
        read back with its row numbers as `row`; `scratch` must outlive the returned relations.
        `log` hears what each step that computes (a table, a numbered file) did: rows and seconds.
        """
        for step in plan.steps:
            params = plan.bound(step.sql)
            began = time.perf_counter()
            if step.kind == NUMBERED:
                path = f"{scratch}/{step.name}.parquet"
                con.sql(step.sql, params=params).write_parquet(path, compression="zstd")
                numbered = con.read_parquet(path, file_row_number=True)
                numbered.project("* EXCLUDE (file_row_number), file_row_number AS row").create_view(step.name)
            elif step.kind == TABLE:
                con.execute(f"CREATE OR REPLACE TEMP TABLE {step.name} AS {step.sql}", params)
            else:
                con.sql(step.sql, params=params).create_view(step.name)  # a view: computed where it is read
                continue
            if log:
                rows = con.execute(f"SELECT count(*) FROM {step.name}").fetchall()[0][0]
                log(f"DuckDB step {step.name}: {rows:,} rows in {time.perf_counter() - began:.1f}s")
        facts = {
            name: [list(row) for row in con.execute(sql, plan.bound(sql)).fetchall()]
            for name, sql in plan.facts.items()
        }
        return {name: con.sql(sql, params=plan.bound(sql)) for name, sql in plan.outputs.items()}, facts

    @contextmanager
    def scratch_folder(self) -> Iterator[str]:
        """A private folder for intermediate files, under `temp_directory` when set; removed afterwards, and by the
        next one made there if this process is killed first."""
        with scratch_folder(self.temp_directory or None) as folder:
            yield folder

    def _temp_folder(self) -> str:
        """`temp_directory`, created with its parents (DuckDB creates only the last level)."""
        Path(self.temp_directory).mkdir(parents=True, exist_ok=True)
        return self.temp_directory

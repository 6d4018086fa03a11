"""The embedded set-based engine: DuckDB in this process, over the lake's Parquet files."""

from __future__ import annotations

import functools
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import Field

from tvtime_platform.lake import LakeTable, create_views
from tvtime_platform.resources.scratch import scratch_folder
from tvtime_platform.resources.storage import protocol_filesystem
from tvtime_platform.transforms.plan import NUMBERED, TABLE, Plan

Facts = dict[str, list[list]]


class DuckDBEngine(dg.ConfigurableResource):
    """Opens in-memory DuckDB connections with the memory bound and time zone every transform assumes.

    The connection holds no tables of its own: inputs are read from Parquet, results written back by
    the lake IO manager. A bounded memory limit makes DuckDB spill to `temp_directory` instead of
    failing on a large day. The limit is the process's, shared by the connections open at once (a step opens one
    at a time; steps run one after another or in processes of their own).
    """

    memory_limit: str = Field(
        default="1280MB",
        description="DuckDB memory_limit of the process's connections together, e.g. '2GB'; larger work spills to disk",
    )
    threads: int = Field(default=0, description="worker threads; 0 uses every core")
    temp_directory: str = Field(default="", description="where DuckDB spills; empty uses DuckDB's default")
    remote_protocols: list[str] = Field(
        default=[],
        description="object-store protocols DuckDB reads and writes through fsspec, e.g. ['s3'] when the lake is on S3",
    )

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A connection to this process's in-memory database for these settings, in a catalog of its own: its views,
        temporary tables and registrations are its alone. Opening a database costs about 15 ms, a connection to an
        open one under 1 ms, and a run opens several."""
        temp_directory = self._temp_folder() if self.temp_directory else ""
        con = _database(self.memory_limit, self.threads, temp_directory, tuple(self.remote_protocols)).connect()
        # Day boundaries are UTC whatever the machine's zone (set after connecting: ICU loads lazily).
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")  # run logs are not a terminal
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


class _Database:
    """An in-memory DuckDB database shared by a process's connections (its memory bound and spill folder are the
    database's). Each connection works in a catalog of its own, so that a view one makes is never read by another, nor
    by a later one that forgot to make it; the catalogs of connections gone are detached by the next connect."""

    def __init__(self, root: duckdb.DuckDBPyConnection) -> None:
        self._root = root
        self._lock = threading.Lock()
        self._catalogs: dict[str, weakref.ref] = {}

    def connect(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            con = self._root.cursor()
            gone = [name for name, held in self._catalogs.items() if held() is None]
            for name in gone:
                del self._catalogs[name]
            catalog = f"connection_{uuid.uuid4().hex[:16]}"
            self._catalogs[catalog] = weakref.ref(con)
        for name in gone:
            con.execute(f"DETACH DATABASE IF EXISTS {name}")
        con.execute(f"ATTACH ':memory:' AS {catalog}")
        con.execute(f"USE {catalog}")
        return con


@functools.lru_cache(maxsize=4)  # a process has one set of settings; tests make many, each a folder of their own
def _database(memory_limit: str, threads: int, temp_directory: str, protocols: tuple[str, ...]) -> _Database:
    """The process's database for these settings, with the object-store protocols registered (once: they are the
    database's too)."""
    # Never download an extension at run time: what the platform needs is built into the wheel
    # (json, parquet, icu) or reached through fsspec (s3://).
    config: dict[str, str | int | bool] = {"memory_limit": memory_limit, "autoinstall_known_extensions": False}
    if threads:
        config["threads"] = threads
    if temp_directory:
        config["temp_directory"] = temp_directory
    root = duckdb.connect(":memory:", config=config)
    for protocol in protocols:
        root.register_filesystem(protocol_filesystem(protocol))
    return _Database(root)

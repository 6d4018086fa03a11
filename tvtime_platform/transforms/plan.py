"""A transformation as an engine-neutral plan: named SQL steps over named inputs.

Each set-based table (`app_events`, `user_sessions`, `tracked_episodes`, `user_show_interactions`)
is built by a function of `transforms` returning a `Plan`. The SQL is written once, in DuckDB's
dialect; DuckDB runs it as is (`resources/duckdb_engine.py`), Spark runs it as transpiled by
`transforms.spark_sql` (`spark_jobs/plan_runner.py`). The plan is plain data (strings), so it crosses
to a Spark driver as JSON in the Dagster Pipes extras: the driver needs neither this package nor
sqlglot, only PySpark and dagster-pipes.

What an engine must provide, the contract both runners implement:
- every name in `inputs` as a relation (Parquet partitions of the lake, or landed lines);
- steps in order, each visible to the later ones under its name, computed as its `kind` says;
- each output written as the Parquet files of one table;
- each fact query's rows returned as lists of JSON values, for the asset's metadata;
- each balance judged once the outputs are written: the rows written to its tables against its
  fact's one value, reported as the asset check of that name (nothing lost on the way out);
- `params` bound to every statement that names them (`$day` in DuckDB's SQL, `:day` once
  transpiled for Spark): partition keys and settings reach the engines as values, never as SQL text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

VIEW, TABLE, NUMBERED = "view", "table", "numbered"
PARAMETER = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
Param = str | int | float


@dataclass(frozen=True)
class Step:
    """A named statement. `kind`: a `view` is recomputed where used; a `table` is computed once
    (DuckDB: a temp table; Spark: cached); `numbered` is a table given a unique BIGINT `row`
    column (DuckDB: a Parquet file in scratch space read back with its row numbers; Spark: cached
    with `monotonically_increasing_id`), in which rows of one landing file keep their order."""

    name: str
    sql: str
    kind: str = VIEW


@dataclass(frozen=True)
class Plan:
    inputs: tuple[str, ...]
    steps: tuple[Step, ...]
    outputs: dict[str, str]  # table -> SQL producing it (usually `SELECT * FROM <step>`)
    facts: dict[str, str] = field(default_factory=dict)  # name -> SQL whose rows describe the result
    # check name -> output tables whose rows, once written, must number the one value of the fact of that name
    balances: dict[str, tuple[str, ...]] = field(default_factory=dict)
    params: dict[str, Param] = field(default_factory=dict)  # name -> value (dates as ISO text, cast where used)

    def bound(self, sql: str) -> dict[str, Param]:
        """The params a DuckDB statement names (DuckDB refuses values it was not asked for)."""
        return {name: self.params[name] for name in PARAMETER.findall(sql) if name in self.params}

    def translated(self, translate: Callable[[str], str]) -> Plan:
        """The same plan with every statement rewritten, e.g. into Spark SQL."""
        return replace(
            self,
            steps=tuple(replace(step, sql=translate(step.sql)) for step in self.steps),
            outputs={name: translate(sql) for name, sql in self.outputs.items()},
            facts={name: translate(sql) for name, sql in self.facts.items()},
        )

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Plan:
        return cls(
            inputs=tuple(data["inputs"]),
            steps=tuple(Step(**step) for step in data["steps"]),
            outputs=dict(data["outputs"]),
            facts=dict(data.get("facts", {})),
            balances={name: tuple(tables) for name, tables in data.get("balances", {}).items()},
            params=dict(data.get("params", {})),
        )

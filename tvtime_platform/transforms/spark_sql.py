"""The transforms' SQL, written once in DuckDB's dialect, as Spark SQL: sqlglot plus a few rewrites.

Why transpile SQL rather than write PySpark that DuckDB's Spark API also runs: the logic already is
SQL that DuckDB runs fast and that the tests pin down; DuckDB's Spark API is experimental and
lacks what the transforms need (window functions, JSON typing, `min_by` over tuples); and SQL
crosses to a Spark driver as plain text (`transforms.plan`), so the cluster needs no copy of this
package. sqlglot translates the dialects' spelling (`arg_min` → `min_by`, `date_diff` → `datediff`,
1-based list indexes → 0-based, string escapes, ...).

Where the two engines have no common function, the rewrites below give Spark's equivalent, each
with the semantics DuckDB has in the transforms (the parity test runs both on the same day):
- JSON: a document is DuckDB's `TRY_CAST(line AS JSON)` and Spark's `try_parse_json(line)`
  (a VARIANT, parsed once); fields are `try_variant_get`; `->>` is `try_variant_get(..., 'string')`;
  `json_type` answers with DuckDB's type names (VARCHAR, BIGINT, UBIGINT, DOUBLE, BOOLEAN, NULL,
  OBJECT, ARRAY), which is what the validation rules compare against.
- `epoch_us` / `make_timestamptz`: `unix_micros` / `timestamp_micros`.
- `regexp_full_match(x, p)`: `x RLIKE '^(?:p)(?s:(?!.))'` (not `$`, which in Java also matches before a
  final line terminator: `'US\n'` would pass for two capital letters).
- A tuple `(a, b)` (an ordering key of `min_by`): `struct(a, b)`.

Spark 4.0 or later is needed (VARIANT). Run Spark with `spark.sql.session.timeZone=UTC`, as DuckDB
connections are (`resources/duckdb_engine.py`): days are UTC days.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

# json_type of a VARIANT, with DuckDB's type names ({v} is the variant). The name is the schema's head,
# before any `<` or `(` (OBJECT<...>, DECIMAL(2,1)), taken with string functions: cheaper than a regex
# on every field of every line. Spark computes the schema once per arm that names it, so the two types
# nearly every field has are asked first: a string or an integer costs one or two schemas, not five.
_SPARK_TYPE_NAME = "substring_index(substring_index(schema_of_variant({v}), '<', 1), '(', 1)"
_SPARK_JSON_TYPE = f"""CASE WHEN {{v}} IS NULL THEN NULL
    WHEN schema_of_variant({{v}}) = 'STRING' THEN 'VARCHAR' WHEN schema_of_variant({{v}}) = 'BIGINT' THEN 'BIGINT'
    ELSE CASE {_SPARK_TYPE_NAME}
    WHEN 'VOID' THEN 'NULL'
    WHEN 'DECIMAL' THEN CASE WHEN schema_of_variant({{v}}) LIKE '%,0)' THEN 'UBIGINT' ELSE 'DOUBLE' END
    WHEN 'FLOAT' THEN 'DOUBLE'
    ELSE {_SPARK_TYPE_NAME} END END"""


def _path(node: exp.Expression) -> exp.Expression:
    """A JSON path argument as the string literal Spark's variant functions take."""
    if isinstance(node, exp.JSONPath):
        return exp.Literal.string(node.sql(dialect="duckdb").strip("'"))
    return node


def _variant_get(doc: exp.Expression, path: exp.Expression, as_type: str | None = None) -> exp.Expression:
    args = [doc, _path(path)] + ([exp.Literal.string(as_type)] if as_type else [])
    return exp.Anonymous(this="try_variant_get", expressions=args)


def _rewrite(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.TryCast) and node.to.is_type(exp.DataType.Type.JSON):
        return exp.Anonymous(this="try_parse_json", expressions=[node.this])
    if isinstance(node, exp.JSONExtractScalar):
        return _variant_get(node.this, node.expression, "string")
    if isinstance(node, exp.JSONExtract):
        if isinstance(node.expression, exp.Array):
            return exp.Array(expressions=[_variant_get(node.this.copy(), p) for p in node.expression.expressions])
        return _variant_get(node.this, node.expression)
    if isinstance(node, exp.JSONType):
        return sqlglot.parse_one(_SPARK_JSON_TYPE.format(v=node.this.sql(dialect="spark")), read="spark")
    if isinstance(node, exp.RegexpFullMatch) and isinstance(node.expression, exp.Literal):
        return exp.RegexpLike(this=node.this, expression=exp.Literal.string(f"^(?:{node.expression.this})(?s:(?!.))"))
    if isinstance(node, exp.Anonymous) and node.name.lower() in _RENAMED:
        return exp.Anonymous(this=_RENAMED[node.name.lower()], expressions=node.expressions)
    if isinstance(node, exp.Tuple) and isinstance(node.parent, (exp.ArgMin, exp.ArgMax)):
        return exp.Struct(expressions=node.expressions)
    return node


_RENAMED = {"epoch_us": "unix_micros", "make_timestamptz": "timestamp_micros"}


def to_spark(sql: str) -> str:
    """A DuckDB statement of the transforms as Spark SQL."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    # Innermost first (reversed pre-order), so a rewrite sees its arguments already in Spark's terms.
    for node in reversed(list(tree.walk(bfs=False))):
        rewritten = _rewrite(node)
        if rewritten is not node:
            if node is tree:
                tree = rewritten
            else:
                node.replace(rewritten)
    return tree.sql(dialect="spark")

"""The read-only connection to the published snapshot, row helpers, and `grpo sql`.

Every value a user typed is bound as a parameter, never spliced into SQL.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

# The read path needs DuckDB's compiled core only (connections, their results, exceptions), which
# the duckdb package re-exports from `_duckdb`; importing the package itself would cost each CLI
# answer ~60 ms more (its relational and expression APIs, a version lookup through importlib.metadata).
try:
    import _duckdb as duckdb
except ImportError:  # pragma: no cover - a duckdb packaged without a separate core module
    import duckdb

from pipelines.answers.windows import iso


class NoDataError(RuntimeError):
    """The warehouse holds nothing to answer with (exit code 2)."""


class LookupFailed(RuntimeError):
    """A run or sweep did not match exactly one thing (exit code 2)."""

    def __init__(self, message: str, candidates: list[str]) -> None:
        super().__init__(message)
        self.candidates = candidates


class ReadOnlyViolation(RuntimeError):
    """`grpo sql` was asked to change something."""


def open_snapshot(root: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the published snapshot; it can read only the warehouse's own parquet."""
    path = root / "grpo.duckdb"
    if not path.exists():
        raise NoDataError(f"no warehouse at {root} yet: run `grpo demo` or `grpo ingest ...` first")
    readable = [str(root / "raw") + "/", str(root / "published") + "/"]
    con = duckdb.connect(str(path), read_only=True)
    # User SQL may read the warehouse's raw parquet and nothing else on disk.
    con.execute("set TimeZone = 'UTC'")
    con.execute("set allowed_directories = [" + ", ".join(_sql_literal(d) for d in readable) + "]")
    con.execute("set enable_external_access = false")
    # Parquet footers are parsed once per process, not once per query: an answer's queries all
    # read the same published event files (immutable, so the cache can never be stale).
    con.execute("set parquet_metadata_cache = true")
    con.execute("set lock_configuration = true")
    return con


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[dict[str, Any]]:
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def one(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> dict[str, Any] | None:
    r = rows(con, sql, params)
    return r[0] if r else None


# Values JSON takes as they are: the bulk of every answer (a full-scale `grpo check` cleans
# ~500k of them), so they are recognised by one set lookup before any isinstance chain.
_PLAIN_TYPES = frozenset({str, int, bool, type(None)})


def clean(value: Any) -> Any:
    """JSON-safe values: NaN/±Inf become null, timestamps ISO-8601 UTC, decimals floats."""
    kind = type(value)
    if kind in _PLAIN_TYPES:
        return value
    if kind is dict:
        return {k: clean(v) for k, v in value.items()}
    if kind is list:
        return [clean(v) for v in value]
    if isinstance(value, float):
        return None if not math.isfinite(value) else value
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return iso(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if hasattr(value, "__float__") and not isinstance(value, (int, bool)):
        return clean(float(value))
    return value


def has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether the snapshot has a relation of that name (a mart an older snapshot may lack).

    Binding a query to it loads that one catalog entry; listing duckdb_tables() would load every
    table's (~7 ms, paid by each windowed answer)."""
    try:
        con.execute("select * from " + _sql_identifier(name) + " limit 0")
    except duckdb.CatalogException:
        return False
    return True


def _sql_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# Only SELECT: even EXPLAIN ANALYZE would run (and so could write) its statement.
ALLOWED_STATEMENTS = {"SELECT"}


def sql(con: duckdb.DuckDBPyConnection, query: str) -> tuple[list[str], list[tuple]]:
    """Run a read-only query; anything but SELECT is refused before it runs."""
    try:
        statements = con.extract_statements(query)
    except duckdb.Error as exc:
        raise ValueError(f"cannot parse the query: {exc}") from None
    if not statements:
        raise ValueError("the query is empty")
    for st in statements:
        kind = st.type.name
        if kind not in ALLOWED_STATEMENTS:
            raise ReadOnlyViolation(
                f"grpo sql is read-only: {kind} statements are refused (only SELECT queries run here)"
            )
    cur = None
    for st in statements:
        cur = con.execute(st)
    assert cur is not None
    names = [d[0] for d in cur.description] if cur.description else []
    return names, cur.fetchall()


def tables(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    return rows(con, "select table_name, description, row_count from _tables order by table_name")


def json_value(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text

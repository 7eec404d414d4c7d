"""Which engine builds the dbt project: DuckDB (the default) or Apache Spark.

`GRPO_ENGINE=duckdb|spark` selects it for `grpo ingest`, `grpo demo` and the
Dagster job; profiles.yml picks the matching dbt target from the same
variable. Readers never see the difference: both builds are published into
the same DuckDB snapshot (pipelines/publish.py; Spark's marts through
pipelines/spark_publish.py).

On Spark, dbt runs through `main()` below (the `grpo-dbt-spark` executable)
rather than the plain `dbt`, for two things dbt-spark's `session` method does
not do by itself:

1. dbt Python models (fct_game_ratings, fct_game_learning): dbt-spark submits
   them only to Databricks clusters. Here they run in the dbt process on its
   own local SparkSession (`SessionPythonJobHelper`), like dbt-duckdb runs
   them on its DuckDB connection.
2. After the build, the list of built relations (parquet folder, table
   comment) is written to `build/spark/relations.json`, so publishing reads
   the parquet files with DuckDB and needs no JVM of its own.

With `SPARK_REMOTE=sc://host:port` set, the same `session` method is a Spark
Connect client of a running server instead of a local SparkSession (one warm
Spark for many builds: pipelines/spark_server.py).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

ENGINE_ENV = "GRPO_ENGINE"
ENGINES = ("duckdb", "spark")
DEFAULT_ENGINE = "duckdb"
# The dbt schema of the Spark build (profiles.yml, target `spark`).
SPARK_SCHEMA = "grpo"
# Relations that publishing copies from the build although dbt makes them views
# on Spark: their rows are written next to the tables after each build.
RELATIONS_FILE = "relations.json"
# SQL settings that only the Spark that starts can take (a Connect client cannot change them).
SERVER_ONLY_SQL_SETTINGS = frozenset({"spark.sql.warehouse.dir", "spark.sql.catalogImplementation"})


def engine() -> str:
    """The engine in `$GRPO_ENGINE` (default duckdb); anything else is an error, not a silent default."""
    chosen = (os.environ.get(ENGINE_ENV) or DEFAULT_ENGINE).strip().lower()
    if chosen not in ENGINES:
        raise ValueError(f"{ENGINE_ENV}={chosen!r}: expected one of {', '.join(ENGINES)}")
    return chosen


def is_spark() -> bool:
    return engine() == "spark"


def spark_build_dir(warehouse_root: Path) -> Path:
    """Where a Spark build keeps its tables, metastore and relation list."""
    return Path(warehouse_root) / "build" / "spark"


def build_exists(warehouse) -> bool:
    """Whether the selected engine's build (database or Spark tables) is there to build on."""
    if is_spark():
        return (spark_build_dir(warehouse.root) / RELATIONS_FILE).exists()
    return warehouse.build_db.exists()


def spark_unavailable_reason() -> str | None:
    """Why a local Spark build cannot run here (None when it can)."""
    try:
        import dbt.adapters.spark  # noqa: F401
        import pyspark  # noqa: F401
    except ImportError as exc:
        return f"the Spark engine needs the `spark` dependency group (uv sync --group spark): {exc}"
    java_home = os.environ.get("JAVA_HOME")
    if not (java_home and Path(java_home, "bin", "java").exists()) and shutil.which("java") is None:
        return "the Spark engine needs Java 17 or 21 (Debian: apt-get install openjdk-17-jre-headless)"
    return None


def dbt_executable() -> str:
    """The dbt of this environment for the selected engine (the wrapper below on Spark)."""
    name = "grpo-dbt-spark" if is_spark() else "dbt"
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name


# --- dbt Python models on Spark ------------------------------------------------------


def ref_as_pandas(relation):
    """A dbt Python model's ref as pandas: a DuckDB relation (`.df()`) or, on Spark, a DataFrame (`.toPandas()`)."""
    return relation.toPandas() if hasattr(relation, "toPandas") else relation.df()


def model_result(session, frame):
    """What a dbt Python model returns: DuckDB takes the pandas frame as it is, Spark the same typed table."""
    return spark_frame(session, frame) if hasattr(session, "createDataFrame") else frame


def spark_frame(session, frame):
    """A typed pandas frame (pipelines/ratings) as a Spark DataFrame with the same column types.

    Spark cannot infer a schema from an empty frame, and would keep NaN where
    DuckDB reads a pandas float NaN as NULL; an explicit schema and None for
    missing values give both engines the same table.
    """
    import pandas as pd
    from pyspark.sql import types as T

    def spark_type(dtype) -> T.DataType:
        if pd.api.types.is_bool_dtype(dtype):
            return T.BooleanType()
        if pd.api.types.is_integer_dtype(dtype):
            return T.LongType()
        if pd.api.types.is_float_dtype(dtype):
            return T.DoubleType()
        return T.StringType()

    schema = T.StructType([T.StructField(str(c), spark_type(t), True) for c, t in frame.dtypes.items()])
    rows = [
        tuple(None if pd.isna(v) else (v.item() if hasattr(v, "item") else v) for v in rec)
        for rec in frame.itertuples(index=False, name=None)
    ]
    return session.createDataFrame(rows, schema=schema)


# --- the dbt wrapper for Spark ----------------------------------------------------


def _install_session_python_models() -> None:
    """Let dbt-spark run dbt Python models on the in-process SparkSession."""
    from dbt.adapters.base import PythonJobHelper
    from dbt.adapters.spark.impl import SparkAdapter

    class SessionPythonJobHelper(PythonJobHelper):
        def __init__(self, parsed_model: dict, credentials) -> None:
            self.name = parsed_model.get("alias") or parsed_model.get("name") or "python_model"

        def submit(self, compiled_code: str):
            from pyspark.sql import SparkSession

            spark = SparkSession.builder.getOrCreate()  # the session dbt-spark's `session` method made
            exec(
                compile(compiled_code, f"<dbt python model {self.name}>", "exec"),
                {"spark": spark, "__name__": "__dbt__"},
            )
            return None

    helpers = dict(SparkAdapter.python_submission_helpers.fget(None))  # type: ignore[union-attr]
    helpers["session"] = SessionPythonJobHelper
    SparkAdapter.python_submission_helpers = property(lambda self: helpers)  # type: ignore[assignment]
    SparkAdapter.default_python_submission_method = property(lambda self: "session")  # type: ignore[assignment]


def _use_remote_spark() -> None:
    """With `SPARK_REMOTE` set, let dbt-spark's `session` method be a Spark Connect client.

    pyspark then returns a Connect session for the builder dbt-spark uses, but
    refuses a master next to it (CANNOT_CONFIGURE_SPARK_CONNECT_MASTER), and a
    client cannot change the server's own settings (master, driver, warehouse
    folder, metastore, UI: the server took them from the same profile). So only
    the profile's SQL settings go to the client's session, as before.
    """
    from dbt.adapters.spark import session

    original = session.Cursor.__init__

    def init(self, *, server_side_parameters=None) -> None:
        kept = {
            k: v
            for k, v in (server_side_parameters or {}).items()
            if k.startswith("spark.sql.") and k not in SERVER_ONLY_SQL_SETTINGS
        }
        original(self, server_side_parameters=kept)

    session.Cursor.__init__ = init  # type: ignore[method-assign]


def _describe_relations(spark, schema: str) -> dict[str, dict]:
    """Every table and view of `schema`: its parquet folder (tables) and table comment."""
    out: dict[str, dict] = {}
    for row in spark.sql(f"show tables in {schema}").collect():
        if row.isTemporary:
            continue
        name = row.tableName
        info = {r.col_name: r.data_type for r in spark.sql(f"describe table extended {schema}.{name}").collect()}
        out[name] = {
            "type": "view" if (info.get("Type") or "").upper() == "VIEW" else "table",
            "location": info.get("Location"),
            "comment": info.get("Comment"),
        }
    return out


def _write_relations(spark, warehouse_root: Path) -> None:
    """Record the built relations for publishing; views that are published get their rows written."""
    from pipelines.publish import SKIPPED_RELATIONS

    build = spark_build_dir(warehouse_root)
    relations = _describe_relations(spark, SPARK_SCHEMA)
    views_dir = build / "views"
    for name, rel in relations.items():
        if rel["type"] != "view" or name in SKIPPED_RELATIONS:
            continue
        folder = views_dir / name
        spark.table(f"{SPARK_SCHEMA}.{name}").write.mode("overwrite").parquet(str(folder))
        rel["location"] = str(folder)
    tmp = build / f".{RELATIONS_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(relations, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, build / RELATIONS_FILE)


def main() -> None:
    """`dbt` on the Spark engine (see the module docstring)."""
    from dbt.cli.main import dbtRunner

    from pipelines.settings import warehouse_root

    _install_session_python_models()
    if os.environ.get("SPARK_REMOTE"):
        _use_remote_spark()
    spark_build_dir(warehouse_root()).mkdir(parents=True, exist_ok=True)  # Derby's log and metastore
    args = sys.argv[1:]
    result = dbtRunner().invoke(args)
    # also after a failed test or model: publishing then reads what did build
    if args and args[0] in ("build", "run"):
        from pyspark.sql import SparkSession

        # the session dbt-spark made in its worker threads (not "active" in this one); with
        # SPARK_REMOTE set, the Spark Connect client session they shared (pipelines/spark_server.py)
        spark = SparkSession._instantiatedSession
        if spark is None and os.environ.get("SPARK_REMOTE"):
            spark = SparkSession.builder.getOrCreate()
        if spark is not None:
            _write_relations(spark, warehouse_root())
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        print(result.exception, file=sys.stderr)
    sys.exit(0 if result.success else (1 if result.exception is None else 2))

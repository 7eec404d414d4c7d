"""One Spark for many builds: a local Spark Connect server for the Spark engine.

    GRPO_WAREHOUSE=... grpo-spark-server [--port 15002]
    SPARK_REMOTE=sc://127.0.0.1:15002 GRPO_ENGINE=spark grpo ingest

Without a server, every dbt call on `GRPO_ENGINE=spark` starts its own JVM and
local SparkSession (dbt-spark's `session` method), pays the JVM's start and
runs its first queries on a cold JIT. With this server running and
`SPARK_REMOTE` set, pyspark's `SparkSession.builder` returns a Spark Connect
client instead, so dbt-spark's `session` method, the dbt Python models and the
relation listing of `grpo-dbt-spark` all run on this one warm Spark: the way a
schedule that syncs every few minutes, or a test suite, should use it. The
client code is the same a Spark Connect server on a cluster would get.

The server takes the settings of the `spark` target in profiles.yml for the
warehouse in `$GRPO_WAREHOUSE` (master, warehouse folder, Hive metastore,
driver memory: settings a Connect client cannot change); the SQL settings
(time zone, string literals, shuffle partitions) are set again by each client
session from the same profile. It serves one warehouse: start one per
warehouse.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import sys
import threading
from pathlib import Path

from pipelines.settings import PROJECT_ROOT

CONNECT_PLUGIN = "org.apache.spark.sql.connect.SparkConnectPlugin"
DEFAULT_PORT = 15002
READY = "spark connect server ready on"


def spark_profile_parameters(project_dir: Path = PROJECT_ROOT) -> dict[str, str]:
    """The `server_side_parameters` of profiles.yml's `spark` target, rendered for this environment.

    Rendered as dbt renders a profile: each value is a Jinja template with `env_var`.
    """
    import jinja2
    import yaml

    def env_var(name: str, default: str | None = None) -> str:
        if name in os.environ:
            return os.environ[name]
        if default is None:
            raise KeyError(f"profiles.yml: env_var({name!r}) is not set and has no default")
        return default

    profile = yaml.safe_load((project_dir / "profiles.yml").read_text(encoding="utf-8"))
    output = profile["grpo_warehouse"]["outputs"]["spark"]
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    return {
        str(key): env.from_string(str(value)).render(env_var=env_var)
        for key, value in (output.get("server_side_parameters") or {}).items()
    }


def start(port: int = DEFAULT_PORT, host: str = "127.0.0.1"):
    """Start the local Spark (with the Connect plugin) in this process; returns the SparkSession."""
    # this process is the server: a SPARK_REMOTE of the caller's would make it a client of itself
    os.environ.pop("SPARK_REMOTE", None)
    from pyspark.sql import SparkSession

    from pipelines.engine import spark_build_dir
    from pipelines.settings import warehouse_root

    spark_build_dir(warehouse_root()).mkdir(parents=True, exist_ok=True)  # Derby's log and metastore
    builder = SparkSession.builder.enableHiveSupport()
    for key, value in spark_profile_parameters().items():
        builder = builder.config(key, value)
    builder = (
        builder.config("spark.plugins", CONNECT_PLUGIN)
        .config("spark.connect.grpc.binding.address", host)
        .config("spark.connect.grpc.binding.port", str(port))
    )
    return builder.getOrCreate()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="grpo-spark-server", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to serve on (default {DEFAULT_PORT})")
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    a = ap.parse_args(argv)
    from pipelines.engine import spark_unavailable_reason

    if (reason := spark_unavailable_reason()) is not None:
        print(reason, file=sys.stderr)
        return 2
    spark = start(a.port, a.host)
    print(f"{READY} sc://{a.host}:{a.port} (Spark {spark.version}); stop with Ctrl-C", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

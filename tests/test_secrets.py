"""WANDB_API_KEY and AXIOM_TOKEN never show up in output, files or Dagster's records.

Every scenario runs the real `grpo` CLI in a subprocess with distinctive
marker values for both secrets, against the loopback fakes of W&B and Axiom
(tests/fakes) or an unreachable port, with HOME, TMPDIR, the wandb dirs and
DAGSTER_HOME (so runs and their event logs are stored) inside the test's
temporary folder. Afterwards every byte the commands printed and every file
under those folders is searched for the markers, for any 12-character piece
of them (a secret cut short by a truncated message is still a leak) and for
the base64 form W&B's basic auth sends. Parquet, DuckDB and gzip files are
decoded before they are searched, since their text is compressed on disk.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from fakes import Response
from fakes.axiom_server import FakeAxiomServer
from fakes.wandb_server import FakeRun, FakeWandbServer, make_rows

GRPO = str(Path(sys.executable).with_name("grpo"))
# Distinctive values: any 12-character piece of them is unlike anything else the tools print.
WANDB_KEY = "local-" + "5ecreTwandbKEY" + "9f2c4e71a0d8b3c6e5f4a7d2b1c09e8f7a6d5c4b"
AXIOM_TOKEN = "xaat-" + "5ecreTaxiomTOK" + "3b7e9d1c5a2f8e4d6c0b9a7e5d3c1f8b"
PIECE = 12
PROJECT = "ent/grpo-secret-proj"
DATASET = "grpo-secret-events"
RUN_NAME = "secret-test-run"


# --- looking for the secrets ---------------------------------------------------------


def needles() -> dict[str, str]:
    """What counts as a leak: each secret, every 12-character piece of it, its basic-auth form."""
    found: dict[str, str] = {}
    for name, secret in (("WANDB_API_KEY", WANDB_KEY), ("AXIOM_TOKEN", AXIOM_TOKEN)):
        for i in range(len(secret) - PIECE + 1):
            found[secret[i : i + PIECE]] = f"{name}[{i}:{i + PIECE}]"
    basic = base64.b64encode(f"api:{WANDB_KEY}".encode()).decode()
    found[basic[4:40]] = "WANDB_API_KEY as basic auth"
    found[base64.b64encode(AXIOM_TOKEN.encode()).decode()[:32]] = "AXIOM_TOKEN in base64"
    return found


NEEDLES = needles()


def leaks_in(text: str) -> list[str]:
    return sorted({what for needle, what in NEEDLES.items() if needle in text})


def decoded_texts(path: Path) -> Iterator[str]:
    """The file's bytes as text, plus its decoded content when it is parquet, DuckDB, gzip or SQLite."""
    raw = path.read_bytes()
    yield raw.decode("utf-8", "replace")
    yield raw.decode("latin-1")
    if raw[:4] == b"PAR1":
        yield str(pq.read_table(path).to_pylist())
    elif raw[:2] == b"\x1f\x8b":
        yield gzip.decompress(raw).decode("utf-8", "replace")
    elif raw[8:12] == b"DUCK":
        con = duckdb.connect(str(path), read_only=True)
        try:
            tables = con.execute(
                "select table_schema, table_name from information_schema.tables where table_type = 'BASE TABLE'"
            ).fetchall()
            for schema, table in tables:
                yield str(con.execute(f'select * from "{schema}"."{table}"').fetchall())
        finally:
            con.close()
    elif raw[:16] == b"SQLite format 3\x00":
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            for (table,) in con.execute("select name from sqlite_master where type = 'table'"):
                yield str(con.execute(f'select * from "{table}"').fetchall())
        finally:
            con.close()


def scan(*roots: Path) -> dict[str, list[str]]:
    """File -> the leaks in it, over every file under `roots`."""
    hits: dict[str, list[str]] = {}
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
            found = sorted({leak for text in decoded_texts(path) for leak in leaks_in(text)})
            if found:
                hits[str(path)] = found
    return hits


def files_under(*roots: Path) -> list[Path]:
    return [p for root in roots for p in root.rglob("*") if p.is_file()]


# --- running the CLI like a user ---------------------------------------------------------


@dataclass
class Sandbox:
    """Everything a grpo run may write to: warehouse, DAGSTER_HOME, HOME, TMPDIR."""

    root: Path

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    def env(self, wandb_url: str, axiom_url: str) -> dict[str, str]:
        for d in (self.dagster_home, self.home, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        venv_bin = str(Path(sys.executable).parent)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "AXIOM_", "GRPO_"))}
        env.update(
            PATH=venv_bin + os.pathsep + os.environ.get("PATH", ""),
            HOME=str(self.home),
            TMPDIR=str(self.tmp),
            XDG_CACHE_HOME=str(self.home / ".cache"),
            XDG_CONFIG_HOME=str(self.home / ".config"),
            DAGSTER_HOME=str(self.dagster_home),
            DAGSTER_DISABLE_TELEMETRY="1",
            DBT_SEND_ANONYMOUS_USAGE_STATS="false",
            WANDB_API_KEY=WANDB_KEY,
            AXIOM_TOKEN=AXIOM_TOKEN,
            WANDB_BASE_URL=wandb_url,
            AXIOM_URL=axiom_url,
            WANDB_SILENT="true",
            WANDB_DIR=str(self.home / "wandb"),
            WANDB_CONFIG_DIR=str(self.home / "wandb-config"),
            WANDB_CACHE_DIR=str(self.home / "wandb-cache"),
            WANDB_DATA_DIR=str(self.home / "wandb-data"),
            COLUMNS="200",
        )
        return env


@dataclass
class Ran:
    args: tuple[str, ...]
    code: int
    out: str
    err: str


def grpo(box: Sandbox, env: dict[str, str], *args: str, timeout: float = 600) -> Ran:
    proc = subprocess.run(
        [GRPO, "--warehouse", str(box.warehouse), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=box.tmp,  # anything written to the working directory is scanned too
        timeout=timeout,
    )
    return Ran(args, proc.returncode, proc.stdout, proc.stderr)


def find_leaks(box: Sandbox, runs: list[Ran]) -> dict[str, list[str]]:
    """Where (a command's output, a file) any piece of a secret appears."""
    printed = {
        f"grpo {' '.join(r.args)} ({stream})": leaks_in(text)
        for r in runs
        for stream, text in (("stdout", r.out), ("stderr", r.err))
    }
    return {k: v for k, v in printed.items() if v} | scan(box.root)


# A secret cut short by _short() used to escape scrub() (the live sources shortened a
# server's message before scrubbing it); the echoing servers below pin that down. They also
# pin down wandb-core's own log, which records the bodies of responses it retries: a sync
# keeps that log in a private temporary folder and deletes it when the listing ends.


def assert_no_leaks(box: Sandbox, runs: list[Ran]) -> None:
    leaks = find_leaks(box, runs)
    assert not leaks, f"secrets printed or stored: {leaks}"


def summarize(runs: list[Ran]) -> str:
    return "\n".join(f"$ grpo {' '.join(r.args)} -> {r.code}\n{r.out[-1500:]}{r.err[-1500:]}" for r in runs)


def assert_dagster_recorded_the_run(box: Sandbox, *texts: str) -> None:
    """The scan is only meaningful if Dagster really stored the run: its records name the sources."""
    stored = files_under(box.dagster_home)
    assert any(p.suffix == ".db" for p in stored), f"no Dagster storage under {box.dagster_home}"
    content = "".join(t for p in stored for t in decoded_texts(p))
    assert "build_warehouse" in content
    for text in texts:
        assert text in content, f"Dagster's records do not mention {text!r}"


def ingest_args() -> tuple[str, ...]:
    return ("ingest", "--wandb-project", PROJECT, "--axiom-dataset", DATASET, "--since", "2020-01-01T00:00:00Z")


# --- servers ---------------------------------------------------------------------------

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def fill(wandb: FakeWandbServer, axiom: FakeAxiomServer) -> None:
    entity, project = PROJECT.split("/")
    rows = make_rows(60, t0=(NOW - dt.timedelta(hours=2)).timestamp())
    for row in rows:
        row["elo/base_model"] = 1000.0 - row["_step"]
        row["train/kl"] = 0.01
    wandb.add_run(
        project, FakeRun("secretrun1", display_name=RUN_NAME, group="secret-sweep", config={"lr": 1e-4}, history=rows)
    )
    events = []
    for i in range(30):
        t = NOW - dt.timedelta(minutes=2 * i + 1)
        events.append(
            {
                "_time": t,
                "event": "rollout",
                "run_id": "secretrun1",
                "rollout_id": f"r{i}",
                "duration_s": 3.5,
                "status": "ok",
            }
        )
        events.append({"_time": t, "event": "heartbeat", "component": "rollout-worker", "host": "h1", "status": "ok"})
    events.append({"_time": NOW - dt.timedelta(minutes=3), "level": "error", "run_id": "secretrun1", "component": "reward",
                   "error_type": "ValueError", "message": "bad order"})  # fmt: skip
    events.append({"_time": NOW - dt.timedelta(minutes=4), "event": "extraction", "run_id": "secretrun1",
                   "orders_expected": 10, "orders_extracted": 9})  # fmt: skip
    axiom.add_events(DATASET, events)


def echo_text(secret: str, header: str) -> str:
    """A hostile error body: the secret back to back, so wherever a message is cut short, it cuts one."""
    return f"invalid credential {secret * 12}; you sent: {header}"


class EchoingWandbServer(FakeWandbServer):
    """A W&B server that answers every GraphQL call with `status` and the caller's key in the body."""

    def __init__(self, status: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.status = status

    def handle(self, request):
        if request.path != "/graphql":
            return super().handle(request)
        auth = request.headers.get("authorization", "")
        try:
            key = base64.b64decode(auth.removeprefix("Basic ")).decode().partition(":")[2]
        except ValueError:
            key = auth
        body = json.dumps({"errors": [{"message": echo_text(key, auth)}]}).encode()
        return Response(self.status, body, {"Content-Type": "application/json"})


class EchoingAxiomServer(FakeAxiomServer):
    """An Axiom server that answers with `status` and the caller's token in the message."""

    def __init__(self, status: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.status = status

    def handle(self, request):
        auth = request.headers.get("authorization", "")
        body = json.dumps({"code": self.status, "message": echo_text(auth.removeprefix("Bearer "), auth)}).encode()
        return Response(self.status, body, {"Content-Type": "application/json"})


def free_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the scanner itself ------------------------------------------------------------------------


def test_the_scanner_finds_a_secret_in_text_parquet_duckdb_gzip_and_sqlite(tmp_path: Path) -> None:
    import pyarrow as pa

    piece = WANDB_KEY[20:40]  # a fragment is a leak too
    (tmp_path / "plain.log").write_text(f"error: {AXIOM_TOKEN}")
    pq.write_table(pa.table({"x": [f"cfg {piece} end"] * 1000}), tmp_path / "data.parquet", compression="zstd")
    (tmp_path / "log.gz").write_bytes(
        gzip.compress(f"Basic {base64.b64encode(f'api:{WANDB_KEY}'.encode()).decode()}".encode())
    )
    con = duckdb.connect(str(tmp_path / "db.duckdb"))
    con.execute("create table t as select 'x' || ? || 'y' as v from range(5000)", [AXIOM_TOKEN[3:30]])
    con.close()
    lite = sqlite3.connect(tmp_path / "runs.db")
    lite.execute("create table r (body text)")
    lite.execute("insert into r values (?)", [json.dumps({"env": WANDB_KEY})])
    lite.commit()
    lite.close()

    hits = scan(tmp_path)

    assert set(hits) == {str(tmp_path / n) for n in ("plain.log", "data.parquet", "log.gz", "db.duckdb", "runs.db")}
    assert "WANDB_API_KEY as basic auth" in hits[str(tmp_path / "log.gz")]


# --- syncs and commands --------------------------------------------------------------------


# Every command once, text or JSON, plus SQL that would print the environment if it could.
QUERY_COMMANDS: list[tuple[str, ...]] = [
    ("elo", RUN_NAME),
    ("sweep", "--sweep", "secret-sweep", "--json"),
    ("metrics", "-r", RUN_NAME, "--all-metrics"),
    ("rollout-timing", "--last", "6h", "--json"),
    ("errors", "--last", "6h"),
    ("extraction-stats", "--last", "6h", "--json"),
    ("health", "--last", "1h"),
    ("check", "--all"),
    ("sql", "select * from dim_runs", "--json"),
    ("sql", "select * from duckdb_settings()", "--csv"),
    ("sql", "select * from read_text('/proc/self/environ')"),  # refused: outside the warehouse
    ("sql", "select getenv('WANDB_API_KEY') as k"),
    ("tracker", "--out", "tracker.md", "--json"),
    ("elo", "no-such-run"),
]


@pytest.mark.slow  # one full build plus every command: about 100 s
def test_a_sync_from_both_apis_and_every_command_after_it_keep_the_secrets_out(tmp_path: Path) -> None:
    wandb = FakeWandbServer(api_key=WANDB_KEY, entity=PROJECT.split("/")[0]).start()
    axiom = FakeAxiomServer(token=AXIOM_TOKEN).start()
    try:
        fill(wandb, axiom)
        box = Sandbox(tmp_path)
        env = box.env(wandb.url, axiom.url)
        ran = [grpo(box, env, *ingest_args(), "--json")]
        summary = json.loads(ran[0].out)
        assert ran[0].code == 0 and summary["success"], ran[0].out + ran[0].err
        assert (summary["new_runs"], summary["new_events"]) == (1, 62)
        for args in QUERY_COMMANDS:
            ran.append(grpo(box, env, *args))
            assert ran[-1].code in (0, 1, 2), f"grpo {args} crashed:\n{ran[-1].err[-2000:]}"
        assert {r.args[0] for r in ran if r.code == 0} >= {
            "ingest",
            "elo",
            "sweep",
            "metrics",
            "errors",
            "health",
            "sql",
            "tracker",
        }
    finally:
        wandb.stop()
        axiom.stop()
    assert_dagster_recorded_the_run(box, PROJECT, DATASET)
    assert_no_leaks(box, ran)


def test_servers_that_echo_the_secrets_in_401_errors_get_a_clear_refusal_and_no_leak(tmp_path: Path) -> None:
    wandb = EchoingWandbServer(401, api_key=WANDB_KEY).start()
    axiom = EchoingAxiomServer(401, token=AXIOM_TOKEN).start()
    try:
        box = Sandbox(tmp_path)
        env = box.env(wandb.url, axiom.url)
        ran = [grpo(box, env, *ingest_args(), "--json"), grpo(box, env, *ingest_args())]
        assert wandb.requests(path="/graphql") and axiom.requests(), "the fakes were never asked:\n" + summarize(ran)
    finally:
        wandb.stop()
        axiom.stop()
    summary = json.loads(ran[0].out)
    assert ran[0].code == 2 and not summary["success"], summarize(ran)
    errors = summary["errors"]
    assert len(errors) == 2, errors
    assert any("wandb-api" in e and "credentials" in e for e in errors), errors
    assert any("axiom-api" in e and "rejected AXIOM_TOKEN (HTTP 401" in e for e in errors), errors
    assert ran[1].code == 2 and "The build failed" in ran[1].out
    ran += [grpo(box, env, "elo", RUN_NAME), grpo(box, env, "check", "--json")]  # nothing was published
    assert [r.code for r in ran[2:]] == [2, 2]
    assert_dagster_recorded_the_run(box, PROJECT, DATASET)
    assert_no_leaks(box, ran)


@pytest.mark.slow
@pytest.mark.parametrize(
    "failure",
    ["echoing 500s", "500s", "malformed answers", "unreachable port"],
)
def test_every_failing_sync_path_keeps_the_secrets_out(tmp_path: Path, failure: str) -> None:
    servers: list = []
    if failure == "echoing 500s":
        servers = [
            EchoingWandbServer(500, api_key=WANDB_KEY).start(),
            EchoingAxiomServer(500, token=AXIOM_TOKEN).start(),
        ]
    elif failure in ("500s", "malformed answers"):
        servers = [FakeWandbServer(api_key=WANDB_KEY, entity="ent").start(), FakeAxiomServer(token=AXIOM_TOKEN).start()]
        fill(*servers)
        kind = "status" if failure == "500s" else "malformed"
        for s in servers:
            s.inject(kind, times=10_000, status=500)
    urls = [s.url for s in servers] or [f"http://127.0.0.1:{free_port()}"] * 2
    box = Sandbox(tmp_path)
    env = box.env(*urls)
    try:
        ran = [grpo(box, env, *ingest_args(), "--json", timeout=900)]
    finally:
        for s in servers:
            s.stop()
    summary = json.loads(ran[0].out)
    assert ran[0].code == 2 and not summary["success"], ran[0].out + ran[0].err
    assert len(summary["errors"]) == 2 and all("wandb-api" in e or "axiom-api" in e for e in summary["errors"]), (
        summary["errors"]
    )
    assert_dagster_recorded_the_run(box, PROJECT, DATASET)
    assert_no_leaks(box, ran)


@pytest.mark.slow
def test_grpo_demo_with_secrets_in_the_environment_keeps_them_out(tmp_path: Path) -> None:
    box = Sandbox(tmp_path)
    env = box.env("http://127.0.0.1:9", "http://127.0.0.1:9")
    ran = [grpo(box, env, "demo", "--json", timeout=1200)]
    assert ran[0].code == 0, ran[0].err[-3000:]
    assert_dagster_recorded_the_run(box)
    assert_no_leaks(box, ran)

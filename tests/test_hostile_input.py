"""Hostile names, keys, values, queries and windows are data or refusals, never code or crashes.

Run names, metric keys and config values with quotes, semicolons, `..` and
`/`, unicode, newlines, Rich markup and 100 KB strings are written into real
`.wandb` files by the real `wandb` library (offline); events carry SQL-ish
payloads. Everything is ingested by the real `grpo ingest` (a subprocess,
as a user runs it) into a warehouse whose path holds spaces and shell
characters, then queried through the real CLI (click's runner, in-process,
so a hundred invocations stay fast; spot checks run the installed `grpo`).
`grpo sql` must refuse every write, every file outside the warehouse and
every setting change with exit code 2, creating no file and changing no byte
of the warehouse.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from wandb.proto.wandb_internal_pb2 import Record
from wandb_fixtures import record_spans, write_log, write_runs

from pipelines.cli.app import main
from tests.clock import DEMO_END, DEMO_END_ISO

GRPO = str(Path(sys.executable).with_name("grpo"))
BIG = "B" * 100_000
SWEEP = "grp'; select 1; --"
MARKUP_NAME = "[/] [bold red]markup[/bold red] [/x]"
RUN_NAMES = [
    "'); drop table dim_runs; --",
    "quote \"double\" and 'single'",
    "../../etc/passwd",
    "line1\nline2",
    "Ωμέγα 🚀 ü \u202eRTL",
    MARKUP_NAME,
    "%s %d {0} $(whoami) `id` ${HOME} \\x00",
    "semi;colon; " + "N" * 100_000,  # a 100 KB run name
]
METRIC_KEYS = ["x'; drop--", 'a"b', "../../k", "ключ", "new\nline", "[/]"]
CONFIG = {"q'uote": "'); drop table x; --", "a.b/../c": BIG, "uni": "ключ", "nl": "a\nb", "semi;": ";"}
EVENT_RUN = "'); drop table x; --"
ERROR_COMPONENT = "[/] comp'; --"
ERROR_TYPE = 'Type"Err'
ERROR_MESSAGE = "'); drop table stg_axiom__events; -- " + "M" * 100_000
HEARTBEAT_COMPONENT = "[bold]c[/x]\n2"
DOTDOT_RUN_ID = "../../etc"
# Resolved against any folder of the warehouse, this leaves it and lands in /tmp.
ESCAPE_NAME = f"grpo-escape-{secrets.token_hex(6)}"
ESCAPE_RUN_ID = "../" * 12 + "tmp/" + ESCAPE_NAME


# --- building the hostile warehouse -------------------------------------------------------


def run_specs(project: Path) -> list[dict[str, Any]]:
    specs = []
    for i, name in enumerate(RUN_NAMES):
        steps = []
        for s in range(6):
            data: dict[str, Any] = {key: float(s * (k + 1)) for k, key in enumerate(METRIC_KEYS)}
            data["elo/base_model"] = 1000.0 - s
            data["long_text"] = BIG if s == 1 else "x"
            steps.append({"step": s, "data": data})
        specs.append(
            {
                "dir": str(project),
                "init": {
                    "project": "hostile",
                    "name": name,
                    "group": SWEEP,
                    "config": {**CONFIG, "lr": (i + 1) * 1e-4},
                },
                "steps": steps,
                "exit_code": 0,
            }
        )
    return specs


def forge_run(template: Path, wandb_dir: Path, run_id: str, name: str) -> None:
    """A copy of a real log whose run id (which wandb itself refuses) is `run_id`."""
    payloads = []
    for span in record_spans(template.read_bytes()):
        record = Record.FromString(span.payload)
        if record.WhichOneof("record_type") == "run":
            record.run.run_id = run_id
            record.run.display_name = name
            record.run.run_group = "escape"
        if record.HasField("_info"):
            record._info.stream_id = run_id
        payloads.append(record.SerializeToString())
    tag = hashlib.sha256(run_id.encode()).hexdigest()[:8]
    folder = wandb_dir / f"offline-run-20260101_000000-{tag}"
    folder.mkdir(parents=True)
    write_log(folder / f"run-{tag}.wandb", payloads)


def event_lines(now: dt.datetime) -> list[str]:
    def at(minutes: float) -> str:
        return (now - dt.timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")

    lines = []
    for i in range(6):
        lines += [
            {"_time": at(10 + i), "event": "rollout", "run_id": EVENT_RUN, "rollout_id": f"r{i}'--", "duration_s": 4.0 + i,
             "status": "error" if i % 2 else "ok", "engine": "v'llm", "worker": "w;1"},
            {"_time": at(10 + i), "event": "rollout", "run_id": ESCAPE_RUN_ID, "rollout_id": f"e{i}", "duration_s": 2.0,
             "status": "ok"},
            {"_time": at(10 + i), "level": "error", "run_id": EVENT_RUN, "component": ERROR_COMPONENT,
             "error_type": ERROR_TYPE, "message": ERROR_MESSAGE},
            {"_time": at(10 + i), "event": "heartbeat", "component": HEARTBEAT_COMPONENT, "host": "../../etc",
             "status": "ok", "gpu_util": 0.5, "gpu_mem_gb": 3},
            {"_time": at(10 + i), "event": "extraction", "run_id": EVENT_RUN, "orders_expected": 10, "orders_extracted": 9},
            {"_time": at(10 + i), "event": "rollout'; drop table x; --", "'; drop": 1, 'a"b': 2, "../../x": 3,
             "run_id": DOTDOT_RUN_ID},
        ]  # fmt: skip
    return [json.dumps(line, ensure_ascii=False) for line in lines]


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under `root`."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@dataclass(frozen=True)
class Hostile:
    root: Path
    warehouse: Path
    summary: dict[str, Any]
    digest: dict[str, str]  # the warehouse right after the ingest
    outside: dict[str, str]  # everything under root but the warehouse, right after the ingest


def cli_env() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200"}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Hostile:
    root = tmp_path_factory.mktemp("hostile")
    project = root / "inputs" / "project"
    write_runs(run_specs(project), root / "inputs" / "work")
    wandb_dir = project / "wandb"
    template = sorted(wandb_dir.glob("offline-run-*/run-*.wandb"))[0]
    forge_run(template, wandb_dir, DOTDOT_RUN_ID, "dotdot-run")
    forge_run(template, wandb_dir, ESCAPE_RUN_ID, "escape-run")
    events = root / "inputs" / "events; rm -rf ~.ndjson"
    events.write_text("\n".join(event_lines(DEMO_END)) + "\n", encoding="utf-8")
    warehouse = root / "wh with spaces; $HOME `id` & ü"
    cwd = root / "cwd"
    cwd.mkdir()
    before_outside = tree_digest(root)
    proc = subprocess.run(
        [GRPO, "--warehouse", str(warehouse), "ingest", "--wandb-dir", str(project), "--events", str(events), "--json"],
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=cwd,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    outside = {k: v for k, v in tree_digest(root).items() if not k.startswith(warehouse.name + "/")}
    assert outside == before_outside, "the ingest wrote outside the warehouse"
    return Hostile(root, warehouse, summary, tree_digest(warehouse), outside)


def grpo(h: Hostile, *args: str) -> Result:
    """The real CLI, in-process."""
    return CliRunner().invoke(main, ["--warehouse", str(h.warehouse), *args], catch_exceptions=True)


def answer(h: Hostile, *args: str) -> Any:
    result = grpo(h, *args, "--json")
    assert result.exit_code == 0, f"{args}: {result.output[-2000:]} {result.exception!r}"
    return json.loads(result.output)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, so a relative path a command might write lands where we look."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def assert_untouched(h: Hostile, workdir: Path) -> None:
    assert tree_digest(h.warehouse) == h.digest, "the warehouse changed"
    assert list(workdir.iterdir()) == [], "a file appeared in the working directory"
    assert {k: v for k, v in tree_digest(h.root).items() if not k.startswith(h.warehouse.name + "/")} == h.outside
    assert not Path("/tmp", ESCAPE_NAME).exists()


# --- ingest ------------------------------------------------------------------------------------


def test_every_hostile_run_event_and_line_is_stored_as_data(hostile: Hostile) -> None:
    s = hostile.summary
    assert s["success"] is True, s["errors"]
    assert (s["runs"], s["events"], s["rejected"]) == (len(RUN_NAMES) + 2, 36, 0)
    assert s["history_rows"] == (len(RUN_NAMES) + 2) * 6 * (len(METRIC_KEYS) + 1)
    runs = answer(hostile, "sql", "select run_id, run_name, sweep_key from dim_runs order by run_name")
    assert sorted(r["run_name"] for r in runs) == sorted([*RUN_NAMES, "dotdot-run", "escape-run"])
    assert {r["run_id"] for r in runs} >= {DOTDOT_RUN_ID, ESCAPE_RUN_ID}
    assert {r["sweep_key"] for r in runs if r["run_name"] in RUN_NAMES} == {SWEEP}


def test_run_ids_that_climb_out_of_folders_never_become_paths(hostile: Hostile) -> None:
    assert not Path("/tmp", ESCAPE_NAME).exists()
    names = {p.name for p in hostile.warehouse.rglob("*")}
    assert not any("etc" in n or ESCAPE_NAME in n or ".." in n for n in names), sorted(names)
    raw_files = [p for p in (hostile.warehouse / "raw").rglob("*") if p.is_file()]
    assert all(
        p.name == "schema.parquet" or p.name.startswith("batch-") or p.parent.name == "_batches" for p in raw_files
    )


def test_a_warehouse_path_with_spaces_and_shell_characters_works(hostile: Hostile) -> None:
    assert " " in str(hostile.warehouse) and "$HOME" in str(hostile.warehouse)
    assert (hostile.warehouse / "grpo.duckdb").exists()
    proc = subprocess.run(
        [GRPO, "--warehouse", str(hostile.warehouse), "elo", RUN_NAMES[0], "--json"],
        capture_output=True, text=True, env=cli_env(), timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["run"] == RUN_NAMES[0]


# --- lookups by hostile names ----------------------------------------------------------------


@pytest.mark.parametrize("name", RUN_NAMES, ids=range(len(RUN_NAMES)))
def test_elo_and_metrics_find_a_run_by_its_hostile_name_in_json(hostile: Hostile, name: str, workdir: Path) -> None:
    elo = answer(hostile, "elo", name)
    assert elo["run"] == name
    metrics = answer(hostile, "metrics", "-r", name, "--all-metrics")
    assert metrics["run_id"] == elo["run_id"]
    by_key = {m["key"]: m for m in metrics["metrics"]}
    for k, key in enumerate(METRIC_KEYS):
        assert by_key[key]["count"] == 6 and by_key[key]["last"] == 5.0 * (k + 1), key
    assert_untouched(hostile, workdir)


@pytest.mark.parametrize("name", RUN_NAMES, ids=range(len(RUN_NAMES)))
def test_elo_prints_a_hostile_name_as_plain_text(hostile: Hostile, name: str) -> None:
    """Rich markup in a name ('[/x]') used to crash the text form with a MarkupError."""
    result = grpo(hostile, "elo", name)
    assert result.exit_code == 0, repr(result.exception)
    assert name.splitlines()[0][:10] in result.output


def test_metrics_prints_hostile_metric_keys_as_plain_text(hostile: Hostile) -> None:
    result = grpo(hostile, "metrics", "-r", RUN_NAMES[0], "--all-metrics")
    assert result.exit_code == 0, repr(result.exception)
    assert "x'; drop--" in result.output and "[/]" in result.output


def test_a_run_id_with_dot_dot_is_found_by_its_id(hostile: Hostile) -> None:
    assert answer(hostile, "elo", DOTDOT_RUN_ID)["run"] == "dotdot-run"
    assert answer(hostile, "elo", ESCAPE_RUN_ID)["run"] == "escape-run"


def test_a_sweep_with_a_hostile_name_ranks_all_its_runs(hostile: Hostile) -> None:
    ans = answer(hostile, "sweep", "--sweep", SWEEP)
    assert ans["sweep"] == SWEEP
    assert sorted(r["run"] for r in ans["runs"]) == sorted(RUN_NAMES)
    assert "lr" in ans["varying_config_keys"]


def test_the_sweep_table_prints_hostile_run_names_as_plain_text(hostile: Hostile) -> None:
    result = grpo(hostile, "sweep", "--sweep", SWEEP)
    assert result.exit_code == 0, repr(result.exception)
    assert MARKUP_NAME in result.output.replace("\n", "")


@pytest.mark.parametrize("text", ["'; drop table dim_runs; --", "_", "*", "\\", "\x00", "?", "$(id)", "~"])
def test_lookups_that_match_nothing_say_so_with_exit_code_2(hostile: Hostile, text: str, workdir: Path) -> None:
    for args in (("elo", text), ("sweep", "--sweep", text), ("metrics", "-r", text)):
        result = grpo(hostile, *args)
        assert result.exit_code == 2, (args, result.output, result.exception)
        assert "Error:" in result.output and "Traceback" not in result.output
    assert_untouched(hostile, workdir)


def test_events_with_sql_in_every_field_come_back_verbatim(hostile: Hostile) -> None:
    errors = answer(hostile, "errors", "--last", "2h", "--until", DEMO_END_ISO)
    (by_type,) = [t for t in errors["by_type"] if t["component"] == ERROR_COMPONENT]
    assert by_type["error_type"] == ERROR_TYPE and by_type["events"] == 6
    assert by_type["last_message"] == ERROR_MESSAGE
    timing = answer(hostile, "rollout-timing", "--last", "2h", "--until", DEMO_END_ISO)
    assert {r["run_id"] for r in timing["by_run"]} >= {EVENT_RUN, ESCAPE_RUN_ID}
    health = answer(hostile, "health", "--last", "2h", "--until", DEMO_END_ISO)
    (comp,) = [c for c in health["components"] if c["component"] == HEARTBEAT_COMPONENT]
    assert comp["host"] == "../../etc" and comp["heartbeats"] == 6
    stored = answer(hostile, "sql", "select count(*) as n from raw_axiom_events where record like '%drop%'")
    assert stored == [{"n": 24}]


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        (("errors", "--last", "2h", "--until", DEMO_END_ISO), ERROR_COMPONENT),
        (("health", "--last", "2h", "--until", DEMO_END_ISO), "[bold]c[/x]"),
    ],
)
def test_event_tables_print_hostile_components_as_plain_text(
    hostile: Hostile, command: tuple[str, ...], shown: str
) -> None:
    result = grpo(hostile, *command)
    assert result.exit_code == 0, repr(result.exception)
    assert shown in result.output


# --- grpo sql is read-only ------------------------------------------------------------------


def refused_statements(wh: Path, outside: Path) -> list[tuple[str, str]]:
    """(id, SQL) that must be refused. `outside` is a folder outside the warehouse."""
    return [
        ("insert", "insert into dim_runs select * from dim_runs"),
        ("update", "update dim_runs set run_name = 'x'"),
        ("delete", "delete from dim_runs"),
        ("create", "create table x as select 1 as a"),
        ("create_temp", "create temp table x as select 1 as a"),
        ("create_view", "create view v as select 1 as a"),
        ("create_macro", "create macro m(a) as a"),
        ("drop", "drop table dim_runs"),
        ("alter", "alter table dim_runs rename to x"),
        ("copy_to_outside", f"copy dim_runs to '{outside}/dump.csv'"),
        ("copy_to_raw", f"copy (select 1 as a) to '{wh}/raw/axiom_events/injected.parquet' (format parquet)"),
        ("copy_from", "copy dim_runs from '/etc/passwd'"),
        ("attach", f"attach '{outside}/x.duckdb' as x"),
        ("attach_memory", "attach ':memory:' as m"),
        ("detach", "detach grpo"),
        ("use", "use memory"),
        ("install", "install httpfs"),
        ("load", "load httpfs"),
        ("force_install", "force install sqlite from core"),
        ("pragma", "pragma enable_profiling"),
        ("pragma_threads", "pragma threads = 1"),
        ("set", "set enable_external_access = true"),
        ("set_dirs", "set allowed_directories = ['/']"),
        ("reset", "reset allowed_directories"),
        ("export", f"export database '{outside}/export'"),
        ("import", f"import database '{outside}/export'"),
        ("call", "call pragma_version()"),
        ("checkpoint", "checkpoint"),
        ("vacuum", "vacuum"),
        ("transaction", "begin transaction"),
        ("secret", "create secret s (type s3, key_id 'a', secret 'b')"),
        ("two_statements", "select 1; drop table dim_runs"),
        ("comment_then_drop", "select 1 -- harmless\n; drop table dim_runs"),
        ("explain_analyze_copy_outside", f"explain analyze copy (select 1 as a) to '{outside}/e.csv'"),
    ]


def unreadable_files(wh: Path) -> list[tuple[str, str]]:
    return [
        ("read_csv", "select * from read_csv('/etc/passwd')"),
        ("read_text", "select * from read_text('/etc/passwd')"),
        ("read_blob", "select * from read_blob('/etc/hostname')"),
        ("read_json", "select * from read_json('/etc/passwd')"),
        ("read_parquet", "select * from read_parquet('/etc/*.parquet')"),
        ("glob", "select * from glob('/etc/*')"),
        ("replacement_scan", "select * from '/etc/passwd'"),
        ("sniff_csv", "select * from sniff_csv('/etc/passwd')"),
        ("environ", "select * from read_text('/proc/self/environ')"),
        ("dot_dot", f"select * from read_text('{wh}/raw/../../../../../../../../etc/passwd')"),
        ("dot_dot_glob", f"select * from glob('{wh}/raw/../../*')"),
        ("sqlite_scan", "select * from sqlite_scan('/etc/x.db', 't')"),
        ("http", "select * from read_csv('http://127.0.0.1:9/x.csv')"),
        ("query_drop", "select * from query('drop table dim_runs')"),
    ]


@pytest.fixture
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("outside")


@pytest.mark.parametrize(
    "index",
    range(len(refused_statements(Path("w"), Path("o")))),
    ids=[i for i, _ in refused_statements(Path("w"), Path("o"))],
)
def test_grpo_sql_refuses_every_statement_that_writes_or_changes_settings(
    hostile: Hostile, index: int, workdir: Path, outside: Path
) -> None:
    _, sql = refused_statements(hostile.warehouse, outside)[index]
    result = grpo(hostile, "sql", sql)
    assert result.exit_code == 2, f"{sql!r} was not refused: {result.output[-500:]} {result.exception!r}"
    assert result.output.startswith("Error: ") and "Traceback" not in result.output
    assert any(w in result.output for w in ("read-only", "Permission Error", "cannot parse")), result.output
    assert list(outside.iterdir()) == []
    assert_untouched(hostile, workdir)


@pytest.mark.parametrize(
    "index", range(len(unreadable_files(Path("w")))), ids=[i for i, _ in unreadable_files(Path("w"))]
)
def test_grpo_sql_reads_no_file_outside_the_warehouse(hostile: Hostile, index: int, workdir: Path) -> None:
    _, sql = unreadable_files(hostile.warehouse)[index]
    result = grpo(hostile, "sql", sql, "--json")
    assert result.exit_code == 2, f"{sql!r} was answered: {result.output[:500]}"
    assert result.output.startswith("Error: ") and "root:" not in result.output
    assert_untouched(hostile, workdir)


def test_explain_analyze_cannot_write_into_the_raw_layer(hostile: Hostile, workdir: Path) -> None:
    """EXPLAIN ANALYZE runs its statement, and raw/ is readable (so writable) by DuckDB: it was a way in."""
    target = hostile.warehouse / "raw" / "axiom_events" / "injected.parquet"
    sql = f"explain analyze copy (select * from raw_axiom_events limit 0) to '{target}' (format parquet)"
    try:
        result = grpo(hostile, "sql", sql)
        assert not target.exists(), "grpo sql wrote a parquet file that the next build would read as events"
        assert result.exit_code == 2
    finally:
        target.unlink(missing_ok=True)
    assert_untouched(hostile, workdir)


def test_the_installed_grpo_refuses_a_write_with_exit_code_2(hostile: Hostile, tmp_path: Path) -> None:
    proc = subprocess.run(
        [GRPO, "--warehouse", str(hostile.warehouse), "sql", "drop table dim_runs"],
        capture_output=True, text=True, env=cli_env(), cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "grpo sql is read-only: DROP statements are refused" in proc.stderr
    assert_untouched(hostile, tmp_path)


def test_reading_the_warehouses_own_raw_files_is_allowed(hostile: Hostile) -> None:
    rows = answer(
        hostile, "sql", f"select count(*) as n from read_parquet('{hostile.warehouse}/raw/axiom_events/*.parquet')"
    )
    assert rows == [{"n": 36}]


# --- windows -----------------------------------------------------------------------------------

BAD_WINDOWS = [
    (("--last", "0h"), "must be positive"),
    (("--last", "-1h"), "cannot read duration"),
    (("--last", "1e3h"), "cannot read duration"),
    (("--last", "nan"), "cannot read duration"),
    (("--last", "3651d"), "longer than ten years"),
    (("--last", "99999999999999999999999h"), "longer than ten years"),
    (("--last", "0.0000001s"), "window is empty"),
    (("--since", "x"), "cannot read --since"),
    (("--since", "2026-01-02", "--until", "2026-01-01"), "window is empty"),
    (("--since", "2026-01-01T00:00", "--until", "2026-01-01T00:00"), "window is empty"),
    (("--since", "99999-01-01"), "cannot read --since"),
    (("--until", "99999-01-01"), "cannot read --until"),
    (("--since", "2026-01-01", "--last", "1h"), "either --last or --since"),
    (("--since", "'; drop table x; --"), "cannot read --since"),
    (("--since", "9999-12-31T23:00"), "window is empty"),
]
EDGE_WINDOWS = [
    ("--until", "0001-01-01T00:30", "--last", "1h"),
    ("--until", "9999-12-31T23:59:59-01:00"),
    ("--since", "0001-01-01T00:00+01:00"),
]


@pytest.mark.parametrize("command", ["errors", "rollout-timing", "extraction-stats", "health"])
@pytest.mark.parametrize(("window", "message"), BAD_WINDOWS, ids=[" ".join(w) for w, _ in BAD_WINDOWS])
def test_a_nonsense_window_is_a_usage_error_with_a_clear_message(
    hostile: Hostile, command: str, window: tuple[str, ...], message: str
) -> None:
    result = grpo(hostile, command, *window)
    assert result.exit_code == 2, (result.output, result.exception)
    assert message in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("window", EDGE_WINDOWS, ids=[" ".join(w) for w in EDGE_WINDOWS])
def test_a_window_at_the_ends_of_the_calendar_is_a_usage_error(hostile: Hostile, window: tuple[str, ...]) -> None:
    """These used to end in an OverflowError traceback (exit code 1)."""
    result = grpo(hostile, "errors", *window)
    assert result.exit_code == 2, repr(result.exception)
    assert "supported range of dates" in result.output and "Traceback" not in result.output


def test_a_window_ending_in_year_9999_is_answered(hostile: Hostile) -> None:
    ans = answer(hostile, "errors", "--since", "2000-01-01", "--until", "9999-12-31T23:59:59")
    assert ans["error_events"] == 6 and ans["until"].startswith("9999-12-31")


# --- a warehouse path with quotes ------------------------------------------------------------------


@pytest.mark.slow  # a second full ingest and build
def test_a_warehouse_path_with_quotes_builds_and_answers(hostile: Hostile) -> None:
    warehouse = hostile.root / 'wh "quoted" it\'s'
    events = hostile.root / "inputs" / "events; rm -rf ~.ndjson"
    proc = subprocess.run(
        [GRPO, "--warehouse", str(warehouse), "ingest", "--events", str(events), "--json"],
        capture_output=True, text=True, env=cli_env(), timeout=900,
    )  # fmt: skip
    try:
        assert proc.returncode == 0, json.loads(proc.stdout)["errors"]
        args = ["--warehouse", str(warehouse), "errors", "--last", "2h", "--until", DEMO_END_ISO, "--json"]
        assert CliRunner().invoke(main, args).exit_code == 0
    finally:
        shutil.rmtree(warehouse, ignore_errors=True)

"""Remote faults: the live syncs against loopback servers that misbehave, with the real clients.

Each case runs the same story twice on one pair of servers (W&B GraphQL + parquet
exports, Axiom APL): a first sync, then the servers grow (new steps of a running
run, a newly finished run, new events), then a second sync. The reference
warehouse syncs without faults; the other one meets a fault in its second sync:

* a transient fault (429 with Retry-After, a 5xx burst, a dropped connection, an
  answer cut mid-body, a timeout) is retried within the source's bound and the
  sync completes;
* a lasting fault (5xx without end, answers that stay unreadable) fails the sync
  with one line naming the source, within a bounded time, and commits nothing;
  once the fault clears the next sync resumes.

Either way the final raw tables equal the reference row for row (nothing lost,
nothing doubled), checked independently against the servers' own data, and one
more sync adds nothing.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from fakes import Request
from fakes.axiom_server import FakeAxiomServer
from fakes.wandb_server import FakeRun, FakeWandbServer, make_rows, numeric_points

from bench import crash
from pipelines.ingest.ingest_sources import ingest
from pipelines.ingest.report import IngestReport
from pipelines.raw.layer import Warehouse
from pipelines.raw.readers import totals
from pipelines.sources.axiom_api import AxiomEventSource
from pipelines.sources.errors import SourceError
from pipelines.sources.wandb_api import WandbApiRunSource

KEY = "local-" + "k" * 40
TOKEN = "xaat-" + "t" * 36
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
DATASET = "grpo-logs"
TIMEOUT_S = 2.0  # per request, both sources: the "slow" faults outlast it


def events(n: int, start_min: int) -> list[dict]:
    t0 = NOW - dt.timedelta(minutes=start_min)
    return [
        {
            "_time": (t0 + dt.timedelta(seconds=5 * i)).isoformat(),
            "event": "rollout",
            "run_id": "live1",
            "rollout_id": f"{start_min}-{i}",
            "duration_s": 20.0 + i % 11,
            "status": "ok",
        }
        for i in range(n)
    ]


@pytest.fixture
def servers(monkeypatch, tmp_path):
    wb = FakeWandbServer(api_key=KEY, entity="ent").start()
    ax = FakeAxiomServer(token=TOKEN).start()
    for name, value in {
        "WANDB_API_KEY": KEY,
        "WANDB_BASE_URL": wb.url,
        "WANDB_CACHE_DIR": str(tmp_path / "wandb-cache"),
        "WANDB_CONFIG_DIR": str(tmp_path / "wandb-config"),
        "AXIOM_TOKEN": TOKEN,
        "AXIOM_URL": ax.url,
    }.items():
        monkeypatch.setenv(name, value)
    wb.add_run("grpo", FakeRun("live1", state="running", history=make_rows(150), exported_rows=100))
    wb.add_run("grpo", FakeRun("done1", history=make_rows(120), exported_rows=120))
    ax.add_events(DATASET, events(400, start_min=120))
    yield wb, ax
    wb.stop()
    ax.stop()


def grow(wb: FakeWandbServer, ax: FakeAxiomServer) -> None:
    wb.run("grpo", "live1").append(make_rows(60, start=150))
    wb.add_run("grpo", FakeRun("done2", history=make_rows(90), exported_rows=90))
    ax.add_events(DATASET, events(300, start_min=60))


def sync(root: Path) -> IngestReport:
    return ingest(
        Warehouse(root),
        [WandbApiRunSource("ent/grpo", timeout_s=TIMEOUT_S, retries=2, page_size=40, per_page=2)],
        [
            AxiomEventSource(
                DATASET,
                since=NOW - dt.timedelta(hours=3),
                timeout_s=TIMEOUT_S,
                max_retries=2,
                backoff_s=0.05,
                max_backoff_s=0.5,
                page_size=250,
            )
        ],
    )


def graphql(op: str) -> Callable[[Request], bool]:
    return lambda r: r.op == op


def later_runs_page(r: Request) -> bool:
    return r.op == "Runs" and bool((r.json or {}).get("variables", {}).get("cursor"))


def parquet(r: Request) -> bool:
    return r.path.startswith("/parquet/") and r.method == "GET"


def apl(r: Request) -> bool:
    return r.path == "/v1/datasets/_apl"


@dataclass(frozen=True)
class Case:
    name: str
    server: str  # "wandb" or "axiom": which server misbehaves
    kind: str  # a tests.fakes Fault kind
    times: int
    match: Callable[[Request], bool]
    lasting: bool  # True: the sync must fail with one line, then resume once the fault clears
    names: str = ""  # what the one-line error must name
    status: int = 500
    retry_after: float | None = None
    delay: float = 0.0


CASES = [
    Case(
        "W&B listing: 429 with Retry-After, twice",
        "wandb",
        "status",
        2,
        graphql("Runs"),
        False,
        status=429,
        retry_after=1,
    ),
    Case("W&B listing: a 503 burst", "wandb", "status", 2, graphql("Runs"), False, status=503),
    Case("W&B live history: connection dropped", "wandb", "drop", 1, graphql("HistoryPage"), False),
    Case("W&B live history: answer cut mid-body", "wandb", "cut", 1, graphql("HistoryPage"), False),
    Case("W&B live history: timeout", "wandb", "slow", 1, graphql("HistoryPage"), False, delay=TIMEOUT_S + 3),
    Case("W&B parquet export: a 502 burst", "wandb", "status", 2, parquet, False, status=502),
    Case("W&B parquet export: download cut mid-body", "wandb", "cut", 1, parquet, False),
    Case("W&B: 500 without end", "wandb", "status", 10_000, graphql("HistoryPage"), True, "ent/grpo"),
    Case("W&B listing: unreadable answer", "wandb", "malformed", 1, graphql("Runs"), False),
    Case("W&B listing: second page cut mid-body", "wandb", "cut", 1, later_runs_page, False),
    Case("W&B listing: answers that stay unreadable", "wandb", "malformed", 10_000, graphql("Runs"), True, "ent/grpo"),
    Case("Axiom: 429 with Retry-After, twice", "axiom", "status", 2, apl, False, status=429, retry_after=0.3),
    Case("Axiom: a 503 burst", "axiom", "status", 2, apl, False, status=503),
    Case("Axiom: connection dropped", "axiom", "drop", 1, apl, False),
    Case("Axiom: answer cut mid-body", "axiom", "cut", 1, apl, False),
    Case("Axiom: timeout", "axiom", "slow", 1, apl, False, delay=TIMEOUT_S + 2),
    Case("Axiom: 503 without end", "axiom", "status", 10_000, apl, True, DATASET, status=503),
    Case("Axiom: answers that stay unreadable", "axiom", "malformed", 10_000, apl, True, DATASET),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_sync_rides_out_or_fails_clearly_on_a_remote_fault_then_resumes_with_nothing_lost_or_doubled(
    case: Case, servers, tmp_path
):
    wb, ax = servers
    ref, root = tmp_path / "reference", tmp_path / "faulty"
    sync(ref), sync(root)
    grow(wb, ax)
    sync(ref)

    target = wb if case.server == "wandb" else ax
    target.inject(
        case.kind, case.times, status=case.status, retry_after=case.retry_after, match=case.match, delay=case.delay
    )
    batches_before = [b["batch_id"] for b in Warehouse(root).committed_batches()]
    started = time.monotonic()
    failure: SourceError | None = None
    try:
        sync(root)
    except SourceError as exc:
        failure = exc
    elapsed = time.monotonic() - started
    served = target.faults_served[case.kind]
    print(f"\n{case.name}: {served} fault(s) served, {'failed' if failure else 'completed'} in {elapsed:.1f} s")
    assert served >= 1, "the fault never reached a request: the case tests nothing"

    if case.lasting:
        assert failure is not None, "a lasting fault must fail the sync"
        message = str(failure)
        assert "\n" not in message and case.names in message and len(message) < 600, message
        assert KEY not in message and TOKEN not in message
        assert elapsed < 60, f"gave up only after {elapsed:.0f} s"
        assert [b["batch_id"] for b in Warehouse(root).committed_batches()] == batches_before  # nothing committed
        target.clear_faults()
        sync(root)  # the fault is gone: the next sync resumes
    else:
        assert failure is None, f"a transient fault ({served} served) failed the sync: {failure}"

    assert crash.integrity_problems(root) == []
    assert crash.raw_differences(root, ref) == []
    history_rows = [r for run in ("live1", "done1", "done2") for r in wb.run("grpo", run).history]
    stored = totals(Warehouse(root))
    assert (stored["history_rows"], stored["events"]) == (numeric_points(history_rows), len(ax.datasets[DATASET]))
    again = sync(root)
    assert (again.new_history_rows, again.new_events, again.new_runs) == (0, 0, 0)

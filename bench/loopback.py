"""The loopback W&B and Axiom servers of tests/fakes, each in its own process, loaded with data.

    with loopback("axiom", {"token": ..., "datasets": {"grpo": "events.ndjson"}}) as url: ...
    with loopback("wandb", {"api_key": ..., "projects": {...}}) as url: ...

A server in its own process keeps its work (JSON encoding of every answer)
off the measured client's interpreter, as a real server is. The child prints
its URL once loaded and serves until its stdin closes.

Specs (JSON):
- axiom: `token`, `datasets` {name: NDJSON path of events with `_time`}, and
  `shuffle_ties` (default false here: the fake shuffles events that share a
  timestamp to test paging, at a cost of the whole remaining window per page,
  which no real server pays).
- wandb: `api_key`, `entity`, `projects` {name: [run]}; a run is FakeRun's
  fields plus either `history_jsonl` (a file of history rows, one JSON object
  per line) or `synthetic` {"steps": n, "metrics": m} (rows of m float metrics).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def loopback(kind: str, spec: dict[str, Any], *, timeout_s: float = 600) -> Iterator[str]:
    """Start the `kind` server in a child process loaded per `spec`; yields its base URL."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(spec, fh)
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.loopback", kind, fh.name],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = child.stdout.readline().strip() if child.stdout else ""
        if not line.startswith("http"):
            raise RuntimeError(f"the loopback {kind} server did not start (exit {child.poll()}): {line!r}")
        yield line
    finally:
        if child.stdin:
            child.stdin.close()
        try:
            child.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        Path(fh.name).unlink(missing_ok=True)


def synthetic_rows(steps: int, metrics: int, *, start: int = 0, t0: float = 1_704_067_200.0) -> list[dict[str, Any]]:
    """History rows of `metrics` float metrics per step, as a training loop logs them."""
    names = [f"m/{i:02d}" for i in range(metrics)]
    return [
        {
            "_step": s,
            "_timestamp": t0 + s * 1.5,
            "_runtime": s * 1.5,
            **{n: (s * 31 + i * 17) % 1000 / 1000.0 for i, n in enumerate(names)},
        }
        for s in range(start, start + steps)
    ]


def _serve(kind: str, spec: dict[str, Any]) -> None:
    sys.path.insert(0, str(REPO / "tests"))
    if kind == "axiom":
        from fakes.axiom_server import FakeAxiomServer

        server: Any = FakeAxiomServer(token=spec["token"], shuffle_ties=bool(spec.get("shuffle_ties", False)))
        for name, path in spec["datasets"].items():
            with open(path, encoding="utf-8") as fh:
                server.add_events(name, [json.loads(line) for line in fh if line.strip()])
    elif kind == "wandb":
        from fakes.wandb_server import FakeRun, FakeWandbServer

        server = FakeWandbServer(api_key=spec["api_key"], entity=spec.get("entity", "ent"))
        for project, runs in spec["projects"].items():
            for run in runs:
                run = dict(run)
                synthetic = run.pop("synthetic", None)
                history_file = run.pop("history_jsonl", None)
                if synthetic:
                    run["history"] = synthetic_rows(synthetic["steps"], synthetic["metrics"])
                elif history_file:
                    with open(history_file, encoding="utf-8") as fh:
                        run["history"] = [json.loads(line) for line in fh if line.strip()]
                server.add_run(project, FakeRun(**run))
                if run.get("exported_rows"):
                    server.export_bytes(project, run["run_id"], run["exported_rows"])
    else:
        raise SystemExit(f"unknown server kind {kind!r}")
    server.start()
    print(server.url, flush=True)
    sys.stdin.read()  # serve until the parent closes our stdin
    server.stop()


if __name__ == "__main__":
    _serve(sys.argv[1], json.loads(Path(sys.argv[2]).read_text()))

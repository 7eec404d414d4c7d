"""Live syncs against the loopback W&B and Axiom servers: events/s and points/s of a first sync.

    uv run python bench/live_sync.py [--events 300000] [--runs 8 --steps 5000 --metrics 40] [--out FILE]

Each server runs in its own process (bench/loopback.py), loaded with
synthetic data: Axiom events of three kinds with different fields (so the
tabular answers carry nulls, as real mixed datasets do), and W&B runs that
are all still running (their history comes only from live `HistoryPage`
pages, never a parquet export). This process first syncs a tiny dataset and
project (imports, wandb-core start), then times one `ingest` of each source
into an empty warehouse: the figure is what a team's first sync runs at,
raw batch written included. `client_cpu_s` is this process's CPU time
(threads included), the ceiling the client alone would allow; the servers
and wandb-core run in other processes on the same cores.

To measure older code the same way, put its `pipelines` first on the path:
`git archive <commit> pipelines dbt_project.yml macros seeds | tar -x -C DIR`,
then `PYTHONPATH=DIR uv run python bench/live_sync.py --out old.json`, and
pass `--before old.json` to the run of the current code. The machine's load average is recorded with
each figure; on a shared machine it decides much of the result.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))  # appended: PYTHONPATH can put another checkout's `pipelines` first

from bench.loopback import loopback  # noqa: E402

TOKEN = "xaat-" + "b" * 36
KEY = "local-" + "b" * 40
T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def write_events(path: Path, n: int, *, seed: int = 7) -> None:
    """n events over a day: rollouts, errors and heartbeats, each kind with its own fields."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            at = (T0 + dt.timedelta(microseconds=int(i * 86_400e6 / n))).isoformat().replace("+00:00", "Z")
            roll = rng.random()
            if roll < 0.8:
                event: dict[str, Any] = {
                    "event": "rollout",
                    "run_id": f"run-{i % 50:03d}",
                    "rollout_id": f"ro-{i:09d}",
                    "latency_s": round(rng.lognormvariate(-1, 0.5), 6),
                    "tokens": rng.randrange(50, 4000),
                    "engine": "vllm",
                    "extracted": rng.random() < 0.9,
                }
            elif roll < 0.9:
                event = {"event": "error", "component": "reward", "message": f"could not parse answer {i}"}
            else:
                event = {"event": "heartbeat", "component": rng.choice(["trainer", "sampler", "reward"])}
            fh.write(json.dumps({"_time": at, **event}) + "\n")


def timed_ingest(root: Path, run_sources: list, event_sources: list) -> tuple[Any, float, float, list[float]]:
    try:
        from pipelines.ingest.ingest_sources import ingest
    except ModuleNotFoundError:  # older code measured for comparison (`--before`)
        from pipelines.ingest.run import ingest
    from pipelines.raw.layer import Warehouse

    load = [round(x, 2) for x in os.getloadavg()]
    wall, cpu = time.perf_counter(), time.process_time()
    report = ingest(Warehouse(root), run_sources, event_sources)
    return report, time.perf_counter() - wall, time.process_time() - cpu, load


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5_000)
    ap.add_argument("--metrics", type=int, default=40)
    ap.add_argument("--axiom-page-size", type=int, default=None, help="AxiomEventSource page_size (its default)")
    ap.add_argument("--wandb-page-size", type=int, default=None, help="WandbApiRunSource page_size (its default)")
    ap.add_argument("--wandb-read-threads", type=int, default=None, help="WandbApiRunSource read_threads (its default)")
    ap.add_argument("--label", default="", help="a note stored with the figures (e.g. the code measured)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "live_sync.json")
    ap.add_argument(
        "--before", type=Path, help="a results file of the same measurement on older code, kept under `before`"
    )
    a = ap.parse_args(argv)

    from pipelines.sources.axiom_api import AxiomEventSource
    from pipelines.sources.wandb_api import WandbApiRunSource

    with tempfile.TemporaryDirectory(prefix="grpo-live-sync-") as tmp:
        work = Path(tmp)
        write_events(work / "events.ndjson", a.events)
        write_events(work / "warm.ndjson", 2_000, seed=8)
        axiom_spec = {
            "token": TOKEN,
            "datasets": {"live": str(work / "events.ndjson"), "warm": str(work / "warm.ndjson")},
        }
        runs = [
            {"run_id": f"live{i:02d}", "state": "running", "synthetic": {"steps": a.steps, "metrics": a.metrics}}
            for i in range(a.runs)
        ]
        warm = [{"run_id": "warm", "state": "running", "synthetic": {"steps": 200, "metrics": 5}}]
        wandb_spec = {"api_key": KEY, "entity": "ent", "projects": {"live": runs, "warm": warm}}
        with loopback("axiom", axiom_spec) as axiom_url, loopback("wandb", wandb_spec) as wandb_url:
            os.environ.update(
                AXIOM_TOKEN=TOKEN,
                AXIOM_URL=axiom_url,
                WANDB_API_KEY=KEY,
                WANDB_BASE_URL=wandb_url,
                WANDB_CACHE_DIR=str(work / "wandb-cache"),
                WANDB_CONFIG_DIR=str(work / "wandb-config"),
            )
            os.environ.pop("AXIOM_ORG_ID", None)
            until = T0 + dt.timedelta(days=2)
            axiom_kw = {"page_size": a.axiom_page_size} if a.axiom_page_size else {}
            wandb_kw: dict[str, Any] = {"page_size": a.wandb_page_size} if a.wandb_page_size else {}
            if a.wandb_read_threads:
                wandb_kw["read_threads"] = a.wandb_read_threads

            def axiom(dataset: str) -> AxiomEventSource:
                return AxiomEventSource(dataset, since=T0 - dt.timedelta(days=1), until=until, **axiom_kw)

            timed_ingest(work / "warm-axiom", [], [axiom("warm")])
            timed_ingest(work / "warm-wandb", [WandbApiRunSource("ent/warm", **wandb_kw)], [])
            ev, ev_s, ev_cpu, ev_load = timed_ingest(work / "axiom", [], [axiom("live")])
            wb, wb_s, wb_cpu, wb_load = timed_ingest(work / "wandb", [WandbApiRunSource("ent/live", **wandb_kw)], [])

    points = wb.new_history_rows + wb.new_history_other_rows
    assert ev.new_events == a.events, (ev.new_events, a.events)
    assert points == a.runs * a.steps * a.metrics, (points, a.runs * a.steps * a.metrics)
    result = {
        "label": a.label,
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "axiom": {
            "events": a.events,
            "seconds": round(ev_s, 3),
            "client_cpu_s": round(ev_cpu, 3),
            "events_per_s": round(a.events / ev_s),
            "loadavg_before": ev_load,
            "page_size": a.axiom_page_size or "default",
        },
        "wandb": {
            "runs": a.runs,
            "points": points,
            "seconds": round(wb_s, 3),
            "client_cpu_s": round(wb_cpu, 3),
            "points_per_s": round(points / wb_s),
            "loadavg_before": wb_load,
            "page_size": a.wandb_page_size or "default",
            "read_threads": a.wandb_read_threads or "default",
        },
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
    }
    if a.before:
        result["before"] = json.loads(a.before.read_text())
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

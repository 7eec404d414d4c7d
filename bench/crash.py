#!/usr/bin/env python
"""Crash-safety harness: SIGKILL ingests and publishes at many points, re-run, compare.

    uv run python bench/crash.py --kills 200                  # library ingests + publishes
    uv run python bench/crash.py --kills 200 --cli-kills 6    # plus full `grpo ingest` runs
    uv run python bench/crash.py --kills 40 --seed 3 --keep   # keep the work folder to inspect

What one library trial does (`Campaign`):

1. Inputs are a demo league (`pipelines.demo.build.generate_demo`) served in two
   stages from one fixed folder, so source keys (file paths) stay the same:
   stage A has 4 of the W&B run files and the first segment of the resumed
   run (with --cut-run one of them cut in the middle of its `.wandb` file, a
   run in progress) and the first half of a growing NDJSON file; stage B has
   every run and segment complete and the whole file.
2. A reference warehouse is built without interruption: ingest A, ingest B.
3. A trial starts from the matching state (empty for A, the reference after A
   for B), ingests the stage in a child process and SIGKILLs it, either at a
   named point (`GRPO_TEST_KILL_AT`, see `pipelines.raw.crash_points.KILL_POINTS`) or
   after a random delay within the measured duration of that ingest.
4. Right after the kill, what a reader can see is checked: every `*.parquet`
   under raw/ reads whole, the committed files read, `grpo.duckdb` opens.
5. The stage is ingested again without interruption; the raw tables must
   equal the reference's at that stage row for row (sorted multisets, without
   batch_id/ingested_at), with no duplicate keys, no orphan or temp file.

Publish trials do the same to `pipelines.publish.publish` on a synthetic build
database whose marts change between two builds: after a kill `grpo.duckdb` is
the old snapshot or the new one, whole and self-consistent, and after the
re-run it is the new one with nothing left behind.

The ingest children are forked from one "zygote" (`python -c`, which imports
the pipeline once), so a kill costs an ingest, not an interpreter start.

CLI trials (`cli_trial`) kill the real `grpo ingest` (Dagster job, dbt build,
publish) in a chosen phase, read from the `.lock` holder (`ingest`,
`dbt build`, `publish snapshot`), re-run it, and compare raw tables and every
mart with an uninterrupted `grpo ingest`.

The pieces live in `crash_inputs` (the staged sources), `crash_zygote` (the
forking child), `crash_checks` (what a kill left, the comparisons),
`crash_library_trials` (ingest and publish trials) and `crash_cli_trials`
(full `grpo ingest` trials); this module is the command, and the tests that
reuse the harness import its names from here.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess  # noqa: F401  (tests run `grpo` through crash.subprocess)
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from bench.crash_checks import Trial, integrity_problems, leftovers, raw_differences  # noqa: E402
from bench.crash_cli_trials import cli_trial, grpo_env, grpo_exe, grpo_ingest  # noqa: E402
from bench.crash_inputs import ARCHIVE_NAME, GROWING_NAME, Inputs, generate_sources  # noqa: E402
from bench.crash_library_trials import (  # noqa: E402
    CLEANUP_HOOK,
    INGEST_HOOKS,
    Campaign,
    make_build_db,
    publish_trials,
)

# What the command uses, and the harness pieces the tests reuse through `from bench import crash`.
__all__ = [
    "ARCHIVE_NAME",
    "CLEANUP_HOOK",
    "GROWING_NAME",
    "INGEST_HOOKS",
    "Campaign",
    "Inputs",
    "Trial",
    "cli_trial",
    "generate_sources",
    "grpo_env",
    "grpo_exe",
    "grpo_ingest",
    "integrity_problems",
    "leftovers",
    "main",
    "make_build_db",
    "publish_trials",
    "raw_differences",
    "summarize",
]


def summarize(trials: list[Trial]) -> str:
    lines = []
    by_kind: dict[str, list[Trial]] = {}
    for t in trials:
        by_kind.setdefault(t.kind, []).append(t)
    for kind, ts in by_kind.items():
        killed = sum(1 for t in ts if t.outcome == "killed")
        survived = sum(1 for t in ts if t.survived)
        seen: dict[str, int] = {}
        for t in ts:
            seen[t.seen] = seen.get(t.seen, 0) + 1
        lines.append(f"{kind:>14}: {len(ts)} tried ({killed} killed mid-run), {survived} survived")
        for s, n in sorted(seen.items(), key=lambda kv: -kv[1]):
            lines.append(f"{'':>16}{n:4d} x kill left: {s}")
    total = len(trials)
    ok = sum(1 for t in trials if t.survived)
    lines.append(f"{'total':>14}: {total} kill points tried, {ok} survived")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--kills",
        type=int,
        default=200,
        help="library kill points (ingest hooks + random ingest kills + publish kills)",
    )
    ap.add_argument("--publish-share", type=float, default=0.2, help="share of --kills spent on snapshot publishes")
    ap.add_argument("--cli-kills", type=int, default=0, help="full `grpo ingest` kills (about 2 min each)")
    ap.add_argument(
        "--event-lines", type=int, default=None, help="keep only this many lines per event file (default: all)"
    )
    ap.add_argument(
        "--cut-run",
        action="store_true",
        help="stage A serves one run cut mid-file (exposes the in-progress run defect)",
    )
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--work", type=Path, default=None, help="work folder (default: a new temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    work = args.work or Path(tempfile.mkdtemp(prefix="grpo-crash-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"seed {seed}, work folder {work}", flush=True)
    t_start = time.monotonic()
    demo = generate_sources(work / "demo")
    trials: list[Trial] = []

    def report(t: Trial) -> None:
        trials.append(t)
        mark = "ok " if t.survived else "FAIL"
        print(
            f"[{len(trials):4d}] {mark} {t.kind:<13} {t.stage:<8} {t.point:<44} {t.outcome:<9} {t.seen}  ({t.seconds:.1f}s)",
            flush=True,
        )
        for p in t.problems:
            print(f"         {p}", flush=True)

    camp = Campaign(work, demo, seed=seed, event_lines=args.event_lines, cut_run=args.cut_run)
    try:
        camp.build_reference()
        print(f"reference: ingest A {camp.duration['A']:.2f}s, ingest B {camp.duration['B']:.2f}s", flush=True)
        n_publish = int(args.kills * args.publish_share)
        n_ingest = args.kills - n_publish
        hooks = [*INGEST_HOOKS, CLEANUP_HOOK]
        for i in range(n_ingest):
            if i < len(hooks):
                stage, label = hooks[i]
                pre = "commit.before_record" if (stage, label) == CLEANUP_HOOK else None
                report(camp.hook_trial(stage, label, pre_kill=pre))
            else:
                report(camp.timed_trial())
        if n_publish:
            for t in publish_trials(camp.zygote, work, n_publish, rng):
                report(t)
    finally:
        camp.close()

    if args.cli_kills:
        inputs = Inputs(demo, work / "inputs", args.event_lines).stage("B")
        ref = work / "cli-reference"
        ref.mkdir(parents=True, exist_ok=True)
        code, _, err = grpo_ingest(ref, inputs, work / "dbt-target-ref")
        if code != 0:
            print(f"the uninterrupted `grpo ingest` failed ({code}):\n{err[-2000:]}")
            return 2
        # (phase, delay range, kill point): a lock phase or the dbt subprocess plus a random delay,
        # or a named kill point; "commit.after_record@1" is between the W&B and the events asset.
        plan = [
            ("ingest", (0.0, 1.0), None),
            (None, None, "commit.after_record@1"),
            ("dbt build", (0.5, 10.0), None),
            (None, None, "publish.copying@12"),
            ("publish snapshot", (0.0, 0.5), None),
            (None, None, "publish.before_rename"),
        ]
        for i in range(args.cli_kills):
            phase, window, kill_at = plan[i % len(plan)]
            delay = rng.uniform(*window) if window else 0.0
            report(cli_trial(work, inputs, ref, phase, delay, i + 1, kill_at=kill_at))

    print()
    print(summarize(trials))
    print(f"took {time.monotonic() - t_start:.0f}s")
    failed = [t for t in trials if not t.survived]
    if not args.keep and not failed:
        shutil.rmtree(work, ignore_errors=True)
    elif failed:
        print(f"work folder kept for inspection: {work}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

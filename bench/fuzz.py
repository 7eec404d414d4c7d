"""Long-run fuzzing of the `.wandb` and NDJSON readers.

Runs the properties of tests/test_fuzz_readers.py (the CI runs a fast subset
of them) for as long as asked, with bigger NDJSON files and longer lines, and
prints how many cases ran and how fast:

    uv run python bench/fuzz.py --minutes 10
    uv run python bench/fuzz.py --minutes 2 --only wandb --seed 42

Real `.wandb` logs are written first with the real `wandb` library (offline,
in a temporary folder); nothing is written to the working directory. A
failing case is shrunk by Hypothesis and printed with a reproduction blob;
the exit code is then 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

TARGETS = ("wandb", "ndjson", "gzip", "incremental")
# Cases per Hypothesis call: small enough to check the clock often.
BATCH = {"wandb": 200, "ndjson": 20, "gzip": 20, "incremental": 20}


@dataclass
class Tally:
    cases: int = 0
    seconds: float = 0.0
    outcomes: Counter = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return self.cases / self.seconds if self.seconds else 0.0


def isolate_wandb(home: Path) -> None:
    """Keep wandb's config, cache and data in the temporary folder, offline and quiet."""
    os.environ.update(
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        WANDB_DIR=str(home),
        WANDB_CONFIG_DIR=str(home / "config"),
        WANDB_CACHE_DIR=str(home / "cache"),
        WANDB_DATA_DIR=str(home / "data"),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to fuzz (default 10)")
    parser.add_argument("--only", choices=TARGETS, action="append", help="fuzz only this target (repeatable)")
    parser.add_argument("--seed", type=int, default=None, help="Hypothesis seed of the first round (default random)")
    parser.add_argument("--huge-line-max", type=int, default=2_000_000, help="longest NDJSON line in bytes")
    parser.add_argument("--max-lines", type=int, default=80, help="most lines per NDJSON file")
    parser.add_argument("--report-every", type=float, default=30.0, help="seconds between progress lines")
    args = parser.parse_args(argv)
    if args.minutes <= 0:
        parser.error("--minutes must be positive")

    import test_fuzz_readers as fuzz
    from hypothesis import HealthCheck, given, seed, settings
    from hypothesis import strategies as st

    fuzz.HUGE_LINE_MAX = args.huge_line_max
    fuzz.MAX_LINES = args.max_lines
    targets = args.only or list(TARGETS)

    with tempfile.TemporaryDirectory(prefix="grpo-fuzz-") as tmp:
        tmp_path = Path(tmp)
        isolate_wandb(tmp_path / "wandb-home")
        os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = str(tmp_path / "hypothesis")  # not ./.hypothesis
        t0 = time.perf_counter()
        corpus = fuzz.make_wandb_corpus(tmp_path / "wandb")
        print(
            f"real .wandb logs written in {time.perf_counter() - t0:.1f} s: "
            + ", ".join(f"{b.name} {len(b.data):,} bytes / {len(b.spans)} records" for b in corpus)
        )
        print(
            f"NDJSON: demo event lines, up to {args.max_lines} lines per file, lines up to {args.huge_line_max:,} bytes"
        )
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        bodies = {
            "wandb": lambda data: fuzz.wandb_case(data, corpus, scratch),
            "ndjson": lambda data: fuzz.ndjson_case(data, scratch),
            "gzip": lambda data: fuzz.gzip_case(data, scratch),
            "incremental": lambda data: fuzz.incremental_case(data, scratch),
        }
        tallies = {t: Tally() for t in targets}
        deadline = time.monotonic() + args.minutes * 60
        next_report = time.monotonic() + args.report_every
        round_no = 0
        while time.monotonic() < deadline:
            for target in targets:
                tally = tallies[target]
                body = bodies[target]
                round_seed = None if args.seed is None else args.seed + round_no

                runner = settings(
                    max_examples=BATCH[target],
                    deadline=None,
                    database=None,
                    print_blob=True,
                    suppress_health_check=list(HealthCheck),
                )(given(data=st.data())(counted(body, tally)))
                if round_seed is not None:
                    runner = seed(round_seed)(runner)
                start = time.perf_counter()
                try:
                    runner()
                except Exception:
                    tally.seconds += time.perf_counter() - start
                    print(f"\nFAILED: {target} (round {round_no}, seed {round_seed}); the falsifying case is above.")
                    report(tallies, time.perf_counter() - t0)
                    raise
                tally.seconds += time.perf_counter() - start
                if time.monotonic() >= next_report:
                    next_report = time.monotonic() + args.report_every
                    line = "  ".join(f"{t}: {x.cases:,} ({x.rate:,.1f}/s)" for t, x in tallies.items())
                    print(f"[{time.perf_counter() - t0:6.0f} s] {line}", flush=True)
                if time.monotonic() >= deadline:
                    break
            round_no += 1
        report(tallies, time.perf_counter() - t0)
    return 0


def counted(body, tally: Tally):
    """A Hypothesis test body that runs one case and counts it and its outcome."""

    def case(data) -> None:
        tally.outcomes[body(data)] += 1
        tally.cases += 1

    return case


def report(tallies: dict[str, Tally], wall: float) -> None:
    print(f"\n{'target':<12} {'cases':>9} {'seconds':>8} {'cases/s':>8}  outcomes")
    for target, t in tallies.items():
        outcomes = ", ".join(f"{k} {v:,}" for k, v in sorted(t.outcomes.items()))
        print(f"{target:<12} {t.cases:>9,} {t.seconds:>8.1f} {t.rate:>8.1f}  {outcomes}")
    total = sum(t.cases for t in tallies.values())
    print(f"{'total':<12} {total:>9,} {wall:>8.1f} {total / wall if wall else 0:>8.1f}")


if __name__ == "__main__":
    sys.exit(main())

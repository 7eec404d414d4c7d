"""The worker-process side of writing the demo's W&B runs: `python -m pipelines.demo.wandb_worker
--write-runs SPEC.json...` logs each spec as one offline run per segment with the real `wandb`
library, in a fresh interpreter (wandb keeps process-global state)."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

DONE_MARK = "grpo-demo logged run: "


def log_runs_from_specs(spec_paths: list[Path]) -> None:
    """The worker-process side of `write_wandb_runs`: log each spec as one offline run, in order."""
    import wandb

    settings = wandb.Settings(
        console="off",
        symlink=False,  # two workers in one dir would race on latest-run and debug.log links
        x_disable_stats=True,
        x_disable_meta=True,
        disable_git=True,
        save_code=False,
    )
    for spec_path in spec_paths:
        spec = json.loads(spec_path.read_text(encoding="utf-8"))
        segments = spec["segments"]
        for i, segment in enumerate(segments):
            if i:  # wandb names a run folder by the second it starts in: the next segment gets its own
                time.sleep(1.02 - time.time() % 1.0)
            until = segments[i + 1]["first_step"] if i + 1 < len(segments) else math.inf
            run = wandb.init(
                mode="offline",
                dir=spec["dir"],
                project=spec["project"],
                entity=spec["entity"],
                id=spec["id"],
                resume="allow",
                name=spec["name"],
                group=spec["group"],
                job_type="train",
                config=segment["config"],
                settings=settings,
            )
            exit_code = 1
            try:
                for step, row in spec["rows"]:
                    if segment["first_step"] <= step < until:
                        run.log(row, step=step)
                exit_code = segment["exit_code"]
            finally:
                run.finish(exit_code=exit_code)
        print(DONE_MARK + spec["name"], flush=True)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--write-runs":
        log_runs_from_specs([Path(p) for p in sys.argv[2:]])
    else:
        sys.exit(
            "usage: python -m pipelines.demo.wandb_worker --write-runs SPEC.json...  (internal; use generate_demo)"
        )

"""The zygote: one `python -c` process that imports the pipeline once and forks a child per
ingest or publish, killing it on request.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

from bench.crash_inputs import Inputs
from pipelines.raw.crash_points import KILL_ENV

PROJECT_ROOT = Path(__file__).resolve().parent.parent

ZYGOTE = r"""
import json, os, signal, sys, time, traceback
import pandas, pyarrow.pandas_compat  # imported lazily by the first parquet write; paid once here
from pipelines.ingest.ingest_sources import ingest
from pipelines.publish import publish
from pipelines.sources.ndjson import NdjsonEventSource
from pipelines.sources.wandb_local import LocalRunSource
from pipelines.raw.crash_points import KILL_ENV
from pipelines.raw.layer import Warehouse


def run(cmd):
    if cmd.get("kill_at"):
        os.environ[KILL_ENV] = cmd["kill_at"]
    wh = Warehouse(cmd["root"])
    if cmd["op"] == "ingest":
        ingest(wh, [LocalRunSource([cmd["wandb"]])], [NdjsonEventSource([cmd["events"]])], lock_timeout_s=60)
    else:
        wh.ensure()
        with wh.lock(timeout_s=60, purpose="publish snapshot"):
            publish(wh, None)


for line in sys.stdin:
    cmd = json.loads(line)
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.dup2(2, 1)
            run(cmd)
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code)
    kill_after = cmd.get("kill_after")
    if kill_after is None:
        _, status = os.waitpid(pid, 0)
    else:
        deadline = t0 + kill_after
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                _, status = os.waitpid(pid, 0)
                break
            time.sleep(min(left, 0.002))
    seconds = time.monotonic() - t0
    if os.WIFSIGNALED(status):
        outcome = "killed" if os.WTERMSIG(status) == signal.SIGKILL else f"signal {os.WTERMSIG(status)}"
    else:
        outcome = "completed" if os.WEXITSTATUS(status) == 0 else f"failed (exit {os.WEXITSTATUS(status)})"
    sys.stdout.write(json.dumps({"outcome": outcome, "seconds": seconds}) + "\n")
    sys.stdout.flush()
"""


class Zygote:
    """A `python -c` process that imported the pipeline once and forks one child per ingest or publish."""

    def __init__(self, log_path: Path) -> None:
        self.log = open(log_path, "ab")  # noqa: SIM115 (the zygote's log for its whole life; close() closes it)
        env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
        env.pop(KILL_ENV, None)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            cwd=str(log_path.parent),
            env=env,
            text=True,
            bufsize=1,
        )

    def _call(self, cmd: dict) -> dict:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the zygote died (exit {self.proc.poll()}); see {self.log.name}")
        return json.loads(line)

    def ingest(self, root: Path, inputs: Inputs, kill_at: str | None = None, kill_after: float | None = None) -> dict:
        return self._call(
            {
                "op": "ingest",
                "root": str(root),
                "wandb": str(inputs.wandb),
                "events": str(inputs.events),
                "kill_at": kill_at,
                "kill_after": kill_after,
            }
        )

    def publish(self, root: Path, kill_at: str | None = None, kill_after: float | None = None) -> dict:
        return self._call({"op": "publish", "root": str(root), "kill_at": kill_at, "kill_after": kill_after})

    def close(self) -> None:
        with contextlib.suppress(Exception):
            assert self.proc.stdin
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def __enter__(self) -> Zygote:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

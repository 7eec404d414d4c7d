"""The benchmark's child processes, measured: a stage of `bench.stages` or a `grpo` query
command, with wall time, exit code and peak RSS.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
GRPO = REPO / ".venv" / "bin" / "grpo"
PAGE = os.sysconf("SC_PAGE_SIZE")


def _proc_tree_rss(root: int) -> int:
    """Resident bytes of `root` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(name))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/statm", "rb") as fh:
                total += int(fh.read().split()[1]) * PAGE
        except OSError:
            pass
        todo.extend(children.get(pid, ()))
    return total


class _TreeSampler(threading.Thread):
    """Samples the RSS of a process tree every `interval` seconds; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak = pid, interval, 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, _proc_tree_rss(self.pid))
            self._done.wait(self.interval)

    def stop(self) -> None:
        self._done.set()
        self.join()


def run_measured(
    cmd: list[str], env: dict[str, str], *, stdout=None, stderr=None, sample_tree: bool = False
) -> dict[str, Any]:
    """Run `cmd`; wall seconds (process start included), exit code, and peak RSS.

    `maxrss_mb` comes from wait4(): the largest resident set of the child or any
    descendant it waited for (exact, but per process). `tree_peak_mb` is the
    sampled sum over the whole process tree (dbt runs in a grandchild).
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL)
    sampler = _TreeSampler(proc.pid) if sample_tree else None
    if sampler:
        sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if sampler:
        sampler.stop()
    proc.returncode = os.waitstatus_to_exitcode(status)
    out = {"rc": proc.returncode, "wall_s": wall, "maxrss_mb": usage.ru_maxrss / 1024}
    if sampler:
        out["tree_peak_mb"] = sampler.peak / 2**20
    return out


def child_env(warehouse: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DAGSTER_HOME", None)  # an ephemeral Dagster instance, as `grpo ingest` uses by default
    env.update(
        GRPO_WAREHOUSE=str(warehouse),
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        DAGSTER_DISABLE_TELEMETRY="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def run_stage(name: str, args: dict[str, Any], stage_dir: Path, env: dict[str, str], say) -> dict[str, Any]:
    """Run one bench.stages stage in a child; its own result plus wall time and peak memory."""
    stage_dir.mkdir(parents=True, exist_ok=True)
    args_path, result_path = stage_dir / f"{name}.args.json", stage_dir / f"{name}.result.json"
    args_path.write_text(json.dumps(args))
    result_path.unlink(missing_ok=True)
    say(f"stage {name} …")
    with open(stage_dir / f"{name}.log", "w") as log:
        m = run_measured(
            [sys.executable, "-m", "bench.stages", name, str(args_path), str(result_path)],
            env,
            stdout=log,
            stderr=subprocess.STDOUT,
            sample_tree=True,
        )
    if m["rc"] != 0 or not result_path.exists():
        tail = (stage_dir / f"{name}.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"stage {name} failed (exit {m['rc']}):\n{tail}")
    result = json.loads(result_path.read_text())
    result["process"] = m
    say(f"stage {name}: {m['wall_s']:.1f} s wall, peak {max(m['maxrss_mb'], m.get('tree_peak_mb', 0)):.0f} MB")
    return result


def peak_mb(stage: dict[str, Any]) -> float:
    p = stage["process"]
    return round(max(p["maxrss_mb"], p.get("tree_peak_mb", 0.0)), 1)


def run_queries(commands: dict[str, list[str]], env: dict[str, str], repeat: int, say) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, argv in commands.items():
        cmd = [str(GRPO), *argv]
        times, rss, rcs = [], [], []
        answer: Any = None
        for i in range(repeat + 1):  # the first run warms the OS page cache and is not counted
            with tempfile.TemporaryFile() as fh_out, tempfile.TemporaryFile() as fh_err:
                m = run_measured(cmd, env, stdout=fh_out, stderr=fh_err)
                fh_out.seek(0)
                text = fh_out.read().decode(errors="replace")
                fh_err.seek(0)
                err = fh_err.read().decode(errors="replace")
            if m["rc"] not in (0, 1):  # 1: `grpo check` answered that a target fails
                raise RuntimeError(f"`grpo {' '.join(argv)}` exited {m['rc']}: {err[-2000:]}")
            if i == 0:
                answer = json.loads(text)
                continue
            times.append(m["wall_s"])
            rss.append(m["maxrss_mb"])
            rcs.append(m["rc"])
        out[name] = {
            "argv": ["grpo", *argv],
            "median_s": statistics.median(times),
            "min_s": min(times),
            "max_s": max(times),
            "times_s": [round(t, 4) for t in times],
            "exit_codes": sorted(set(rcs)),
            "peak_rss_mb": max(rss),
            "answer": answer,
        }
        say(f"  grpo {name}: median {out[name]['median_s']:.3f} s")
    return out

"""The processes that read run files ahead of the ingesting process (they only read; it writes)."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import pyarrow as pa

from pipelines.sources.base import RunRead
from pipelines.sources.errors import SourceError

# Run files are read by this many worker processes at once (1 = one after the
# other in the ingesting process). Reading is CPU-bound Python + protobuf, so a
# second process puts the second core to work; results are still stored in the
# source's order. Workers only read: every file is written by the ingesting
# process, under its batch and commit record.
WORKERS_ENV = "GRPO_INGEST_WORKERS"


DEFAULT_WORKERS = 2


# Runs read ahead per worker: enough that the workers keep reading while this
# process writes a flushed buffer (~1-2 s), few enough to bound memory.
READ_AHEAD_PER_WORKER = 4


def ingest_workers(workers: int | None = None) -> int:
    """How many processes read run files: `workers`, else $GRPO_INGEST_WORKERS, else DEFAULT_WORKERS."""
    if workers is None:
        raw = os.environ.get(WORKERS_ENV, "").strip()
        if not raw:
            return DEFAULT_WORKERS
        try:
            workers = int(raw)
        except ValueError:
            raise ValueError(f"{WORKERS_ENV}={raw!r}: expected a number of reader processes (1 = none)") from None
    if workers < 1:
        raise ValueError(f"ingest workers must be at least 1 (1 = read in this process), got {workers}")
    return workers


@dataclass(frozen=True)
class Failed:
    """A read that raised, as text: it crosses from a worker whatever the exception was."""

    kind: str  # the exception's class name
    message: str


def read_in_worker(fn: Callable[..., RunRead], args: tuple) -> RunRead | Failed:
    try:
        return fn(*args)
    except SourceError:
        raise
    except Exception as exc:  # not every exception survives pickling back intact; its name and text do
        return Failed(type(exc).__name__, str(exc))


def can_fork() -> bool:
    # Workers are forked (they share this process's imports instead of paying
    # seconds for wandb's); a daemonic process may not have children.
    return "fork" in multiprocessing.get_all_start_methods() and not multiprocessing.current_process().daemon


def reader_pool(workers: int) -> ProcessPoolExecutor:
    # pyarrow imports pandas on its first conversion from Python objects (~1 s):
    # do it once here so that the workers inherit it rather than each paying it.
    pa.array([b""], pa.large_binary())
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_reader_started,
        initargs=(os.getpid(),),
    )


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _reader_started(parent_pid: int) -> None:
    """In each reader process: die with the ingest (a SIGKILLed ingest leaves no reader behind); Ctrl-C is its."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the ingest died before prctl took effect
        os._exit(1)

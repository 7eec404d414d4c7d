"""Which runs an ingest reads, in the source's order: unchanged files skipped, duplicates warned,
new runs read ahead in worker processes."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from pipelines.ingest.report import IngestReport
from pipelines.ingest.worker_pool import READ_AHEAD_PER_WORKER, Failed, can_fork, read_in_worker, reader_pool
from pipelines.raw.batches import RawBatch, RunState
from pipelines.sources.base import RunRead, RunRef, RunSource, change_token
from pipelines.sources.errors import SourceError


@dataclass
class _Planned:
    """A run in the read-ahead window."""

    ref: RunRef
    stored: RunState | None = None
    after: int | None = None
    token: str | None = None
    task: tuple | None = None  # (function, args) reading it, when it may be read ahead in a worker
    future: Future | None = None  # the read submitted to a worker
    deferred: bool = True  # decided only when its turn comes, exactly as a one-at-a-time read would


# What reads yields per run to store: (ref, stored state, after_step, change token, read).
Read = tuple[RunRef, RunState | None, int | None, str | None, RunRead]


def reads(source: RunSource, state, batch: RawBatch, report: IngestReport, workers: int) -> Iterator[Read]:
    """(ref, stored state, after_step, change token, read) of every run to store, in the source's order.

    A run id seen twice, an unchanged file and a file that cannot be read are
    handled (warning or skip) as reading one file after the other handles them.
    With `workers` > 1 and a source that offers `read_task`, runs whose id is
    new are read ahead (READ_AHEAD_PER_WORKER per worker) in worker processes.
    A remote source that sets `read_threads` > 1 (its reads wait on the
    network, not on this process) has runs whose id is new read ahead by that
    many threads instead. Any other run is read here when its turn comes;
    reads are yielded in the source's order either way.
    """
    read_task = getattr(source, "read_task", None)
    threads = int(getattr(source, "read_threads", 1) or 1)
    if threads > 1:
        workers = threads
        read_task = _threaded_task(source)
    parallel = workers > 1 and read_task is not None and (threads > 1 or can_fork())
    window: deque[_Planned] = deque()
    seen: set[str] = set()
    pool: Executor | None = None
    try:
        for ref in source.runs():
            item = _Planned(ref)
            if parallel and ref.run_id not in seen and ref.run_id not in batch.wandb_runs:
                # First sight of this id: no earlier read can make it a duplicate, so decide now.
                item.deferred = False
                item.stored = state.runs.get(ref.run_id)
                item.after = item.stored.last_step if item.stored else None
                item.token = change_token(ref)
                if _unchanged(item):
                    report.runs_seen += 1
                    seen.add(ref.run_id)
                    continue
                item.task = read_task(ref, item.after, stored_token=_stored_token(item))
            seen.add(ref.run_id)
            window.append(item)
            waiting = [p for p in window if p.task is not None and p.future is None]
            if pool is None and len(waiting) >= 2:
                pool = (
                    ThreadPoolExecutor(threads, thread_name_prefix="grpo-read") if threads > 1 else reader_pool(workers)
                )
            if pool is not None:
                for p in waiting:
                    fn, args = p.task
                    p.future = pool.submit(fn, *args) if threads > 1 else pool.submit(read_in_worker, fn, args)
            while len(window) > (READ_AHEAD_PER_WORKER * workers if parallel else 0):
                yield from _resolve(window.popleft(), source, state, batch, report)
        while window:
            yield from _resolve(window.popleft(), source, state, batch, report)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _threaded_task(source: RunSource):
    """`read_task` for reads in threads: the source's own `read`, exceptions raised as they are."""

    def task(ref: RunRef, after: int | None, stored_token: str | None = None) -> tuple:
        return source.read, (ref, after, stored_token)

    return task


def _stored_token(item: _Planned) -> str | None:
    return item.stored.token if item.stored is not None else None


def _unchanged(item: _Planned) -> bool:
    # Same file size and mtime as when last read: re-reading a 16 MB run only to
    # find nothing new would dominate a sync of many runs.
    return item.stored is not None and item.token is not None and item.stored.token == item.token


def _resolve(item: _Planned, source: RunSource, state, batch: RawBatch, report: IngestReport) -> Iterator[Read]:
    ref = item.ref
    if item.deferred:
        if ref.run_id in batch.wandb_runs:
            report.warnings.append(f"run {ref.run_id} appears twice ({ref.label}); kept the first")
            return
        item.stored = state.runs.get(ref.run_id)
        item.after = item.stored.last_step if item.stored else None
        item.token = change_token(ref)
        if _unchanged(item):
            report.runs_seen += 1
            return
    try:
        if item.future is not None:
            read = item.future.result()
        elif item.task is not None:
            fn, args = item.task
            read = fn(*args)
        else:
            read = source.read(ref, item.after, stored_token=_stored_token(item))
    except SourceError:
        raise  # a remote source failing is fatal: nothing of this batch is committed
    except BrokenProcessPool as exc:  # a reader process died (killed, out of memory): not the file's doing
        raise RuntimeError(f"{ref.label}: a reader process died ({exc}); nothing of this ingest is stored") from exc
    except Exception as exc:  # a damaged local file must not stop the others
        read = Failed(type(exc).__name__, str(exc))
    if isinstance(read, Failed):
        report.warnings.append(f"{ref.label}: skipped, {read.kind}: {read.message}")
        return
    yield ref, item.stored, item.after, item.token, read

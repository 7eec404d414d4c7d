"""Move whatever the sources have that the warehouse lacks into one raw batch.

Sources say what is new given the incremental state (steps stored per run,
lines consumed per file, time cursor per dataset); this module writes it,
deduplicates overlapping windows, and commits the batch. Nothing is committed
unless everything in the batch was written, so a crash or a source failure
leaves the warehouse as it was and the next ingest resumes from there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from pipelines.ingest.event_dedupe import ingest_events
from pipelines.ingest.report import IngestReport, Progress
from pipelines.ingest.runs_to_batch import ingest_runs
from pipelines.ingest.worker_pool import ingest_workers
from pipelines.raw.batches import RawBatch
from pipelines.raw.crash_points import kill_point
from pipelines.raw.layer import Warehouse
from pipelines.sources.base import EventSource, RunSource

log = logging.getLogger(__name__)


def ingest(
    warehouse: Warehouse,
    run_sources: Iterable[RunSource] = (),
    event_sources: Iterable[EventSource] = (),
    *,
    progress: Progress | None = None,
    lock_timeout_s: float = 0.0,
    workers: int | None = None,
) -> IngestReport:
    """Ingest every source into one committed raw batch; returns what was added.

    `workers`: processes reading run files at once (default: $GRPO_INGEST_WORKERS, else 2).
    """
    report = IngestReport()
    workers = ingest_workers(workers)
    say = progress or (lambda _msg: None)
    warehouse.ensure()
    with warehouse.lock(timeout_s=lock_timeout_s, purpose="ingest", wait_for_build_db=False, on_wait=say):
        removed = [*warehouse.orphans_removed, *warehouse.clean_orphans()]  # lock() already cleaned
        if removed:
            report.warnings.append(f"removed {len(removed)} file(s) of an interrupted earlier ingest")
        state = warehouse.state()
        with warehouse.batch() as batch:
            report.batch_id = batch.batch_id
            t0 = time.perf_counter()
            for source in run_sources:
                try:
                    ingest_runs(source, state, batch, report, say, workers)
                finally:
                    source.close()
            report.wandb_seconds = time.perf_counter() - t0
            kill_point("ingest.between_sources")  # test hook, see pipelines.raw.crash_points
            t0 = time.perf_counter()
            for esource in event_sources:
                ingest_events(warehouse, esource, state.event_sources, batch, report, say)
            report.events_seconds = time.perf_counter() - t0
            if batch.files or _state_changed(batch, state):
                batch.commit()
            else:
                report.batch_id = None  # nothing new: no empty commit records piling up
    for w in report.warnings:
        log.warning(w)
    return report


def _state_changed(batch: RawBatch, state) -> bool:
    for run_id, rs in batch.wandb_runs.items():
        old = state.runs.get(run_id)
        if old is None or old.last_step != rs["last_step"] or old.fingerprint != rs["fingerprint"]:
            return True
    return any(state.event_sources.get(k) != v for k, v in batch.event_sources.items())

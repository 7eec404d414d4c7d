"""W&B runs from the W&B API (`wandb.Api`, 0.31), as a RunSource: listing a project's runs, reading
each one's metadata and full history, with retries of answers cut mid-body and errors in one line."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.sources.base import HISTORY_COLUMNS, HISTORY_OTHER_COLUMNS, RunMeta, RunRead, RunRef
from pipelines.sources.errors import SourceError, scrub
from pipelines.sources.wandb_api_conversion import (
    RUNTIME_KEY,
    STEP_KEY,
    as_utc,
    history_to_long,
    parse_time,
    server_step_metrics,
)
from pipelines.sources.wandb_core_service import configure_wandb_core, start_wandb_core, stop_wandb_core
from pipelines.sources.wandb_history_scan import scan_long

__all__ = ["WandbApiRunSource"]

_PROJECT_PATH = re.compile(r"^[^/\s]+/[^/\s]+$")
_DETAIL_MAX_CHARS = 300
# A connection that broke mid-answer, as wandb-core reports it.
_TRANSPORT_ERROR = re.compile(r"unexpected EOF|connection reset|broken pipe|server closed", re.IGNORECASE)
_UNAUTHORIZED = re.compile(r"HTTP 401|\b401 Unauthorized|not logged in|unauthori[sz]ed|invalid api key", re.IGNORECASE)


class WandbApiRunSource:
    """Runs of one W&B project, read through the public API (the wandb-core sidecar).

    How a sync talks to W&B (the wandb 0.31 public client's GraphQL operations):

    * Listing: one `Runs` GraphQL page per `per_page` runs, with the full
      RunFragment (`lazy=False`). That page already carries config, summary and
      `historyKeys.lastStep`, so a run whose lastStep is at or below the stored
      step costs no further request at all: a sync of an unchanged project is
      `Viewer` (sent by `wandb.Api()` to check the key) + the `Runs` pages.
    * History is never read with `run.history()` (sampled). For a changed run:
      - a run that is not running: `download_history_exports` fetches the
        parquet export (one `RunParquetHistory` + a GET per file), which Arrow
        turns into long form a column at a time (about 30x faster than paging
        rows through wandb-core, where every value is a JSON text). Steps the
        export does not cover (live data, not exported yet) then come from
        `scan_history`. Cost when there is no export yet: one extra small query.
      - a running run: W&B exports history some hours after a run ends, so
        straight to `scan_history(min_step=after_step+1, use_cache=False)`,
        which pages the live rows through `HistoryPage` queries (and reads any
        exported part from the parquet export, merged by step).
      `use_cache=False` matters: wandb-core's parquet cache is keyed by run and
      file index only, and goes stale as a run grows. Pages are `page_size`
      steps (10,000: a tenth of the round trips of wandb's 1,000), and their
      rows go into the long tables without a dict per row
      (wandb_history_scan).
    * The ingest reads `read_threads` runs at once (threads: a read mostly
      waits on wandb-core and the server), each with its own retries below.
    * Retries: a listing page or history read whose answer was cut mid-body or
      unreadable (wandb-core retries statuses, not that) is read again, up to
      `retries` times (a listing starts over, skipping runs it already gave).
      wandb-core's defaults (20 retries, waits up to 60 s) could hang a
      sync for many minutes. Before the first `wandb.Api()` of the process the
      retry knobs are set from `retries`/`timeout_s` unless the user set them
      (`WANDB__GRAPHQL_RETRY_*`, `WANDB__FILE_TRANSFER_RETRY_*`, `WANDB_HTTP_TIMEOUT`).
    * wandb-core's own log lives in a private folder while a sync runs
      (wandb_core_service); `close()`, called by the ingest when the source is
      done, stops wandb-core and deletes that folder.
    """

    name = "wandb-api"

    def __init__(
        self,
        project: str,
        *,
        sweep: str | None = None,
        group: str | None = None,
        name_regex: str | None = None,
        updated_since: dt.datetime | None = None,
        base_url: str | None = None,
        timeout_s: float = 30,
        retries: int = 3,
        per_page: int = 50,
        page_size: int = 10_000,
        read_threads: int = 4,
    ) -> None:
        if not _PROJECT_PATH.match(project or ""):
            raise ValueError(f"W&B project must look like 'entity/project', got {project!r}")
        if name_regex is not None:
            re.compile(name_regex)  # fail here, not as a server error mid-sync
        self.project = project
        self.entity, self.project_name = project.split("/")
        self.sweep = sweep
        self.group = group
        self.name_regex = name_regex
        self.updated_since = updated_since
        self.base_url = base_url.rstrip("/") if base_url else None
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self.per_page = int(per_page)
        self.page_size = int(page_size)
        self.read_threads = max(1, int(read_threads))  # runs the ingest reads at once (pipelines/ingest/run_reads.py)
        self._api: Any = None

    # --- RunSource ------------------------------------------------------------
    def runs(self) -> Iterator[RunRef]:
        """Every run of the project that matches the filters, oldest first."""
        api = self._new_api()
        what = f"listing runs of {self.project}"
        listed: set[str] = set()
        for attempt in range(self.retries + 1):
            try:
                pages = iter(
                    api.runs(
                        self.project, filters=self.filters(), order="+created_at", per_page=self.per_page, lazy=False
                    )
                )
                while True:
                    try:
                        run = next(pages)
                    except StopIteration:
                        return
                    if run.id not in listed:  # a listing started again skips what it already gave
                        listed.add(run.id)
                        yield RunRef(run_id=run.id, label=f"{self.project}/{run.id}", handle=run)
            except Exception as exc:
                # wandb-core's paginator cannot resume after a failed page: the listing starts over.
                if self._retry_later(attempt, exc):
                    continue
                raise self._error(what, exc) from None

    def close(self) -> None:
        """End of a sync: stop the wandb-core this source started and delete its private log folder.

        Runs listed before are not readable after it; the next `runs()` starts a new wandb-core.
        """
        self._api = None
        stop_wandb_core()

    def read(self, ref: RunRef, after_step: int | None, stored_token: str | None = None) -> RunRead:
        """Metadata plus the full, unsampled history after `after_step`."""
        run = ref.handle
        try:
            if run is None:
                if self._api is None:
                    self._new_api()
                run = self._api.run(f"{self.project}/{ref.run_id}")
            meta = self.meta(run)
        except SourceError:
            raise
        except Exception as exc:
            raise self._error(f"reading run {ref.label}", exc) from None

        warnings: list[str] = []
        last = meta.last_step
        if last is None or (after_step is not None and last <= after_step):
            if last is not None and after_step is not None and last < after_step:
                warnings.append(
                    f"{ref.label}: W&B reports last step {last}, below the {after_step} already stored "
                    "(was the run rewound?); nothing new read"
                )
            empty = HISTORY_COLUMNS.empty_table(), HISTORY_OTHER_COLUMNS.empty_table()
            return RunRead(meta=meta, history=empty[0], other=empty[1], warnings=warnings)

        lo = 0 if after_step is None else after_step + 1
        for attempt in range(self.retries + 1):
            try:
                history, other = self._history(run, lo, last)
                break
            except SourceError:
                raise
            except Exception as exc:
                if self._retry_later(attempt, exc):  # reading the same steps again is harmless
                    continue
                raise self._error(f"reading the history of run {ref.label}", exc) from None
        return RunRead(meta=meta, history=history, other=other, warnings=warnings)

    # --- pieces -----------------------------------------------------------------
    def filters(self) -> dict[str, Any]:
        """The Mongo-style filter W&B's `Runs` query takes."""
        parts: list[dict[str, Any]] = []
        if self.sweep:
            parts.append({"sweep": self.sweep})
        if self.group:
            parts.append({"group": self.group})
        if self.name_regex:
            parts.append({"display_name": {"$regex": self.name_regex}})
        if self.updated_since is not None:
            since = as_utc(self.updated_since).strftime("%Y-%m-%dT%H:%M:%SZ")
            # A run is "updated" when it was created or last heard from since then.
            parts.append({"$or": [{"createdAt": {"$gte": since}}, {"heartbeatAt": {"$gte": since}}]})
        if not parts:
            return {}
        return parts[0] if len(parts) == 1 else {"$and": parts}

    def meta(self, run: Any) -> RunMeta:
        summary = {k: v for k, v in dict(run.summary_metrics or {}).items() if k != "_wandb"}
        runtime = summary.get(RUNTIME_KEY)
        if not isinstance(runtime, (int, float)) or isinstance(runtime, bool):
            runtime = (run.summary_metrics or {}).get("_wandb", {}).get("runtime")
        history_keys = _attr(run, "historyKeys") or {}
        if isinstance(history_keys, str):
            history_keys = json.loads(history_keys)
        last_step = history_keys.get("lastStep")
        return RunMeta(
            run_id=run.id,
            run_name=run.name,
            project=self.project_name,
            entity=self.entity,
            run_group=_attr(run, "group") or None,
            job_type=_attr(run, "jobType") or None,
            sweep_id=run.sweep_name or None,
            tags=tuple(_attr(run, "tags") or ()),
            notes=_attr(run, "notes") or None,
            host=None,  # not in the run fragment; it lives in wandb-metadata.json
            config=dict(run.config or {}),
            summary=summary,
            state=run.state,
            exit_code=None,
            started_at=parse_time(_attr(run, "createdAt")),
            runtime_s=float(runtime) if isinstance(runtime, (int, float)) and not isinstance(runtime, bool) else None,
            last_step=int(last_step) if last_step is not None else None,
            source=f"wandb:{self.project}",
            step_metrics=server_step_metrics(getattr(run, "rawconfig", None)),
        )

    def _history(self, run: Any, lo: int, hi: int) -> tuple[pa.Table, pa.Table]:
        """Long-form history for steps lo..hi (inclusive)."""
        run_id = run.id
        if run.state == "running":
            return scan_long(run, lo, hi, self.page_size)

        parts: list[tuple[pa.Table, pa.Table]] = []
        exported_max = -1
        with tempfile.TemporaryDirectory(prefix="grpo-wandb-history-") as tmp:
            result = run.download_history_exports(tmp, require_complete_history=False)
            if result.errors:
                path, message = next(iter(result.errors.items()))
                if all(_TRANSPORT_ERROR.search(str(m)) for m in result.errors.values()):
                    # A download cut mid-body: `read` reads the run again within its retry bound.
                    raise ConnectionError(f"export file {Path(path).name}: {_one_line(str(message))}")
                raise SourceError(
                    f"wandb-api: downloading the history export of run {self.project}/{run_id} failed "
                    f"({len(result.errors)} file(s)); first: {Path(path).name}: {_short(_one_line(message))}"
                )
            for path in result.paths:
                table = pq.read_table(path)
                if STEP_KEY not in table.column_names or table.num_rows == 0:
                    continue
                exported_max = max(exported_max, int(pc.max(table[STEP_KEY]).as_py()))
                parts.append(history_to_long(table, run_id, lo, hi))
        if hi > exported_max and (result.contains_live_data or not result.paths):
            # Steps past the export (none exported yet, or a resumed run) are live data.
            parts.append(scan_long(run, max(lo, exported_max + 1), hi, self.page_size))
        if not parts:
            return HISTORY_COLUMNS.empty_table(), HISTORY_OTHER_COLUMNS.empty_table()
        if len(parts) == 1:
            return parts[0]
        history = pa.concat_tables([p[0] for p in parts]).sort_by([("step", "ascending")])
        other = pa.concat_tables([p[1] for p in parts]).sort_by([("step", "ascending")])
        return history, other

    def _new_api(self) -> Any:
        """A fresh `wandb.Api` (runs are cached per instance), with bounded retries."""
        key = os.environ.get("WANDB_API_KEY")
        if not key:
            raise SourceError(f"wandb-api: WANDB_API_KEY is not set; cannot read {self.project}")
        configure_wandb_core(self.retries, self.timeout_s)
        start_wandb_core()
        import wandb

        # Naming the entity spares the `GetDefaultEntity` query wandb would send to find one.
        overrides: dict[str, Any] = {"entity": self.entity}
        if self.base_url:
            overrides["base_url"] = self.base_url
        # How long Python waits on wandb-core per request: all attempts plus their waits.
        wait = int(self.timeout_s * (self.retries + 1) + 10 * self.retries + 5)
        try:
            self._api = wandb.Api(overrides=overrides, api_key=key, timeout=wait)
        except Exception as exc:
            raise self._error(f"connecting to W&B for {self.project}", exc) from None
        return self._api

    def _retry_later(self, attempt: int, exc: BaseException) -> bool:
        """After an answer cut mid-body or unreadable ("unexpected EOF": wandb-core retries
        statuses, not that), wait and say yes while attempts remain."""
        if attempt >= self.retries or not _TRANSPORT_ERROR.search(str(exc)):
            return False
        time.sleep(min(2.0**attempt, 10.0))
        return True

    def _error(self, what: str, exc: BaseException) -> SourceError:
        """One line naming the project and what failed; SourceError scrubs the key."""
        text = _one_line(str(exc)) or type(exc).__name__
        server = self.base_url or os.environ.get("WANDB_BASE_URL") or "the W&B server"
        if _looks_unauthorized(text):
            reason = f"W&B at {server} rejected WANDB_API_KEY (HTTP 401: {_short(text)})"
        elif re.search(r"Could not find project", text):
            reason = f"project {self.project} not found at {server}, or WANDB_API_KEY cannot see it"
        elif "giving up after" in text:
            reason = f"W&B at {server} kept failing: {_short(text)}"
        else:
            reason = f"{type(exc).__name__}: {_short(text)}"
        return SourceError(f"wandb-api: {what} failed: {reason}")


def _attr(run: Any, name: str) -> Any:
    """A raw field of the run's GraphQL node (Run exposes them through attribute lookup)."""
    try:
        return getattr(run, name)
    except AttributeError:
        return None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _short(text: str) -> str:
    # Scrub before cutting: a secret cut in half would no longer be recognised.
    text = scrub(text)
    return text if len(text) <= _DETAIL_MAX_CHARS else text[: _DETAIL_MAX_CHARS - 1] + "…"


def _looks_unauthorized(text: str) -> bool:
    return bool(_UNAUTHORIZED.search(text))

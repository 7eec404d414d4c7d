"""Event sources: NDJSON files and/or Axiom datasets through the API."""

from __future__ import annotations

import datetime as dt
import os
from typing import Optional

import dagster as dg

from pipelines.sources.base import EventSource


class EventSourcesResource(dg.ConfigurableResource):
    """Which events to ingest. Unset fields fall back to environment variables.

    `paths` (env GRPO_EVENT_PATHS, ':'-separated): NDJSON files or folders (gzip allowed).
    `axiom_datasets` (env GRPO_AXIOM_DATASETS, ','-separated): read with the Axiom API;
    the token comes only from AXIOM_TOKEN (and AXIOM_ORG_ID, AXIOM_URL).
    `since`: ISO-8601 start for a dataset's first sync (default: 7 days back).
    """

    paths: Optional[list[str]] = None
    axiom_datasets: Optional[list[str]] = None
    since: Optional[str] = None

    def resolved_paths(self) -> list[str]:
        if self.paths is not None:
            return list(self.paths)
        return [p for p in os.environ.get("GRPO_EVENT_PATHS", "").split(os.pathsep) if p.strip()]

    def resolved_datasets(self) -> list[str]:
        if self.axiom_datasets is not None:
            return list(self.axiom_datasets)
        return [d.strip() for d in os.environ.get("GRPO_AXIOM_DATASETS", "").split(",") if d.strip()]

    def sources(self) -> list[EventSource]:
        sources: list[EventSource] = []
        paths = self.resolved_paths()
        if paths:
            from pipelines.sources.ndjson import NdjsonEventSource

            sources.append(NdjsonEventSource(paths))
        # The first sync of a dataset starts here; later ones resume from the stored cursor.
        since = dt.datetime.fromisoformat(self.since) if self.since else dt.datetime.now(dt.UTC) - dt.timedelta(days=7)
        if since.tzinfo is None:
            since = since.replace(tzinfo=dt.UTC)
        for dataset in self.resolved_datasets():
            from pipelines.sources.axiom_api import AxiomEventSource

            sources.append(AxiomEventSource(dataset, since=since))
        return sources

"""Event sources: NDJSON files and/or Axiom datasets through the API."""

from __future__ import annotations

import datetime as dt
import os
from typing import Optional

import dagster as dg

from pipelines.defs.environment import env_var, split_list
from pipelines.sources.base import EventSource


class EventSourcesResource(dg.ConfigurableResource):
    """Which events to ingest.

    `paths`: NDJSON files or folders (gzip allowed); `paths_path` the same as one
    ':'-separated string (the code location binds it to $GRPO_EVENT_PATHS).
    `axiom_datasets`: read with the Axiom API; `axiom_datasets_list` the same as one
    ','-separated string (bound to $GRPO_AXIOM_DATASETS). The token comes only from
    AXIOM_TOKEN (and AXIOM_ORG_ID, AXIOM_URL), read by the Axiom client itself.
    `since`: ISO-8601 start for a dataset's first sync (default: 7 days back).
    """

    paths: Optional[list[str]] = None
    paths_path: Optional[str] = None
    axiom_datasets: Optional[list[str]] = None
    axiom_datasets_list: Optional[str] = None
    since: Optional[str] = None

    def resolved_paths(self) -> list[str]:
        if self.paths is not None:
            return list(self.paths)
        return split_list(self.paths_path, os.pathsep)

    def resolved_datasets(self) -> list[str]:
        if self.axiom_datasets is not None:
            return list(self.axiom_datasets)
        return split_list(self.axiom_datasets_list, ",")

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

    @classmethod
    def from_environment(cls) -> EventSourcesResource:
        """The sources $GRPO_EVENT_PATHS and $GRPO_AXIOM_DATASETS name, bound through dg.EnvVar."""
        return cls(paths_path=env_var("GRPO_EVENT_PATHS"), axiom_datasets_list=env_var("GRPO_AXIOM_DATASETS"))

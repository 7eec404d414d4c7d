"""W&B run sources: local run folders and/or W&B projects through the API."""

from __future__ import annotations

import os
from typing import Optional

import dagster as dg

from pipelines.sources.base import RunSource


class WandbSourcesResource(dg.ConfigurableResource):
    """Which W&B runs to ingest. Unset fields fall back to environment variables.

    `run_dirs` (env GRPO_WANDB_DIRS, ':'-separated): folders holding `wandb/` run folders.
    `projects` (env GRPO_WANDB_PROJECTS, ','-separated): `entity/project` read with the
    W&B API; the key comes only from WANDB_API_KEY.
    """

    run_dirs: Optional[list[str]] = None
    projects: Optional[list[str]] = None
    sweep: Optional[str] = None
    group: Optional[str] = None
    name_regex: Optional[str] = None

    def resolved_dirs(self) -> list[str]:
        if self.run_dirs is not None:
            return list(self.run_dirs)
        return [p for p in os.environ.get("GRPO_WANDB_DIRS", "").split(os.pathsep) if p.strip()]

    def resolved_projects(self) -> list[str]:
        if self.projects is not None:
            return list(self.projects)
        return [p.strip() for p in os.environ.get("GRPO_WANDB_PROJECTS", "").split(",") if p.strip()]

    def sources(self) -> list[RunSource]:
        sources: list[RunSource] = []
        dirs = self.resolved_dirs()
        if dirs:
            from pipelines.sources.wandb_local import LocalRunSource

            sources.append(LocalRunSource(dirs))
        for project in self.resolved_projects():
            from pipelines.sources.wandb_api import WandbApiRunSource

            sources.append(
                WandbApiRunSource(project, sweep=self.sweep, group=self.group, name_regex=self.name_regex)
            )
        return sources

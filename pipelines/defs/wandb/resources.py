"""W&B run sources: local run folders and/or W&B projects through the API."""

from __future__ import annotations

import os
from typing import Optional

import dagster as dg

from pipelines.defs.environment import env_var, split_list
from pipelines.sources.base import RunSource


class WandbSourcesResource(dg.ConfigurableResource):
    """Which W&B runs to ingest.

    `run_dirs`: folders holding `wandb/` run folders; `run_dirs_path` the same as one
    ':'-separated string (the code location binds it to $GRPO_WANDB_DIRS).
    `projects`: `entity/project` read with the W&B API; `projects_list` the same as one
    ','-separated string (bound to $GRPO_WANDB_PROJECTS). The API key comes only from
    WANDB_API_KEY, read by the wandb client itself.
    """

    run_dirs: Optional[list[str]] = None
    run_dirs_path: Optional[str] = None
    projects: Optional[list[str]] = None
    projects_list: Optional[str] = None
    sweep: Optional[str] = None
    group: Optional[str] = None
    name_regex: Optional[str] = None

    def resolved_dirs(self) -> list[str]:
        if self.run_dirs is not None:
            return list(self.run_dirs)
        return split_list(self.run_dirs_path, os.pathsep)

    def resolved_projects(self) -> list[str]:
        if self.projects is not None:
            return list(self.projects)
        return split_list(self.projects_list, ",")

    def sources(self) -> list[RunSource]:
        sources: list[RunSource] = []
        dirs = self.resolved_dirs()
        if dirs:
            from pipelines.sources.wandb_local import LocalRunSource

            sources.append(LocalRunSource(dirs))
        for project in self.resolved_projects():
            from pipelines.sources.wandb_api import WandbApiRunSource

            sources.append(WandbApiRunSource(project, sweep=self.sweep, group=self.group, name_regex=self.name_regex))
        return sources

    @classmethod
    def from_environment(cls) -> WandbSourcesResource:
        """The sources $GRPO_WANDB_DIRS and $GRPO_WANDB_PROJECTS name, bound through dg.EnvVar."""
        return cls(run_dirs_path=env_var("GRPO_WANDB_DIRS"), projects_list=env_var("GRPO_WANDB_PROJECTS"))

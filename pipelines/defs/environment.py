"""How the code location takes its settings from the environment: through `dagster.EnvVar`.

A resource field bound to `dg.EnvVar(NAME)` is read by Dagster when a run, sensor or
schedule uses the resource, and the UI shows the variable's name, never its value.
Only variables that are set are bound: Dagster refuses an `EnvVar` whose variable
is missing, and every one of these settings is optional.
"""

from __future__ import annotations

import os

import dagster as dg


def env_var(name: str) -> dg.EnvVar | None:
    """`dg.EnvVar(name)` when the variable is set (to anything but blanks), else None (the field's default)."""
    return dg.EnvVar(name) if os.environ.get(name, "").strip() else None


def split_list(text: str | None, sep: str) -> list[str]:
    """A list setting written as one string ('a:b' paths, 'x,y' names): its non-blank parts."""
    return [part.strip() for part in (text or "").split(sep) if part.strip()]

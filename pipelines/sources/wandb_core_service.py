"""The process's wandb-core service, as W&B API syncs use it: its retry knobs bounded before the first
`wandb.Api()` (unless the user set them), and the service started with its log in a private temporary
folder (mode 0700), since it records the bodies of responses it retries and a server that echoes the
API key back would leave the key in that log; stopping it deletes the folder, and so does exit."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from pipelines.sources.retry import wandb_core_retry_env

# The wandb-core knobs this module set (name -> value), as opposed to ones the user set.
_OWN_ENV: dict[str, str] = {}
_SETTINGS_FIELDS = {
    "WANDB__GRAPHQL_RETRY_MAX": ("x_graphql_retry_max", int),
    "WANDB__GRAPHQL_RETRY_WAIT_MIN_SECONDS": ("x_graphql_retry_wait_min_seconds", float),
    "WANDB__GRAPHQL_RETRY_WAIT_MAX_SECONDS": ("x_graphql_retry_wait_max_seconds", float),
    "WANDB_HTTP_TIMEOUT": ("x_graphql_timeout_seconds", float),
    "WANDB__FILE_TRANSFER_RETRY_MAX": ("x_file_transfer_retry_max", int),
    "WANDB__FILE_TRANSFER_RETRY_WAIT_MIN_SECONDS": ("x_file_transfer_retry_wait_min_seconds", float),
    "WANDB__FILE_TRANSFER_RETRY_WAIT_MAX_SECONDS": ("x_file_transfer_retry_wait_max_seconds", float),
}


def configure_wandb_core(retries: int, timeout_s: float) -> None:
    """Bound wandb-core's retries for the next `wandb.Api()`, unless the user chose their own.

    A knob counts as the user's when its environment variable holds a value
    this module did not put there. wandb reads the environment once, when its
    process-wide settings first load, and every `wandb.Api()` copies those
    settings; so once they are loaded, the knobs are also written to them
    (only where they are unset or still hold this module's previous value),
    which lets each source's `retries` apply to its own Api.
    """
    from wandb.sdk import wandb_setup

    ours = {}
    for name, value in wandb_core_retry_env(retries, timeout_s).items():
        current = os.environ.get(name)
        if current is not None and current != _OWN_ENV.get(name):
            continue  # the user's choice
        ours[name] = value
    loaded = wandb_setup.singleton().settings_if_loaded
    for name, value in ours.items():
        previous = _OWN_ENV.get(name)
        os.environ[name] = _OWN_ENV[name] = value
        if loaded is not None:
            field, cast = _SETTINGS_FIELDS[name]
            now = getattr(loaded, field, None)
            if now is None or (previous is not None and now == cast(previous)):
                setattr(loaded, field, cast(value))


_CORE_LOG_DIR: Path | None = None  # the private folder this process's wandb-core logs into
_ATEXIT_REGISTERED = False


def start_wandb_core() -> None:
    """Start this process's wandb-core, unless running, with its log in a private temporary folder.

    wandb-core writes its log under `WANDB_CACHE_DIR/wandb/logs/` (read from its
    environment at start), so the variable points at a fresh `mkdtemp` folder
    while the service starts. The history caches it would keep there are not
    used (`use_cache=False`), but a partial read of a parquet export may land
    there: it is deleted with the folder.
    """
    global _CORE_LOG_DIR, _ATEXIT_REGISTERED
    from wandb.sdk import wandb_setup

    setup = wandb_setup.singleton()
    try:
        setup.assert_service()
        return  # already running: started by an earlier source, or by wandb itself
    except AssertionError:
        pass
    if _CORE_LOG_DIR is not None:
        # the wandb-core that logged there was stopped by someone else (wandb.teardown()): its folder goes now
        shutil.rmtree(_CORE_LOG_DIR, ignore_errors=True)
        _CORE_LOG_DIR = None
    folder = Path(tempfile.mkdtemp(prefix="grpo-wandb-core-"))
    saved = os.environ.get("WANDB_CACHE_DIR")
    os.environ["WANDB_CACHE_DIR"] = str(folder)
    try:
        setup.ensure_service()
    except Exception:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        if saved is None:
            os.environ.pop("WANDB_CACHE_DIR", None)
        else:
            os.environ["WANDB_CACHE_DIR"] = saved
    if not _ATEXIT_REGISTERED:
        atexit.register(stop_wandb_core)
        _ATEXIT_REGISTERED = True
    _CORE_LOG_DIR = folder


def stop_wandb_core() -> None:
    """Stop the wandb-core `start_wandb_core` started and delete its log folder."""
    global _CORE_LOG_DIR
    folder = _CORE_LOG_DIR
    if folder is None:
        return
    import wandb

    try:
        wandb.teardown()
    except AssertionError:
        pass  # "Already torn down.": wandb's own exit hook stopped it first
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        _CORE_LOG_DIR = None

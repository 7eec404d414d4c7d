"""What every command shares: exit codes, the warehouse option, `--json`, time-window options, and opening
the snapshot with lookup and no-data failures mapped to exit code 2."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any

import click

EXIT_OK, EXIT_FAILED_CHECK, EXIT_USAGE = 0, 1, 2


EXIT_NO_DATA = EXIT_USAGE  # one code for "could not answer": a usage error, or nothing to answer with


class GrpoError(click.ClickException):
    exit_code = EXIT_USAGE


def new_console():
    import shutil

    from rich.console import Console

    # Piped output (CI logs, `| less`) gets a wide page instead of rich's 80 columns.
    width = None if sys.stdout.isatty() else max(shutil.get_terminal_size((160, 40)).columns, 160)
    return Console(highlight=False, soft_wrap=False, width=width)


def root_of(ctx: click.Context) -> Path:
    from pipelines.settings import warehouse_root

    return warehouse_root(ctx.obj.get("warehouse"))


def json_option(f):
    return click.option(
        "--json", "as_json", is_flag=True, help="Print the answer as JSON (a stable, documented form)."
    )(f)


def check_duration(ctx, param, value):
    from pipelines.answers.windows import WindowError, parse_duration

    if value is not None:
        try:
            parse_duration(value)
        except WindowError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


def check_instant(ctx, param, value):
    from pipelines.answers.windows import WindowError, parse_instant

    if value is not None:
        try:
            parse_instant(value, param.opts[0])
        except WindowError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


def window_options(default_last: str):
    def deco(f):
        f = click.option(
            "--until", callback=check_instant, help="Window end, ISO-8601 (UTC unless an offset is given); default now."
        )(f)
        f = click.option(
            "--since", callback=check_instant, help="Window start, ISO-8601 (UTC unless an offset is given)."
        )(f)
        f = click.option(
            "--last",
            callback=check_duration,
            help=f"Window length ending at --until: 30m, 6h, 2d (default {default_last}).",
        )(f)
        return f

    return deco


def window(last, since, until, default_last: str):
    from pipelines.answers.windows import WindowError, resolve

    try:
        return resolve(last, since, until, default_last=default_last)
    except WindowError as exc:
        raise GrpoError(str(exc)) from None


def answers(f):
    """Open the snapshot, map lookup/no-data failures to exit code 2 with a clear message."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        from pipelines.answers.sql import LookupFailed, NoDataError, open_snapshot

        ctx = click.get_current_context()
        try:
            con = open_snapshot(root_of(ctx))
        except NoDataError as exc:
            raise GrpoError(str(exc)) from None
        try:
            return f(con, *args, **kwargs)
        except LookupFailed as exc:
            listing = "\n".join(f"  {c}" for c in exc.candidates)
            raise GrpoError(f"{exc}. Candidates:\n{listing}" if exc.candidates else str(exc)) from None
        except NoDataError as exc:
            raise GrpoError(str(exc)) from None
        finally:
            con.close()

    return wrapper


def emit_json(obj: Any) -> None:
    # Indented for a terminal; compact when piped, which lets json use its C
    # encoder (`grpo check --json` at full scale lists ~30k subject checks).
    indent = 2 if sys.stdout.isatty() else None
    click.echo(json.dumps(obj, indent=indent, sort_keys=False, default=str))


def emit_json_bytes(pieces: list[bytes]) -> None:
    """Print an answer that is already compact JSON (UTF-8 bytes in pieces): as it is when piped, written
    straight to the binary stream (no copy of a large answer), indented for a terminal."""
    if sys.stdout.isatty():
        emit_json(json.loads(b"".join(pieces)))
        return
    out = click.get_binary_stream("stdout")
    sys.stdout.flush()
    for piece in pieces:
        out.write(piece)
    out.write(b"\n")
    out.flush()

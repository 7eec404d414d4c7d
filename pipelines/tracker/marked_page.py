"""The tracker page as a file: the marker comments, splicing a new section between them (or
appending it, or creating the page) while every other byte is kept, the atomic write, and
`update_tracker`, which regenerates the section and writes it; `TrackerFileError` for markers that
do not pair up or a file that cannot be read or written."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.tracker.section_render import render_section

BEGIN_MARKER = "<!-- grpo tracker: begin (generated, do not edit between the markers) -->"
END_MARKER = "<!-- grpo tracker: end -->"
# A marker line is recognised by these prefixes, so an edited explanation inside the comment still pairs up.
BEGIN_PREFIX = "<!-- grpo tracker: begin"
END_PREFIX = "<!-- grpo tracker: end"

TITLE = "# Experiment tracker"
NEW_FILE_INTRO = (
    "Notes written outside the marked section are kept: `grpo tracker` regenerates only the text "
    "between the two `grpo tracker` marker comments."
)


class TrackerFileError(ValueError):
    """The tracker file cannot be updated (markers that do not pair up, unreadable text, I/O); nothing was written."""

    def __init__(self, path: Path | str, message: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


def render_tracker(runs: list[dict[str, Any]], freshness: dict[str, Any], extras: dict[str, Any] | None = None) -> str:
    """A whole new tracker page: a title, a short note and the marked section (what a missing file is created with)."""
    return _new_file_text(_block(render_section(runs, freshness, extras), "\n"))


def _block(section: str, nl: str) -> str:
    body = section.strip("\n").replace("\r\n", "\n").replace("\n", nl)
    return BEGIN_MARKER + nl + body + nl + END_MARKER


def _new_file_text(block: str) -> str:
    return f"{TITLE}\n\n{NEW_FILE_INTRO}\n\n{block}\n"


# --- splicing the section into the file ------------------------------------------------


@dataclass(frozen=True)
class _Span:
    start: int  # offset of the begin marker line
    end: int  # offset just past the end marker's text, before its line ending


def _lines(text: str):
    """(1-based line number, start offset, offset before the line ending, content without the line ending)."""
    pos, number = 0, 0
    while pos < len(text):
        number += 1
        nl = text.find("\n", pos)
        stop = len(text) if nl < 0 else nl
        content_end = stop - 1 if stop > pos and text[stop - 1] == "\r" else stop
        yield number, pos, content_end, text[pos:content_end]
        pos = stop + 1


def _find_markers(text: str, path: Path, honour_fences: bool = True) -> _Span | None:
    begin: tuple[int, int] | None = None  # (line, offset)
    end: tuple[int, int] | None = None
    fence: tuple[str, int] | None = None
    for number, start, content_end, content in _lines(text):
        stripped = content.strip().lstrip("\ufeff")
        if honour_fences:
            run = len(stripped) - len(stripped.lstrip(stripped[:1])) if stripped[:1] in ("`", "~") else 0
            if fence is None and run >= 3:
                fence = (stripped[0], run)
                continue
            if fence is not None:
                if stripped[:1] == fence[0] and run >= fence[1] and not stripped.lstrip(fence[0]).strip():
                    fence = None
                continue
        if stripped.startswith(BEGIN_PREFIX):
            if begin is not None:
                raise TrackerFileError(
                    path,
                    f"a second tracker begin marker (the first is on line {begin[0]}); keep one "
                    f"'{BEGIN_MARKER}' and one '{END_MARKER}', then run again. Nothing was written.",
                    number,
                )
            begin = (number, start)
        elif stripped.startswith(END_PREFIX):
            if begin is None:
                raise TrackerFileError(
                    path,
                    f"a tracker end marker with no begin marker before it; put '{BEGIN_MARKER}' above it "
                    "or delete it, then run again. Nothing was written.",
                    number,
                )
            if end is not None:
                raise TrackerFileError(
                    path,
                    f"a second tracker end marker (the first is on line {end[0]}); keep one begin and one "
                    "end marker, then run again. Nothing was written.",
                    number,
                )
            end = (number, content_end)
    if honour_fences and fence is not None:
        # An unclosed code fence would hide markers after it (and make every run append a new section).
        return _find_markers(text, path, honour_fences=False)
    if begin is not None and end is None:
        raise TrackerFileError(
            path,
            f"a tracker begin marker with no end marker after it; add '{END_MARKER}' where the generated "
            "section should stop, then run again. Nothing was written.",
            begin[0],
        )
    return None if begin is None else _Span(begin[1], end[1])


def splice_section(existing: str | None, section: str, path: Path | str = "<tracker>") -> str:
    """The new file text: `existing` with its marked section replaced by `section` (or appended; None = no file).

    Pure: nothing is read or written. Raises TrackerFileError for markers that do not pair up.
    """
    path = Path(path)
    if existing is None or existing == "":
        return _new_file_text(_block(section, "\n"))
    first_nl = existing.find("\n")
    nl = "\r\n" if first_nl > 0 and existing[first_nl - 1] == "\r" else "\n"
    block = _block(section, nl)
    span = _find_markers(existing, path)
    if span is not None:
        return existing[: span.start] + block + existing[span.end :]
    if existing.endswith(("\n\n", "\r\n\r\n")):
        sep = ""
    elif existing.endswith("\n"):
        sep = nl
    else:
        sep = nl + nl
    return existing + sep + block + nl


def write_section(path: Path | str, section: str) -> bool:
    """Put `section` between the markers of the file at `path`; True when the file changed.

    Everything outside the markers is kept byte for byte. The file is not touched when its
    bytes would not change. Raises TrackerFileError (nothing written) for markers that do not
    pair up, text that is not UTF-8, or a file that cannot be read or written.
    """
    path = Path(path)
    target = Path(os.path.realpath(path))  # write through a symlink, keeping the link
    try:
        old = target.read_bytes()
    except FileNotFoundError:
        old = None
    except OSError as exc:
        raise TrackerFileError(path, f"cannot read the tracker: {exc.strerror or exc}") from None
    if old is None:
        existing = None
    else:
        try:
            existing = old.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TrackerFileError(path, f"not UTF-8 text (byte {exc.start}); nothing was written") from None
    new = splice_section(existing, section, path).encode("utf-8")
    if new == old:
        return False
    try:
        _atomic_write(target, new)
    except OSError as exc:
        raise TrackerFileError(path, f"cannot write the tracker: {exc.strerror or exc}; nothing was changed") from None
    return True


def update_tracker(
    path: Path | str,
    runs: list[dict[str, Any]],
    freshness: dict[str, Any],
    extras: dict[str, Any] | None = None,
) -> bool:
    """Regenerate the marked section of the tracker at `path`; True when the file changed.

    `runs` = `learning.retrospective(con)`, `freshness` = `lookups.freshness(con)`,
    `extras` = `tracker_extras(con)`. See `write_section` for what is kept and raised.

    People keep notes in the tracker file. `update_tracker` rewrites only the text
    between two marker comments and keeps every other byte of the file:

        <!-- grpo tracker: begin (generated, do not edit between the markers) -->
        ... generated: one table per sweep, then a retrospective across sweeps ...
        <!-- grpo tracker: end -->

    A file without markers gets the section appended after a blank line; a missing
    file is created with a short title plus the section. The section states the
    snapshot's publish time, latest event and latest step, never the time it was
    generated, so re-running with no new data produces the same bytes, and the
    file is then not rewritten at all. Writes are atomic (a temporary file in the
    same folder, renamed over the old one). Markers that do not pair up (a begin
    without an end, two begins, an end before any begin) raise `TrackerFileError`
    naming the file and line, and nothing is written.

    """
    return write_section(path, render_section(runs, freshness, extras))


def _atomic_write(target: Path, data: bytes) -> None:
    """Write `data` to a temporary file next to `target`, then rename it over `target` (keeping its mode)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode: int | None = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = None
    tmp = target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies to new files
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError, AttributeError):
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

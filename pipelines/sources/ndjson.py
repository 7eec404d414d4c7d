"""Events from local NDJSON files (Axiom exports and structured logs): the event source, which
finds the files and reads each from where its cursor left off. Each non-blank line is one JSON
object, one event; a line that cannot be loaded becomes a reject with a reason, and the rest of
the file still loads."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb

from pipelines.sources.base import EventChunk
from pipelines.sources.event_identity import EventIdentity
from pipelines.sources.ndjson_file_reading import FileRead
from pipelines.sources.ndjson_line_parsing import LineParser

# Names a directory scan picks up; files named explicitly are read whatever their name.
SUFFIXES = (".ndjson", ".jsonl", ".json")
# Text per yielded chunk (bounds memory).
DEFAULT_CHUNK_BYTES = 64 * 1024 * 1024


class NdjsonEventSource:
    """Events from NDJSON files (optionally gzip-compressed), read incrementally.

    `paths` are files or directories; directories are searched recursively for
    ``*.ndjson``, ``*.jsonl``, ``*.json`` and the same names ending in ``.gz``.
    Gzip is recognised by its magic bytes, whatever the name.

    An event keeps its line as `record` (the text as written, less the line
    terminator), `source` (the resolved path), `line` (1-based) and
    `event_key`, what the event is rather than where it was read
    (pipelines/sources/event_identity.py): its `_rowId`, else the values of
    the identity fields of its kind (var `event_identity`, default a
    rollout's `run_id` and `rollout_id`), else the md5 of the line as written
    (32 hex digits). The same event read from two files, or twice from one,
    has one key, and staging keeps one row per key.
    Blank lines are skipped; any other line that is not an event becomes a
    reject with a short reason and its raw text (at most 64K characters).
    Validity is DuckDB's JSON reader's, the one staging queries with: it also
    takes NaN/Infinity (as Python's json.dumps writes them) and trailing commas.

    Each event's time is its `time_field` (default: ``event_fields()["time"]``,
    i.e. ``_time``), read as UTC:

    * strings: ISO-8601 / RFC 3339 as Axiom exports them
      (``2024-05-01T12:00:00.123Z``, ``...+02:00``, a space instead of ``T``);
      without an offset the time is UTC. Digits below the microsecond are
      dropped.
    * numbers (or strings of digits): Unix epoch, the unit taken from the
      magnitude: below 1e11 seconds, below 1e14 milliseconds, below 1e17
      microseconds, else nanoseconds, which is unambiguous for dates between
      1973 and 5138. Negative epochs are not accepted.

    Anything else (missing, null, other strings such as ``epoch`` or
    ``infinity``, booleans, objects) makes the line a reject, and so does a
    time outside the years 1 to 9999 (such as ``99999-01-01``), which
    nothing downstream could represent.

    Cursor per file (key: resolved absolute path), the state after a chunk::

        {"lines": lines consumed (blank ones included, so numbers stay physical),
         "bytes": decompressed bytes consumed,
         "head_sha256": sha256 of the first min(4096, bytes) bytes,
         "open_line": the last consumed line had no newline yet,
         "size", "mtime_ns": the file's stat when a read finished, else None}

    A file whose size and mtime match the cursor is skipped unread. If the
    fingerprinted head no longer matches, or the file is shorter than what was
    consumed, the file was replaced: it is read again from line 1 with a
    warning, and those chunks are marked ``dedupe`` because the lines it held
    before repeat stored events (same keys). A last line without a newline
    is loaded only if it is already a complete JSON object; otherwise it is left
    for a later read, as the writer is probably still writing it.
    """

    name = "ndjson"

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        time_field: str | None = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        identity: EventIdentity | None = None,
    ) -> None:
        if time_field is None:
            from pipelines.settings import event_fields

            time_field = event_fields()["time"]
        if chunk_bytes <= 0:
            raise ValueError(f"chunk_bytes must be positive, got {chunk_bytes}")
        self.paths = [Path(p) for p in paths]
        self.time_field = time_field
        self.chunk_bytes = chunk_bytes
        self.identity = identity if identity is not None else EventIdentity.from_settings()

    def files(self) -> list[Path]:
        """The files to read, resolved, in a stable order; a missing path raises."""
        found: dict[Path, None] = {}
        for p in self.paths:
            if not p.exists():
                raise FileNotFoundError(errno.ENOENT, "event path does not exist", str(p))
            p = p.resolve()
            if p.is_dir():
                matches = (
                    f.resolve()
                    for f in p.rglob("*")
                    if f.name.lower().removesuffix(".gz").endswith(SUFFIXES) and f.is_file()
                )
                found.update(dict.fromkeys(sorted(matches)))
            else:
                found[p] = None
        return list(found)

    def chunks(self, cursors: Mapping[str, dict[str, Any]]) -> Iterator[EventChunk]:
        """New events since `cursors`, one or more chunks per file that has any."""
        files = self.files()
        con = duckdb.connect(":memory:")
        try:
            con.execute("SET TimeZone = 'UTC'")
            # Results are matched to their input lines by position.
            con.execute("SET preserve_insertion_order = true")
            parser = LineParser(con, self.time_field, self.identity)
            for path in files:
                yield from FileRead(path, cursors.get(str(path)), parser, self.chunk_bytes).chunks()
        finally:
            con.close()


def source_key_of(path: str | os.PathLike[str]) -> str:
    """The identity of a file across syncs: its resolved absolute path."""
    return str(Path(path).resolve())

"""Events from local NDJSON files: Axiom exports and structured logs.

Each non-blank line of a file is one JSON object, i.e. one event. Every valid
event is kept with all of its fields; lines that cannot be loaded become
rejects with a reason, and the rest of the file still loads.

Parsing is vectorised: a block of text is split into lines with numpy, handed
to an in-memory DuckDB as an Arrow table, and DuckDB's JSON functions compute
each line's timestamp and reject reason. No Python code runs per line (only
per reject that is not UTF-8, to show its bytes).
"""

from __future__ import annotations

import errno
import hashlib
import os
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.sources.base import EVENT_COLUMNS, REJECT_COLUMNS, EventChunk
from pipelines.sources.event_identity import EventIdentity, field_path, sql_literal

# Names a directory scan picks up; files named explicitly are read whatever their name.
SUFFIXES = (".ndjson", ".jsonl", ".json")
GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
# The cursor fingerprints this many leading bytes to notice a replaced or rewritten file.
HEAD_BYTES = 4096
# Rejected lines keep at most this many characters of their raw text.
REJECT_RAW_MAX_CHARS = 64 * 1024
# Text per yielded chunk (bounds memory), and per read: reads above ~32 MB are
# fresh mmaps on every call, which costs more in page faults than the parsing.
DEFAULT_CHUNK_BYTES = 64 * 1024 * 1024
READ_BYTES = 16 * 1024 * 1024

# Event times must lie in [0001-01-01, 9999-12-31 23:59:59.999999] UTC, the range of
# Python's datetime: DuckDB reads years such as 99999, which would then break every
# consumer that turns the time into a Python datetime (the CLI, the asset checks).
MIN_TIME_US = -62_135_596_800_000_000
MAX_TIME_US = 253_402_300_799_999_999

# One row per line of `lines(line, text)`: the event time and key, or why the line is not an event.
# {paths}: the JSON paths of the time field, then those of EventIdentity.paths(), read in one
# parse; {id_key}: the key from those values, null when the event has no id
# (pipelines/sources/event_identity.py); {content_key}: the key of the others; $1 the time
# field's name (for messages). Only lines without a time pay for the checks that name the
# reason, and only events pay for their key. The list of values is used up in the projection
# that makes it: carried through the later steps, it cost more than the parse.
_PARSE_SQL = r"""
with parsed as (
    select
        line,
        text,
        -- guarded rather than try(): try() redoes a whole vector row by row on one bad line
        case when json_valid(text) then json_extract_string(text, {paths}) end as fields
    from lines
),

valued as (
    select line, text, fields[1] as time_value, {id_key} as id_key
    from parsed
),

timed as (
    select
        *,
        case
            -- a leading digit keeps out the cast's special words (epoch, infinity)
            when ascii(time_value) between 48 and 57 then coalesce(
                try_cast(time_value as timestamptz),
                try(to_timestamp(
                    try_cast(time_value as double) / case
                        when abs(try_cast(time_value as double)) < 1e11 then 1
                        when abs(try_cast(time_value as double)) < 1e14 then 1e3
                        when abs(try_cast(time_value as double)) < 1e17 then 1e6
                        else 1e9
                    end
                ))
            )
        end as read_at
    from valued
),

ranged as (
    select
        *,
        case when epoch_us(read_at) between {min_us} and {max_us} then read_at end as parsed_at
    from timed
)

select
    line,
    parsed_at as time,
    case
        when parsed_at is not null then null
        -- chr(11) for the vertical tab: DuckDB's e'' strings have no \v (it would be a letter v)
        when trim(text, e' \t\r\f' || chr(11)) = '' then 'blank'
        when not json_valid(text) then 'not valid JSON'
        when json_type(text) <> 'OBJECT' then 'not a JSON object (' || lower(json_type(text)) || ')'
        when time_value is null then 'missing ' || $1
        when read_at is not null then $1 || ' ''' || left(time_value, 100) || ''' is outside the years 1 to 9999'
        else 'unparseable ' || $1 || ' ''' || left(time_value, 100) || ''''
    end as reason,
    case when parsed_at is not null then coalesce(id_key, {content_key}) end as event_key
from ranged
"""

# The last resort of an event's key (no `_rowId`, no identity fields): the md5 of its line as
# written (less the line terminator), 32 hex digits, the hash dbt's surrogate keys use. The
# identical line always gives the identical key and distinct lines never share one in practice
# (128 bits; the hash tells copies apart, it guards no secret). Measured here, per million
# 150-byte lines: md5 0.3 s, sha256 twice that, and trimming each line first as much again.
_CONTENT_KEY_SQL = "md5(text)"


def _parse_sql(time_path: str, identity: EventIdentity) -> str:
    paths = [time_path, *identity.paths()]
    return (
        _PARSE_SQL.replace("{paths}", "[" + ", ".join(sql_literal(p) for p in paths) + "]")
        .replace("{id_key}", identity.key_sql("fields", None, first=2))
        .replace("{content_key}", _CONTENT_KEY_SQL)
        .replace("{min_us}", str(MIN_TIME_US))
        .replace("{max_us}", str(MAX_TIME_US))
    )


_BLANK = "blank"


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
            parser = _Parser(con, self.time_field, self.identity)
            for path in files:
                yield from _FileRead(path, cursors.get(str(path)), parser, self.chunk_bytes).chunks()
        finally:
            con.close()


def source_key_of(path: str | os.PathLike[str]) -> str:
    """The identity of a file across syncs: its resolved absolute path."""
    return str(Path(path).resolve())


# --- reading one file --------------------------------------------------------


@dataclass
class _Progress:
    lines: int = 0
    consumed: int = 0
    open_line: bool = False


@dataclass
class _Parts:
    """Parsed blocks waiting to be yielded as one chunk."""

    events: list[pa.Table] = field(default_factory=list)
    rejects: list[pa.Table] = field(default_factory=list)
    text_bytes: int = 0


class _FileRead:
    def __init__(self, path: Path, cursor: Mapping[str, Any] | None, parser: _Parser, chunk_bytes: int) -> None:
        self.path = path
        self.key = str(path)
        self.cursor = dict(cursor or {})
        self.parser = parser
        self.chunk_bytes = chunk_bytes
        self.read_bytes = min(READ_BYTES, chunk_bytes)
        self.warnings: list[str] = []
        self.restarted = False
        self.head = b""

    def chunks(self) -> Iterator[EventChunk]:
        try:
            fh = open(self.path, "rb")
        except FileNotFoundError:
            return  # deleted since the directory was listed (rotated away): nothing to read
        with fh:
            stat = os.fstat(fh.fileno())
            compressed = fh.read(len(GZIP_MAGIC)) == GZIP_MAGIC
            fh.seek(0)
            stream: _Stream = _GzipStream(fh) if compressed else _PlainStream(fh)
            self.head = stream.read_exactly(HEAD_BYTES)
            progress, pending = self._resume(stream, stat)
            if progress is None:
                return
            yield from self._read(stream, progress, pending, stat)

    def _resume(self, stream: _Stream, stat: os.stat_result) -> tuple[_Progress | None, bytes]:
        """Where to continue, and bytes already read past that point; None if nothing changed."""
        c = self.cursor
        consumed = int(c.get("bytes") or 0)
        if not c or consumed == 0:
            return _Progress(), stream.unread(self.head)
        matches = self._head_sha(consumed) == c.get("head_sha256") and len(self.head) >= min(HEAD_BYTES, consumed)
        if matches and c.get("size") == stat.st_size and c.get("mtime_ns") == stat.st_mtime_ns:
            return None, b""
        if matches and consumed <= len(self.head):
            return self._progress(consumed), stream.unread(self.head[consumed:])
        if matches and stream.skip(consumed - len(self.head)):
            return self._progress(consumed), b""
        self.restarted = True
        self.warnings.append(
            f"{self.key} changed before the {consumed} bytes already read (replaced or rewritten?); "
            "reading it again from line 1"
        )
        stream.restart()
        self.head = stream.read_exactly(HEAD_BYTES)
        return _Progress(), stream.unread(self.head)

    def _progress(self, consumed: int) -> _Progress:
        return _Progress(int(self.cursor.get("lines") or 0), consumed, bool(self.cursor.get("open_line")))

    def _head_sha(self, consumed: int) -> str:
        return hashlib.sha256(self.head[: min(HEAD_BYTES, consumed)]).hexdigest()

    def _read(self, stream: _Stream, progress: _Progress, pending: bytes, stat: os.stat_result) -> Iterator[EventChunk]:
        parts = _Parts()
        yielded = False
        eof = False
        while not eof:
            block = stream.read(self.read_bytes)
            eof = not block
            data = pending + block if pending else block
            pending = b""
            if not data:
                break
            if progress.open_line:
                rest = self._close_open_line(data, progress, parts)
                if rest is None:  # what follows the loaded line has no newline yet
                    pending = data
                    continue
                data = rest
            pending = self._parse_block(data, progress, parts, eof)
            if pending and not eof and len(pending) < len(data):
                pending = stream.unread(pending)
            if parts.text_bytes >= self.chunk_bytes:
                yield self._chunk(parts, progress, final=False, stat=stat)
                parts = _Parts()
                yielded = True
        if stream.error:
            self.warnings.append(f"{self.key}: {stream.error}; stopped reading there")
        # After intermediate chunks, a last (maybe empty) one records that the read finished.
        if parts.text_bytes or self.warnings or yielded:
            yield self._chunk(parts, progress, final=True, stat=stat)

    def _close_open_line(self, data: bytes, progress: _Progress, parts: _Parts) -> bytes | None:
        """Consume the newline after a line that was loaded before its newline was written.

        Returns the data after it, or None while that newline has not arrived.
        """
        for terminator in (b"\n", b"\r\n"):
            if data.startswith(terminator):
                self._advance(progress, parts, len(terminator), lines=0)
                progress.open_line = False
                return data[len(terminator) :]
        end = data.find(b"\n")
        if end < 0:
            return None
        # Text was appended to a line already loaded as a complete object: that text is no event.
        fragment = data[: end + 1]
        raw = fragment.rstrip(b"\r\n").decode("utf-8", "replace")[:REJECT_RAW_MAX_CHARS]
        reject = {"source": self.key, "line": progress.lines, "reason": "text appended to a loaded line", "raw": raw}
        parts.rejects.append(pa.Table.from_pylist([reject], schema=REJECT_COLUMNS))
        self._advance(progress, parts, len(fragment), lines=0)
        progress.open_line = False
        return data[end + 1 :]

    def _parse_block(self, data: bytes, progress: _Progress, parts: _Parts, eof: bool) -> bytes:
        """Parse the complete lines of `data`; return the unconsumed rest."""
        ends = _line_ends(data)
        tail_start = int(ends[-1]) + 1 if len(ends) else 0
        skip_bom = progress.consumed == 0 and data.startswith(UTF8_BOM)
        tail = data[tail_start:]
        if skip_bom and tail_start == 0:
            tail = tail[len(UTF8_BOM) :]  # a one-line file: its BOM is no part of the object
        take_tail = eof and tail_start < len(data) and self.parser.is_complete_object(tail)
        if take_tail:
            ends = np.append(ends, len(data))
        if not len(ends):
            return data
        end = len(data) if take_tail else tail_start
        events, rejects = self.parser.parse(data, ends, progress.lines + 1, self.key, skip_bom)
        parts.events.append(events)
        parts.rejects.append(rejects)
        self._advance(progress, parts, end, lines=len(ends))
        progress.open_line = take_tail
        return data[end:]

    @staticmethod
    def _advance(progress: _Progress, parts: _Parts, nbytes: int, lines: int) -> None:
        progress.consumed += nbytes
        progress.lines += lines
        parts.text_bytes += nbytes

    def _chunk(self, parts: _Parts, progress: _Progress, final: bool, stat: os.stat_result) -> EventChunk:
        cursor = {
            "lines": progress.lines,
            "bytes": progress.consumed,
            "head_sha256": self._head_sha(progress.consumed),
            "open_line": progress.open_line,
            # Only a finished read may vouch that an unchanged file holds nothing new.
            "size": stat.st_size if final else None,
            "mtime_ns": stat.st_mtime_ns if final else None,
        }
        chunk = EventChunk(
            source_key=self.key,
            events=_concat(parts.events, EVENT_COLUMNS),
            rejects=_concat(parts.rejects, REJECT_COLUMNS),
            cursor=cursor,
            dedupe=self.restarted,
            warnings=self.warnings,
        )
        self.warnings = []
        return chunk


def _line_ends(data: bytes) -> np.ndarray:
    """Offsets of every newline in `data`."""
    return np.flatnonzero(np.frombuffer(data, np.uint8) == 10)


def _concat(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return schema.empty_table()
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


# --- parsing -------------------------------------------------------------------


class _Parser:
    def __init__(self, con: duckdb.DuckDBPyConnection, time_field: str, identity: EventIdentity) -> None:
        self.con = con
        self.time_field = time_field
        self.sql = _parse_sql(field_path(time_field), identity)

    def is_complete_object(self, text: bytes) -> bool:
        """Whether an unterminated last line is already a whole JSON object."""
        try:
            s = text.decode("utf-8")
        except UnicodeDecodeError:
            return False
        if not s.strip():
            return False
        rows = self.con.execute("select coalesce(try(json_type(?::varchar)) = 'OBJECT', false)", [s]).fetchall()
        return bool(rows[0][0])

    def parse(
        self, data: bytes, ends: np.ndarray, first_line: int, source: str, skip_bom: bool
    ) -> tuple[pa.Table, pa.Table]:
        """Events and rejects of the lines of `data` that end at offsets `ends`."""
        n = len(ends)
        text = _lines_array(data, ends, skip_bom)
        lines = pa.array(np.arange(first_line, first_line + n, dtype=np.int64))
        undecodable = None
        try:
            text.validate(full=True)
        except pa.ArrowInvalid:
            text, undecodable = self._decode_utf8(text)
        self.con.register("lines", pa.table({"line": lines, "text": text}))
        try:
            result = self.con.sql(self.sql, params=[self.time_field]).to_arrow_table()
        finally:
            self.con.unregister("lines")
        if not result["line"].equals(pa.chunked_array([lines])):
            result = result.sort_by("line")  # never seen; positions must match `text`
        reason = result["reason"].combine_chunks()
        if undecodable is not None:
            reason = pc.if_else(undecodable, pa.scalar("not valid UTF-8"), reason)
        ok = pc.is_null(reason)
        n_ok = pc.sum(ok).as_py() or 0
        columns = [result["time"].combine_chunks(), text, lines, result["event_key"].combine_chunks()]
        if n_ok < n:  # the common all-valid case keeps `text` zero-copy
            columns = [pc.filter(c, ok) for c in columns]
        time, record, line, key = columns
        events = pa.Table.from_arrays([time, record, _repeat(source, n_ok), line, key], schema=EVENT_COLUMNS)

        bad = pc.and_kleene(pc.invert(ok), pc.not_equal(reason, pa.scalar(_BLANK)))
        n_bad = pc.sum(bad).as_py() or 0
        if not n_bad:
            return events, REJECT_COLUMNS.empty_table()
        raw = pc.utf8_slice_codeunits(pc.filter(text, bad), 0, REJECT_RAW_MAX_CHARS)
        if undecodable is not None:
            raw = _with_undecodable_raw(raw, bad, undecodable, data, ends, skip_bom)
        rejects = pa.Table.from_arrays(
            [_repeat(source, n_bad), pc.filter(lines, bad), pc.filter(reason, bad), raw], schema=REJECT_COLUMNS
        )
        return events, rejects

    def _decode_utf8(self, text: pa.StringArray) -> tuple[pa.Array, pa.Array]:
        """Lines as valid strings ("" where the bytes are not UTF-8), and that mask."""
        self.con.register("raw_lines", pa.table({"b": text.view(pa.binary())}))
        try:
            result = self.con.sql("select try(decode(b)) as text from raw_lines").to_arrow_table()
        finally:
            self.con.unregister("raw_lines")
        decoded = result["text"].combine_chunks()
        return pc.fill_null(decoded, ""), pc.is_null(decoded)


def _with_undecodable_raw(
    raw: pa.Array, bad: pa.Array, undecodable: pa.Array, data: bytes, ends: np.ndarray, skip_bom: bool
) -> pa.Array:
    """Reject texts where the few lines that are not UTF-8 show with replacement characters."""
    bad_rows = np.flatnonzero(bad.to_numpy(zero_copy_only=False))
    undecodable_rows = undecodable.to_numpy(zero_copy_only=False)
    values = raw.to_pylist()
    for k, i in enumerate(bad_rows):
        if undecodable_rows[i]:
            start = len(UTF8_BOM) if skip_bom and i == 0 else (int(ends[i - 1]) + 1 if i else 0)
            line = data[start : int(ends[i])].rstrip(b"\r")
            values[k] = line.decode("utf-8", "replace")[:REJECT_RAW_MAX_CHARS]
    return pa.array(values, pa.string())


def _lines_array(data: bytes, ends: np.ndarray, skip_bom: bool) -> pa.StringArray:
    """The lines of `data` ending at offsets `ends`, without their line terminators.

    The text is copied once with the terminators left out, so that every line
    is a contiguous slice of one buffer; no per-line objects are made. Bytes
    after the last line may remain in the buffer, unreferenced.
    """
    n = len(ends)
    starts = np.empty(n, dtype=np.int64)
    starts[0] = len(UTF8_BOM) if skip_bom else 0
    starts[1:] = ends[:-1] + 1
    stops = ends.astype(np.int64)
    if data.find(b"\r", 0, int(stops[-1])) < 0:
        clean = data.replace(b"\n", b"")
    else:  # CRLF endings: drop each line's trailing CR as well
        raw = np.frombuffer(data, np.uint8)
        has_cr = (stops > starts) & (raw[np.maximum(stops - 1, 0)] == 13)
        stops = stops - has_cr
        keep = raw != 10
        keep[stops[has_cr]] = False
        clean = raw[keep].tobytes()
    offsets = np.empty(n + 1, dtype=np.int64)
    offsets[0] = starts[0]
    np.cumsum(stops - starts, out=offsets[1:])
    offsets[1:] += starts[0]
    if offsets[-1] >= 2**31:
        return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(clean)).cast(pa.string())
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(clean))


def _repeat(value: str, n: int) -> pa.StringArray:
    """`value` n times, built from buffers (pa.repeat is slow for strings)."""
    b = value.encode()
    offsets = np.arange(n + 1, dtype=np.int64) * len(b)
    if n * len(b) >= 2**31:
        return pa.repeat(value, n)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(b * n))


# --- byte streams ----------------------------------------------------------------


class _Stream:
    error: str | None = None

    def read(self, n: int) -> bytes:
        raise NotImplementedError

    def restart(self) -> None:
        raise NotImplementedError

    def unread(self, data: bytes) -> bytes:
        """Give back `data`, the end of what was read; returns what the caller must keep instead."""
        return data

    def read_exactly(self, n: int) -> bytes:
        """Up to n bytes, fewer only at the end of the stream."""
        out = []
        got = 0
        while got < n:
            b = self.read(n - got)
            if not b:
                break
            out.append(b)
            got += len(b)
        return b"".join(out)

    def skip(self, n: int) -> bool:
        """Skip n bytes; False if the stream ends first."""
        while n > 0:
            b = self.read(min(n, READ_BYTES))
            if not b:
                return False
            n -= len(b)
        return True


class _PlainStream(_Stream):
    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh

    def read(self, n: int) -> bytes:
        return self.fh.read(n)

    def restart(self) -> None:
        self.fh.seek(0)

    def unread(self, data: bytes) -> bytes:
        # Reading the rest of a line again is cheaper than copying each block behind it.
        self.fh.seek(-len(data), os.SEEK_CUR)
        return b""

    def skip(self, n: int) -> bool:
        pos = self.fh.tell() + n
        if pos > os.fstat(self.fh.fileno()).st_size:
            return False
        self.fh.seek(pos)
        return True


class _GzipStream(_Stream):
    """Decompressed bytes of a gzip file: several members, and a truncated end, are fine.

    A truncated stream (a file still being written) simply ends where the
    decodable data ends; corrupt data ends it too and sets `error`.
    """

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.restart()

    def restart(self) -> None:
        self.fh.seek(0)
        self.d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.input = b""
        self.done = False
        self.error = None

    def read(self, n: int) -> bytes:
        out: list[bytes] = []
        got = 0
        while got < n and not self.done:
            if not self.input:
                self.input = self.fh.read(1 << 20)
                if not self.input:
                    self.done = True  # a member may be unfinished: the file is still being written
                    break
            try:
                b = self.d.decompress(self.input, n - got)
            except zlib.error as exc:
                self.error = f"gzip data is corrupt ({exc})"
                self.done = True
                break
            self.input = self.d.unconsumed_tail
            if self.d.eof:  # end of one member; another may follow
                # unused_data is all the input after the member. unconsumed_tail is not
                # cleared at the end of a member when an earlier call stopped at its
                # output limit: it then repeats unused_data, and adding it read the next
                # member twice.
                rest = self.d.unused_data
                self.d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self.input = rest if rest.strip(b"\x00") else b""  # gzip(1) ignores zero padding
            if b:
                out.append(b)
                got += len(b)
        return b"".join(out)

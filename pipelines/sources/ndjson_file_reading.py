"""One NDJSON file read incrementally from its cursor: where to resume (or to start again, when the
file was replaced), complete lines parsed block by block, and chunks of events and rejects yielded
with the cursor after them."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from pipelines.sources.base import EVENT_COLUMNS, REJECT_COLUMNS, EventChunk
from pipelines.sources.ndjson_byte_streams import GZIP_MAGIC, READ_BYTES, ByteStream, GzipStream, PlainStream
from pipelines.sources.ndjson_line_parsing import REJECT_RAW_MAX_CHARS, UTF8_BOM, LineParser

# The cursor fingerprints this many leading bytes to notice a replaced or rewritten file.
HEAD_BYTES = 4096


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


class FileRead:
    def __init__(self, path: Path, cursor: Mapping[str, Any] | None, parser: LineParser, chunk_bytes: int) -> None:
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
            fh = open(self.path, "rb")  # noqa: SIM115 (a missing file is told apart before `with fh` below)
        except FileNotFoundError:
            return  # deleted since the directory was listed (rotated away): nothing to read
        with fh:
            stat = os.fstat(fh.fileno())
            compressed = fh.read(len(GZIP_MAGIC)) == GZIP_MAGIC
            fh.seek(0)
            stream: ByteStream = GzipStream(fh) if compressed else PlainStream(fh)
            self.head = stream.read_exactly(HEAD_BYTES)
            progress, pending = self._resume(stream, stat)
            if progress is None:
                return
            yield from self._read(stream, progress, pending, stat)

    def _resume(self, stream: ByteStream, stat: os.stat_result) -> tuple[_Progress | None, bytes]:
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

    def _read(
        self, stream: ByteStream, progress: _Progress, pending: bytes, stat: os.stat_result
    ) -> Iterator[EventChunk]:
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

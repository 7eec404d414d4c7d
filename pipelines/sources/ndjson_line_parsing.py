"""NDJSON lines parsed in blocks: split with numpy, handed to DuckDB as an Arrow table, and turned
into events (time, key, text) and rejects (reason, raw text) by one SQL query, with no Python per line."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.sources.base import EVENT_COLUMNS, REJECT_COLUMNS
from pipelines.sources.event_identity import EventIdentity, field_path, sql_literal

UTF8_BOM = b"\xef\xbb\xbf"
# Rejected lines keep at most this many characters of their raw text.
REJECT_RAW_MAX_CHARS = 64 * 1024

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


class LineParser:
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

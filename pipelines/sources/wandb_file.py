"""Read the LevelDB-style transaction log (`run-<id>.wandb`) that wandb-core writes.

Layout (as wandb-core 0.31 writes it): a 7-byte file header, then 32 KiB blocks of
chunks. Each chunk is `uint32 crc | uint16 length | uint8 type` plus payload,
with the plain CRC-32 of `type byte + payload`. A record is one FULL chunk, or
FIRST + MIDDLE* + LAST concatenated, and its payload is a serialized
`wandb_internal.Record` protobuf.
"""

from __future__ import annotations

import functools
import struct
import zlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message
from wandb.proto.wandb_internal_pb2 import Record

__all__ = [
    "BLOCK_SIZE",
    "HEADER",
    "RECORD_TYPE",
    "Record",
    "WandbFileError",
    "iter_payloads",
    "iter_records",
    "parse",
    "RawViews",
    "raw_views",
    "record_type_number",
]

HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
BLOCK_SIZE = 32 * 1024
CHUNK_HEADER_SIZE = 7

FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4

_chunk_header = struct.Struct("<IHB")
# Pre-built one-byte prefixes so the CRC needs no per-chunk allocation.
_TYPE_CRC = {t: zlib.crc32(bytes([t])) for t in (FULL, FIRST, MIDDLE, LAST)}


class WandbFileError(ValueError):
    """The file is not a `.wandb` transaction log this reader understands."""


def check_header(path: Path, head: bytes) -> None:
    """Raise WandbFileError naming `path` unless `head` starts with the W&B log header."""
    if len(head) < len(HEADER) or head[:4] != HEADER[:4]:
        raise WandbFileError(f"{path}: not a W&B transaction log (no ':W&B' header)")
    magic, version = struct.unpack_from("<HB", head, 4)
    if magic != 0xBEE1:
        raise WandbFileError(f"{path}: not a W&B transaction log (magic 0x{magic:04X}, expected 0xBEE1)")
    if version != 0:
        raise WandbFileError(f"{path}: unsupported W&B transaction log version {version} (this reader knows 0)")


def iter_payloads(
    path: str | Path, warnings: list[str], max_bytes: int | None = None
) -> Iterator[tuple[int, bytes | memoryview]]:
    """Yield (byte offset of the record's first chunk, record payload) for every intact record.

    A truncated tail is EOF. A damaged chunk skips the rest of its block and
    appends a warning naming the file and offset to `warnings`. `max_bytes`
    reads only the file's beginning (as if it ended there).
    """
    path = Path(path)
    if max_bytes is None:
        data = path.read_bytes()
    else:
        with path.open("rb") as fh:
            data = fh.read(max_bytes)
    if len(data) < len(HEADER) and HEADER.startswith(data):
        # wandb-core has created the file but not finished its header: a run just starting.
        warnings.append(f"{path}: only {len(data)} bytes, the header is not complete yet; no records")
        return
    check_header(path, data)
    view = memoryview(data)
    size = len(data)
    name = str(path)  # warnings name the file as the caller gave it
    unpack_from = _chunk_header.unpack_from
    crc32 = zlib.crc32
    type_crc = _TYPE_CRC

    pos = len(HEADER)
    parts: list[memoryview] = []  # chunks of the record being assembled
    record_start = -1

    while pos < size:
        block_end = (pos // BLOCK_SIZE + 1) * BLOCK_SIZE
        if block_end - pos < CHUNK_HEADER_SIZE:
            pos = block_end  # the writer pads the last < 7 bytes of a block with zeros
            continue
        if pos + CHUNK_HEADER_SIZE > size:
            break  # header cut off: the writer is mid-chunk
        crc, length, ctype = unpack_from(data, pos)
        if crc == 0 and length == 0 and ctype == 0:
            pos = block_end  # zero header: the rest of the block is empty
            continue
        start = pos + CHUNK_HEADER_SIZE
        end = start + length
        if ctype not in type_crc or end > block_end:
            if end > size and ctype in type_crc:
                break  # payload cut off at EOF, not damage
            warnings.append(
                f"{name}: impossible chunk (type {ctype}, length {length}) at byte {pos}; "
                "skipped the rest of the 32 KiB block"
            )
            pos = block_end
            if parts:
                warnings.append(_dropped(name, record_start))
                parts = []
            continue
        if end > size:
            break  # payload cut off: the file is still being written
        payload = view[start:end]
        if crc32(payload, type_crc[ctype]) != crc:
            warnings.append(f"{name}: bad checksum at byte {pos}; skipped the rest of the 32 KiB block")
            pos = block_end
            if parts:
                warnings.append(_dropped(name, record_start))
                parts = []
            continue
        chunk_pos = pos
        pos = end

        if ctype == FULL:
            if parts:
                warnings.append(_dropped(name, record_start))
                parts = []
            yield chunk_pos, payload
        elif ctype == FIRST:
            if parts:
                warnings.append(_dropped(name, record_start))
            parts = [payload]
            record_start = chunk_pos
        elif not parts:
            # A MIDDLE/LAST whose FIRST was lost to damage: its record is incomplete.
            warnings.append(f"{name}: record continuation at byte {chunk_pos} without its start; dropped")
        elif ctype == MIDDLE:
            parts.append(payload)
        else:
            parts.append(payload)
            yield record_start, b"".join(parts)
            parts = []
    # An unfinished FIRST..MIDDLE at EOF is a record still being written: not a warning.


def _dropped(name: str, offset: int) -> str:
    return f"{name}: record starting at byte {offset} was broken by damage; dropped"


# Record fields outside the `record_type` oneof; any other top-level field names the type.
_NON_TYPE_FIELDS = frozenset(f.number for f in Record.DESCRIPTOR.fields if f.containing_oneof is None)
_TYPE_FIELD_NUMBERS = {f.name: f.number for f in Record.DESCRIPTOR.oneofs_by_name["record_type"].fields}
# record_type oneof name -> field number, e.g. RECORD_TYPE["history"] == 2.
RECORD_TYPE = dict(_TYPE_FIELD_NUMBERS)


def record_type_number(payload: bytes | memoryview) -> int | None:
    """The field number of the record's `record_type` oneof, read from the wire without parsing.

    Returns None when the payload does not scan cleanly, so the caller parses it fully.
    """
    # Fast path for the writer's layout: optional `num` varint (field 1) first, then the oneof.
    pos = 0
    if payload and payload[0] == 0x08:
        pos = 1
        while pos < len(payload) and payload[pos] & 0x80:
            pos += 1
        pos += 1
    if pos < len(payload):
        tag = payload[pos]
        if tag < 0x80 and (tag >> 3) not in _NON_TYPE_FIELDS:
            return tag >> 3
    return _scan_record_type(payload)


def _scan_record_type(payload: bytes | memoryview) -> int | None:
    """The general form of record_type_number: walk every top-level field."""
    pos = 0
    size = len(payload)
    while pos < size:
        tag, pos = _varint(payload, pos)
        if tag is None:
            return None
        field, wire = tag >> 3, tag & 7
        if field not in _NON_TYPE_FIELDS:
            return field
        if wire == 0:
            _, pos = _varint(payload, pos)
            if pos < 0:
                return None
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, pos = _varint(payload, pos)
            if length is None:
                return None
            pos += length
        elif wire == 5:
            pos += 4
        else:
            return None
    return None


def _varint(buf: bytes | memoryview, pos: int) -> tuple[int | None, int]:
    """Decode a protobuf varint at `pos`; (None, -1) when it runs off the end."""
    result = 0
    shift = 0
    size = len(buf)
    while pos < size and shift < 64:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
    return None, -1


def parse(cls: type[Message], path: Path, offset: int, payload: bytes | memoryview, warnings: list[str]) -> Any:
    """`cls.FromString(payload)`, or None plus a warning when the bytes are not a valid message."""
    try:
        return cls.FromString(payload)
    except DecodeError:  # the CRC passed, so the writer wrote it this way; skip just this record
        warnings.append(f"{path}: record at byte {offset} is not a valid protobuf; skipped")
        return None


def iter_records(path: str | Path, warnings: list[str], types: Collection[str] | None = None) -> Iterator[Record]:
    """Yield every intact `wandb_internal.Record` in the file, in file order.

    With `types` (names of the `record_type` oneof, e.g. {"history", "run"}),
    records of other types are skipped before protobuf parsing, which is most
    of the cost for console output and system stats.
    """
    path = Path(path)
    wanted = None if types is None else frozenset(_TYPE_FIELD_NUMBERS[t] for t in types)
    for offset, payload in iter_payloads(path, warnings):
        number = None
        if wanted is not None:
            number = record_type_number(payload)
            if number is not None and number not in wanted:
                continue
        record = parse(Record, path, offset, payload, warnings)
        if record is None:
            continue
        if wanted is not None and number is None and record.WhichOneof("record_type") not in types:
            continue
        yield record


@dataclass(frozen=True)
class RawViews:
    """Lean views of `Record` that keep history/summary/config items as undecoded bytes.

    Field numbers match wandb_internal.proto (Record.history=2, summary=3,
    config=5; HistoryRecord.item=1, step=2; Summary/ConfigRecord.update=1,
    remove=2), so they parse the same payloads. Protobuf merges concatenated
    messages, so many records' payloads joined together parse in one call:
    `merged` appends every record's items into one list, `rows` keeps one
    history entry per record (for its step and item count). Splitting into item
    byte strings then happens in C, and the caller decodes items in bulk.
    """

    merged: type[Message]  # history/summary/config singular: repeated items accumulate
    rows: type[Message]  # history repeated: one entry per history record


@functools.cache
def raw_views() -> RawViews:
    """Build the lean message classes once per process, in a private descriptor pool."""
    f = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="grpo_wandb_raw.proto", package="grpo_wandb_raw", syntax="proto3")

    def message(name: str, *fields: tuple[str, int, int, int, str]) -> None:
        m = file.message_type.add(name=name)
        for field_name, number, ftype, label, type_name in fields:
            field = m.field.add(name=field_name, number=number, type=ftype, label=label)
            if type_name:
                field.type_name = f".grpo_wandb_raw.{type_name}"

    one, many = f.LABEL_OPTIONAL, f.LABEL_REPEATED
    message("Step", ("num", 1, f.TYPE_INT64, one, ""))
    message("History", ("item", 1, f.TYPE_BYTES, many, ""), ("step", 2, f.TYPE_MESSAGE, one, "Step"))
    message("Updates", ("update", 1, f.TYPE_BYTES, many, ""), ("remove", 2, f.TYPE_BYTES, many, ""))
    message(
        "Merged",
        ("history", 2, f.TYPE_MESSAGE, one, "History"),
        ("summary", 3, f.TYPE_MESSAGE, one, "Updates"),
        ("config", 5, f.TYPE_MESSAGE, one, "Updates"),
    )
    message("Rows", ("history", 2, f.TYPE_MESSAGE, many, "History"))
    pool = descriptor_pool.DescriptorPool()  # private pool: no clash with wandb's own descriptors
    pool.Add(file)
    return RawViews(
        merged=message_factory.GetMessageClass(pool.FindMessageTypeByName("grpo_wandb_raw.Merged")),
        rows=message_factory.GetMessageClass(pool.FindMessageTypeByName("grpo_wandb_raw.Rows")),
    )

"""Write `.wandb` transaction logs directly, in the format wandb-core 0.31 writes.

Logging 500 runs x 5,000 steps through the real `wandb` library would take
hours, so the benchmark writes the bytes itself:

* framing: the 7-byte `:W&B` header, 32 KiB blocks, chunks of
  `uint32 crc | uint16 length | uint8 type` (plain CRC-32 of type byte +
  payload), FULL or FIRST/MIDDLE*/LAST, zero padding of block tails < 7 bytes;
* payloads: serialized `wandb_internal.Record` messages shaped like the 0.31
  writer's (seen by dumping a file the real library wrote): `num` first, then
  the record; per step a `_wandb.runtime` heartbeat summary, a summary with the
  whole row, then the history record with `nested_key` items plus `_step`,
  `_runtime` and `_timestamp` and `step.num`.

Per-step records are built for a whole run at once with Arrow string kernels
(one template per key, values patched in as JSON text); only the framing loop
is Python, once per record.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from wandb.proto import wandb_internal_pb2 as pb
from wandb.proto import wandb_telemetry_pb2 as tpb

HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
BLOCK = 32 * 1024
CHUNK_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
_TYPE_CRC = {t: zlib.crc32(bytes([t])) for t in (FULL, FIRST, MIDDLE, LAST)}
_pack_header = struct.Struct("<IHB").pack

PRODUCER = "0.31.0+15f8cbc581d1c5cfc6e31f68b48bdd13cec2dd2c"


# --- protobuf wire helpers (vectorised) ------------------------------------------


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _binary_from(offsets: np.ndarray, data: np.ndarray) -> pa.Array:
    n = len(offsets) - 1
    return pa.Array.from_buffers(
        pa.binary(), n, [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(np.ascontiguousarray(data))]
    )


def varints(values: np.ndarray) -> pa.Array:
    """Protobuf varints of non-negative integers, as an Arrow binary array."""
    v = np.asarray(values, dtype=np.uint64)
    nbytes = np.ones(len(v), dtype=np.int64)
    for k in range(1, 10):
        nbytes += v >= (np.uint64(1) << np.uint64(7 * k))
    offsets = np.zeros(len(v) + 1, dtype=np.int64)
    np.cumsum(nbytes, out=offsets[1:])
    data = np.empty(int(offsets[-1]), dtype=np.uint8)
    starts = offsets[:-1]
    for k in range(int(nbytes.max(initial=1))):
        sel = nbytes > k
        byte = ((v[sel] >> np.uint64(7 * k)) & np.uint64(0x7F)).astype(np.uint8)
        more = (nbytes[sel] > k + 1).astype(np.uint8) << 7
        data[starts[sel] + k] = byte | more
    return _binary_from(offsets, data)


def _len(arr: pa.Array) -> np.ndarray:
    """Byte lengths; 0 where null (callers keep the nulls through `join`)."""
    return pc.fill_null(pc.binary_length(arr), 0).to_numpy(zero_copy_only=False).astype(np.int64)


def join(*parts, null_handling: str = "emit_null") -> pa.Array:
    """Row-wise concatenation of binary arrays and byte-string constants."""
    args = [pa.scalar(p, pa.binary()) if isinstance(p, bytes) else p for p in parts]
    return pc.binary_join_element_wise(*args, pa.scalar(b"", pa.binary()), null_handling=null_handling)


def length_delimited(tag: bytes, body: pa.Array) -> pa.Array:
    """`tag varint(len(body)) body` per row (nulls stay null)."""
    lengths = _len(body)
    return join(tag, varints(lengths), body)


def nested_item_column(name: str, values: pa.Array, tag: bytes = b"\x0a") -> pa.Array:
    """History/summary items `{nested_key: [name], value_json: value}`, wrapped as repeated field 1.

    `values` is the JSON text per row (null = key not logged at that row).
    """
    key = name.encode()
    prefix = b"\x12" + varint(len(key)) + key + b"\x82\x01"  # nested_key (2), then value_json (16)
    values = values.cast(pa.binary())
    vlen = _len(values)
    inner = join(prefix, varints(vlen), values)
    return length_delimited(tag, inner)


def json_numbers(values: np.ndarray, decimals: int | None = None) -> pa.Array:
    """JSON text of float64 values (shortest round-trip form, `1` for 1.0 as wandb-core writes it)."""
    if decimals is not None:
        values = np.round(values, decimals)
    return pc.cast(pa.array(values, pa.float64()), pa.string())


def json_ints(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(np.asarray(values, dtype=np.int64)), pa.string())


# --- one run ---------------------------------------------------------------------


@dataclass
class RunSpec:
    run_id: str
    name: str
    group: str
    project: str
    entity: str
    config: dict
    start_time: float  # epoch seconds
    host: str = "gpu-node-1"
    job_type: str = "train"
    exit_code: int | None = 0  # None: still running (no exit record)
    runtime_s: int = 0


@dataclass
class RunRows:
    """What a run logged: steps, and per key the JSON text per step (null where not logged)."""

    steps: np.ndarray  # int64, strictly increasing
    timestamp: pa.Array  # JSON text of _timestamp per step
    runtime: pa.Array  # JSON text of _runtime per step
    columns: dict[str, pa.Array]  # key -> JSON text per step, null = not logged at that step


def step_payloads(rows: RunRows, first_num: int) -> tuple[pa.Array, int]:
    """Per step, in file order: heartbeat summary, row summary, history. Returns (payloads, next num)."""
    n = len(rows.steps)
    items = [nested_item_column(k, v) for k, v in rows.columns.items()]
    items += [
        nested_item_column("_timestamp", rows.timestamp),
        nested_item_column("_runtime", rows.runtime),
        nested_item_column("_step", json_ints(rows.steps)),
    ]
    body = join(*items, null_handling="skip")
    steps = rows.steps.astype(np.int64)
    step_inner = join(b"\x08", varints(steps))
    step_field = length_delimited(b"\x12", step_inner)  # HistoryRecord.step (2)
    history = length_delimited(b"\x12", join(body, step_field))  # Record.history (2)
    summary = length_delimited(b"\x1a", body)  # Record.summary (3): the same items as updates

    # wandb-core's runtime heartbeat: {_wandb: {runtime: s}} (nested) and `_runtime` (key).
    runtime_s = pc.cast(pc.cast(pc.cast(rows.runtime, pa.float64()), pa.int64(), safe=False), pa.string())
    wandb_key = b"\x12\x06_wandb\x12\x07runtime\x82\x01"
    rt = runtime_s.cast(pa.binary())
    rt_len = varints(_len(rt))
    hb_nested = length_delimited(b"\x0a", join(wandb_key, rt_len, rt))
    hb_key = length_delimited(b"\x0a", join(b"\x0a\x08_runtime\x82\x01", rt_len, rt))
    heartbeat = length_delimited(b"\x1a", join(hb_nested, hb_key))

    nums = first_num + np.arange(3 * n, dtype=np.int64)
    num_field = join(b"\x08", varints(nums))
    stacked = pa.concat_arrays([heartbeat, summary, history])
    # interleave: step i -> heartbeat i, summary i, history i
    order = (np.arange(n)[:, None] + np.array([0, n, 2 * n])[None, :]).reshape(-1)
    payloads = join(num_field, stacked.take(pa.array(order)))
    return payloads, first_num + 3 * n


def _with_info(msg, run_id: str):
    msg._info.stream_id = run_id
    return msg


def head_records(spec: RunSpec) -> list[bytes]:
    """header, run (with the init config), environment, files, telemetry: what wandb-core writes first."""
    header = _with_info(
        pb.Record(num=1, header=pb.HeaderRecord(version_info=pb.VersionInfo(producer=PRODUCER, min_consumer="0.70.0"))),
        spec.run_id,
    )
    seconds = int(spec.start_time)
    nanos = int(round((spec.start_time - seconds) * 1e6)) * 1000
    config_items = [pb.ConfigItem(key="_wandb", value_json="{}")]
    config_items += [pb.ConfigItem(key=k, value_json=_compact_json(v)) for k, v in spec.config.items()]
    run = pb.RunRecord(
        run_id=spec.run_id,
        entity=spec.entity,
        project=spec.project,
        config=pb.ConfigRecord(update=config_items),
        run_group=spec.group,
        job_type=spec.job_type,
        display_name=spec.name,
        host=spec.host,
    )
    run.start_time.seconds = seconds
    run.start_time.nanos = nanos
    run.telemetry.python_version = "3.11.7"
    run.telemetry.cli_version = "0.31.0"
    run.telemetry.platform = "linux-x86_64"
    run.telemetry.feature.offline = True
    run_rec = _with_info(pb.Record(num=2, run=run), spec.run_id)
    run_rec.control.mailbox_slot = "bench" + spec.run_id
    env = pb.Record(
        num=3,
        environment=pb.EnvironmentRecord(
            os="Linux-6.1-x86_64",
            python="CPython 3.11.7",
            host=spec.host,
            program="train_grpo.py",
            cpu_count=64,
            cpu_count_logical=128,
        ),
    )
    files = pb.Record(
        num=4, files=pb.FilesRecord(files=[pb.FilesItem(path="requirements.txt", type=pb.FilesItem.FileType.WANDB)])
    )
    tele = _with_info(
        pb.Record(
            num=5, telemetry=tpb.TelemetryRecord(python_version="3.11.7", cli_version="0.31.0", platform="linux-x86_64")
        ),
        spec.run_id,
    )
    return [r.SerializeToString() for r in (header, run_rec, env, files, tele)]


HEAD_RECORDS = 5


def tail_records(spec: RunSpec, num: int) -> list[bytes]:
    """The exit record (none while the run is still going)."""
    if spec.exit_code is None:
        return []
    rec = _with_info(
        pb.Record(num=num, exit=pb.RunExitRecord(exit_code=spec.exit_code, runtime=int(spec.runtime_s))), spec.run_id
    )
    rec.control.mailbox_slot = "exit" + spec.run_id
    return [rec.SerializeToString()]


def _compact_json(value) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))


# --- framing -----------------------------------------------------------------------


class LogWriter:
    """Frames record payloads into the LevelDB-style log, in memory."""

    def __init__(self) -> None:
        self.out = bytearray(HEADER)

    def add(self, payloads: Iterable[bytes]) -> None:
        out = self.out
        pos = len(out)
        crc32 = zlib.crc32
        type_crc = _TYPE_CRC
        pack = _pack_header
        for p in payloads:
            size = len(p)
            off = 0
            first = True
            while True:
                room = BLOCK - pos % BLOCK
                if room < CHUNK_HEADER:
                    out += b"\x00" * room
                    pos += room
                    room = BLOCK
                frag = min(size - off, room - CHUNK_HEADER)
                last = off + frag == size
                kind = (FULL if last else FIRST) if first else (LAST if last else MIDDLE)
                chunk = p[off : off + frag]
                out += pack(crc32(chunk, type_crc[kind]), frag, kind)
                out += chunk
                pos += CHUNK_HEADER + frag
                off += frag
                first = False
                if last:
                    break

    def bytes(self) -> bytes:
        return bytes(self.out)


def write_run(path, spec: RunSpec, rows: RunRows) -> int:
    """Write one run's `.wandb` file; returns its size in bytes."""
    w = LogWriter()
    w.add(head_records(spec))
    payloads, num = step_payloads(rows, HEAD_RECORDS + 1)
    w.add(payloads.to_pylist())
    w.add(tail_records(spec, num))
    data = w.bytes()
    with open(path, "wb") as fh:
        fh.write(data)
    return len(data)


def expected_history(rows: RunRows) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """key -> (steps, values) that a correct reader must return for this run (numeric keys only)."""
    out = {}
    for key, text in rows.columns.items():
        valid = pc.is_valid(text).to_numpy(zero_copy_only=False)
        values = pc.cast(text.filter(pa.array(valid)), pa.float64()).to_numpy(zero_copy_only=False)
        out[key] = (rows.steps[valid], values)
    return out


__all__: Sequence[str] = [
    "BLOCK",
    "HEADER",
    "LogWriter",
    "RunRows",
    "RunSpec",
    "expected_history",
    "json_ints",
    "json_numbers",
    "write_run",
]

"""Real `.wandb` files for the reader tests, written by the wandb library itself.

`write_runs` replays a JSON spec (init kwargs, logged steps, summary and config
updates, exit code) in a fresh Python process running real `wandb` in offline
mode, so no global wandb state leaks into the test process. Run as a script,
this module is that replaying process.

It also holds an independent walker and writer of the log framing
(the block/chunk layout of pipelines/sources/wandb_file.py), used to find record boundaries for cut and damage tests and
to write hand-made logs for cases the wandb library does not produce.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BLOCK = 32 * 1024
HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)


def write_runs(specs: list[dict[str, Any]], workdir: Path) -> None:
    """Create every run in `specs` with real wandb (offline) in one child process."""
    workdir.mkdir(parents=True, exist_ok=True)
    spec_file = workdir / "spec.json"
    spec_file.write_text(json.dumps(specs, allow_nan=True), encoding="utf-8")
    home = workdir / "wandb-home"
    env = dict(os.environ)
    env.update(
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        WANDB_DIR=str(home),
        WANDB_CONFIG_DIR=str(home / "config"),
        WANDB_CACHE_DIR=str(home / "cache"),
        WANDB_DATA_DIR=str(home / "data"),
        WANDB_DISABLE_GIT="true",
    )
    env.pop("WANDB_API_KEY", None)
    subprocess.run(
        [sys.executable, __file__, str(spec_file)],
        cwd=workdir,  # wandb may drop files in the cwd; keep them out of the repo
        env=env,
        check=True,
        timeout=300,
    )


def _replay(spec_file: str) -> None:
    import wandb  # imported here: only the child process loads wandb

    specs = json.loads(Path(spec_file).read_text(encoding="utf-8"))
    for spec in specs:
        # A resumed run's next segment: wandb names run folders by the second they start in.
        time.sleep(spec.get("pause_s", 0))
        run = wandb.init(mode="offline", dir=spec["dir"], **spec["init"])
        for definition in spec.get("define_metrics", []):  # wandb.define_metric(name, step_metric=...)
            run.define_metric(**definition)
        for row in spec["steps"]:
            run.log(row["data"], step=row.get("step"))  # no step: W&B's own counter, one per call
        for key, value in spec.get("summary", {}).items():
            run.summary[key] = value
        if spec.get("config_update"):
            run.config.update(spec["config_update"])
        run.finish(exit_code=spec.get("exit_code", 0))


@dataclass(frozen=True)
class Span:
    """One record in a log: where its first chunk starts, where its last chunk ends, its payload."""

    start: int
    end: int
    payload: bytes
    chunk_types: tuple[int, ...]


def _chunks(data: bytes):
    """(offset, length, type) of every chunk of an intact log (the framing wandb-core writes, no CRC checks)."""
    pos = len(HEADER)
    while pos < len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:
            pos += left
            continue
        if pos + 7 > len(data):
            break
        crc, length, ctype = struct.unpack_from("<IHB", data, pos)
        if (crc, length, ctype) == (0, 0, 0):
            pos += left
            continue
        yield pos, length, ctype
        pos += 7 + length


def chunk_starts(data: bytes) -> list[int]:
    """Every chunk header of an intact log."""
    return [pos for pos, _, _ in _chunks(data)]


def record_spans(data: bytes) -> list[Span]:
    """Walk the framing of an intact log (no CRC checks) and list its records."""
    assert data[:7] == HEADER
    spans: list[Span] = []
    parts: list[bytes] = []
    types: list[int] = []
    start = 0
    for pos, length, ctype in _chunks(data):
        if ctype in (1, 2):
            start, parts, types = pos, [], []
        parts.append(data[pos + 7 : pos + 7 + length])
        types.append(ctype)
        if ctype in (1, 4):
            spans.append(Span(start, pos + 7 + length, b"".join(parts), tuple(types)))
    return spans


def write_log(path: Path, payloads: list[bytes], header: bytes = HEADER) -> None:
    """Write `payloads` as a log the way wandb-core does, splitting records across blocks."""
    out = bytearray(header)
    for payload in payloads:
        rest = payload
        first = True
        while True:
            left = BLOCK - len(out) % BLOCK
            if left < 7:
                out += b"\0" * left
                continue
            room = left - 7
            piece, rest = rest[:room], rest[room:]
            if first:
                ctype = 1 if not rest else 2
            else:
                ctype = 4 if not rest else 3
            crc = zlib.crc32(bytes([ctype]) + piece)
            out += struct.pack("<IHB", crc, len(piece), ctype) + piece
            first = False
            if not rest:
                break
    path.write_bytes(bytes(out))


if __name__ == "__main__":
    _replay(sys.argv[1])

"""The bytes of an NDJSON file, plain or gzip-compressed (several members, a truncated end), read
forward with the means to give back, skip and restart that incremental reads need."""

from __future__ import annotations

import os
import zlib
from typing import BinaryIO

GZIP_MAGIC = b"\x1f\x8b"
# Bytes per read: reads above ~32 MB are fresh mmaps on every call, which costs more
# in page faults than the parsing.
READ_BYTES = 16 * 1024 * 1024


class ByteStream:
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


class PlainStream(ByteStream):
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


class GzipStream(ByteStream):
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

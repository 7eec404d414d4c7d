"""The warehouse's single-writer lock: who holds it, and whether a dead writer's files are still in use.

One ingest, dbt build or publish writes at a time; readers of the published
snapshot never take it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipelines.raw.paths import WarehousePaths

# How a wait for the write lock starts to be told (Warehouse.lock's on_wait).
LOCK_WAIT_MESSAGE = "waiting for the warehouse write lock"


class WarehouseBusyError(RuntimeError):
    """Another process holds the warehouse write lock."""


def lock_holders(path: Path) -> list[int]:
    """PIDs of other processes holding a POSIX lock on `path` (DuckDB locks its files so).

    Read from /proc/locks, which needs no file descriptor: opening and closing
    the file here would drop locks this process itself holds on it. Where
    /proc/locks does not exist the answer is empty.
    """
    try:
        st = os.stat(path)
        with open("/proc/locks", encoding="ascii", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return []
    file_id = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    me = os.getpid()
    pids: list[int] = []
    for line in lines:
        f = line.split()
        # "1: POSIX  ADVISORY  WRITE 4242 fe:00:2154607 0 EOF"; "1: -> POSIX ..." is a waiter
        if len(f) < 6 or f[1] not in ("POSIX", "OFDLCK") or f[5] != file_id or not f[4].isdigit():
            continue
        if int(f[4]) != me and int(f[4]) not in pids:
            pids.append(int(f[4]))
    return pids


def tmp_writer_alive(name: str, suffix: str) -> bool:
    """Whether the process that named a temp file `.<name>.<pid><suffix>` still runs."""
    pid = name.removesuffix(suffix).rsplit(".", 1)[-1]
    return pid.isdigit() and int(pid) != os.getpid() and _pid_alive(int(pid))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def hold(
    warehouse: WarehousePaths,
    timeout_s: float = 0.0,
    purpose: str = "ingest",
    *,
    wait_for_build_db: bool = True,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Exclusive write lock over the warehouse (one ingest or build at a time).

    Waits up to `timeout_s`, then raises WarehouseBusyError naming the holder;
    `on_wait` hears once, when waiting starts, who holds it.
    With `wait_for_build_db` (for dbt builds and publishes; a raw ingest
    does not touch the build database) it also waits until no other
    process has the build database open.
    """
    warehouse.root.mkdir(parents=True, exist_ok=True)
    path = warehouse.root / ".lock"
    fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (held while the lock is; closed in the finally below)
    deadline = time.monotonic() + timeout_s
    told = False

    def tell(what: str) -> None:
        nonlocal told
        if on_wait is not None and not told and time.monotonic() < deadline:
            on_wait(f"{LOCK_WAIT_MESSAGE}: {what} (for up to {timeout_s:g} s)")
            told = True

    try:
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                tell(f"{holder} holds it")
                if time.monotonic() >= deadline:
                    raise WarehouseBusyError(
                        f"warehouse {warehouse.root} is busy: {holder} holds its write lock; try again when it finishes"
                    ) from None
                time.sleep(0.2)
        # A dbt build is a child process: if the process that held this lock
        # was killed, its dbt can go on writing the build database after the
        # lock was released. Wait for it, or the next build fails on
        # DuckDB's own lock ("Conflicting lock is held in ...").
        while wait_for_build_db and (holders := lock_holders(warehouse.build_db)):
            tell(f"process {', '.join(map(str, holders))} still has {warehouse.build_db.name} open")
            if time.monotonic() >= deadline:
                raise WarehouseBusyError(
                    f"warehouse {warehouse.root} is busy: process {', '.join(map(str, holders))} still has "
                    f"{warehouse.build_db.name} open (a dbt build whose parent was killed?); "
                    "try again when it finishes"
                )
            time.sleep(0.2)
        fh.seek(0)
        fh.truncate()
        fh.write(f"{purpose} (pid {os.getpid()})")
        fh.flush()
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        fh.close()

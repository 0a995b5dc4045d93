"""Verifying a long log on two cores.

Every line carries its own `seq`, `txn` and `prev`, so a scan can start at any batch
boundary without reading what precedes it: the boundary's position is what the line after
it claims, and the scan of the first half proves or refutes that claim when it arrives
there. A forked child scans the second half while this process scans the first; the result
is the sequential scan's, or `None` whenever anything does not line up (corruption in the
second half, a boundary that is not one, a concurrent truncation): the caller then runs the
sequential scan, which finds and names the first bad seq exactly as it always does.
Corruption in the first half is raised directly: it is the sequential scan's own error.
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
from pathlib import Path
from typing import Callable, TypeVar

import orjson

from .scan import LogScanner, Position, Tail
from .store import count_events

#: below this many bytes a fork costs more than the second core saves
MIN_BYTES = 32 << 20


def middle_boundary(path: Path, start: Position, size: int) -> Position | None:
    """The batch boundary at or after the middle of [start.cursor, size), as the next line claims it."""
    try:
        with open(path, "rb") as f:
            f.seek((start.cursor + size) // 2)
            f.readline()  # the rest of a line cut by the seek
            obj = orjson.loads(f.readline())
            first, count = obj["txn"]
            for _ in range(first + count - 1 - obj["seq"]):
                f.readline()
            offset = f.tell()
            line = f.readline()
            if not line.endswith(b"\n"):
                return None
            after = orjson.loads(line)
            if after["seq"] != first + count or not isinstance(after["prev"], str):
                return None
            return Position(after["seq"] - 1, after["prev"], offset)
    except (OSError, ValueError, KeyError, TypeError):
        return None


T = TypeVar("T")


def in_halves(path: Path, start: Position, work: Callable[[LogScanner], T], stop_after: int | None = None,
              min_bytes: int | None = None) -> tuple[T, T] | None:
    """`work` over the log from `start` (up to `stop_after`) split at the middle batch boundary:
    (its result on the first half, its result on the second half), computed on two cores.

    None (the caller then scans in one pass) when the log is shorter than `min_bytes`
    (default `MIN_BYTES`), the process has other threads (forking them is unsafe), the halves
    do not join up, or anything fails in the second half. Corruption in the first half is
    raised: it is the one-pass scan's own error. `work` runs in a forked child for the second
    half, and its result comes back pickled, so it must be picklable.
    """
    try:
        size = os.stat(path).st_size
    except OSError:
        return None
    threshold = MIN_BYTES if min_bytes is None else min_bytes
    if size - int(start.cursor) < threshold or (os.cpu_count() or 1) < 2 or threading.active_count() > 1:
        return None
    boundary = middle_boundary(path, start, size)
    if boundary is None or boundary.seq <= start.seq or (stop_after is not None and boundary.seq >= stop_after):
        return None
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: the second half, sent back; never returns into the caller
        os.close(read_fd)
        try:
            try:
                second: tuple[T] | None = (work(LogScanner(path, boundary, stop_after=stop_after)),)
            except Exception:  # any failure: the parent falls back to the one-pass scan
                second = None
            with os.fdopen(write_fd, "wb") as pipe:
                pickle.dump(second, pipe, protocol=pickle.HIGHEST_PROTOCOL)
        finally:
            os._exit(0)
    os.close(write_fd)
    try:
        scanner = LogScanner(path, start, stop_after=boundary.seq)
        first = work(scanner)
    except BaseException:  # corruption in the first half (the one-pass scan's own error), or an interrupt
        os.kill(pid, signal.SIGKILL)
        raise
    finally:
        with os.fdopen(read_fd, "rb") as pipe:
            raw = pipe.read()
        os.waitpid(pid, 0)
    try:
        got = pickle.loads(raw)
    except Exception:
        return None
    if got is None or (scanner.end.seq, scanner.end.hash, scanner.end.cursor) != (
            boundary.seq, boundary.hash, boundary.cursor):
        return None
    return first, got[0]


def _count(scanner: LogScanner) -> tuple[int, Position, Tail]:
    events = count_events(scanner)
    return events, scanner.end, scanner.tail


def verify_split(path: Path, start: Position) -> tuple[Position, int, Tail] | None:
    """(end, events, tail) of a full scan from `start`, computed on two cores; None if the
    log is small, the process has other threads, or the halves do not join up."""
    halves = in_halves(path, start, _count)
    if halves is None:
        return None
    (first, _, _), (second, end, tail) = halves
    return end, first + second, tail

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
import signal
import threading
from pathlib import Path
from typing import Any

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


def _scan_to_pipe(path: Path, start: Position, fd: int) -> None:
    """In the child: scan from `start` to the end; report the end, tail and count, or failure."""
    try:
        scanner = LogScanner(path, start)
        events = count_events(scanner)
        end, tail = scanner.end, scanner.tail
        out: dict[str, Any] = {"end": [end.seq, end.hash, end.cursor, end.at], "events": events,
                               "tail": [tail.bytes, tail.lines]}
    except Exception:  # any failure: the parent falls back to the sequential scan
        out = {"failed": True}
    with os.fdopen(fd, "wb") as pipe:
        pipe.write(orjson.dumps(out))


def verify_split(path: Path, start: Position) -> tuple[Position, int, Tail] | None:
    """(end, events, tail) of a full scan from `start`, computed on two cores; None if the
    log is small, the process has other threads (forking them is unsafe), or the halves
    do not join up."""
    try:
        size = os.stat(path).st_size
    except OSError:
        return None
    if size - start.cursor < MIN_BYTES or (os.cpu_count() or 1) < 2 or threading.active_count() > 1:
        return None
    boundary = middle_boundary(path, start, size)
    if boundary is None or boundary.seq <= start.seq:
        return None
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        try:
            _scan_to_pipe(path, boundary, write_fd)
        finally:
            os._exit(0)
    os.close(write_fd)
    try:
        first = LogScanner(path, start, stop_after=boundary.seq)
        events = count_events(first)
    except BaseException:  # corruption in the first half (the sequential scan's own error), or an interrupt
        os.kill(pid, signal.SIGKILL)
        raise
    finally:
        with os.fdopen(read_fd, "rb") as pipe:
            raw = pipe.read()
        os.waitpid(pid, 0)
    try:
        second = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if "failed" in second or (first.end.seq, first.end.hash, first.end.cursor) != (boundary.seq, boundary.hash, boundary.cursor):
        return None
    end = Position(*second["end"])
    return end, events + second["events"], Tail(*second["tail"])

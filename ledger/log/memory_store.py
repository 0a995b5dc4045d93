"""The in-memory backend: a ledger in one process, for fast tests and throwaway work.

It keeps each batch as one blob of encoded lines, the way an object store keeps one object
per batch, and is deliberately *optimistic*: `writing()` is not exclusive, so writers
racing from several threads meet at the conditional append, one wins and the others are
told to re-read and retry -- the same path an object store takes. A cursor is the number
of batches before a boundary. Nothing survives the process.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager, nullcontext
from itertools import count

from ..errors import CorruptLogError, InvalidInputError, NotALedgerError
from .scan import BatchScanner, LogScan, Position, closes_batch
from .store import CutTail, LogStore

_names = count(1)


class MemoryLogStore(LogStore):
    """A ledger held in this process's memory; safe to share between threads."""

    multi_process = False

    def __init__(self, name: str | None = None) -> None:
        self.location = f"memory:{name if name is not None else next(_names)}"
        self._lock = threading.Lock()
        self._config: bytes | None = None
        self._batches: list[bytes] = []
        self._checkpoints: dict[int, bytes] = {}
        self._copy_marker: bytes | None = None

    def __repr__(self) -> str:
        return f"MemoryLogStore({self.location!r})"

    def create(self, config: bytes) -> None:
        with self._lock:
            if self._config is not None:
                raise InvalidInputError(f"{self.location} already holds a ledger")
            self._config = bytes(config)

    def read_config(self) -> bytes:
        if self._config is None:
            raise NotALedgerError(f"{self.location} is not a ledger (nothing was created there)")
        return self._config

    def scan(self, start: Position, stop_after: int | None = None) -> LogScan:
        with self._lock:
            first = start.cursor
            if type(first) is not int or not 0 <= first <= len(self._batches):
                raise CorruptLogError(start.seq, f"log does not reach batch {first!r}")
            after = self._batches[first:]  # a snapshot: appends after this call are not seen
        return BatchScanner(enumerate(after, first + 1), start, stop_after)

    def writing(self) -> AbstractContextManager[None]:
        return nullcontext()  # optimistic: the conditional append decides (module docstring)

    def append(self, end: Position, lines: bytes, last: Position) -> Position | None:
        with self._lock:
            if len(self._batches) != end.cursor:
                return None
            self._batches.append(bytes(lines))
            return Position(last.seq, last.hash, len(self._batches), last.at)

    def cut_tail(self, end: Position) -> CutTail | None:
        return None  # a batch is added whole under the lock: there is never a tail

    def is_boundary(self, pos: Position) -> bool:
        with self._lock:
            if pos.seq < 1 or type(pos.cursor) is not int or not 1 <= pos.cursor <= len(self._batches):
                return False
            blob = self._batches[pos.cursor - 1]
        return closes_batch(blob[blob.rfind(b"\n", 0, len(blob) - 1) + 1 : -1], pos)

    def extent(self, pos: Position | None = None) -> int:
        """Batches (before `pos`)."""
        return len(self._batches) if pos is None else int(pos.cursor)

    def copy_marker(self) -> bytes | None:
        return self._copy_marker

    def set_copy_marker(self, data: bytes | None) -> None:
        with self._lock:
            self._copy_marker = None if data is None else bytes(data)

    def write_checkpoint(self, seq: int, data: bytes) -> None:
        with self._lock:
            self._checkpoints[seq] = bytes(data)

    def checkpoints(self) -> list[int]:
        with self._lock:
            return sorted(self._checkpoints, reverse=True)

    def read_checkpoint(self, seq: int) -> bytes | None:
        return self._checkpoints.get(seq)

    def delete_checkpoint(self, seq: int) -> None:
        with self._lock:
            self._checkpoints.pop(seq, None)

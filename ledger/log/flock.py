"""An exclusive section across the processes of one machine and the threads of one process.

`flock(2)` on a lock file orders processes; a re-entrant mutex orders the threads that share
one `ProcessLock` (and so one descriptor, since flock locks belong to the open file
description, not the thread). A child forked while the parent held the lock shares that
description: it opens its own before locking, or it would think it already holds the lock.
"""

from __future__ import annotations

import fcntl
import os
import threading
from contextlib import AbstractContextManager
from pathlib import Path

from .fsio import environment_error


class ProcessLock(AbstractContextManager[None]):
    """`with lock:` holds `path`'s flock (created when missing); re-entrant within a thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mutex = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        self._pid = 0

    def __enter__(self) -> None:
        self._enter(wait=True)

    def acquire_now(self) -> AbstractContextManager[None] | None:
        """The lock, already entered (leave it with `with`), if no other process holds it;
        else None at once: never waits for another process."""
        return _Held(self) if self._enter(wait=False) else None

    def _enter(self, wait: bool) -> bool:
        self._mutex.acquire()
        try:
            if self._depth == 0 and not self._lock(wait):
                self._mutex.release()
                return False
        except BaseException:
            self._mutex.release()
            raise
        self._depth += 1
        return True

    def __exit__(self, *exc: object) -> None:
        try:
            self._depth -= 1
            if self._depth == 0:
                assert self._fd is not None
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._mutex.release()

    def _lock(self, wait: bool) -> bool:
        if self._fd is not None and self._pid != os.getpid():
            self._fd = None  # inherited over fork: the description is shared, so get our own
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise environment_error(exc, f"opening {self.path}") from exc
            self._pid = os.getpid()
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def close(self) -> None:
        """Close the descriptor when no thread holds the lock (it is reopened on next use)."""
        with self._mutex:
            if self._fd is not None and self._depth == 0:
                os.close(self._fd)
                self._fd = None


class _Held(AbstractContextManager[None]):
    """A `ProcessLock` entered by `acquire_now`: `with` only leaves it."""

    __slots__ = ("lock",)

    def __init__(self, lock: ProcessLock) -> None:
        self.lock = lock

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        self.lock.__exit__()

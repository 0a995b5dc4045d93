"""Group commit for the local directory: where waiting writers leave their batches (docs/FORMAT.md §5.5).

One durable append costs a flock handoff, a catch-up, an fdatasync and an index commit, all
under the lock. With several writers, each paying all of that in turn makes more writers
slower than one. So a writer that finds the lock taken does not queue for it with its batch:
it leaves the batch here as a *request* and waits only for the holder to leave. The holder
(the *leader*), after its own batch, takes every pending request, validates each as its own
batch, writes all accepted lines with one write and one fdatasync, and leaves a *result*
beside each request before it releases the lock. A follower that finds no result (its
request came too late, or the leader died) takes the lock and appends its batch itself.

This module only keeps the files; what a request and a result say is the service's business
(ledger/app/group.py). In `spool/`, for a request named `<n>` (time, pid, random):

- `<n>.req`: the request, published by renaming `<n>.req.tmp` once whole. Its writer holds an
  flock on it for as long as it waits, which is how a leader tells a waiting writer's request
  from one a killed writer left: the latter is deleted, unanswered (nobody was promised it).
- `<n>.res`: the result, published by renaming `<n>.res.tmp` once whole; the follower reads it
  and removes both files.

Nothing here needs to survive a power loss: a request is only a message to a live process,
and a result is written after the fdatasync that made its batch durable. Readers of the
ledger never look in `spool/`.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from .fsio import write_all

#: the spool's directory inside a ledger directory
SPOOL_DIR = "spool"
_REQ, _RES, _TMP = ".req", ".res", ".tmp"
#: an answered request older than this is checked for a live writer (else it is swept)
_STALE_NS = 10 * 10**9


class SpoolHost(Protocol):
    """What the spool needs from the store that owns it: its writing section, without waiting."""

    def try_writing(self) -> AbstractContextManager[None] | None:
        """The writing section, already entered, if it was free; else None (never waits)."""
        ...

    def await_writer(self) -> None:
        """Return once whoever holds the writing section now has left it."""
        ...

    def sync(self) -> None:
        """fdatasync the log: what makes bytes another (dead) writer wrote durable."""
        ...


class Request:
    """One request file. A follower holds its own (`fd` locked, kept open while it waits); a
    leader gets the others from `Spool.pending`, with their bytes."""

    __slots__ = ("spool", "name", "payload", "fd", "gone")

    def __init__(self, spool: "Spool", name: str, payload: bytes, fd: int | None = None) -> None:
        self.spool = spool
        self.name = name
        self.payload = payload
        self.fd = fd
        self.gone = False

    def answer(self, result: bytes) -> None:
        """The leader's reply (not fsynced: it is read by a live process; see the module docstring)."""
        base = f"{self.spool.dir}{self.name}"
        fd = os.open(base + _RES + _TMP, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            write_all(fd, result)
        finally:
            os.close(fd)
        os.rename(base + _RES + _TMP, base + _RES)

    def result(self) -> bytes | None:
        """The reply a leader left for this request, if any."""
        try:
            fd = os.open(f"{self.spool.dir}{self.name}{_RES}", os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            return _read_all(fd)
        finally:
            os.close(fd)

    def withdraw(self) -> None:
        """Remove the request (and its reply): read, or about to be appended by its own writer."""
        if self.gone:
            return
        self.gone = True
        base = f"{self.spool.dir}{self.name}"
        for path in (base + _REQ, base + _RES):  # the request first: a reply alone is swept
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class Spool:
    """The `spool/` directory of one ledger directory, and its owner's writing section."""

    def __init__(self, path: Path, host: SpoolHost) -> None:
        self.path = path
        self.dir = f"{path}{os.sep}"  # names are joined as strings: a request costs a dozen of them
        self.host = host
        self._made = False

    def try_lead(self) -> AbstractContextManager[None] | None:
        """The writing section if it is free now (a writer that gets it never spools)."""
        return self.host.try_writing()

    def submit(self, payload: bytes) -> Request | None:
        """Leave a request; None when it could not be written (the writer then queues for the lock)."""
        name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}"
        tmp = f"{self.dir}{name}{_REQ}{_TMP}"
        fd: int | None = None
        try:
            if not self._made:
                self.path.mkdir(exist_ok=True)
                self._made = True
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)  # held while we wait: tells a leader we are alive
            write_all(fd, payload)
            os.rename(tmp, f"{self.dir}{name}{_REQ}")
        except OSError:
            if fd is not None:
                os.close(fd)
            try:
                os.unlink(tmp)
            except OSError:
                pass
            return None
        return Request(self, name, payload, fd)

    def wait(self) -> None:
        """Block until the current leader has left the writing section."""
        self.host.await_writer()

    def sync(self) -> None:
        self.host.sync()

    def pending(self) -> list[Request]:
        """In the writing section: the requests of live followers not answered yet, oldest
        first. What killed writers left (their requests, replies, temp files) is removed."""
        try:
            names = set(os.listdir(self.path))
        except FileNotFoundError:
            return []
        found: list[Request] = []
        stale = time.time_ns() - _STALE_NS
        for entry in sorted(names):
            base = entry.removesuffix(_TMP)
            if entry.endswith(_RES + _TMP) or (entry.endswith(_RES) and base[: -len(_RES)] + _REQ not in names):
                self._remove(entry)  # a dead leader's half reply, or a reply its follower has read
            elif base.endswith(_REQ):
                name = base[: -len(_REQ)]
                answered = f"{name}{_RES}" in names
                if answered and _born(name) > stale:
                    continue  # its writer is picking the reply up
                payload = self._read_live(entry)
                if payload is None:  # its writer is gone: nobody waits for it
                    self._remove(entry)
                    self._remove(f"{name}{_RES}")
                elif entry == base and not answered:
                    found.append(Request(self, name, payload))
        return found

    def _read_live(self, entry: str) -> bytes | None:
        """The file's bytes if its writer still holds its flock (is alive and waiting), else None."""
        try:
            fd = os.open(self.dir + entry, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                pass  # held: alive
            else:
                return None
            return _read_all(fd)
        finally:
            os.close(fd)

    def _remove(self, entry: str) -> None:
        try:
            os.unlink(self.dir + entry)
        except FileNotFoundError:
            pass


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _born(name: str) -> int:
    """When a request was made (the time its name starts with), in ns; 0 if unreadable."""
    stamp = name.partition("-")[0]
    return int(stamp) if stamp.isdigit() else 0

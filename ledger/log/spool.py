"""Group commit for the local directory: where waiting writers leave their batches (docs/FORMAT.md §5.5).

One durable append costs a flock handoff, a catch-up, an fdatasync and an index commit, all
under the lock. With several writers, each paying all of that in turn makes more writers
slower than one. So a writer that finds the lock taken does not queue for it with its batch:
it leaves the batch here as a *request* and sleeps until it is answered. The lock holder
(the *leader*), after its own batch, takes every pending request, validates each as its own
batch, writes all accepted lines with one write and one fdatasync, and answers each request;
it goes on with the requests that came meanwhile for a while (the service decides how long)
before it lets go, and then wakes one writer still waiting so that writer leads the rest. A writer woken without an answer
(or after `WAIT` seconds, should its leader have died) takes the lock and appends alone.

Waiting on the lock itself does not work: a leader that lets go and appends again takes the
lock back before the woken waiters run, and they starve. So each request has its own wake-up:
a FIFO the waiting writer holds open. The leader writes the answer into it (one `write(2)` of
at most PIPE_BUF bytes is atomic), or, for a long answer, leaves it in a file and writes a
pointer. A FIFO that no process holds open (`ENXIO`) is a dead writer's: its files are removed,
its request unanswered (nobody was promised it).

This module only moves bytes; what a request and an answer say is the service's business
(ledger/app/group.py). In `spool/`, for a request named `<n>` (time, pid, random):

- `<n>.fifo`: the waiting writer's wake-up, made first and held open (read and write) by it;
- `<n>.req`: the request, published by renaming `<n>.req.tmp` once whole;
- `<n>.res`: an answer too long for the FIFO, published by renaming `<n>.res.tmp`.

Nothing here needs to survive a power loss: a request is a message to a live process, and an
answer is written after the fdatasync that made its batch durable. Readers never look here.
"""

from __future__ import annotations

import errno
import os
import secrets
import select
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from .fsio import write_all

#: the spool's directory inside a ledger directory
SPOOL_DIR = "spool"
#: how long a waiting writer sleeps before it looks at the lock itself (its leader may have died)
WAIT = 0.1
_REQ, _RES, _FIFO, _TMP = ".req", ".res", ".fifo", ".tmp"
#: the FIFO messages that are not an answer: "look in <n>.res", "no answer: take the lock"
_IN_FILE, _NO_ANSWER = b"@\n", b"\n"
_PIPE_BUF = select.PIPE_BUF


class SpoolHost(Protocol):
    """What the spool needs from the store that owns it."""

    def try_writing(self) -> AbstractContextManager[None] | None:
        """The writing section, already entered, if it was free; else None (never waits)."""
        ...

    def sync(self) -> None:
        """fdatasync the log: what makes bytes another (dead) writer wrote durable."""
        ...


class Request:
    """One request. A waiting writer holds its own (`fd`: its FIFO); a leader gets the others
    from `Spool.pending` with their bytes and a write end of their FIFO."""

    __slots__ = ("spool", "name", "payload", "fd", "gone", "_buf")

    def __init__(self, spool: "Spool", name: str, payload: bytes, fd: int) -> None:
        self.spool = spool
        self.name = name
        self.payload = payload
        self.fd = fd
        self.gone = False
        self._buf = b""

    # -- the leader's side ----------------------------------------------------------------
    def answer(self, result: bytes) -> None:
        """Wake the writer with its answer (not fsynced: read by a live process). The request
        is removed first, so no later leader takes it again."""
        try:
            os.unlink(f"{self.spool.dir}{self.name}{_REQ}")
            if len(result) < _PIPE_BUF:
                os.write(self.fd, result + b"\n")
                return
            base = f"{self.spool.dir}{self.name}"
            fd = os.open(base + _RES + _TMP, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            try:
                write_all(fd, result)
            finally:
                os.close(fd)
            os.rename(base + _RES + _TMP, base + _RES)
            os.write(self.fd, _IN_FILE)
        finally:
            self.release()

    def wake(self) -> None:
        """Wake the writer without an answer: it takes the lock and appends the rest itself."""
        if self.gone:
            return
        try:
            os.write(self.fd, _NO_ANSWER)
        except OSError:
            pass  # it is gone, or its FIFO is full of wake-ups already
        finally:
            self.release()

    def release(self) -> None:
        """Close the leader's write end (the writer's request stays for another leader)."""
        if not self.gone:
            self.gone = True
            os.close(self.fd)

    # -- the waiting writer's side --------------------------------------------------------
    def wait(self, timeout: float) -> bytes | None:
        """Sleep until woken (or `timeout`); the answer, b"" if woken without one, None if not woken."""
        poller = select.poll()  # not select(): a process may hold descriptors past FD_SETSIZE
        poller.register(self.fd, select.POLLIN)
        while b"\n" not in self._buf:
            if not poller.poll(timeout * 1000):
                return None
            self._buf += os.read(self.fd, 1 << 16)
        line, _, self._buf = self._buf.partition(b"\n")
        if line + b"\n" == _IN_FILE:
            with open(f"{self.spool.dir}{self.name}{_RES}", "rb") as f:
                return f.read()
        return line

    def withdraw(self) -> None:
        """Remove the request and its files: answered, or about to be appended by its own writer."""
        if self.gone:
            return
        self.gone = True
        base = f"{self.spool.dir}{self.name}"
        for suffix in (_REQ, _RES, _FIFO):  # the request first: no leader takes it any more
            try:
                os.unlink(base + suffix)
            except FileNotFoundError:
                pass
        os.close(self.fd)


class Spool:
    """The `spool/` directory of one ledger directory."""

    def __init__(self, path: Path, host: SpoolHost) -> None:
        self.path = path
        self.dir = f"{path}{os.sep}"  # names are joined as strings: a request costs a dozen of them
        self.host = host
        self._made = False

    def try_lead(self) -> AbstractContextManager[None] | None:
        """The writing section if it is free now (a writer that gets it never spools)."""
        return self.host.try_writing()

    def sync(self) -> None:
        self.host.sync()

    def submit(self, payload: bytes) -> Request | None:
        """Leave a request; None when it could not be written (the writer then queues for the lock)."""
        name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}"
        base = f"{self.dir}{name}"
        fd: int | None = None
        try:
            if not self._made:
                self.path.mkdir(exist_ok=True)
                self._made = True
            os.mkfifo(base + _FIFO, 0o600)
            fd = os.open(base + _FIFO, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)  # held: we are alive
            tmp = os.open(base + _REQ + _TMP, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            try:
                write_all(tmp, payload)
            finally:
                os.close(tmp)
            os.rename(base + _REQ + _TMP, base + _REQ)
        except OSError:
            for suffix in (_REQ + _TMP, _FIFO):
                try:
                    os.unlink(base + suffix)
                except OSError:
                    pass
            if fd is not None:
                os.close(fd)
            return None
        return Request(self, name, payload, fd)

    def pending(self) -> list[Request]:
        """In the writing section: the requests of live writers, oldest first (each holding a
        write end of its FIFO until answered or released). What dead writers left is removed."""
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            return []
        found: list[Request] = []
        waiting = {n[: -len(_FIFO)] for n in names if n.endswith(_FIFO)}
        for entry in sorted(names):
            if not entry.endswith(_FIFO):
                if entry.partition(".")[0] not in waiting:  # left behind by a writer that is gone
                    self._remove(entry.partition(".")[0])
                continue
            name = entry[: -len(_FIFO)]
            base = f"{self.dir}{name}"
            try:
                fd = os.open(base + _FIFO, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as exc:
                if exc.errno in (errno.ENXIO, errno.ENOENT):  # nobody holds it: its writer is gone
                    self._remove(name)
                    continue
                raise
            try:
                with open(base + _REQ, "rb") as f:
                    payload = f.read()
            except FileNotFoundError:  # not published yet, or answered and being withdrawn
                os.close(fd)
                continue
            found.append(Request(self, name, payload, fd))
        return found

    def waiting(self) -> int:
        """How many requests are waiting (cheap: one listing)."""
        try:
            return sum(n.endswith(_REQ) for n in os.listdir(self.path))
        except FileNotFoundError:
            return 0

    def wake_first(self) -> None:
        """Wake the oldest waiting writer without an answer, so that it takes the lock and
        leads: what a leader does once it has let go (requests may have come after it looked)."""
        try:
            names = sorted(n for n in os.listdir(self.path) if n.endswith(_REQ))
        except FileNotFoundError:
            return
        for entry in names:
            try:
                fd = os.open(f"{self.dir}{entry[: -len(_REQ)]}{_FIFO}", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError:
                continue  # its writer is gone: the next leader sweeps it
            Request(self, entry[: -len(_REQ)], b"", fd).wake()
            return

    def _remove(self, name: str) -> None:
        for suffix in (_REQ + _TMP, _REQ, _RES + _TMP, _RES, _FIFO):
            try:
                os.unlink(f"{self.dir}{name}{suffix}")
            except FileNotFoundError:
                pass

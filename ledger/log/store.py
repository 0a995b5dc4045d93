"""The storage seam: what a backend must give the ledger (docs/architecture.md, "The LogStore seam").

`Ledger` (ledger/app/service.py) is the application service: it validates, folds and
decides; a `LogStore` only keeps bytes. A backend stores

- the ledger's identity (`ledger.json` bytes), created once, atomically;
- the log: whole batches of encoded lines (docs/FORMAT.md §3.4), each appended only if the
  log still ends where the writer last saw it end (a *conditional append*);
- checkpoints: opaque byte strings keyed by the seq they were taken at.

Positions in the log are `Position`s whose `cursor` only the backend that made it
interprets (a byte offset for the local directory, a batch count in memory, an object key
or seq for an object store). The ledger never does arithmetic on a cursor; it only hands
one back to the store it came from, and writes it into checkpoint headers, so a cursor
must be a JSON scalar (int or str). The empty log's cursor is 0 in every store.

How writers meet: a backend with a lock gives `writing()` an exclusive section (the local
directory flocks `events.lock`), so its conditional append never loses; a backend without
one (an object store's put-if-absent) returns None from `append` when another writer got
there first, and the service re-reads, re-validates and retries, or raises `ConflictError`
when the caller gave `expected_seq`. Either way seqs stay gapless and the chain whole.

Adding a backend: implement this protocol (subclass it to inherit `verify`), register a URL
scheme in `ledger.log.location.SCHEMES`, and subclass `tests/conformance/log_store.py`'s
`LogStoreConformance` with your `create_store()`.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, TypeVar, runtime_checkable

from .scan import LogScan, Position, Tail
from .spool import Spool


T = TypeVar("T")

#: the name of an unfinished copy's marker, in every backend that keeps names
COPY_MARKER = "copying.json"


@dataclass(frozen=True)
class CutTail:
    """What `LogStore.cut_tail` moved aside: its size and where it is kept (a name in the store)."""

    size: int
    kept_as: str


@runtime_checkable
class LogStore(Protocol):
    """A ledger's storage backend. Every method is safe to call from several threads."""

    #: where the ledger lives, for messages and `repr` (a directory, a URL)
    location: str
    #: True when independent processes (not only threads) may share the ledger at once
    multi_process: bool

    # -- identity -------------------------------------------------------------------------
    def create(self, config: bytes) -> None:
        """Make a new, empty ledger whose `ledger.json` holds `config`.

        Atomic: afterwards `read_config` returns `config`, or the store is as it was. Raises
        `InvalidInputError` when a ledger (or anything else) is already there.
        """
        ...

    def read_config(self) -> bytes:
        """The `ledger.json` bytes; `NotALedgerError` when there is no ledger here."""
        ...

    # -- the log ----------------------------------------------------------------------------
    def scan(self, start: Position, stop_after: int | None = None) -> LogScan:
        """The committed events after the batch boundary `start`, each line verified (§3.5).

        A batch is yielded only once all of its lines are known to be there, so a reader never
        sees a partial batch; what follows the last complete batch is reported as the scan's
        `tail`, never yielded. Corruption raises `CorruptLogError` naming the first bad seq.
        `stop_after` ends the scan at the end of the batch holding that seq. A `start` the log
        no longer reaches (it was cut or rewritten) is corruption at `start.seq`.
        """
        ...

    def writing(self) -> AbstractContextManager[None]:
        """The writer's exclusive section, where the backend has one (else a no-op context).

        The service catches up, cuts a tail, validates and appends inside it.
        """
        ...

    def append(self, end: Position, lines: bytes, last: Position) -> Position | None:
        """Append one batch (its encoded lines, `\\n`-terminated) if the log still ends at `end`.

        `last` is the batch's own end (seq, hash, `at`); its cursor is ignored. Returns `last`
        with the backend's cursor after the batch, once the batch is durable; or None, writing
        nothing, when the log no longer ends at `end` (another writer won the race). A failure
        to write raises `LedgerEnvironmentError` and leaves no committed partial batch.
        """
        ...

    def cut_tail(self, end: Position) -> CutTail | None:
        """Move whatever follows the committed end `end` aside (kept, never dropped).

        Called only inside `writing()` on a backend with an exclusive section, after a scan
        reported a non-empty tail; a backend whose batches are atomic objects has no tail and
        returns None.
        """
        ...

    def is_boundary(self, pos: Position) -> bool:
        """Does the log hold event `pos.seq` with `pos.hash` and `pos.at`, closing its batch, at `pos.cursor`?

        What a checkpoint claims is checked with this before the checkpoint is used.
        """
        ...

    def extent(self, pos: Position | None = None) -> int:
        """How much of the log lies before `pos` (all of it now, when None), in the backend's
        own unit (bytes, batches). Only for progress bars."""
        ...

    # -- checkpoints ------------------------------------------------------------------------
    def write_checkpoint(self, seq: int, data: bytes) -> None:
        """Store (or replace) the checkpoint taken at `seq`, atomically and durably."""
        ...

    def checkpoints(self) -> list[int]:
        """The seqs of stored checkpoints, newest first."""
        ...

    def read_checkpoint(self, seq: int) -> bytes | None:
        """A checkpoint's bytes, or None if it is gone (a concurrent prune) or unreadable."""
        ...

    def delete_checkpoint(self, seq: int) -> None:
        """Remove a checkpoint; removing one that is already gone is not an error."""
        ...

    # -- an unfinished copy (ledger.app.copy) -----------------------------------------------
    def copy_marker(self) -> bytes | None:
        """The marker an unfinished `copy` into this location left, or None.

        While it is there the location is not a ledger yet (`Ledger.open` refuses it), so a
        copy that was interrupted never passes for a shorter, valid ledger.
        """
        ...

    def set_copy_marker(self, data: bytes | None) -> None:
        """Write the marker (also where no ledger exists yet: `create` then ignores it), or
        remove it (None)."""
        ...

    # -- with defaults (inherited by subclasses of this protocol) --------------------------
    def checkpoint_key(self, create: bool) -> bytes | None:
        """The secret that checkpoint macs are made with (made on first use when `create`),
        kept where write access to the checkpoints alone does not reach it. None: this store
        keeps no key, and checkpoints carry a plain digest (it catches damage, not forgery)."""
        return None

    def checkpoint_name(self, seq: int) -> str:
        """How messages name the checkpoint taken at `seq`."""
        return f"checkpoint {seq}"

    def close(self) -> None:
        """Release what the store holds open (e.g. a lock file); it stays usable."""
        return None

    def end(self) -> Position | None:
        """The batch boundary the log ends at, when the backend can tell without a scan and no
        tail follows it; None otherwise (then a build replays to find out). What lets a build
        with nothing new answer at once."""
        return None

    def spool(self) -> Spool | None:
        """Where writers that find the writing section busy leave their batches for its
        holder to commit with its own (group commit, ledger/log/spool.py), or None: then every
        writer appends alone."""
        return None

    def index_path(self) -> Path | None:
        """A local file where the writers' index (ledger/app/facts.py) may live, or None: then
        writers validate against the folded state. It is a cache, checked against the log."""
        return None

    def verify(self, start: Position) -> tuple[Position, int, Tail]:
        """Scan from `start` to the end: (end, events, tail). A backend may do it faster
        (the local directory uses two cores); the answer must be the plain scan's."""
        scan = self.scan(start)
        events = count_events(scan)
        return scan.end, events, scan.tail

    def scan_in_halves(self, start: Position, work: Callable[[LogScan], T],
                       stop_after: int | None = None) -> tuple[T, T] | None:
        """`work` over the scan from `start` (up to `stop_after`) split at a middle batch
        boundary, the halves on two cores: (first half's result, second half's), or None when
        the backend cannot (the default) or it does not pay; the caller then runs `work` on
        `scan(start, stop_after)`. A half's `work` must raise on corruption, not report it."""
        return None


def count_events(scan: LogScan) -> int:
    """Drive a scan to its end (verifying every line); return the events it committed."""
    n = 0
    for _ in scan.events():
        n += 1
    return n

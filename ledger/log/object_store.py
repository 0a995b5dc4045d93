"""The object-store backend: a ledger under `s3://bucket/prefix` (docs/FORMAT.md, "Object layout").

Every batch is one immutable object, `log/<first seq, 20 digits>.jsonl`, holding exactly the
lines the local directory backend would append. A writer commits a batch by creating the
object named after the seq that follows its head with put-if-absent (`If-None-Match: *`):
of several writers that read the same head, exactly one creation succeeds, and the others
are told the log moved on (`append` returns None), so the service catches up, re-validates
and retries. There is no lock, no lease and no server of our own.

The next batch's name is always computable (head seq + 1), so a GET of that name is an
exact answer to "is there more?": listings are used only to fetch many batches at once and
may lag without harm. A cursor is the first seq of the batch a position ends (0 at genesis).

Objects are written only by `put` (atomic: a reader sees all of an object or none), so there
is never a tail to cut. Endpoint and credentials come from the standard variables obstore
reads (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
AWS_ALLOW_HTTP, ...); no message this module produces contains them.
"""

from __future__ import annotations

import hashlib
import os
import random
import secrets
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Iterator

from ..errors import CorruptLogError, InvalidInputError, NotALedgerError
from .objects import (CHECKPOINT_DIR, CONFIG_KEY, LOG_DIR, Objects, batch_key, batch_start, checkpoint_key,
                      checkpoint_seq, connect, split_url)
from .flock import ProcessLock
from .fsio import environment_error as fsio_error
from .scan import BatchScanner, LogScan, Position, Tail, closes_batch
from .store import COPY_MARKER, CutTail, LogStore, count_events

#: batches fetched concurrently while replaying (each a GET of a few KB to a few MB)
PREFETCH = 16
#: backoff after a lost race: up to BASE * 2**losses seconds (full jitter), at most CAP
BACKOFF_BASE, BACKOFF_CAP = 0.002, 0.25
#: a local directory where writers keep the index (ledger/app/facts.py) of ledgers held here;
#: unset, a writer validates against the state folded from the newest checkpoint
INDEX_DIR_VARIABLE = "COHORT_LEDGER_INDEX_DIR"
#: the checkpoint mac key (ledger.log.checkpoint), beside ledger.json
KEY_OBJECT = "checkpoint.key"
#: names under a ledger's prefix that belong to the ledger (never a build's output)
RESERVED = (CONFIG_KEY, LOG_DIR.rstrip("/"), CHECKPOINT_DIR.rstrip("/"), KEY_OBJECT, COPY_MARKER)


class ObjectLogStore(LogStore):
    """A ledger under a prefix of an object store (S3, or any store obstore speaks)."""

    multi_process = True

    def __init__(self, store: Any, location: str, index_dir: str | os.PathLike[str] | None = None) -> None:
        """`index_dir`: a local directory for the writers' index of this ledger (one
        subdirectory per location), so a process that appends one event looks up a few rows
        instead of folding the state; None keeps no index."""
        self.location = location
        self.objects = Objects(store, location)
        self._lost = 0  # races lost in a row by this store's writers (for the backoff)
        self._cache: Path | None = None
        self._lock: ProcessLock | None = None
        if index_dir is not None:
            self._cache = Path(index_dir) / hashlib.sha256(location.encode()).hexdigest()[:32]
            self._lock = ProcessLock(self._cache / "writers.lock")

    @classmethod
    def from_url(cls, url: str, index_dir: str | os.PathLike[str] | None = None) -> "ObjectLogStore":
        """The store for `url`; the index directory defaults to $COHORT_LEDGER_INDEX_DIR."""
        scheme, bucket, prefix = split_url(url)
        location = f"{scheme}://{bucket}" + (f"/{prefix}" if prefix else "")
        if index_dir is None:
            index_dir = os.environ.get(INDEX_DIR_VARIABLE) or None
        return cls(connect(location), location, index_dir)

    def __repr__(self) -> str:
        return f"ObjectLogStore({self.location!r})"

    def close(self) -> None:
        """Nothing is held open between requests but the index's lock file."""
        if self._lock is not None:
            self._lock.close()

    # -- identity -------------------------------------------------------------------------
    def create(self, config: bytes) -> None:
        for key in self.objects.keys(""):
            if key == COPY_MARKER:
                continue  # an unfinished copy marks the prefix before it creates the ledger
            raise InvalidInputError(f"{self.location} already holds objects; a new ledger needs an empty prefix")
        if not self.objects.create(CONFIG_KEY, config):
            raise InvalidInputError(f"{self.location} already holds a ledger")

    def read_config(self) -> bytes:
        raw = self.objects.get(CONFIG_KEY)
        if raw is None:
            raise NotALedgerError(f"{self.location} is not a ledger (no {CONFIG_KEY}; run `cohort-ledger init`)")
        return raw

    # -- the log ----------------------------------------------------------------------------
    def scan(self, start: Position, stop_after: int | None = None) -> LogScan:
        cursor = start.cursor
        if type(cursor) is not int or not 0 <= cursor <= start.seq or (cursor == 0) != (start.seq == 0):
            raise CorruptLogError(start.seq, f"{cursor!r} is not a batch cursor of this store", self.location)
        return BatchScanner(self._blobs(start), start, stop_after)

    def _blobs(self, start: Position) -> Iterator[tuple[int, bytes]]:
        """(first seq, batch bytes) of each batch after `start`, in log order.

        The first GET (of the batch after `start`) says whether there is anything new; only
        then is the prefix listed after it, and the listed batches fetched PREFETCH at a
        time. Whatever the listing missed is then found by GETs of the computed next name,
        until one is absent. A listed name that is not the next batch start is corruption:
        a batch missing before it (a gap), or a name inside a batch (a second writer that
        ignored put-if-absent).
        """
        following = start.seq + 1
        blob = self.objects.get(batch_key(following))
        if blob is None:
            return
        listed = deque(s for s in self._batch_starts(after=following) if s > following)
        with ThreadPoolExecutor(max_workers=PREFETCH) as pool:
            fetching: deque[tuple[int, Future[bytes | None]]] = deque()
            while True:
                yield following, blob
                following += blob.count(b"\n")
                while listed and len(fetching) < PREFETCH:
                    seq = listed.popleft()
                    fetching.append((seq, pool.submit(self.objects.get, batch_key(seq))))
                if fetching and fetching[0][0] < following:
                    bad = fetching[0][0]
                    raise CorruptLogError(bad, f"object {batch_key(bad)} starts inside the batch ending at seq "
                                               f"{following - 1} (a second writer?)", self.location)
                if fetching and fetching[0][0] == following:
                    got = fetching.popleft()[1].result()
                    if got is None:
                        raise CorruptLogError(following, f"object {batch_key(following)} was listed, then vanished",
                                              self.location)
                    blob = got
                    continue
                got = self.objects.get(batch_key(following))  # the listing lagged, or ended
                if got is None:
                    if fetching:
                        raise CorruptLogError(following, f"batch object {batch_key(following)} is missing before "
                                                         f"{batch_key(fetching[0][0])}", self.location)
                    return
                blob = got

    def _batch_starts(self, after: int | None = None) -> list[int]:
        """Batch starts a listing of `log/` shows (after the batch starting at `after`), sorted:
        some stores, obstore's local one among them, list in no particular order."""
        keys = self.objects.keys(LOG_DIR, after=None if after is None else batch_key(after))
        return sorted(seq for seq in map(batch_start, keys) if seq is not None)

    def writing(self) -> AbstractContextManager[None]:
        """Optimistic across machines: put-if-absent decides (module docstring). With an index,
        the writers of this machine also take turns on its lock: the index moves only forward,
        and only with what its holder read from the store."""
        if self._lock is None or self._cache is None:
            return nullcontext()
        try:
            self._cache.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise fsio_error(exc, f"creating the index directory {self._cache}") from exc
        return self._lock

    def index_path(self) -> Path | None:
        return self._cache / "facts.sqlite" if self._cache is not None else None

    def append(self, end: Position, lines: bytes, last: Position) -> Position | None:
        first = end.seq + 1
        key = batch_key(first)
        if self.objects.create(key, lines):
            self._lost = 0
            return Position(last.seq, last.hash, first, last.at)
        # Someone created it first -- or we did: obstore retries a PUT whose answer was lost,
        # and the retry then finds our own object. Our batch's bytes (its `at` and hashes)
        # are unique to this attempt, so equal bytes mean the batch is ours and committed.
        if self.objects.get(key) == lines:
            return Position(last.seq, last.hash, first, last.at)
        self._backoff()
        return None

    def _backoff(self) -> None:
        """Sleep a random while, longer after each race this store lost in a row.

        So that writers that lost the same race do not all re-read and put again in lockstep
        (exponential backoff with full jitter, the usual remedy for a contended conditional
        write). On the 2-core test machine against a local server its effect on 8-writer
        throughput was within the noise; it matters where a round trip is tens of ms."""
        self._lost = min(self._lost + 1, 16)
        time.sleep(random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** self._lost)))

    def cut_tail(self, end: Position) -> CutTail | None:
        return None  # each batch is one object, put whole: there is never a tail

    def is_boundary(self, pos: Position) -> bool:
        if pos.seq < 1 or type(pos.cursor) is not int or not 1 <= pos.cursor <= pos.seq:
            return False
        blob = self.objects.get(batch_key(pos.cursor))
        if not blob or not blob.endswith(b"\n"):
            return False
        return closes_batch(blob[blob.rfind(b"\n", 0, len(blob) - 1) + 1 : -1], pos)

    def extent(self, pos: Position | None = None) -> int:
        """Seqs before `pos`; for the whole log, the last batch start a full listing shows
        (one listing per progress bar, never per append)."""
        if pos is not None:
            return pos.seq
        return max(self._batch_starts(), default=0)

    def verify(self, start: Position) -> tuple[Position, int, Tail]:
        """The scan, plus a check that every object under `log/` is one of the batches it read.

        A scan only follows the chain of batch names, so an extra name inside a batch -- what
        a writer that ignored put-if-absent would leave -- is found here, by listing.
        """
        names = set()
        for key in self.objects.keys(LOG_DIR):
            seq = batch_start(key)
            if seq is None:
                raise CorruptLogError(start.seq + 1, f"unexpected object {key} in the log", self.location)
            names.add(seq)
        visited: set[int] = set()
        scan = BatchScanner(self._recording(self._blobs(start), visited), start)
        events = count_events(scan)
        strays = sorted(s for s in names if s > start.cursor and s not in visited)
        if strays:
            raise CorruptLogError(strays[0], f"object {batch_key(strays[0])} is not a batch of the chain "
                                             f"(head is seq {scan.end.seq})", self.location)
        return scan.end, events, scan.tail

    @staticmethod
    def _recording(blobs: Iterator[tuple[int, bytes]], seen: set[int]) -> Iterator[tuple[int, bytes]]:
        for first, blob in blobs:
            seen.add(first)
            yield first, blob

    # -- checkpoints ------------------------------------------------------------------------
    def checkpoint_name(self, seq: int) -> str:
        return checkpoint_key(seq)

    def checkpoint_key(self, create: bool) -> bytes | None:
        """`checkpoint.key` beside `ledger.json`, made on first use with put-if-absent, so
        builds making it at once agree on one key. Whoever may write `checkpoints/` but not
        the rest of the prefix cannot forge a checkpoint; whoever may write the whole prefix
        can, as on disk."""
        key = self.objects.get(KEY_OBJECT)
        if key is None and create:
            self.objects.create(KEY_OBJECT, secrets.token_bytes(32))
            key = self.objects.get(KEY_OBJECT)
        return key

    def write_checkpoint(self, seq: int, data: bytes) -> None:
        self.objects.put(checkpoint_key(seq), data)

    def checkpoints(self) -> list[int]:
        return sorted((seq for seq in map(checkpoint_seq, self.objects.keys(CHECKPOINT_DIR)) if seq is not None),
                      reverse=True)

    def read_checkpoint(self, seq: int) -> bytes | None:
        return self.objects.get(checkpoint_key(seq))

    def delete_checkpoint(self, seq: int) -> None:
        self.objects.delete(checkpoint_key(seq))

    # -- an unfinished copy -------------------------------------------------------------------
    def copy_marker(self) -> bytes | None:
        return self.objects.get(COPY_MARKER)

    def set_copy_marker(self, data: bytes | None) -> None:
        if data is None:
            self.objects.delete(COPY_MARKER)
        else:
            self.objects.put(COPY_MARKER, data)

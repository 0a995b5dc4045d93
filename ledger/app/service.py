"""The ledger directory: init, open, append, read, verify, repair (DESIGN §3).

Writers serialise on an flock of `events.lock`. Under the lock a writer first catches up on
what other processes appended since its last known position (reading only those bytes),
cuts an incomplete trailing batch left by a crashed writer, then validates the whole new
batch against its state inside a transaction, writes it with one write and fdatasync, and
only then commits the state. Readers never take the lock and never modify the log.
"""

from __future__ import annotations

import bisect
import fcntl
import os
import sqlite3
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, NamedTuple

import orjson

from ..log.codec import canonical, encode_line, genesis_prev
from ..domain.config import LedgerConfig
from ..errors import ConflictError, CorruptLogError, EventRejected, InvalidInputError, NotALedgerError
from ..domain.events import CURRENT_VERSION, EventIn, RecordedEvent, normalize_batch, upcast
from ..log.parallel import count_events, verify_split
from ..log.perf import paused_gc
from ..log.fsio import atomic_write, environment_error, fsync_dir, write_all
from ..log.checkpoint import CHECKPOINT_DIR, position_matches
from .facts import BOUNDARY_EVERY, CACHE_LIMIT, FactIndex, IndexedState
from .replay import apply_recorded, starting_point
from ..log.scan import LogScanner, Position, Tail
from ..domain.state import DomainError, Generation, State

CONFIG_FILE = "ledger.json"
LOG_FILE = "events.jsonl"
LOCK_FILE = "events.lock"
#: the writers' index (ledger/app/facts.py): a cache of the log, rebuilt when it does not match
INDEX_DIR = "index"
INDEX_FILE = f"{INDEX_DIR}/facts.sqlite"
#: a sparse index entry is kept at the first batch boundary after every INDEX_EVERY events
INDEX_EVERY = 4096


class Head(NamedTuple):
    """The last committed event: its seq and chain hash (seq 0 and the genesis prev when empty)."""

    seq: int
    hash: str


@dataclass(frozen=True)
class VerifyReport:
    head: Head
    events: int
    tail: Tail


@dataclass(frozen=True)
class RepairReport:
    head: Head
    cut_bytes: int
    cut_lines: int
    torn_file: str | None


class _Pending(NamedTuple):
    """One validated input event (a tuple: built 10,000 times per batch append)."""

    type: str
    data: dict[str, Any]
    id: str | None
    by: dict[str, str]


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Ledger:
    """A ledger directory opened for reading and appending; safe across processes and threads."""

    def __init__(self, path: Path, config: LedgerConfig) -> None:
        self.path = path
        self.config = config
        self.log_path = path / LOG_FILE
        self._genesis = Position(0, genesis_prev(config.ledger_id), 0)
        self._state: State | None = None
        self._pos = self._genesis
        self._index: list[Position] = [self._genesis]
        self._mutex = threading.RLock()
        self._facts = FactIndex(path / INDEX_FILE, config)
        #: what a writer validates against when no full state is loaded: the index, caught up
        self._writer: IndexedState | None = None
        self._tail = Tail()
        self._lock_fd: int | None = None
        self._lock_pid = 0

    # -- lifecycle ----------------------------------------------------------------------
    @classmethod
    def init(
        cls,
        path: str | os.PathLike[str],
        stages: Iterable[str] | None = None,
        parents: dict[str, str] | None = None,
    ) -> "Ledger":
        """Create a new, empty ledger in `path` (which must not exist or be an empty directory)."""
        path = Path(path)
        config = LedgerConfig.new(tuple(stages) if stages is not None else None, parents)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise InvalidInputError(f"{path} already exists and is not an empty directory")
        try:
            path.mkdir(parents=True, exist_ok=True)
            (path / CHECKPOINT_DIR).mkdir(exist_ok=True)
            for name in (LOG_FILE, LOCK_FILE):
                os.close(os.open(path / name, os.O_WRONLY | os.O_CREAT, 0o644))
            atomic_write(path / CONFIG_FILE, config.to_json())  # last: its presence means "a ledger"
            fsync_dir(path.parent.resolve())
        except OSError as exc:
            raise environment_error(exc, f"creating ledger {path}") from exc
        return cls(path, config)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> "Ledger":
        """Open an existing ledger. The state is loaded on first use, not here."""
        path = Path(path)
        try:
            raw = (path / CONFIG_FILE).read_bytes()
        except FileNotFoundError:
            raise NotALedgerError(f"{path} is not a ledger (no {CONFIG_FILE}; run `cohort-ledger init`)") from None
        except OSError as exc:
            raise environment_error(exc, f"reading {path / CONFIG_FILE}") from exc
        config = LedgerConfig.from_json(raw, path / CONFIG_FILE)
        if not (path / LOG_FILE).is_file():
            raise NotALedgerError(f"{path} has {CONFIG_FILE} but no {LOG_FILE}")
        return cls(path, config)

    def close(self) -> None:
        self._facts.close()
        self._writer = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- state --------------------------------------------------------------------------
    @property
    def head(self) -> Head:
        """The last committed event as of this access (other processes' appends included)."""
        state = self.state
        return Head(state.seq, state.hash or self._genesis.hash)

    @property
    def state(self) -> State:
        """The folded state of every committed batch, caught up at each access."""
        with self._mutex, paused_gc():
            self._refresh()
            assert self._state is not None
            return self._state

    def _refresh(self) -> Tail:
        """Fold the batches committed since our position; return what follows them."""
        if self._state is None:
            self._state, self._pos = starting_point(self.path, self.config, self.log_path)
            self._index = [self._genesis] + ([self._pos] if self._pos.seq else [])
        try:
            size = os.stat(self.log_path).st_size
        except OSError as exc:
            raise environment_error(exc, f"reading {self.log_path}") from exc
        if size < self._pos.offset:
            self._state = None
            raise CorruptLogError(self._pos.seq, f"log shrank below committed offset {self._pos.offset}")
        if size == self._pos.offset:
            return Tail()
        scanner = LogScanner(self.log_path, self._pos)
        state = self._state
        try:
            for ev, end in scanner.events():
                apply_recorded(state, ev)
                if end is not None:
                    if self._pos.seq + 1 - self._index[-1].seq >= INDEX_EVERY:
                        self._index.append(self._pos)
                    self._pos = end
        except BaseException:
            self._state = None  # a half-folded batch must never be used (corrupt, newer v, interrupt)
            raise
        return scanner.tail

    # -- locking ------------------------------------------------------------------------
    def _acquire(self) -> None:
        if self._lock_fd is not None and self._lock_pid != os.getpid():
            self._lock_fd = None  # inherited over fork: the description is shared, so get our own
        if self._lock_fd is None:
            try:
                self._lock_fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise environment_error(exc, f"opening {self.path / LOCK_FILE}") from exc
            self._lock_pid = os.getpid()
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)

    def _release(self) -> None:
        assert self._lock_fd is not None
        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _cut_tail(self) -> RepairReport:
        """Under the lock: move what follows the last complete batch to events.jsonl.torn-<n>."""
        tail = self._refresh()
        return self._cut_tail_at(self._pos, tail)

    def _cut_tail_at(self, pos: Position, tail: Tail) -> RepairReport:
        head = Head(pos.seq, pos.hash)
        if tail.bytes == 0:
            return RepairReport(head, 0, 0, None)
        try:
            with open(self.log_path, "rb") as f:
                f.seek(pos.offset)
                cut = f.read()
            n = 1 + max((int(p.name.rsplit("-", 1)[1]) for p in self.path.glob(LOG_FILE + ".torn-*")
                         if p.name.rsplit("-", 1)[1].isdigit()), default=0)
            torn = self.path / f"{LOG_FILE}.torn-{n}"
            atomic_write(torn, cut)
            fd = os.open(self.log_path, os.O_WRONLY)
            try:
                os.ftruncate(fd, pos.offset)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise environment_error(exc, f"cutting the torn tail of {self.log_path}") from exc
        return RepairReport(head, len(cut), tail.lines, torn.name)

    # -- append -------------------------------------------------------------------------
    def append(self, events: Iterable[EventIn | dict[str, Any]], expected_seq: int | None = None) -> list[int]:
        """Append one atomic batch; return the seq of each event (the original seq for no-ops).

        The batch is validated whole before a byte is written; it is durable on return.
        """
        with paused_gc():
            batch = _normalize_batch(events)
        with self._mutex, paused_gc():
            self._acquire()
            try:
                if self._state is not None:  # a full state is loaded anyway: validate against it
                    self._cut_tail()
                    seqs, self._pos = self._append_locked(batch, expected_seq, self._state, self._pos)
                    return seqs
                return self._append_indexed(batch, expected_seq)
            finally:
                self._release()

    # -- the writers' index -------------------------------------------------------------
    def _indexed_state(self) -> IndexedState:
        """Under the lock: the index's state, rebuilt if it does not match the log, and
        caught up on the batches committed since (committed to the index as well)."""
        state = self._writer
        if state is not None and (state.held > CACHE_LIMIT or self._facts_position() != state.position):
            state = None  # another writer moved the index on (or our cache grew): start over from it
        if state is None:
            state = self._facts.open_state(lambda pos: position_matches(self.log_path, pos))
        if state is None:
            self._rebuild_index()
            state = self._facts.open_state(lambda pos: position_matches(self.log_path, pos))
            assert state is not None
        self._writer = None  # until caught up: a half-folded batch must never be used
        try:
            size = os.stat(self.log_path).st_size
        except OSError as exc:
            raise environment_error(exc, f"reading {self.log_path}") from exc
        if size < state.position.offset:
            raise CorruptLogError(state.position.seq, f"log shrank below committed offset {state.position.offset}")
        scanner = LogScanner(self.log_path, state.position)
        for ev, end in scanner.events():
            apply_recorded(state, ev)
            if end is not None:
                state.passed(end)
        self._tail = scanner.tail
        self._writer = state
        return state

    def _facts_position(self) -> Position | None:
        probe = self._facts.open_state(lambda pos: True)
        return probe.position if probe is not None else None

    def _rebuild_index(self) -> None:
        """Fold the log (from the newest valid checkpoint) and write every fact anew."""
        state, pos = starting_point(self.path, self.config, self.log_path)
        boundaries = [pos] if pos.seq else []
        scanner = LogScanner(self.log_path, pos)
        for ev, end in scanner.events():
            apply_recorded(state, ev)
            if end is not None:
                pos = end
                if end.seq - (boundaries[-1].seq if boundaries else 0) >= BOUNDARY_EVERY:
                    boundaries.append(end)
        try:
            self._facts.rebuild(state, pos, boundaries)
        except (OSError, sqlite3.Error) as exc:
            raise environment_error(exc if isinstance(exc, OSError) else OSError(str(exc)),
                                    f"writing the index {self._facts.path}") from exc

    def _append_indexed(self, batch: list[_Pending], expected_seq: int | None) -> list[int]:
        state = self._indexed_state()
        if self._tail.bytes:
            self._cut_tail_at(state.position, self._tail)
        state.preload((ev.type, ev.data, ev.id) for ev in batch)
        seqs, end = self._append_locked(batch, expected_seq, state, state.position)  # rolled back if it raises
        if end != state.position:
            state.passed(end)
        self._commit_facts(state)
        return seqs

    def generation(self, gen_id: str) -> Generation | None:
        """A generation as of now (origin metadata, materialization) through the index: what a
        pipeline hook asks before it runs a step, without loading the state. Like an append,
        it takes the writers' lock for the moment it catches the index up."""
        with self._mutex, paused_gc():
            if self._state is not None:
                return self.state.generations.get(gen_id)
            self._acquire()
            try:
                state = self._indexed_state()
                self._commit_facts(state)
                found: Generation | None = state.generations.get(gen_id)
                return found
            finally:
                self._release()

    def _commit_facts(self, state: IndexedState) -> None:
        try:
            self._facts.commit(state)
        except sqlite3.Error:
            self._writer = None  # the log holds every batch; the next writer catches the index up

    def _append_locked(self, batch: list[_Pending], expected_seq: int | None, state: State,
                       pos: Position) -> tuple[list[int], Position]:
        known = {i: state.event_ids[ev.id] for i, ev in enumerate(batch)
                 if ev.id is not None and ev.id in state.event_ids}
        if known:
            return self._replayed_ids(batch, known, state), pos
        if expected_seq is not None and state.seq != expected_seq:
            raise ConflictError(expected_seq, state.seq)
        at = max(utc_now(), state.at)
        # generated ids: <token>-<index in batch>, unique per batch (no uuid4 when every id is given)
        token = uuid.uuid4().hex if any(ev.id is None for ev in batch) else ""
        seqs: list[int] = []
        written: list[tuple[int, int, _Pending, str]] = []
        with state.transaction():
            for i, ev in enumerate(batch):
                event_id = ev.id or f"{token}-{i}"
                seq = state.seq + 1
                try:
                    done_at = state.apply(ev.type, ev.data, seq, event_id, at)
                except DomainError as exc:
                    raise EventRejected(i, str(exc), ev.id) from None
                seqs.append(done_at)
                if done_at == seq:
                    written.append((i, seq, ev, event_id))
            if not written:
                return seqs, pos
            prev = pos.hash
            lines = []
            txn = [written[0][1], len(written)]
            for i, seq, ev, event_id in written:
                try:
                    line, prev = encode_line({
                        "seq": seq, "id": event_id, "type": ev.type, "v": CURRENT_VERSION[ev.type], "at": at,
                        "by": ev.by, "txn": txn, "data": ev.data, "prev": prev,
                    })
                except orjson.JSONEncodeError as exc:  # e.g. an int beyond 64 bits in a `spec`
                    raise EventRejected(i, f"payload is not encodable as canonical JSON ({exc})", ev.id) from None
                lines.append(line)
            blob = b"".join(lines)
            self._write_durably(blob, pos.offset)
            state.hash = prev
        return seqs, Position(state.seq, prev, pos.offset + len(blob), at)

    def _write_durably(self, blob: bytes, offset: int) -> None:
        """One write + fdatasync; on failure cut our own partial bytes so nothing half-written stays."""
        try:
            fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND)
        except OSError as exc:
            raise environment_error(exc, f"opening {self.log_path} for append") from exc
        try:
            write_all(fd, blob)
            os.fdatasync(fd)
        except OSError as exc:
            try:
                os.ftruncate(fd, offset)
                os.fsync(fd)
            except OSError:
                pass  # the next writer's recovery cuts it: it is an incomplete trailing batch
            raise environment_error(exc, f"appending to {self.log_path}") from exc
        finally:
            os.close(fd)

    def _replayed_ids(self, batch: list[_Pending], known: dict[int, int], state: State) -> list[int]:
        """A retry: every id committed with the same payload -> the original seqs, else reject.

        An event that was a no-op the first time (identical re-create, reuse of an active
        member) wrote no line, so its id is not in the log: in a retry it is accepted only if
        it is still a no-op, which leaves the state untouched; anything else is a new event.
        """
        wanted = set(known.values())
        originals = {e.seq: e for e in self.read(min(wanted), max(wanted)) if e.seq in wanted}
        seqs: list[int] = []
        with state.transaction():
            for i, ev in enumerate(batch):
                if i in known:
                    seq = known[i]
                    orig = originals[seq]
                    if orig.type != ev.type or canonical(orig.data) != canonical(ev.data):
                        raise EventRejected(i, f"id {ev.id} is already committed at seq {seq} with a different payload",
                                            ev.id)
                    seqs.append(seq)
                    continue
                seq = state.seq + 1
                try:
                    done_at = state.apply(ev.type, ev.data, seq, ev.id or "", state.at)
                except DomainError as exc:
                    raise EventRejected(i, str(exc), ev.id) from None
                if done_at == seq:
                    raise EventRejected(i, f"batch mixes already-committed ids (event #{min(known) + 1}) with new events",
                                        ev.id)
                seqs.append(done_at)
        return seqs

    # -- read, verify, repair -----------------------------------------------------------
    def read(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[RecordedEvent]:
        """Stream committed events from_seq..to_seq (inclusive), payloads upcast. Never modifies the log."""
        start = self._index[max(0, bisect.bisect_right([p.seq for p in self._index], from_seq - 1) - 1)]
        if from_seq - start.seq > BOUNDARY_EVERY:  # the index may know a nearer batch boundary
            nearer = self._facts.boundary_before(from_seq)
            if nearer is not None and nearer.seq > start.seq and position_matches(self.log_path, nearer):
                start = nearer
        for batch in LogScanner(self.log_path, start, stop_after=to_seq):
            for ev in batch:
                seq = ev["seq"]
                if seq < from_seq:
                    continue
                if to_seq is not None and seq > to_seq:
                    return
                ev["data"] = upcast(ev["type"], ev["v"], ev["data"], seq)
                ev["txn"] = tuple(ev["txn"])
                yield RecordedEvent.model_construct(**ev)

    def verify(self) -> VerifyReport:
        """Walk the whole chain from seq 1; raise CorruptLogError at the first bad seq."""
        with paused_gc():
            split = verify_split(self.log_path, self._genesis)
            if split is not None:
                end, events, tail = split
                return VerifyReport(Head(end.seq, end.hash), events, tail)
            scanner = LogScanner(self.log_path, self._genesis)
            events = count_events(scanner)
        return VerifyReport(Head(scanner.end.seq, scanner.end.hash), events, scanner.tail)

    def repair(self) -> RepairReport:
        """Cut an incomplete trailing batch into events.jsonl.torn-<n>; never a complete one.

        Corruption before the tail is not repaired: it raises, naming the first bad seq.
        """
        with self._mutex:
            self._acquire()
            try:
                self.verify()
                return self._cut_tail()
            finally:
                self._release()


def _normalize_batch(events: Iterable[EventIn | dict[str, Any]]) -> list[_Pending]:
    raw = [ev.model_dump(exclude_none=True) if isinstance(ev, EventIn) else ev for ev in events]
    if not raw:
        raise InvalidInputError("empty batch: nothing to append")
    batch: list[_Pending] = []
    seen: dict[str, int] = {}
    for i, ev in enumerate(normalize_batch(raw)):
        event_id = ev.get("id")
        if event_id is not None:
            if event_id in seen:
                raise EventRejected(i, f"id {event_id} appears twice in the batch (first at event #{seen[event_id] + 1})", event_id)
            seen[event_id] = i
        batch.append(_Pending(ev["type"], ev["data"], event_id, ev.get("by", {})))
    return batch

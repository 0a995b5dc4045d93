"""The application service: a ledger over any `LogStore` (docs/architecture.md, the append path).

`Ledger` validates and folds; the store only keeps bytes. To append, a writer enters the
store's writing section (an flock for the local directory), catches up on what other
writers committed since its last known position, has the store cut an incomplete trailing
batch left by a crashed writer, validates the whole new batch against its state inside a
transaction, encodes it, and asks the store to append it only if the log still ends where
it saw it end. Only then is the state committed. A store without an exclusive section can
lose that race: the transaction is rolled back and the writer catches up and tries again,
so seqs stay gapless whichever backend holds the log. Readers never modify the log.
"""

from __future__ import annotations

import bisect
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, NamedTuple

import orjson

from ..log.codec import canonical, encode_line, genesis_prev
from ..domain.config import LedgerConfig
from ..errors import ConflictError, EventRejected, IncompleteCopyError, InvalidInputError, LedgerError
from ..domain.events import CURRENT_VERSION, EventIn, RecordedEvent, upcast
from ..log.file_store import FileLogStore
from ..log.fsio import environment_error
from ..log.location import Where, open_store
from ..log.perf import paused_gc
from ..log.spool import WAIT, Request, Spool
from ..log.store import LogStore
from .group import Batch, BatchError, Pending, decode_request, decode_result, encode_request, encode_result
from .facts import BOUNDARY_EVERY, CACHE_LIMIT, FactIndex, FactsSnapshot, IndexedState
from .replay import apply_recorded, committed_fields, starting_point
from ..log.scan import Position, Tail
from ..domain.state import DomainError, Generation, State

#: how long a leader goes on committing rounds of requests after its own batch before it
#: lets go (each round one write and one fdatasync for the requests that came meanwhile);
#: fewer leaders also means fewer processes that build the validator
LEAD_SECONDS = 0.05
#: a batch larger than this is schema-validated by its writer before it takes the lock or
#: spools it (validation is its main cost, and must not serialise writers); a smaller one is
#: validated by whoever commits it
SPOOL_RAW_LIMIT = 64
#: how long a leader waits for the writers it just answered to send their next batches before
#: it starts the next round (looking every GATHER_STEP): without it, each round took the half
#: of them that was back, and every writer waited two fdatasyncs
GATHER_SECONDS, GATHER_STEP = 0.001, 0.0001

if TYPE_CHECKING:
    import pyarrow as pa

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


class _LostRace(Exception):
    """The store's conditional append found the log moved on: roll back, catch up, retry."""


class _Deferred(Exception):
    """A spooled batch names ids this group is writing: it waits for its own writer's turn."""


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Ledger:
    """A ledger opened for reading and appending; safe across threads, and across processes
    when its store is (`store.multi_process`)."""

    def __init__(self, store: LogStore, config: LedgerConfig) -> None:
        self.store = store
        self.config = config
        self._genesis = Position(0, genesis_prev(config.ledger_id), 0)
        self._state: State | None = None
        self._pos = self._genesis
        self._index: list[Position] = [self._genesis]
        self._mutex = threading.RLock()
        where = store.index_path()
        self._facts = FactIndex(where, config) if where is not None else None
        #: what a writer validates against when no full state is loaded: the index, caught up
        self._writer: IndexedState | None = None
        #: when the append that last ended in ConflictError was first tried (its retry's place
        #: in a group commit, `Batch.since`); None after any other outcome
        self._retrying_since: int | None = None

    # -- lifecycle ----------------------------------------------------------------------
    @classmethod
    def init(
        cls,
        where: Where,
        stages: Iterable[str] | None = None,
        parents: dict[str, str] | None = None,
    ) -> "Ledger":
        """Create a new, empty ledger: `where` is a directory (which must not exist or be empty),
        a URL of a registered backend (ledger.log.location), or a LogStore."""
        config = LedgerConfig.new(tuple(stages) if stages is not None else None, parents)
        store = open_store(where)
        store.create(config.to_json())
        return cls(store, config)

    @classmethod
    def open(cls, where: Where) -> "Ledger":
        """Open an existing ledger (a directory, a URL, a LogStore). The state is loaded on first use."""
        store = open_store(where)
        marker = store.copy_marker()
        if marker is not None:
            raise IncompleteCopyError(store.location, marker)
        raw = store.read_config()
        config = LedgerConfig.from_json(raw, os.path.join(store.location, "ledger.json"))
        return cls(store, config)

    def _local(self) -> FileLogStore:
        if not isinstance(self.store, FileLogStore):
            raise InvalidInputError(f"{self.store.location} is not a local ledger directory")
        return self.store

    @property
    def path(self) -> Path:
        """The ledger directory, for a ledger held by the local directory backend."""
        return self._local().path

    @property
    def log_path(self) -> Path:
        """`events.jsonl`, for a ledger held by the local directory backend."""
        return self._local().log_path

    def close(self) -> None:
        """Release what the store and the index hold open; the ledger stays usable."""
        if self._facts is not None:
            self._facts.close()
        self._writer = None
        self.store.close()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- state --------------------------------------------------------------------------
    @property
    def head(self) -> Head:
        """The last committed event as of this access (other writers' appends included)."""
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
        try:
            if self._state is None:
                self._state, self._pos = starting_point(self.store, self.config)
                self._index = [self._genesis] + ([self._pos] if self._pos.seq else [])
            state = self._state
            scan = self.store.scan(self._pos)
            for ev, end in scan.events():
                apply_recorded(state, ev)
                if end is not None:
                    if self._pos.seq + 1 - self._index[-1].seq >= INDEX_EVERY:
                        self._index.append(self._pos)
                    self._pos = end
        except BaseException:
            self._state = None  # a half-folded batch must never be used (corrupt, newer v, interrupt)
            raise
        return scan.tail

    def _cut_tail(self) -> RepairReport:
        """In the writing section: have the store move aside what follows the last complete batch."""
        tail = self._refresh()
        return self._cut_tail_at(self._pos, tail)

    def _cut_tail_at(self, pos: Position, tail: Tail) -> RepairReport:
        head = Head(pos.seq, pos.hash)
        cut = self.store.cut_tail(pos) if tail.bytes else None
        if cut is None:
            return RepairReport(head, 0, 0, None)
        return RepairReport(head, cut.size, tail.lines, cut.kept_as)

    # -- append -------------------------------------------------------------------------
    def append(self, events: Iterable[EventIn | dict[str, Any]], expected_seq: int | None = None) -> list[int]:
        """Append one atomic batch; return the seq of each event (the original seq for no-ops).

        The batch is validated whole before a byte is written; it is durable on return.
        """
        with paused_gc():
            batch = Batch.of(events, expected_seq)
            spool = self.store.spool()
            if spool is None or len(batch.raw) > SPOOL_RAW_LIMIT:
                batch.events  # schema-validated before the lock (what a leader would redo for a small one)
        with self._mutex, paused_gc():
            if self._retrying_since is not None:
                batch.since = self._retrying_since  # a retry after a conflict keeps its place
            try:
                if spool is not None:
                    seqs = self._append_grouped(spool, batch)
                else:
                    with self.store.writing():
                        seqs = self._lead(batch, None)
            except ConflictError:
                self._retrying_since = batch.since
                raise
            except BaseException:
                self._retrying_since = None
                raise
            self._retrying_since = None
            return seqs

    def _append_grouped(self, spool: Spool, batch: Batch) -> list[int]:
        """Group commit (ledger/log/spool.py): lead if the writing section is free; else leave
        the batch as a request and sleep until a leader answers it, or wakes us to lead, or
        (its leader dead) `WAIT` passes and the section is free: then append it ourselves."""
        section = spool.try_lead()
        request: Request | None = None
        try:
            if section is None:
                payload = encode_request(batch)
                request = spool.submit(payload) if payload is not None else None
                # the leader may have let go before our request was there: look again
                section = self.store.writing() if request is None else spool.try_lead()
            while section is None:
                assert request is not None
                answer = request.wait(WAIT)
                seqs = decode_result(answer) if answer else None  # raises the error the leader found
                if seqs is not None:
                    return seqs
                section = self.store.writing() if answer else spool.try_lead()
            try:
                with section:
                    if request is not None:
                        answer = request.wait(0)  # answered just before the section came free?
                        seqs = decode_result(answer) if answer else None
                        if seqs is not None:
                            return seqs
                        request.withdraw()  # in the section: no leader takes it from here on
                        batch = batch.respooled()  # a killed leader may have written it
                    batch.events  # our own schema errors before anything (the index, a tail cut) is written
                    return self._lead(batch, spool)
            finally:
                spool.wake_first()  # requests that came after our last look: their writers lead next
        finally:
            if request is not None:
                request.withdraw()

    def _lead(self, batch: Batch, spool: Spool | None) -> list[int]:
        """In the writing section: commit our batch with the waiting requests, then a few more
        rounds of the requests that came meanwhile; return our seqs or raise our batch's error."""
        own: list[int] | BatchError | None = None
        while own is None:  # None: deferred, a request of the round wrote our ids first
            try:
                own, took = self._round(batch, spool)
            except _LostRace:
                continue  # a writer that ignores the lock appended: catch up, re-validate, retry
        deadline = time.monotonic() + LEAD_SECONDS
        while spool is not None and took and time.monotonic() < deadline:  # rounds only under contention
            if not self._gathered(spool, took):
                break
            try:
                _, took = self._round(None, spool)
            except (LedgerError, _LostRace):
                break  # our batch is committed: the writers of the rest append theirs alone
            if not took:
                break
        if isinstance(own, list):
            return own
        raise own

    def _gathered(self, spool: Spool, answered: int) -> int:
        """How many requests wait for the next round. The writers just answered are likely to
        append again at once: give them up to GATHER_SECONDS to do so, so that one fdatasync
        covers them all instead of every other round taking half of them."""
        n = spool.waiting()
        until = time.monotonic() + GATHER_SECONDS
        while n < answered and time.monotonic() < until:
            time.sleep(GATHER_STEP)
            n = spool.waiting()
        return n

    def _round(self, batch: Batch | None, spool: Spool | None) -> tuple[list[int] | BatchError | None, int]:
        """Commit the spool's pending requests and `batch` (if any) in one write; answer each
        request. Returns our batch's outcome and how many requests were taken.

        The batches are validated oldest attempt first (`Batch.since`: a writer retrying after
        a conflict keeps the time of its first attempt). With ours always first, a writer that
        appends again at once with `expected_seq` won every race against the writers it had
        just answered, which then lost up to 30 times in a row."""
        taken: list[tuple[Request, Batch]] = []
        if spool is not None:
            for r in spool.pending():
                b = decode_request(r.payload)
                if b is None:
                    r.wake()  # not a request we can read: its writer appends it alone
                else:
                    taken.append((r, b))
        order = sorted([b for _, b in taken] + ([batch] if batch is not None else []), key=_since)
        try:
            if not order:
                return None, 0
            if self._state is None and self._facts is not None:
                outcomes, wrote = self._commit_indexed(self._facts, order)
            else:
                self._cut_tail()  # a full state is loaded anyway (or no index): validate against it
                assert self._state is not None
                start = self._pos
                outcomes, self._pos = self._commit_batches(order, self._state, start)
                wrote = self._pos != start
            outcome_of = {id(b): o for b, o in zip(order, outcomes)}
            if spool is not None and not wrote and any(b.spooled and isinstance(outcome_of[id(b)], list) for b in order):
                spool.sync()  # a killed leader's unsynced bytes may hold a batch we now report
            for request, b in taken:
                outcome = outcome_of[id(b)]
                if outcome is not None:
                    try:
                        request.answer(encode_result(outcome))
                    except OSError:
                        pass  # its writer is gone (or will find no answer and append alone)
            return (outcome_of[id(batch)] if batch is not None else None), len(taken)
        finally:
            for request, _ in taken:
                request.wake()  # not answered (deferred, or the round failed): it appends alone

    # -- the writers' index -------------------------------------------------------------
    def _indexed_state(self, facts: FactIndex) -> tuple[IndexedState, Tail]:
        """In the writing section: the index's state (rebuilt when it does not match the log),
        caught up on the batches committed since, and what follows them."""
        state = self._writer
        self._writer = None  # until caught up: a half-folded batch must never be used
        if state is not None and (state.held > CACHE_LIMIT or facts.position() != state.position):
            state = None  # another writer moved the index on (or our cache grew): start over from it
        if state is None:
            state = facts.open_state(self.store.is_boundary)
        if state is None:
            self._rebuild_index(facts)
            state = facts.open_state(self.store.is_boundary)
            assert state is not None
        tail = _catch_up(self.store, state)
        self._writer = state
        return state, tail

    @contextmanager
    def index_at_end(self) -> Iterator[IndexedState | None]:
        """The writers' index caught up to the log's end, for lookups while no writer commits
        (the store's writing section is held until the block ends). Events the index had not
        absorbed yet are folded in memory through the reference rules -- one that breaks a rule
        raises CorruptLogError as a replay does -- and nothing is written: the index is neither
        committed nor rebuilt. None when the store keeps no index or it does not match the log.
        What an incremental build (projections/patch.py) reads the rows of new events from."""
        if self._facts is None:
            yield None
            return
        reader = FactIndex(self._facts.path, self.config, read_only=True)
        with self._mutex, paused_gc(), self.store.writing():
            try:
                state = reader.open_state(self.store.is_boundary)
                if state is not None:
                    _catch_up(self.store, state)
                yield state
            finally:
                reader.close()

    def _rebuild_index(self, facts: FactIndex) -> None:
        """Fold the log (from the newest valid checkpoint) and write every fact anew."""
        state, pos = starting_point(self.store, self.config)
        boundaries = [pos] if pos.seq else []
        for ev, end in self.store.scan(pos).events():
            apply_recorded(state, ev)
            if end is not None:
                pos = end
                if end.seq - (boundaries[-1].seq if boundaries else 0) >= BOUNDARY_EVERY:
                    boundaries.append(end)
        try:
            facts.rebuild(state, pos, boundaries)
        except (OSError, sqlite3.Error) as exc:
            raise environment_error(exc if isinstance(exc, OSError) else OSError(str(exc)),
                                    f"writing the index {facts.path}") from exc

    def _commit_indexed(self, facts: FactIndex, batches: list[Batch]
                        ) -> tuple[list[list[int] | BatchError | None], bool]:
        """`_commit_batches` against the writers' index; also: whether anything was written."""
        state, tail = self._indexed_state(facts)
        self._cut_tail_at(state.position, tail)
        outcomes, end = self._commit_batches(batches, state, state.position)  # rolled back if it raises
        wrote = end != state.position
        if wrote:
            state.passed(end)
        self._commit_facts(facts, state)
        return outcomes, wrote

    def _commit_facts(self, facts: FactIndex, state: IndexedState) -> None:
        try:
            facts.commit(state)
        except sqlite3.Error:
            self._writer = None  # the log holds every batch; the next writer catches the index up

    def generation(self, gen_id: str) -> Generation | None:
        """A generation as of now (origin metadata, materialization) through the index: what a
        pipeline hook asks before it runs a step, without loading the state. Like an append,
        it enters the writing section for the moment it catches the index up."""
        with self._mutex, paused_gc():
            if self._state is not None or self._facts is None:
                return self.state.generations.get(gen_id)
            with self.store.writing():
                state, _ = self._indexed_state(self._facts)
                self._commit_facts(self._facts, state)
                found: Generation | None = state.generations.get(gen_id)
                return found

    def facts_snapshot(self) -> FactsSnapshot | None:
        """The writers' index caught up to the log's end and pinned there (a read transaction):
        lookups without the state. None when the store keeps no index."""
        if self._facts is None:
            return None
        with self._mutex, paused_gc(), self.store.writing():
            state, _ = self._indexed_state(self._facts)
            try:
                self._facts.commit(state)
            except sqlite3.Error:
                self._writer = None
                return None
            return self._facts.snapshot()

    def _commit_batches(self, batches: list[Batch], state: State, pos: Position
                        ) -> tuple[list[list[int] | BatchError | None], Position]:
        """Validate each batch, in order, against the state the ones before it left, each as its own atomic batch (a rejected one is undone alone), then
        write every accepted line with one conditional append (one fdatasync). Each batch's
        outcome: its seqs, its error, or None when it was deferred. If the append fails,
        nothing is kept."""
        outcomes: list[list[int] | BatchError | None] = []
        lines: list[bytes] = []
        prev = pos.hash
        with state.transaction():  # undone whole if the write fails or loses the race
            for batch in batches:
                try:
                    with state.transaction():
                        seqs, prev = self._validate(batch, state, pos.seq, prev, lines)
                except (InvalidInputError, ConflictError) as exc:  # EventRejected included
                    outcomes.append(exc)
                except _Deferred:
                    outcomes.append(None)
                else:
                    outcomes.append(seqs)
            if not lines:
                return outcomes, pos
            end = self.store.append(pos, b"".join(lines), Position(state.seq, prev, None, state.at))
            if end is None:
                raise _LostRace  # inside the transaction: the state is rolled back
        return outcomes, end

    def _validate(self, batch: Batch, state: State, committed: int, prev: str, lines: list[bytes]
                  ) -> tuple[list[int], str]:
        """Apply one batch to `state` (in the caller's transaction) and add its encoded lines
        to `lines`, chained on `prev`: (its seqs, the chain hash after it)."""
        events = batch.events
        ids = batch.ids()
        if isinstance(state, IndexedState):
            state.preload((ev.type, ev.data, event_id) for ev, event_id in zip(events, ids))
        known = {i: state.event_ids[event_id] for i, event_id in enumerate(ids)
                 if event_id is not None and event_id in state.event_ids}
        if known:
            if max(known.values()) > committed:
                raise _Deferred  # its ids are in this group's unwritten lines
            return self._replayed_ids(events, known, state), prev
        if batch.expected_seq is not None and state.seq != batch.expected_seq:
            raise ConflictError(batch.expected_seq, state.seq)
        at = max(utc_now(), state.at)
        seqs: list[int] = []
        written: list[tuple[int, int, Pending, str]] = []
        for i, ev in enumerate(events):
            event_id = ids[i] or f"{batch.token}-{i}"
            seq = state.seq + 1
            cohort_id = ev.data.get("cohort_id")
            rule = None if cohort_id is None or cohort_id in state.cohorts else state.new_cohort_rule(cohort_id)
            if rule is not None:
                raise EventRejected(i, rule, ev.id)
            try:
                done_at = state.apply(ev.type, ev.data, seq, event_id, at)
            except DomainError as exc:
                raise EventRejected(i, str(exc), ev.id) from None
            seqs.append(done_at)
            if done_at == seq:
                written.append((i, seq, ev, event_id))
        if not written:
            return seqs, prev
        txn = [written[0][1], len(written)]
        out = []
        for i, seq, ev, event_id in written:
            try:
                line, prev = encode_line({
                    "seq": seq, "id": event_id, "type": ev.type, "v": CURRENT_VERSION[ev.type], "at": at,
                    "by": ev.by, "txn": txn, "data": ev.data, "prev": prev,
                })
            except orjson.JSONEncodeError as exc:  # e.g. an int beyond 64 bits in a `spec`
                raise EventRejected(i, f"payload is not encodable as canonical JSON ({exc})", ev.id) from None
            out.append(line)
        lines.extend(out)
        state.hash = prev
        return seqs, prev

    def _replayed_ids(self, batch: list[Pending], known: dict[int, int], state: State) -> list[int]:
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
    def read_start(self, from_seq: int) -> Position:
        """The batch boundary a read from `from_seq` starts scanning at: the newest entry of the
        sparse index (one per INDEX_EVERY events this handle has folded) at or before it, or a
        nearer boundary the writers' index recorded."""
        start = self._index[max(0, bisect.bisect_right([p.seq for p in self._index], from_seq - 1) - 1)]
        if from_seq - start.seq > BOUNDARY_EVERY and self._facts is not None:  # the index may know a nearer one
            nearer = self._facts.boundary_before(from_seq)
            if nearer is not None and nearer.seq > start.seq and self.store.is_boundary(nearer):
                start = nearer
        return start

    def read(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[RecordedEvent]:
        """Stream committed events from_seq..to_seq (inclusive), payloads upcast. Never modifies the log.

        A batch is verified and turned into models with the garbage collector paused (the
        models make no cycles; pausing it was 25% of the time at 1,000,000 events), then
        handed out one by one with the collector back on: the caller's code never runs paused.
        """
        batches = iter(self.store.scan(self.read_start(from_seq), stop_after=to_seq))
        while True:
            with paused_gc():
                batch = next(batches, None)
                if batch is None:
                    return
                events = [RecordedEvent.from_log(committed_fields(ev)) for ev in batch
                          if ev["seq"] >= from_seq and (to_seq is None or ev["seq"] <= to_seq)]
            yield from events
            if to_seq is not None and batch[-1]["seq"] >= to_seq:
                return

    def to_arrow(self, from_seq: int = 1, to_seq: int | None = None) -> pa.Table:
        """The committed events from_seq..to_seq as an Arrow table, one row per event, verified
        as `read` verifies them (ledger/app/arrow_log.py has the columns). Needs pyarrow, which
        `import ledger` does not load; on a long local log the chain is checked on two cores.

        Example: `ledger.to_arrow().to_pandas()`, or `duckdb.sql("select type, count(*) from
        t group by type")` with `t = ledger.to_arrow()`.
        """
        from .arrow_log import log_table

        return log_table(self, from_seq, to_seq)

    def verify(self) -> VerifyReport:
        """Walk the whole chain from seq 1; raise CorruptLogError at the first bad seq."""
        with paused_gc():
            end, events, tail = self.store.verify(self._genesis)
        return VerifyReport(Head(end.seq, end.hash), events, tail)

    def repair(self) -> RepairReport:
        """Cut an incomplete trailing batch (kept aside: events.jsonl.torn-<n>); never a complete one.

        Corruption before the tail is not repaired: it raises, naming the first bad seq.
        """
        with self._mutex, self.store.writing():
            self.verify()
            return self._cut_tail()


def _since(batch: Batch) -> int:
    return batch.since


def _catch_up(store: LogStore, state: IndexedState) -> Tail:
    """Fold into `state` the batches committed after its position; return what follows them."""
    scan = store.scan(state.position)
    for ev, end in scan.events():
        apply_recorded(state, ev)
        if end is not None:
            state.passed(end)
    return scan.tail

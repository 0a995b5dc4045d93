"""The LogStore conformance suite: what every backend must do for `Ledger` to keep its promises.

How to run it against a backend (see tests/test_log_store_file.py, tests/test_log_store_memory.py):

    class TestMyStore(LogStoreConformance):             # + MultiProcessConformance if it can
        def create_store(self) -> LogStore: ...          # a fresh, empty location (no ledger yet)
        def open_again(self, store) -> LogStore: ...     # a second, independent handle to it
        def location(self, store) -> str: ...            # what a child process passes to Ledger.open

`create_store` may use `self.tmp` (a fresh directory per test) or `self.request` (to reach
any fixture, e.g. `self.request.getfixturevalue("s3_url")` for a fresh prefix). Backends with a
tail (bytes a crashed writer left after the last complete batch) set `has_tail = True` and
implement `leave_torn_bytes`; the others must never show one.

The tests talk to the store only through the protocol and to the ledger only through its
public API, so they state the contract, not one backend's layout.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ledger import ConflictError, EventRejected, InvalidInputError, Ledger, LedgerEnvironmentError, LogStore, NotALedgerError
from ledger.log.checkpoint import load_latest, write_checkpoint
from ledger.log.codec import encode_line, genesis_prev
from ledger.log.scan import Position

THREADS = 4
BATCHES = 15


def draft(gen_id: str, event_id: str | None = None, cohort: str = "A") -> dict[str, Any]:
    ev: dict[str, Any] = {"type": "generation.created",
                          "data": {"cohort_id": cohort, "stage": "draft", "gen_id": gen_id, "template_id": "t"}}
    if event_id is not None:
        ev["id"] = event_id
    return ev


def committed_end(store: LogStore, config_id: str) -> tuple[Position, int]:
    """The store's committed end and its event count, by a full scan from genesis."""
    scan = store.scan(Position(0, genesis_prev(config_id), 0))
    events = sum(1 for _ in scan.events())
    return scan.end, events


def encoded_batch(after: Position, gen_ids: list[str], at: str | None = None) -> tuple[bytes, Position]:
    """Lines of a valid batch of `generation.created` events that continues the log at `after`
    (committed at `after`'s `at` unless given: `at` never goes back, docs/FORMAT.md §4.4)."""
    at = at or after.at or "2026-01-01T00:00:00.000000Z"
    prev, lines, first = after.hash, [], after.seq + 1
    for k, gen in enumerate(gen_ids):
        line, prev = encode_line({"seq": first + k, "id": f"raw-{gen}", "type": "generation.created", "v": 1,
                                  "at": at, "by": {}, "txn": [first, len(gen_ids)], "prev": prev,
                                  "data": {"cohort_id": "A", "stage": "draft", "gen_id": gen, "template_id": "t"}})
        lines.append(line)
    return b"".join(lines), Position(first + len(gen_ids) - 1, prev, None, at)


def assert_whole(events: list[Any]) -> None:
    """Gapless seqs from 1, each batch contiguous and complete, each id once."""
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    sizes = Counter(e.txn[0] for e in events)
    for e in events:
        assert sizes[e.txn[0]] == e.txn[1], f"batch {e.txn} is not whole"
    assert len({e.id for e in events}) == len(events)


class LogStoreConformance:
    """Subclass per backend (module docstring); pytest collects the subclass's `Test*` name."""

    #: the backend keeps bytes a crashed writer left after the last batch (and cuts them)
    has_tail = False
    tmp: Path
    request: pytest.FixtureRequest

    @pytest.fixture(autouse=True)
    def _context(self, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.tmp = tmp_path
        self.request = request

    def create_store(self) -> LogStore:
        raise NotImplementedError

    def open_again(self, store: LogStore) -> LogStore:
        raise NotImplementedError

    def leave_torn_bytes(self, store: LogStore, data: bytes) -> None:
        """Put `data` after the committed log, as a writer killed mid-batch would (has_tail only)."""
        raise NotImplementedError

    # -- identity ---------------------------------------------------------------------------
    def test_a_ledger_is_created_once(self) -> None:
        store = self.create_store()
        with pytest.raises(NotALedgerError):
            Ledger.open(store)
        led = Ledger.init(store, stages=["draft", "essay"])
        with pytest.raises(InvalidInputError):
            Ledger.init(self.open_again(store))
        again = Ledger.open(self.open_again(store))
        assert again.config == led.config and again.head == (0, genesis_prev(led.config.ledger_id))

    # -- batches ----------------------------------------------------------------------------
    def test_a_batch_is_one_atomic_unit(self) -> None:
        led = Ledger.init(self.create_store())
        assert led.append([draft(f"d{i}") for i in range(5)]) == [1, 2, 3, 4, 5]
        assert led.append([draft("d5")]) == [6]
        scan = led.store.scan(Position(0, genesis_prev(led.config.ledger_id), 0))
        assert [[e["seq"] for e in batch] for batch in scan] == [[1, 2, 3, 4, 5], [6]]
        assert (scan.end.seq, scan.end.hash) == tuple(led.head) and scan.tail.bytes == 0
        other = Ledger.open(self.open_again(led.store))
        assert [e.txn for e in other.read()] == [(1, 5)] * 5 + [(6, 1)]
        assert [e.seq for e in other.read(2, 3)] == [2, 3] and other.verify().events == 6

    def test_a_rejected_batch_writes_nothing(self) -> None:
        led = Ledger.init(self.create_store())
        led.append([draft("d0")])
        with pytest.raises(EventRejected):
            led.append([draft("d1"), {"type": "generation.created", "data": {"cohort_id": "A", "stage": "nope",
                                                                             "gen_id": "x", "template_id": "t"}}])
        assert committed_end(led.store, led.config.ledger_id)[1] == 1 and led.head.seq == 1

    # -- conditional append --------------------------------------------------------------------
    def test_append_only_at_the_expected_end(self) -> None:
        led = Ledger.init(self.create_store())
        led.append([draft("d0")])
        store = self.open_again(led.store)
        end, _ = committed_end(store, led.config.ledger_id)
        blob, last = encoded_batch(end, ["r1", "r2"])
        with store.writing():
            new_end = store.append(end, blob, last)
        assert new_end is not None and (new_end.seq, new_end.hash) == (3, last.hash)
        assert store.is_boundary(new_end)
        stale, _ = encoded_batch(end, ["r3"])
        with store.writing():
            assert store.append(end, stale, last) is None  # the log moved on: nothing written
            genesis = Position(0, genesis_prev(led.config.ledger_id), 0)
            assert store.append(genesis, stale, last) is None
        assert committed_end(store, led.config.ledger_id) == (new_end, 3)
        assert led.append([draft("d4")]) == [4]  # the first handle catches up, no gap

    def test_expected_seq_conflicts_write_nothing(self) -> None:
        led = Ledger.init(self.create_store())
        other = Ledger.open(self.open_again(led.store))
        assert led.append([draft("d0")], expected_seq=0) == [1]
        with pytest.raises(ConflictError):
            other.append([draft("d1")], expected_seq=0)
        assert other.append([draft("d1")], expected_seq=1) == [2]
        assert committed_end(led.store, led.config.ledger_id)[1] == 2

    def test_idempotent_ids(self) -> None:
        led = Ledger.init(self.create_store())
        batch = [draft("d0", "id-0"), draft("d1", "id-1")]
        assert led.append(batch) == [1, 2]
        other = Ledger.open(self.open_again(led.store))
        assert other.append(batch, expected_seq=0) == [1, 2]  # a retry: checked before expected_seq
        with pytest.raises(EventRejected):
            other.append([draft("d9", "id-0")])  # a known id with another payload
        assert committed_end(led.store, led.config.ledger_id)[1] == 2

    def _sneak_in_before_next_append(self, led: Ledger, gen_ids: list[str]) -> None:
        """Make another writer commit `gen_ids` just before `led`'s next conditional append."""
        rival = self.open_again(led.store)
        real = led.store.append

        def rival_first(end: Position, lines: bytes, last: Position) -> Position | None:
            led.store.append = real  # type: ignore[method-assign]
            blob, rival_last = encoded_batch(end, gen_ids)
            assert rival.append(end, blob, rival_last) is not None
            return real(end, lines, last)

        led.store.append = rival_first  # type: ignore[method-assign]

    def test_a_lost_race_is_retried_after_catching_up(self) -> None:
        led = Ledger.init(self.create_store())
        led.append([draft("d0")])
        self._sneak_in_before_next_append(led, ["r1", "r2"])
        assert led.append([draft("d3"), draft("r1")]) == [4, 2]  # re-validated: r1 is now a no-op
        assert [e.data["gen_id"] for e in Ledger.open(self.open_again(led.store)).read()] == ["d0", "r1", "r2", "d3"]
        self._sneak_in_before_next_append(led, ["r4"])
        with pytest.raises(ConflictError):
            led.append([draft("d5")], expected_seq=4)
        assert led.head.seq == 5 and committed_end(led.store, led.config.ledger_id)[1] == 5

    def test_a_failed_append_leaves_no_gap(self) -> None:
        led = Ledger.init(self.create_store())
        led.append([draft("d0")])
        real = led.store.append

        def refuse(end: Position, lines: bytes, last: Position) -> Position | None:
            raise LedgerEnvironmentError("appending: No space left on device")

        led.store.append = refuse  # type: ignore[method-assign]
        try:
            with pytest.raises(LedgerEnvironmentError):
                led.append([draft("d1"), draft("d2")])
        finally:
            led.store.append = real  # type: ignore[method-assign]
        assert led.head.seq == 1 and "d1" not in led.state.generations
        assert led.append([draft("d1")]) == [2]
        assert_whole(list(Ledger.open(self.open_again(led.store)).read()))

    # -- racing writers and readers ---------------------------------------------------------
    def test_racing_threads_keep_seqs_gapless(self) -> None:
        led = Ledger.init(self.create_store())
        errors: list[BaseException] = []

        def writer(w: int) -> None:
            try:
                mine = Ledger.open(self.open_again(led.store)) if w % 2 else led  # shared and own handles
                for b in range(BATCHES):
                    batch = [draft(f"w{w}-{b}-{k}", f"w{w}/{b}/{k}") for k in range(1 + b % 3)]
                    if b % 3 == 0:
                        while True:
                            try:
                                seqs = mine.append(batch, expected_seq=mine.head.seq)
                                break
                            except ConflictError:
                                continue
                    else:
                        seqs = mine.append(batch)
                    assert mine.append(batch) == seqs  # a retry returns the original seqs
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        events = list(Ledger.open(self.open_again(led.store)).read())
        assert len(events) == sum(1 + b % 3 for b in range(BATCHES)) * THREADS
        assert_whole(events)
        assert led.head == Ledger.open(self.open_again(led.store)).verify().head

    def test_readers_never_see_a_partial_batch(self) -> None:
        led = Ledger.init(self.create_store())
        stop = threading.Event()
        seen: list[int] = []
        errors: list[BaseException] = []

        def reader() -> None:
            try:
                handle = Ledger.open(self.open_again(led.store))
                while not stop.is_set():
                    events = list(handle.read())
                    sizes = Counter(e.txn[0] for e in events)
                    assert all(sizes[e.txn[0]] == e.txn[1] for e in events)
                    seen.append(len(events))
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=reader)
        t.start()
        try:
            for b in range(30):
                led.append([draft(f"d{b}-{k}") for k in range(1 + b % 7)])
        finally:
            stop.set()
            t.join()
        assert not errors, errors
        assert seen and seen == sorted(seen)

    # -- tail and crash ---------------------------------------------------------------------------
    def test_tail_behaviour(self) -> None:
        led = Ledger.init(self.create_store())
        led.append([draft("d0"), draft("d1")])
        if not self.has_tail:
            assert led.store.cut_tail(committed_end(led.store, led.config.ledger_id)[0]) is None
            assert led.verify().tail.bytes == 0 and led.repair().cut_bytes == 0
            return
        end, _ = committed_end(led.store, led.config.ledger_id)
        blob, _ = encoded_batch(end, ["t1", "t2", "t3"])
        torn = blob[: blob.index(b"\n") + 1] + blob[blob.index(b"\n") + 1:][:40]  # 1 of 3 lines + a torn one
        self.leave_torn_bytes(led.store, torn)
        reader = Ledger.open(self.open_again(led.store))
        report = reader.verify()
        assert report.head == led.head and (report.tail.bytes, report.tail.lines) == (len(torn), 1)
        assert reader.head.seq == 2 and reader.verify().tail.bytes == len(torn)  # readers never cut
        assert Ledger.open(self.open_again(led.store)).append([draft("d2")]) == [3]  # the writer cuts
        assert led.verify().tail.bytes == 0
        self.leave_torn_bytes(led.store, b'{"torn')
        cut = Ledger.open(self.open_again(led.store)).repair()
        assert (cut.head.seq, cut.cut_bytes) == (3, 6) and cut.torn_file is not None
        assert_whole(list(led.read()))

    # -- checkpoints --------------------------------------------------------------------------
    def test_checkpoint_storage(self) -> None:
        store = self.create_store()
        Ledger.init(store)
        assert store.checkpoints() == [] and store.read_checkpoint(7) is None
        store.write_checkpoint(7, b"seven")
        store.write_checkpoint(12, b"twelve")
        store.write_checkpoint(7, b"seven again")
        again = self.open_again(store)
        assert again.checkpoints() == [12, 7] and again.read_checkpoint(7) == b"seven again"
        again.delete_checkpoint(12)
        again.delete_checkpoint(12)  # already gone: fine
        assert store.checkpoints() == [7]

    def test_checkpoints_are_used_only_when_they_match(self) -> None:
        led = Ledger.init(self.create_store())
        led.append([draft("d0"), draft("d1")])
        state = led.state
        end, _ = committed_end(led.store, led.config.ledger_id)
        write_checkpoint(led.store, led.config, state, end)
        found = load_latest(self.open_again(led.store), led.config)
        assert found is not None and found[1] == end and set(found[0].generations) == {"d0", "d1"}
        for wrong in (Position(end.seq, "0" * 64, end.cursor, end.at), Position(end.seq, end.hash, end.cursor, "x"),
                      Position(end.seq + 1, end.hash, end.cursor, end.at)):
            assert not led.store.is_boundary(wrong)
        other = Ledger.init(self.create_store())
        assert load_latest(led.store, other.config) is None  # another ledger's checkpoint
        assert Ledger.open(self.open_again(led.store)).append([draft("d2")]) == [3]


WRITER = r"""
import json, sys
from ledger import ConflictError, Ledger
where, w, batches = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
led = Ledger.open(where)
for b in range(batches):
    batch = [{"id": f"p{w}/{b}/{k}", "type": "generation.created",
              "data": {"cohort_id": "A", "stage": "draft", "gen_id": f"p{w}-{b}-{k}", "template_id": "t"}}
             for k in range(1 + b % 3)]
    seqs = led.append(batch)
    assert Ledger.open(where).append(batch) == seqs
print("ok")
"""


class MultiProcessConformance:
    """For backends that independent processes share (`store.multi_process`)."""

    PROCESSES = 3

    def create_store(self) -> LogStore:
        raise NotImplementedError

    def location(self, store: LogStore) -> str:
        """What a child process passes to `Ledger.open` to reach `store`."""
        raise NotImplementedError

    def test_racing_processes_keep_seqs_gapless(self) -> None:
        store = self.create_store()
        assert store.multi_process
        led = Ledger.init(store)
        procs = [subprocess.Popen([sys.executable, "-c", WRITER, self.location(store), str(w), str(BATCHES)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for w in range(self.PROCESSES)]
        reads = 0
        while any(p.poll() is None for p in procs):  # meanwhile, a reader sees only whole batches
            events = list(Ledger.open(self.location(store)).read())
            sizes = Counter(e.txn[0] for e in events)
            assert all(sizes[e.txn[0]] == e.txn[1] for e in events)
            reads += 1
        for p in procs:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0 and out.strip() == b"ok", err.decode()
        assert reads
        events = list(led.read())
        assert len(events) == sum(1 + b % 3 for b in range(BATCHES)) * self.PROCESSES
        assert_whole(events)
        assert led.verify().head == led.head

"""Many processes at once: writers of every kind, and readers that must never see half a batch."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import orjson
import pytest
from helpers.builders import created
from helpers.faults import FAULTS, draft_events

from ledger import EventRejected, Ledger
from ledger.log.codec import genesis_prev

WRITERS = 8
OPS = 12


def spawn(*args: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(FAULTS), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen[bytes]) -> None:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()


def test_concurrent_writers_and_readers(tmp_path: Path) -> None:
    ledger = Ledger.init(tmp_path / "ledger").path
    stop = tmp_path / "stop"
    readers = [spawn("read", ledger, tmp_path / f"reader{i}.json", stop) for i in range(2)]
    for proc in readers:  # reading before the first writer starts: the readers overlap them all
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    writers = [spawn("race", ledger, tmp_path / f"writer{w}.json", w, OPS) for w in range(WRITERS)]
    for proc in writers:
        finish(proc)
    stop.touch()
    for proc in readers:
        finish(proc)

    results = [orjson.loads((tmp_path / f"writer{w}.json").read_bytes()) for w in range(WRITERS)]
    acked: dict[str, int] = {}
    for res in results:
        assert not acked.keys() & res["acked"].keys()
        acked.update(res["acked"])
    led = Ledger.open(ledger)
    events = list(led.read())
    assert [ev.seq for ev in events] == list(range(1, len(events) + 1)), "seqs are not gapless"
    ids = Counter(ev.id for ev in events)
    assert all(n == 1 for n in ids.values()), "an event id was written twice"
    assert {ev.id: ev.seq for ev in events} == acked, "the log and the acknowledgements disagree"
    assert led.verify().events == len(events)
    batches = {ev.txn for ev in events}
    assert len(batches) == WRITERS * OPS  # every append wrote one batch; no retry wrote another
    for expected, actual in (c for res in results for c in res["conflicts"]):
        assert actual > expected  # a conflict was real: others had appended since

    ends = {ev.seq: ev.hash for ev in events if ev.seq == ev.txn[0] + ev.txn[1] - 1}
    ends[0] = genesis_prev(led.config.ledger_id)
    for i in range(2):
        seen = orjson.loads((tmp_path / f"reader{i}.json").read_bytes())
        assert seen["partial"] == [], "a reader saw part of a batch"
        heads = seen["heads"]
        assert [s for s, _ in heads] == sorted(s for s, _ in heads), "head went backwards"
        for seq, digest in heads:
            assert seq in ends and (seq == 0 or ends[seq] == digest), f"head {seq} is not a committed batch end"
    assert all(res["conflicts"] for res in results)  # each writer's stale append, at least


def test_retry_of_a_batch_holding_a_no_op_succeeds(tmp_path: Path) -> None:
    """A hook's batch may hold an event that is a no-op (a reuse of an active member), which
    leaves no id in the log. Retrying the whole batch after a timeout must still be a no-op
    returning the original seqs, not be refused as 'mixing committed ids with new events'."""
    led = Ledger.init(tmp_path / "ledger")
    led.append([created("A", "draft", "d1")])
    batch = [{**created("A", "draft", "d2"), "id": "hook-1"},
             {"id": "hook-2", "type": "generation.reused",
              "data": {"cohort_id": "A", "stage": "draft", "gen_id": "d1", "reason": "skip-existing"}}]
    first = led.append(batch)
    assert first == [2, 1]
    log = (led.path / "events.jsonl").read_bytes()
    assert Ledger.open(led.path).append(batch, expected_seq=0) == first  # a retry from another process
    assert (led.path / "events.jsonl").read_bytes() == log
    with pytest.raises(EventRejected):  # a committed id next to an event that would write: refused
        led.append([batch[0], created("A", "draft", "d3")])


def test_threads_sharing_and_not_sharing_a_ledger_object(tmp_path: Path) -> None:
    """Threads of one process: four share a Ledger object, four have their own (their own
    lock file descriptions, so flock serialises them like processes)."""
    shared = Ledger.init(tmp_path / "ledger")
    acked: dict[str, int] = {}
    guard = threading.Lock()

    def work(t: int) -> None:
        led = shared if t < 4 else Ledger.open(shared.path)
        for op in range(10):
            events = draft_events(f"t{t}o{op}", 1 + (t + op) % 4, f"t{t}")
            seqs = led.append(events)
            with guard:
                acked.update({ev["id"]: seq for ev, seq in zip(events, seqs)})

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    events = list(Ledger.open(shared.path).read())
    assert [ev.seq for ev in events] == list(range(1, len(events) + 1))
    assert {ev.id: ev.seq for ev in events} == acked
    assert shared.head == Ledger.open(shared.path).verify().head

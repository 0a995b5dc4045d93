"""Many writers at once: real processes (and threads) appending to one ledger.

Each worker appends small batches with client ids as fast as it can, retries some of them
(idempotency under contention), and some use `expected_seq` in an optimistic loop. Half the
workers keep one Ledger object (catch-up path), half open a fresh one per batch (replay path).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ledger import ConflictError, Ledger

WORKERS = 4
BATCHES = 40

WORKER = r"""
import json, os, sys, time
from ledger import ConflictError, Ledger

path, w, batches = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fresh = w % 2 == 1
ledger = Ledger.open(path)
open(os.path.join(path, f"ready-{w}"), "w").close()
while not os.path.exists(os.path.join(path, "go")):
    time.sleep(0.001)
done, conflicts = [], 0
for b in range(batches):
    batch = []
    for k in range(1 + b % 3):
        gen = f"d-w{w}-b{b}-k{k}"
        batch.append({"id": f"w{w}/{b}/{k}", "type": "generation.created", "by": {"actor": f"worker-{w}"},
                      "data": {"cohort_id": f"own-{w}", "stage": "draft", "gen_id": gen, "template_id": "t"}})
    if b % 4 == 3:  # depends on this worker's earlier gen; lands in a cohort every worker writes to
        batch.append({"id": f"w{w}/{b}/reuse", "type": "generation.reused",
                      "data": {"cohort_id": "shared", "stage": "draft", "gen_id": f"d-w{w}-b{b - 1}-k0",
                               "reason": "skip-existing"}})
    led = Ledger.open(path) if fresh else ledger
    if w == 0 and b % 2 == 0:
        while True:  # optimistic concurrency: retry on conflict, nothing is appended by a conflict
            try:
                seqs = led.append(batch, expected_seq=led.head.seq)
                break
            except ConflictError:
                conflicts += 1
    else:
        seqs = led.append(batch)
    if b % 5 == 0:
        assert Ledger.open(path).append(batch) == seqs, "retry must return the original seqs"
    done.append([[ev["id"] for ev in batch], seqs])
print(json.dumps({"batches": done, "conflicts": conflicts}))
"""


def _start_workers(path: Path) -> list[dict[str, Any]]:
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(path), str(w), str(BATCHES)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for w in range(WORKERS)]
    deadline = time.monotonic() + 60
    while not all((path / f"ready-{w}").exists() for w in range(WORKERS)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "a worker failed to start"
        time.sleep(0.01)
    (path / "go").touch()  # all start appending at the same moment
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
        results.append(json.loads(out))
    return results


def assert_log_is_whole(path: Path, batches: list[tuple[list[str], list[int]]]) -> None:
    """Gapless seqs, a verified chain, every event exactly once, each batch one contiguous txn."""
    events = list(Ledger.open(path).read())
    report = Ledger.open(path).verify()
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert report.head.seq == len(events) and report.tail.bytes == 0
    assert Counter(e.id for e in events) == Counter(i for ids, _ in batches for i in ids)
    by_seq = {e.seq: e for e in events}
    for ids, seqs in batches:
        first = seqs[0]
        assert seqs == list(range(first, first + len(ids))), "a batch was interleaved"
        assert [by_seq[s].id for s in seqs] == ids
        assert {by_seq[s].txn for s in seqs} == {(first, len(ids))}
    assert sum(len(ids) for ids, _ in batches) == len(events)  # no txn group outside our batches


def test_processes_appending_at_once(ledger: Ledger) -> None:
    results = _start_workers(ledger.path)
    batches = [(ids, seqs) for r in results for ids, seqs in r["batches"]]
    assert_log_is_whole(ledger.path, batches)
    for r in results:  # each worker's own batches are in its own order
        firsts = [seqs[0] for _, seqs in r["batches"]]
        assert firsts == sorted(firsts)
    state = Ledger.open(ledger.path).state
    assert len(state.cohorts["shared"].members) == WORKERS * (BATCHES // 4)
    assert state.seq == ledger.head.seq


def test_threads_sharing_one_ledger_object(ledger: Ledger) -> None:
    batches: list[tuple[list[str], list[int]]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        try:
            for b in range(25):
                ids = [f"t{t}/{b}/{k}" for k in range(1 + b % 2)]
                seqs = ledger.append([{"id": i, "type": "cohort.opened", "data": {"cohort_id": i.replace("/", "-")}}
                                      for i in ids])
                with lock:
                    batches.append((ids, seqs))
        except BaseException as exc:  # surfaced below, in the test's own thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert_log_is_whole(ledger.path, batches)


def test_a_conflict_appends_nothing_under_contention(ledger: Ledger) -> None:
    """Two objects race with the same expected_seq: exactly one wins."""
    a, b = Ledger.open(ledger.path), Ledger.open(ledger.path)
    for i in range(20):
        seq = a.head.seq
        assert a.append([{"type": "cohort.opened", "data": {"cohort_id": f"a{i}"}}], expected_seq=seq) == [seq + 1]
        try:
            b.append([{"type": "cohort.opened", "data": {"cohort_id": f"b{i}"}}], expected_seq=seq)
            raise AssertionError("the second append with a stale expected_seq succeeded")
        except ConflictError as exc:
            assert (exc.expected, exc.actual) == (seq, seq + 1)
    assert [e.data["cohort_id"] for e in ledger.read()] == [f"a{i}" for i in range(20)]

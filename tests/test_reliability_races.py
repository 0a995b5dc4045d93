"""Many processes at once: writers of every kind, and readers that must never see half a batch."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
from faults import FAULTS

from ledger import Ledger
from ledger.codec import genesis_prev

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

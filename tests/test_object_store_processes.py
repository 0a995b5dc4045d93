"""Many processes on one object-store ledger, on the real S3 server (docs/FORMAT.md §10.4-§10.5).

Writers are real processes (tests/helpers/s3_writer.py) that record every acknowledged event
in a file they fsync before going on. Afterwards the ledger must verify (which also lists the
prefix: no object outside the chain), its seqs must be gapless, every acknowledged event
must be there exactly once at the seq it was acknowledged with, and every batch whole.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import orjson

from ledger import Ledger

from helpers.builders import event

WRITER = Path(__file__).resolve().parent / "helpers" / "s3_writer.py"


def start(url: str, name: str, ops: int, acks: Path, env: dict[str, str], *flags: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(WRITER), url, name, str(ops), str(acks), *flags],
                            env={**os.environ, **env}, stderr=subprocess.PIPE)


def acknowledged(paths: list[Path]) -> dict[str, int]:
    acks: dict[str, int] = {}
    for path in paths:
        if path.exists():
            for line in path.read_bytes().splitlines():
                ack = orjson.loads(line)
                assert acks.setdefault(ack["id"], ack["seq"]) == ack["seq"], ack  # a retry got the same seq
    return acks


def check(url: str, acks: dict[str, int]) -> int:
    """The ledger's promises after any mix of racing, retrying and dying writers."""
    led = Ledger.open(url)
    report = led.verify()  # the chain, and no object under log/ outside it
    events = list(led.read())
    assert [e.seq for e in events] == list(range(1, report.head.seq + 1))  # gapless
    where = {e.id: e for e in events}
    assert len(where) == len(events)  # every event once
    for event_id, seq in acks.items():
        assert where[event_id].seq == seq, event_id  # acknowledged -> there, at that seq
    batches: dict[str, list[int]] = defaultdict(list)
    for e in events[1:]:
        batches[e.id.rsplit("-", 1)[0]].append(e.seq)
    for op, seqs in batches.items():  # a batch is all there, contiguous, one txn
        txns = {where[f"{op}-{i}"].txn for i in range(len(seqs))}
        assert len(txns) == 1 and seqs == list(range(seqs[0], seqs[0] + len(seqs))), op
        assert next(iter(txns))[1] == len(seqs), op
    return report.head.seq


def test_eight_processes_append_at_once(s3_url: str, s3_env: dict[str, str], tmp_path: Path) -> None:
    Ledger.init(s3_url).append([event("cohort.opened", cohort_id="c1")])
    acks = [tmp_path / f"w{i}.acks" for i in range(8)]
    procs = [start(s3_url, f"w{i}", 12, acks[i], s3_env) for i in range(8)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-2000:]
    got = acknowledged(acks)
    # per writer: 12 ops = 3 singles + 3 batches of 3 + 3 expected-seq pairs + 3 re-sends (no new events)
    assert len(got) == 8 * (3 * 1 + 3 * 3 + 3 * 2)
    assert check(s3_url, got) == 1 + len(got)


def test_writers_killed_at_random_moments_lose_nothing_acknowledged(
        s3_url: str, s3_env: dict[str, str], tmp_path: Path) -> None:
    Ledger.init(s3_url).append([event("cohort.opened", cohort_id="c1")])
    rng = random.Random(os.environ.get("SOAK_SEED", "s3-kill"))
    acks: list[Path] = []
    steady = start(s3_url, "steady", 40, tmp_path / "steady.acks", s3_env)  # keeps the races going
    acks.append(tmp_path / "steady.acks")
    killed = 0
    for trial in range(5):
        path = tmp_path / f"victim{trial}.acks"
        acks.append(path)
        victim = start(s3_url, f"victim{trial}", 200, path, s3_env)
        time.sleep(rng.uniform(0.6, 2.0))  # the interpreter starts in ~0.4 s; then it appends
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=60)
        killed += victim.returncode == -signal.SIGKILL
    # writers that SIGKILL themselves right after losing a race, before they retry
    losers = [start(s3_url, f"loser{i}", 30, tmp_path / f"loser{i}.acks", s3_env, "--die-after-lost-race")
              for i in range(3)]
    acks += [tmp_path / f"loser{i}.acks" for i in range(3)]
    died_after_losing = 0
    for p in losers:
        p.communicate(timeout=300)
        died_after_losing += p.returncode == -signal.SIGKILL
    _, err = steady.communicate(timeout=300)
    assert steady.returncode == 0, err.decode()[-2000:]
    assert killed == 5
    assert died_after_losing >= 1  # the race-then-die path was really taken
    got = acknowledged(acks)
    assert len(got) >= 40  # the steady writer's acknowledged events at least
    check(s3_url, got)

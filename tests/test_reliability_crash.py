"""Crash injection: a writer SIGKILLed at random moments loses no acknowledged batch.

The long version of this experiment is `make soak` (tests/soak.py); here a few trials run on
every `make test`.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers.builders import jsonl, log_bytes, run_cli
from helpers.faults import check_acknowledged, crash_trials, draft_events, kill_writer, recover_and_check

from ledger import Ledger


def test_sigkilled_writer_loses_no_acknowledged_batch(tmp_path: Path) -> None:
    ledger = Ledger.init(tmp_path / "ledger").path
    acks = tmp_path / "acks.jsonl"
    stats = crash_trials(ledger, acks, trials=10, rng=random.Random(7), max_batch=100, max_delay=0.15)
    assert stats.trials == 10
    assert stats.power_tails >= 1  # the seeded run tears the log as a power loss would: the cut path ran
    assert check_acknowledged(ledger, acks) >= 10
    verify = run_cli("verify", "--json", ledger=ledger)
    assert verify.returncode == 0, verify.stderr


def test_sigkill_that_cuts_a_write_part_way_loses_nothing(tmp_path: Path) -> None:
    """Kills aimed at the instant a 7 MB batch starts reaching the log, until one really cuts
    the write part-way (almost always the first; a loaded machine may let a write finish
    first). Each is recovered and checked like any other crash."""
    ledger = Ledger.init(tmp_path / "ledger").path
    acks = tmp_path / "acks.jsonl"
    rng = random.Random(5)
    Ledger.open(ledger).append(draft_events("before", 3))
    torn = 0
    for attempt in range(8):
        kill_writer(ledger, acks, attempt, rng, mid_write=True)
        torn = recover_and_check(ledger, acks, ("repair", "append")[attempt % 2], rng).cut_bytes
        if torn:
            break
    assert torn > 0, "no aimed kill cut a write part-way"
    assert Ledger.open(ledger).head.seq >= 3


def test_sigkilled_cli_append_then_verify_shows_an_intact_ledger(tmp_path: Path) -> None:
    """As a new user would: kill `cohort-ledger append` mid-run, then `verify`, then append again."""
    ledger = tmp_path / "ledger"
    assert run_cli("init", ledger=ledger).returncode == 0
    rng = random.Random(3)
    for trial in range(3):
        batch = tmp_path / f"batch{trial}.jsonl"
        batch.write_bytes(jsonl(*draft_events(f"k{trial}", 3000)))
        before = Ledger.open(ledger).head.seq
        proc = subprocess.Popen([sys.executable, "-m", "ledger", "--ledger", str(ledger), "append", str(batch)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, 1.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        verify = run_cli("verify", ledger=ledger)
        assert verify.returncode == 0, verify.stderr
        after = Ledger.open(ledger).head.seq
        assert after - before in (0, 3000), "a killed append left part of its batch committed"
        check_acknowledged(ledger, tmp_path / "no-acks")  # no batch of the writer is partial
    again = run_cli("append", ledger=ledger, stdin=jsonl(*draft_events("after", 2)))
    assert again.returncode == 0, again.stderr
    assert run_cli("verify", ledger=ledger).returncode == 0
    assert log_bytes(ledger).endswith(b"\n")

"""The machine refuses a write part-way (EFBIG from RLIMIT_FSIZE): clear error, exit 3,
no partial batch after recovery, and appends work again once the limit is gone."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from helpers.builders import jsonl, log_bytes, run_cli
from helpers.env import unavailable
from helpers.faults import FAULTS, append_only, dir_snapshot, draft_events, fsize_limit, torn_files

from ledger import Ledger

BIG = jsonl(*draft_events("big", 200))


@pytest.fixture
def seeded(tmp_path: Path) -> Path:
    ledger = Ledger.init(tmp_path / "ledger")
    ledger.append(draft_events("first", 3))
    ledger.append(draft_events("second", 2))
    return ledger.path


def assert_one_line_efbig(stderr: bytes) -> None:
    assert stderr.count(b"\n") == 1 and b"File too large" in stderr, stderr


@pytest.mark.parametrize("room", [0, 1, 300, 20_000])
def test_append_hitting_efbig_cuts_its_own_partial_batch(seeded: Path, room: int) -> None:
    before = dir_snapshot(seeded)
    limit = len(before["events.jsonl"]) + room
    r = run_cli("append", ledger=seeded, stdin=BIG, preexec_fn=fsize_limit(limit))
    assert r.returncode == 3, r.stderr
    assert_one_line_efbig(r.stderr)
    assert dir_snapshot(seeded) == before  # the writer truncated its own partial bytes
    r = run_cli("append", ledger=seeded, stdin=BIG)
    assert r.returncode == 0, r.stderr
    assert Ledger.open(seeded).head.seq == 5 + 200
    assert run_cli("verify", ledger=seeded).returncode == 0


@pytest.mark.parametrize("recovery", ["append", "repair"])
def test_partial_batch_left_when_truncate_also_fails_is_cut_by_recovery(seeded: Path, recovery: str) -> None:
    """The write fails at the size limit and the ftruncate that should undo it fails too
    (append-only file): the partial batch stays on disk as a tail. Readers ignore it, and
    the next writer (or `repair`) cuts it into events.jsonl.torn-1."""
    before = log_bytes(seeded)
    head = Ledger.open(seeded).head
    limit = len(before) + 20_000
    with append_only(seeded / "events.jsonl"):
        r = run_cli("append", ledger=seeded, stdin=BIG, preexec_fn=fsize_limit(limit))
        assert r.returncode == 3, r.stderr
        assert_one_line_efbig(r.stderr)
    partial = log_bytes(seeded)
    assert len(partial) == limit and partial.startswith(before)  # really left part of the batch
    assert Ledger.open(seeded).head == head  # a reader sees only committed batches
    verify = run_cli("verify", "--json", ledger=seeded)
    assert verify.returncode == 0 and b'"tail_bytes": 20000' in verify.stdout, verify.stdout
    if recovery == "repair":
        assert run_cli("repair", ledger=seeded).returncode == 0
        assert log_bytes(seeded) == before
    r = run_cli("append", ledger=seeded, stdin=BIG)
    assert r.returncode == 0, r.stderr
    assert torn_files(seeded) == {"events.jsonl.torn-1": partial[len(before):]}
    assert log_bytes(seeded).startswith(before)
    assert Ledger.open(seeded).verify().events == 5 + 200


def test_same_ledger_object_appends_again_after_efbig(seeded: Path) -> None:
    """A library caller (a pipeline hook) that keeps its Ledger object: the failed append left
    neither bytes nor state behind, so the retry gets the very next seqs."""
    before = log_bytes(seeded)
    r = subprocess.run([sys.executable, str(FAULTS), "efbig-retry", str(seeded), "1000", "100"],
                       capture_output=True, check=True)
    out = orjson.loads(r.stdout)
    assert out["error"] and "File too large" in out["error"]
    assert out["seqs"] == list(range(6, 106))
    assert log_bytes(seeded).startswith(before)
    assert not torn_files(seeded)
    assert Ledger.open(seeded).verify().events == 105


def test_disk_full_mid_batch(tmp_path: Path) -> None:
    """A real ENOSPC: a 512 KiB tmpfs, mounted in a private mount namespace (so nothing leaks
    if the test dies), filled to two free pages; the append fails with exit 3 and leaves the
    log as it was; once space is freed the same append succeeds."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "--mount", "true"]).returncode != 0:
        unavailable("no mount namespaces here: cannot mount a small tmpfs")
    root = tmp_path / "small"
    root.mkdir()
    script = 'mount -t tmpfs -o size=512k tmpfs "$1" && exec "$2" "$3" enospc "$1"'
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                        str(root), sys.executable, str(FAULTS)], capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    out = orjson.loads(r.stdout)
    assert out["full_rc"] == 3 and "No space left on device" in out["full_stderr"], out
    assert out["full_stderr"].count("\n") == 1
    assert out["unchanged"], "the failed append left bytes behind"
    assert out["again_rc"] == 0 and out["events"] == 203

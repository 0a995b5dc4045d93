"""`copy SRC DST` between backends: same chain and head, resumable, never a silent short copy."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
import pytest

from ledger import CheckFailed, FileLogStore, IncompleteCopyError, InvalidInputError, Ledger, LogStore
from ledger.log.scan import Position
from ledger.app.copy import copy_ledger
from ledger.log.object_store import ObjectLogStore

from helpers.builders import created, event, run_cli


def source(path: Path, batches: int = 6) -> Ledger:
    led = Ledger.init(path)
    led.append([event("cohort.opened", cohort_id="c1")])
    for b in range(batches):
        led.append([created("c1", "draft", f"d{b}-{i}") for i in range(1 + b % 3)])
    return led


def test_file_to_s3_to_file_keeps_every_byte(tmp_path: Path, s3_url: str) -> None:
    src = source(tmp_path / "src")
    there = copy_ledger(tmp_path / "src", s3_url)
    assert (there.seq, there.hash) == tuple(src.head) and there.copied == src.head.seq and there.already == 0
    back = copy_ledger(s3_url, str(tmp_path / "back"))
    assert back.batches == there.batches == 7
    for name in ("events.jsonl", "ledger.json"):
        assert (tmp_path / "back" / name).read_bytes() == (tmp_path / "src" / name).read_bytes()
    assert Ledger.open(s3_url).verify().head == src.head
    s3_again = copy_ledger(s3_url, s3_url + "-2")  # s3 -> s3
    assert (s3_again.seq, s3_again.hash) == tuple(src.head)


class _Interrupted(FileLogStore):
    """A destination whose third append fails, as a copy killed there would stop."""

    appends = 0

    def append(self, end: Position, lines: bytes, last: Position) -> Position | None:
        self.appends += 1
        if self.appends == 3:
            raise KeyboardInterrupt
        return super().append(end, lines, last)


def test_an_interrupted_copy_refuses_to_open_and_resumes(tmp_path: Path) -> None:
    src = source(tmp_path / "src")
    with pytest.raises(KeyboardInterrupt):
        copy_ledger(tmp_path / "src", _Interrupted(tmp_path / "dst"))
    with pytest.raises(IncompleteCopyError, match="unfinished copy of"):
        Ledger.open(tmp_path / "dst")
    verify = run_cli("verify", ledger=tmp_path / "dst")
    assert verify.returncode == 1 and b"cohort-ledger copy" in verify.stderr  # says so, never "ok"
    resumed = copy_ledger(tmp_path / "src", tmp_path / "dst")
    assert resumed.already == 1 + 1 and resumed.copied == src.head.seq - 2
    assert Ledger.open(tmp_path / "dst").verify().head == src.head


def test_a_killed_copy_to_s3_is_resumed_by_the_cli(tmp_path: Path, s3_url: str, s3_env: dict[str, str]) -> None:
    src = source(tmp_path / "src", batches=400)
    copying = subprocess.Popen([sys.executable, "-m", "ledger", "copy", str(tmp_path / "src"), s3_url],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    log = ObjectLogStore.from_url(s3_url).objects
    deadline = time.monotonic() + 120
    while sum(1 for _ in log.keys("log/")) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    copying.send_signal(signal.SIGKILL)  # partway: 20 of 401 batches are there
    copying.communicate(timeout=60)
    assert copying.returncode == -signal.SIGKILL
    with pytest.raises(IncompleteCopyError):
        Ledger.open(s3_url)
    assert run_cli("verify", ledger=s3_url).returncode == 1
    again = run_cli("copy", str(tmp_path / "src"), s3_url, "--json")
    assert again.returncode == 0, again.stderr.decode()
    assert Ledger.open(s3_url).verify().head == src.head


def test_copy_refuses_what_it_must_not_touch(tmp_path: Path) -> None:
    source(tmp_path / "src")
    other = source(tmp_path / "other", batches=2)
    copy_ledger(tmp_path / "src", tmp_path / "done")
    with pytest.raises(InvalidInputError, match="already holds a ledger"):
        copy_ledger(tmp_path / "src", tmp_path / "done")  # a finished copy is never overwritten
    with pytest.raises(InvalidInputError, match="source itself"):
        copy_ledger(tmp_path / "src", tmp_path / "src")
    with pytest.raises(KeyboardInterrupt):
        copy_ledger(tmp_path / "other", _Interrupted(tmp_path / "half"))
    with pytest.raises(InvalidInputError, match="another ledger"):
        copy_ledger(tmp_path / "src", tmp_path / "half")
    assert Ledger.open(tmp_path / "other").head.seq == other.head.seq
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("someone's")
    with pytest.raises(InvalidInputError, match="not an empty directory"):
        copy_ledger(tmp_path / "src", tmp_path / "busy")
    assert [p.name for p in (tmp_path / "busy").iterdir()] == ["notes.txt"]  # no marker left behind


def test_a_destination_that_diverged_is_not_extended(tmp_path: Path) -> None:
    src = source(tmp_path / "src")
    with pytest.raises(KeyboardInterrupt):
        copy_ledger(tmp_path / "src", _Interrupted(tmp_path / "dst"))
    store: LogStore = FileLogStore(tmp_path / "dst")
    store.set_copy_marker(None)  # someone opened it anyway and appended
    Ledger.open(tmp_path / "dst").append([event("cohort.opened", cohort_id="elsewhere")])
    store.set_copy_marker(b'{"source": "x", "seq": 1, "hash": "h"}')
    with pytest.raises(CheckFailed, match="diverged"):
        copy_ledger(tmp_path / "src", tmp_path / "dst")
    assert src.verify().head == src.head


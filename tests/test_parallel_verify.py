"""The two-core verify gives exactly the sequential scan's answer, on intact and broken logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger import CorruptLogError, Ledger
from ledger.log import parallel
from ledger.log.parallel import verify_split
from ledger.log.store import count_events
from ledger.log.codec import genesis_prev
from ledger.log.scan import LogScanner, Position

from helpers.builders import created


def _ledger(tmp_path: Path, batches: int = 12, size: int = 7) -> Ledger:
    led = Ledger.init(tmp_path / "ledger")
    for b in range(batches):
        led.append([created("c1", "draft", f"d{b}-{i}") for i in range(size)])
    return led


def _sequential(led: Ledger) -> tuple[int, str, int, int, int, int]:
    scanner = LogScanner(led.log_path, Position(0, genesis_prev(led.config.ledger_id), 0))
    events = count_events(scanner)
    return scanner.end.seq, scanner.end.hash, scanner.end.cursor, events, scanner.tail.bytes, scanner.tail.lines


@pytest.fixture(autouse=True)
def _always_split(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "MIN_BYTES", 0)


@pytest.mark.parametrize("tail", [b"", b'{"torn', None])
def test_split_equals_sequential(tmp_path: Path, tail: bytes | None) -> None:
    led = _ledger(tmp_path)
    if tail is None:  # a complete first line of an incomplete batch
        lines = led.log_path.read_bytes().splitlines(keepends=True)
        last_batch = lines[-7:]
        led.log_path.write_bytes(b"".join(lines[:-7] + last_batch[:3]))
    else:
        with open(led.log_path, "ab") as f:
            f.write(tail)
    split = verify_split(led.log_path, Position(0, genesis_prev(led.config.ledger_id), 0))
    assert split is not None
    end, events, t = split
    assert (end.seq, end.hash, end.cursor, events, t.bytes, t.lines) == _sequential(led)
    assert led.verify().events == events


@pytest.mark.parametrize("where", [0.1, 0.45, 0.55, 0.9])
def test_corruption_is_reported_at_the_sequential_seq(tmp_path: Path, where: float) -> None:
    led = _ledger(tmp_path)
    lines = led.log_path.read_bytes().splitlines(keepends=True)
    k = int(len(lines) * where)
    lines[k] = lines[k].replace(b'"gen_id":"d', b'"gen_id":"x', 1)
    led.log_path.write_bytes(b"".join(lines))
    with pytest.raises(CorruptLogError) as sequential:
        _sequential(led)
    with pytest.raises(CorruptLogError) as split:
        led.verify()
    assert str(split.value) == str(sequential.value) and f"seq {k + 1}" in str(split.value)

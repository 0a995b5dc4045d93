"""Issue 11, item 6: a reader never reports corruption for bytes past the last complete
batch it has seen. The interleaving, reproduced deterministically: a crashed writer left a
torn tail; a reader reads the log up to its end (the tail included); a new writer then cuts
the tail and appends a batch; the reader's next read() continues at the old end, inside the
new batch, and used to join the old tail's bytes to the new batch's ("corrupt at seq N")."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any, Callable

import pytest
from helpers.builders import created

import ledger.log.scan as scan_module
from ledger import Ledger
from ledger.errors import CorruptLogError
from ledger.log.codec import encode_line, genesis_prev
from ledger.log.scan import LogScanner, Position


class _Interleaved:
    """A file whose second read() first lets `between` run (the writer's cut and append)."""

    def __init__(self, f: Any, between: Callable[[], None]) -> None:
        self._f, self._between, self._reads = f, between, 0

    def read(self, n: int = -1) -> bytes:
        self._reads += 1
        if self._reads == 2:
            self._between()
        return self._f.read(n)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)

    def __enter__(self) -> "_Interleaved":
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.close()


def _torn(led: Ledger, complete_lines: int, partial: bool) -> bytes:
    """What a writer that died mid-batch leaves: `complete_lines` lines of a 4-line batch,
    plus part of the next line when `partial`."""
    head = led.head
    prev, blob = head.hash, b""
    for k in range(4):
        line, prev = encode_line({
            "seq": head.seq + 1 + k, "id": f"torn-{k}", "type": "generation.created", "v": 1,
            "at": "2026-01-01T00:00:00.000000Z", "by": {}, "txn": [head.seq + 1, 4], "prev": prev,
            "data": {"cohort_id": "torn", "stage": "draft", "gen_id": f"torn{k}", "template_id": "t1"}})
        blob += line
    lines = blob.splitlines(keepends=True)
    return b"".join(lines[:complete_lines]) + (lines[complete_lines][:25] if partial else b"")


@pytest.mark.parametrize("complete_lines,partial", [(0, True), (2, True), (2, False), (3, False)])
def test_a_reader_racing_a_tail_cut_never_reports_corruption(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             complete_lines: int, partial: bool) -> None:
    led = Ledger.init(tmp_path / "ledger")
    led.append([created("A", "draft", f"d{i}") for i in range(3)])
    committed = led.head
    with open(led.log_path, "ab") as f:
        f.write(_torn(led, complete_lines, partial))
    writer = Ledger.open(led.path)

    done: list[bool] = []

    def cut_and_append() -> None:  # the next writer: recovery cuts the tail, then a long batch
        if done:
            return  # (the writer's own catch-up scan reads through this patch too)
        done.append(True)
        writer.append([created("B", "draft", f"new-{i:04d}") for i in range(40)])

    real_open = builtins.open
    monkeypatch.setattr(scan_module, "open", lambda *a, **k: _Interleaved(real_open(*a, **k), cut_and_append),
                        raising=False)
    scanner = LogScanner(led.log_path, _genesis(led))
    seen = [ev["seq"] for ev, _ in scanner.events()]  # used to raise CorruptLogError at seq 4
    assert seen[:3] == [1, 2, 3] and scanner.end.seq in (committed.seq, committed.seq + 40)
    assert seen == list(range(1, scanner.end.seq + 1))
    monkeypatch.undo()
    assert Ledger.open(led.path).verify().head.seq == committed.seq + 40


def _genesis(led: Ledger) -> Position:
    return Position(0, genesis_prev(led.config.ledger_id), 0)


def test_real_corruption_in_the_last_batch_is_still_reported(tmp_path: Path) -> None:
    led = Ledger.init(tmp_path / "ledger")
    led.append([created("A", "draft", f"d{i}") for i in range(3)])
    led.append([created("A", "draft", f"e{i}") for i in range(3)])
    data = bytearray(led.log_path.read_bytes())
    data[-40] ^= 1  # inside the last line's hash
    led.log_path.write_bytes(bytes(data))
    with pytest.raises(CorruptLogError, match="seq 6"):
        list(LogScanner(led.log_path, _genesis(led)).events())


@pytest.mark.parametrize("bad_line", [1, 2, 3, 4])
def test_corruption_next_to_a_read_boundary_names_its_own_seq(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              bad_line: int) -> None:
    """Reads of a few bytes put a read boundary inside every line: real corruption is still
    named at its own seq, after the rescans give up."""
    led = Ledger.init(tmp_path / "ledger")
    led.append([created("A", "draft", f"d{i}") for i in range(2)])
    led.append([created("A", "draft", f"e{i}") for i in range(2)])
    lines = led.log_path.read_bytes().splitlines(keepends=True)
    lines[bad_line - 1] = lines[bad_line - 1].replace(b'"t1"', b'"t2"')
    led.log_path.write_bytes(b"".join(lines))
    monkeypatch.setattr(scan_module, "CHUNK", 97)
    with pytest.raises(CorruptLogError, match=f"seq {bad_line}:"):
        list(LogScanner(led.log_path, _genesis(led)).events())
    monkeypatch.undo()
    with pytest.raises(CorruptLogError, match=f"seq {bad_line}:"):
        list(LogScanner(led.log_path, _genesis(led)).events())


def test_small_reads_scan_a_healthy_log_like_one_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    led = Ledger.init(tmp_path / "ledger")
    for n in (1, 5, 2, 7):
        led.append([created("A", "draft", f"d{n}-{i}") for i in range(n)])
    whole = [(ev["seq"], end) for ev, end in LogScanner(led.log_path, _genesis(led)).events()]
    for chunk in (1, 50, 333):
        monkeypatch.setattr(scan_module, "CHUNK", chunk)
        assert [(ev["seq"], end) for ev, end in LogScanner(led.log_path, _genesis(led)).events()] == whole

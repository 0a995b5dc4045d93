"""Torn tails: a crash at any byte of the last batch recovers exactly the previous commit.

The log is truncated to every offset inside its last batch, as a crash mid-write would leave
it. Readers must see the previous head and leave the file alone; the next writer, or
`repair`, must cut exactly the bytes after that head into `events.jsonl.torn-<n>`. The two
cutters take turns (even offsets: append, odd: repair; both run `Ledger._cut_tail`): each
cut costs several fsyncs, and on a busy disk doing both at every offset doubles a sweep
that already dominates the suite's time, without reaching a line boundary the other misses.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers.builders import event, log_bytes
from ledger import CorruptLogError, Ledger


def opened(cohort: str) -> dict[str, object]:
    return event("cohort.opened", cohort_id=cohort, description="tørn tail ✂")


def torn_files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.glob("events.jsonl.torn-*"))}


def set_log(path: Path, data: bytes) -> None:
    (path / "events.jsonl").write_bytes(data)
    for p in path.glob("events.jsonl.torn-*"):
        p.unlink()


@pytest.fixture
def two_commits(ledger: Ledger) -> tuple[Ledger, int, bytes]:
    """A ledger whose last batch (2 events) follows two earlier batches; (ledger, its start, log)."""
    ledger.append([opened("a1"), opened("a2")])
    ledger.append([opened("b1")])
    prev_end = len(log_bytes(ledger.path))
    ledger.append([opened("c1"), opened("c2")])
    return ledger, prev_end, log_bytes(ledger.path)


def test_torn_tail_at_every_byte_offset_of_the_last_batch(two_commits: tuple[Ledger, int, bytes]) -> None:
    ledger, prev_end, full = two_commits
    path = ledger.path
    prev_events = [e.model_dump() for e in Ledger.open(path).read()][:3]
    prev_head = (3, prev_events[-1]["hash"])
    for offset in range(prev_end, len(full)):
        torn = full[:offset]
        cut = full[prev_end:offset]
        complete_lines = cut.count(b"\n")
        expected_torn = {"events.jsonl.torn-1": cut} if cut else {}

        # readers: the previous head, the tail reported, the file untouched
        set_log(path, torn)
        report = Ledger.open(path).verify()
        assert (report.head, report.events) == (prev_head, 3), offset
        assert (report.tail.bytes, report.tail.lines) == (len(cut), complete_lines), offset
        reader = Ledger.open(path)
        assert reader.head == prev_head
        assert [e.model_dump() for e in reader.read()] == prev_events
        assert log_bytes(path) == torn and torn_files(path) == {}

        if offset % 2 == 0:
            # the next writer cuts the tail aside, then appends after the previous head
            assert Ledger.open(path).append([opened("next")]) == [4], offset
            assert torn_files(path) == expected_torn, offset
            after = log_bytes(path)
            assert after.startswith(full[:prev_end]) and after.count(b"\n") == 4
            report = Ledger.open(path).verify()
            assert (report.head.seq, report.tail.bytes) == (4, 0)
        else:
            # repair does the same cut and says so
            repaired = Ledger.open(path).repair()
            assert (repaired.head, repaired.cut_bytes, repaired.cut_lines) == (prev_head, len(cut), complete_lines)
            assert repaired.torn_file == ("events.jsonl.torn-1" if cut else None)
            assert torn_files(path) == expected_torn, offset
            assert log_bytes(path) == full[:prev_end]


def test_cut_files_are_numbered_and_never_overwritten(two_commits: tuple[Ledger, int, bytes]) -> None:
    ledger, prev_end, full = two_commits
    (ledger.path / "events.jsonl.torn-old").write_bytes(b"an operator's note")
    set_log(ledger.path, full + b'{"half a line')
    assert Ledger.open(ledger.path).append([opened("d1")]) == [6]
    with open(ledger.path / "events.jsonl", "ab") as f:
        f.write(b'{"another')
    report = Ledger.open(ledger.path).repair()
    assert report.torn_file == "events.jsonl.torn-2" and report.head.seq == 6
    assert torn_files(ledger.path) == {"events.jsonl.torn-1": b'{"half a line', "events.jsonl.torn-2": b'{"another'}


def test_an_incomplete_batch_is_a_tail(tmp_path: Path, ledger: Ledger) -> None:
    ledger.append([opened("a1")])
    prev_end = len(log_bytes(ledger.path))
    ledger.append([opened("b1"), opened("b2"), opened("b3")])
    lines = log_bytes(ledger.path).splitlines(keepends=True)
    set_log(ledger.path, b"".join(lines[:3]))  # 2 of the 3 lines the batch's txn promises
    report = Ledger.open(ledger.path).verify()
    assert (report.head.seq, report.tail.lines, report.tail.bytes) == (1, 2, len(lines[1]) + len(lines[2]))
    assert Ledger.open(ledger.path).head.seq == 1
    report_cut = Ledger.open(ledger.path).repair()
    assert (report_cut.cut_lines, report_cut.cut_bytes) == (2, len(lines[1]) + len(lines[2]))
    assert len(log_bytes(ledger.path)) == prev_end


def test_a_bad_line_inside_the_final_incomplete_batch_is_corruption(ledger: Ledger) -> None:
    ledger.append([opened("a1")])
    ledger.append([opened("b1"), opened("b2"), opened("b3")])
    lines = log_bytes(ledger.path).splitlines(keepends=True)
    bad = bytearray(lines[1])
    bad[30] ^= 0x01
    data = lines[0] + bytes(bad) + lines[2]
    set_log(ledger.path, data)
    for action in (lambda led: led.verify(), lambda led: led.repair(),
                   lambda led: led.append([opened("z")]), lambda led: led.head):
        with pytest.raises(CorruptLogError) as exc:
            action(Ledger.open(ledger.path))
        assert exc.value.seq == 2
    assert log_bytes(ledger.path) == data and torn_files(ledger.path) == {}


def test_tail_garbage_vs_a_complete_garbage_line(ledger: Ledger) -> None:
    """Bytes after the last "\\n" are a tail whatever they are; a complete line must chain."""
    ledger.append([opened("a1")])
    good = log_bytes(ledger.path)
    garbage = b"\x00\xff not json"
    set_log(ledger.path, good + garbage)
    assert Ledger.open(ledger.path).verify().tail.bytes == len(garbage)
    set_log(ledger.path, good + b"not json\n")
    with pytest.raises(CorruptLogError) as exc:
        Ledger.open(ledger.path).verify()
    assert exc.value.seq == 2


def test_a_reader_beside_a_torn_tail_is_unaffected_by_a_later_cut(two_commits: tuple[Ledger, int, bytes],
                                                                  tmp_path: Path) -> None:
    """A reader that saw the tail keeps working after a writer cut it and appended."""
    ledger, prev_end, full = two_commits
    set_log(ledger.path, full[:prev_end + 40])
    reader = Ledger.open(ledger.path)
    assert reader.head.seq == 3
    assert Ledger.open(ledger.path).append([opened("n1"), opened("n2")]) == [4, 5]
    assert reader.head.seq == 5 and reader.append([opened("n3")]) == [6]
    # not index/: a Ledger collected meanwhile closes its SQLite connection, which removes the
    # -wal and -shm files copytree may already have listed
    shutil.copytree(ledger.path, tmp_path / "copy", ignore=shutil.ignore_patterns("index"))
    assert Ledger.open(tmp_path / "copy").verify().head == reader.head

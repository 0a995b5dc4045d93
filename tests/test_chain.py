"""Tamper evidence: one mutation of events.jsonl is caught, at the seq it first affects.

"Right seq" means the first line, counting from the top, that no longer holds the event the
chain expects at its position: a changed line is caught at its own seq; a deleted line at
the seq of the line that moved into its place; a swap at the earlier of the two positions; a
duplicate at the position of the copy (or just after the original when the copy sits right
next to it, because the first of two identical adjacent lines is still the right event).
Mutations that only shorten the log to a prefix it once had (the last line's "\n" damaged,
the last line deleted) are not corruption by design: they look like a torn or missing
final batch, which verify reports as a tail; only a pinned head (`--expect-head`) tells.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from helpers.builders import event, log_bytes
from ledger import CorruptLogError, Ledger

BATCH_SIZES = st.lists(st.integers(1, 4), min_size=1, max_size=5)
CHAIN_SETTINGS = settings(max_examples=60, deadline=None)


def build(path: Path, sizes: list[int]) -> list[bytes]:
    """A ledger appended in batches of `sizes` (varied event types, non-ASCII text); its lines."""
    ledger = Ledger.init(path)
    n = 0
    for size in sizes:
        batch = []
        for _ in range(size):
            n += 1
            if n % 3 == 1:
                batch.append(event("cohort.opened", cohort_id=f"c{n}", description="Ünïcødé ✓ " * (n % 4 + 1)))
            else:
                batch.append(event("generation.created", cohort_id="c1", stage="draft", gen_id=f"d_{n}",
                                   template_id="creative-synthesis-v10", replicate=n))
        ledger.append(batch)
    return log_bytes(path).splitlines(keepends=True)


def write_log(path: Path, lines: list[bytes]) -> None:
    (path / "events.jsonl").write_bytes(b"".join(lines))


def assert_corrupt_at(path: Path, seq: int) -> None:
    """verify names `seq`; readers and writers refuse too, and nothing is modified."""
    before = log_bytes(path)
    with pytest.raises(CorruptLogError) as exc:
        Ledger.open(path).verify()
    assert exc.value.seq == seq
    assert f"corrupt at seq {seq}:" in str(exc.value)
    with pytest.raises(CorruptLogError) as exc:
        list(Ledger.open(path).read())
    assert exc.value.seq == seq
    # a writer trusts the part of the log its writers' index already covers, as a reader trusts a
    # checkpoint (docs/FORMAT.md §7.1): without the index it reads everything, and refuses
    shutil.rmtree(path / "index", ignore_errors=True)
    with pytest.raises(CorruptLogError) as exc:
        Ledger.open(path).append([event("cohort.opened", cohort_id="late")])
    assert exc.value.seq == seq
    assert log_bytes(path) == before
    assert sorted(p.name for p in path.iterdir()) == ["checkpoints", "events.jsonl", "events.lock", "ledger.json"]


def assert_shortened(path: Path, sizes: list[int], head_seq: int, tail_lines: int) -> None:
    """verify succeeds at `head_seq`, the end of a complete batch, with `tail_lines` lines of tail."""
    report = Ledger.open(path).verify()
    assert report.head.seq == head_seq
    assert head_seq in {sum(sizes[:i]) for i in range(len(sizes) + 1)}
    assert report.tail.lines == tail_lines


def check_byte_change(path: Path, lines: list[bytes], sizes: list[int], k: int, pos: int, new_byte: int,
                      thorough: bool = True) -> None:
    """Set byte `pos` of line `k` to `new_byte` and check what verify (and, if thorough, all) say."""
    mutated = bytearray(lines[k])
    mutated[pos] = new_byte
    write_log(path, lines[:k] + [bytes(mutated)] + lines[k + 1:])
    if k == len(lines) - 1 and pos == len(lines[k]) - 1:
        # the file's final "\n" is gone: the last batch is torn, the one before it is the head
        report = Ledger.open(path).verify()
        assert report.head.seq == len(lines) - sizes[-1]
        assert report.tail.bytes == sum(len(line) for line in lines[-sizes[-1]:])
        assert report.tail.lines == sizes[-1] - 1
    elif thorough:
        assert_corrupt_at(path, k + 1)
    else:
        with pytest.raises(CorruptLogError) as exc:
            Ledger.open(path).verify()
        assert exc.value.seq == k + 1


@CHAIN_SETTINGS
@given(sizes=BATCH_SIZES, data=st.data())
def test_any_single_byte_change_is_caught_at_its_seq(sizes: list[int], data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "l"
        lines = build(path, sizes)
        k = data.draw(st.integers(0, len(lines) - 1), label="line")
        pos = data.draw(st.integers(0, len(lines[k]) - 1), label="byte")
        flip = data.draw(st.integers(1, 255), label="xor")
        check_byte_change(path, lines, sizes, k, pos, lines[k][pos] ^ flip)


def test_every_byte_position_once(tmp_path: Path) -> None:
    """Exhaustive over positions of a small log: a flipped bit, and a byte turned into "\n"."""
    path = tmp_path / "l"
    sizes = [1, 2]
    lines = build(path, sizes)
    for k, line in enumerate(lines):
        for pos in range(len(line)):
            check_byte_change(path, lines, sizes, k, pos, line[pos] ^ 0x01, thorough=False)
            if line[pos] != ord("\n"):
                check_byte_change(path, lines, sizes, k, pos, ord("\n"), thorough=False)


@CHAIN_SETTINGS
@given(sizes=BATCH_SIZES, data=st.data())
def test_a_deleted_line_is_caught_where_the_next_one_moved_in(sizes: list[int], data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "l"
        lines = build(path, sizes)
        k = data.draw(st.integers(0, len(lines) - 1), label="line")
        write_log(path, lines[:k] + lines[k + 1:])
        if k < len(lines) - 1:
            assert_corrupt_at(path, k + 1)
        else:
            # a log missing its last line is a prefix of a valid log: the last batch is incomplete
            assert_shortened(path, sizes, len(lines) - sizes[-1], sizes[-1] - 1)


@CHAIN_SETTINGS
@given(sizes=BATCH_SIZES.filter(lambda s: sum(s) >= 2), data=st.data())
def test_swapped_lines_are_caught_at_the_first_position(sizes: list[int], data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "l"
        lines = build(path, sizes)
        i, j = sorted(data.draw(st.lists(st.integers(0, len(lines) - 1), min_size=2, max_size=2, unique=True)))
        lines[i], lines[j] = lines[j], lines[i]
        write_log(path, lines)
        assert_corrupt_at(path, i + 1)


@CHAIN_SETTINGS
@given(sizes=BATCH_SIZES, data=st.data())
def test_a_duplicated_line_is_caught_at_the_copy(sizes: list[int], data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "l"
        lines = build(path, sizes)
        k = data.draw(st.integers(0, len(lines) - 1), label="line")
        p = data.draw(st.integers(0, len(lines)), label="insert at")
        write_log(path, lines[:p] + [lines[k]] + lines[p:])
        # the copy lands at 0-based position p; inserted right before its original, the first
        # of the two identical lines is still the right event and the second one is caught
        assert_corrupt_at(path, k + 2 if p == k else p + 1)


def test_a_log_cut_at_a_batch_boundary_still_verifies_and_only_a_pinned_head_tells(tmp_path: Path) -> None:
    """Deleting a whole final batch is a valid prefix; that is why operators pin the head."""
    path = tmp_path / "l"
    lines = build(path, [2, 1])
    full_head = Ledger.open(path).verify().head
    write_log(path, lines[:2])
    report = Ledger.open(path).verify()
    assert report.head.seq == 2 and report.tail.bytes == 0
    assert report.head != full_head

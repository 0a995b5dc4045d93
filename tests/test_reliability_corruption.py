"""Corruption before the tail is never repaired silently: `verify` names the first bad seq,
`append` and `repair` refuse with exit 1 and write nothing. `repair` only ever cuts an
incomplete trailing batch."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Callable

import orjson
import pytest
from helpers.builders import created, jsonl, log_bytes, run_cli
from helpers.faults import dir_snapshot, line_spans, torn_files, torn_fragment

from ledger import CorruptLogError, Ledger

#: batch sizes of the fixture log: seqs 1 | 2-4 | 5-6 | 7-10 | 11 | 12-14
BATCHES = [
    [{"type": "cohort.opened", "data": {"cohort_id": "A"}}],
    [created("A", "draft", "d1"), created("A", "draft", "d2"), created("A", "essay", "e1", parent="d1")],
    [created("A", "evaluation", "v1", parent="e1"),
     {"type": "generation.reused", "data": {"cohort_id": "B", "stage": "draft", "gen_id": "d1", "reason": "manual"}}],
    [created("A", "draft", "d3"), created("A", "draft", "d4"), created("A", "draft", "d5"),
     {"type": "generation.materialized", "data": {"cohort_id": "A", "stage": "draft", "gen_id": "d1",
                                                  "artifacts": {"raw.txt": "0" * 64}}}],
    [{"type": "cohort.sealed", "data": {"cohort_id": "B"}}],
    [created("A", "draft", "d6"), created("A", "draft", "d7"),
     {"type": "generation.removed", "data": {"cohort_id": "A", "stage": "draft", "gen_id": "d6", "reason": "bad"}}],
]
EVENTS = sum(len(b) for b in BATCHES)
FIRST_EVALUATION = 5


@pytest.fixture
def log(tmp_path: Path) -> Path:
    ledger = Ledger.init(tmp_path / "ledger")
    for batch in BATCHES:
        ledger.append(batch)
    return ledger.path


def first_bad_seq(ledger: Path) -> int | None:
    try:
        Ledger.open(ledger).verify()
    except CorruptLogError as exc:
        return exc.seq
    return None


def test_a_bit_flip_in_any_byte_is_named_by_its_seq(log: Path) -> None:
    """Every byte of every line is covered by that line's hash: flipping any bit of it makes
    verify name exactly that line's seq. The one exception, the log's final newline, is a
    documented limit (docs/reliability.md): without it the last batch looks torn.
    Per line: its first byte, its newline and 40 random bytes, a random bit each."""
    good = log_bytes(log)
    spans = line_spans(good)
    rng = random.Random(1)
    for seq, (start, end) in enumerate(spans, 1):
        for pos in sorted({start, end - 1, *rng.sample(range(start, end), 40)}):
            bad = bytearray(good)
            bad[pos] ^= 1 << rng.randrange(8)
            (log / "events.jsonl").write_bytes(bad)
            if pos == len(good) - 1:
                report = Ledger.open(log).verify()
                assert report.head.seq == EVENTS - len(BATCHES[-1]) and report.tail.lines == len(BATCHES[-1]) - 1
            else:
                assert first_bad_seq(log) == seq, f"flip at byte {pos} (seq {seq})"


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def delete_line(k: int) -> Callable[[bytes], bytes]:
    return lambda d: b"".join(line for i, line in enumerate(_lines(d), 1) if i != k)


def swap_lines(k: int) -> Callable[[bytes], bytes]:
    def swap(d: bytes) -> bytes:
        lines = _lines(d)
        lines[k - 1], lines[k] = lines[k], lines[k - 1]
        return b"".join(lines)
    return swap


def duplicate_line(k: int) -> Callable[[bytes], bytes]:
    return lambda d: b"".join(line * (2 if i == k else 1) for i, line in enumerate(_lines(d), 1))


def cut_middle(d: bytes) -> bytes:
    spans = line_spans(d)
    return d[: spans[4][0] + 40] + d[spans[7][0] + 17:]  # from inside seq 5 to inside seq 8


def flip(d: bytes) -> bytes:
    return d.replace(b'"gen_id":"d4"', b'"gen_id":"d5"', 1)  # a well-formed, plausible edit of seq 8


CORRUPTIONS = {
    "edited payload": (flip, 8),
    "deleted line": (delete_line(3), 3),
    "deleted first line": (delete_line(1), 1),
    "deleted batch": (lambda d: b"".join(_lines(d)[:1] + _lines(d)[4:]), 2),
    "swapped lines": (swap_lines(9), 9),
    "swapped batches": (lambda d: b"".join(_lines(d)[:4] + _lines(d)[10:11] + _lines(d)[4:10] + _lines(d)[11:]), 5),
    "duplicated line": (duplicate_line(6), 7),
    "duplicated last line": (duplicate_line(EVENTS), EVENTS + 1),
    "truncated middle": (cut_middle, 5),
}


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_corruption_is_named_and_refused(log: Path, name: str) -> None:
    mutate, seq = CORRUPTIONS[name]
    (log / "events.jsonl").write_bytes(mutate(log_bytes(log)))
    assert first_bad_seq(log) == seq
    before = dir_snapshot(log)
    verify = run_cli("verify", ledger=log)
    assert verify.returncode == 1 and f"corrupt at seq {seq}:".encode() in verify.stderr, verify.stderr
    append = run_cli("append", ledger=log, stdin=jsonl(created("A", "draft", "new")))
    assert append.returncode == 1 and f"corrupt at seq {seq}:".encode() in append.stderr, append.stderr
    repair = run_cli("repair", ledger=log)
    assert repair.returncode == 1 and f"corrupt at seq {seq}:".encode() in repair.stderr, repair.stderr
    assert dir_snapshot(log) == before


def test_repair_refuses_a_torn_tail_behind_corruption(log: Path) -> None:
    """A tail after a corrupt middle is not cut: repair refuses the whole log, writes nothing."""
    with open(log / "events.jsonl", "ab") as f:
        f.write(torn_fragment(log, 3, random.Random(5)))
    (log / "events.jsonl").write_bytes(delete_line(4)(log_bytes(log)))
    before = dir_snapshot(log)
    repair = run_cli("repair", ledger=log)
    assert repair.returncode == 1 and b"corrupt at seq 4:" in repair.stderr
    assert dir_snapshot(log) == before and not torn_files(log)


def test_repair_cuts_only_the_incomplete_trailing_batch(log: Path) -> None:
    """At every cut point of the last complete batch plus a torn next batch, repair keeps
    every complete batch and moves exactly the rest to the torn file."""
    good = log_bytes(log)
    rng = random.Random(11)
    complete = len(good)
    torn = torn_fragment(log, 4, rng)
    for cut in sorted({1, len(torn) // 2, len(torn) - 1, *rng.sample(range(1, len(torn)), 5)}):
        for p in torn_files(log):
            (log / p).unlink()
        (log / "events.jsonl").write_bytes(good + torn[:cut])
        r = run_cli("repair", "--json", ledger=log) if cut == 1 else None
        report = Ledger.open(log).repair() if r is None else None
        assert log_bytes(log) == good[:complete]
        assert torn_files(log) == {"events.jsonl.torn-1": torn[:cut]}
        if r is not None:
            assert r.returncode == 0 and orjson.loads(r.stdout)["cut_bytes"] == cut
        else:
            assert report is not None and report.cut_bytes == cut and report.head.seq == EVENTS
    assert Ledger.open(log).repair().torn_file is None  # nothing left to cut: a no-op
    assert log_bytes(log) == good


def test_deleting_trailing_events_is_only_caught_by_a_pinned_head(log: Path) -> None:
    """The limit of a hash chain: dropping the final batch leaves a valid shorter chain, and
    dropping the last line of a multi-line final batch makes it look torn. Both pass `verify`
    alone; `verify --expect-head` with the head pinned elsewhere catches them."""
    pinned = Ledger.open(log).head.hash
    lines = _lines(log_bytes(log))
    for kept in (EVENTS - len(BATCHES[-1]), EVENTS - 1):
        (log / "events.jsonl").write_bytes(b"".join(lines[:kept]))
        assert run_cli("verify", ledger=log).returncode == 0
        r = run_cli("verify", "--expect-head", pinned, ledger=log)
        assert r.returncode == 1 and b"is not the expected" in r.stderr


def edit_config(ledger: Path, edit: Callable[[dict], object]) -> None:
    doc = orjson.loads((ledger / "ledger.json").read_bytes())
    edit(doc)
    (ledger / "ledger.json").write_bytes(orjson.dumps(doc))


def _drop_evaluation(doc: dict) -> None:
    doc["stages"].remove("evaluation")
    del doc["parents"]["evaluation"]


def _rename_draft(doc: dict) -> None:
    doc["stages"][0] = "drafts"
    doc["parents"]["essay"] = "drafts"


#: edit -> (exit of verify, exit of append, seq named): what each edit of ledger.json does
CONFIG_EDITS: dict[str, tuple[Callable[[dict], object], int, int, int | None]] = {
    "ledger_id changed": (lambda d: d.update(ledger_id="00000000-0000-4000-8000-000000000000"), 1, 1, 1),
    "used stage removed": (_drop_evaluation, 0, 1, FIRST_EVALUATION),
    "parent link removed": (lambda d: d["parents"].pop("evaluation"), 0, 1, FIRST_EVALUATION),
    "stage renamed": (_rename_draft, 0, 1, 2),
    "unused stage added": (lambda d: d["stages"].append("review"), 0, 0, None),
}


@pytest.mark.parametrize("name", CONFIG_EDITS)
def test_edited_ledger_json(log: Path, name: str) -> None:
    """The chain starts at sha256(ledger_id), so a changed id fails at seq 1. Stages and
    parents are not in the chain: an edit is caught only when replaying the log breaks a
    domain rule (by append/state, not by the chain-only verify); a harmless one is not caught."""
    edit, verify_rc, append_rc, seq = CONFIG_EDITS[name]
    edit_config(log, edit)
    before = dir_snapshot(log)
    verify = run_cli("verify", ledger=log)
    assert verify.returncode == verify_rc, verify.stderr
    append = run_cli("append", ledger=log, stdin=jsonl(created("A", "draft", "new")))
    assert append.returncode == append_rc, append.stderr
    if seq is not None:
        assert re.search(rf"corrupt at seq {seq}:".encode(), append.stderr), append.stderr
        assert dir_snapshot(log) == before


def test_corruption_before_a_checkpoint_is_found_by_verify_and_full_build(log: Path, tmp_path: Path) -> None:
    """What a checkpoint trades away. A same-length edit before the checkpoint's seq keeps
    the checkpoint's position valid, so `append` and an incremental `build`, which resume
    from it, do not read that line; `verify` and `build --full` walk the whole chain and name
    it. (docs/reliability.md §8; if append starts refusing here, update the doc.)"""
    from projections import build

    build(log, tmp_path / "out", checkpoint_every=1)
    assert any((log / "checkpoints").iterdir())
    (log / "events.jsonl").write_bytes(flip(log_bytes(log)))
    verify = run_cli("verify", ledger=log)
    assert verify.returncode == 1 and b"corrupt at seq 8:" in verify.stderr
    full = run_cli("build", "--full", "--out", str(tmp_path / "full"), ledger=log)
    assert full.returncode == 1 and b"corrupt at seq 8:" in full.stderr
    assert not (tmp_path / "full").exists()
    assert run_cli("build", "--out", str(tmp_path / "incremental"), ledger=log).returncode == 0
    assert run_cli("append", ledger=log, stdin=jsonl(created("A", "draft", "new"))).returncode == 0

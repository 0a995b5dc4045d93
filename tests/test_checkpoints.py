"""Checkpoints: used when they match the log, ignored otherwise, and by Ledger.open too."""

from __future__ import annotations

from pathlib import Path

import orjson
from helpers.builders import created
from helpers.faults import list_checkpoints, rewrite_checkpoint

from ledger import Ledger
from ledger.log.checkpoint import KEEP, load_latest, state_to_bytes
from projections import build


def _grow(ledger: Ledger, n: int, prefix: str) -> None:
    ledger.append([{**created("A", "draft", f"{prefix}{i}"), "id": f"id-{prefix}{i}"} for i in range(n)])


def test_ledger_open_resumes_from_the_checkpoint_with_event_ids(ledger: Ledger) -> None:
    _grow(ledger, 3, "d")
    build(ledger.path, checkpoint_every=1)
    (ckpt,) = list_checkpoints(ledger.path)
    # Make the checkpoint's state recognisable: a cohort the log never names (re-sealed with the key).
    rewrite_checkpoint(ledger.path, ckpt, lambda doc: doc["cohorts"].append(
        {"cohort_id": "from-checkpoint", "opened_seq": None, "description": None, "spec": None,
         "sealed_seq": None, "members": {}}))
    reopened = Ledger.open(ledger.path)
    assert "from-checkpoint" in reopened.state.cohorts
    assert reopened.head == ledger.head
    # event ids folded before the checkpoint still make a retry a no-op
    assert reopened.append([{**created("A", "draft", "d1"), "id": "id-d1"}]) == [2]
    assert reopened.append([created("A", "draft", "d9")]) == [4]
    assert [ev.seq for ev in reopened.read(2, 4)] == [2, 3, 4]


def test_a_checkpoint_that_does_not_match_the_log_is_ignored(tmp_path: Path) -> None:
    ledger = Ledger.init(tmp_path / "a")
    _grow(ledger, 3, "d")
    build(ledger.path, checkpoint_every=1)
    (ckpt,) = list_checkpoints(ledger.path)
    other = Ledger.init(tmp_path / "b")
    _grow(other, 3, "d")
    (other.path / "checkpoints" / ckpt.name).write_bytes(ckpt.read_bytes())  # another ledger's
    assert load_latest(other.store, other.config) is None
    assert build(other.path, checkpoint_every=10**9).checkpoint_seq is None
    # same ledger, but its header names a hash the log does not have at that seq
    header, _, body = ckpt.read_bytes().partition(b"\n")
    doc = orjson.loads(header)
    ckpt.write_bytes(orjson.dumps({**doc, "hash": "0" * 64}) + b"\n" + body)
    # (each into a new out dir: a build with nothing new into the same one would not fold at all)
    assert build(ledger.path, tmp_path / "o1", checkpoint_every=10**9).checkpoint_seq is None
    # a body that does not parse, or a log cut below the checkpoint's offset
    ckpt.write_bytes(orjson.dumps(doc) + b"\n{broken")
    assert Ledger.open(ledger.path).head.seq == 3
    ckpt.write_bytes(orjson.dumps(doc) + b"\n" + body)
    assert build(ledger.path, tmp_path / "o2", checkpoint_every=10**9).checkpoint_seq == 3
    log = ledger.log_path.read_bytes()
    ledger.log_path.write_bytes(log[: log.rindex(b"\n", 0, len(log) - 1) + 1])
    assert load_latest(ledger.store, ledger.config) is None
    assert Ledger.open(ledger.path).head.seq == 0  # the one batch [1, 3] lost a line: now a tail


def test_a_newer_invalid_checkpoint_falls_back_to_an_older_valid_one(ledger: Ledger, tmp_path: Path) -> None:
    _grow(ledger, 2, "a")
    build(ledger.path, tmp_path / "a", checkpoint_every=1)
    _grow(ledger, 2, "b")
    build(ledger.path, tmp_path / "b", checkpoint_every=1)  # a new out dir: folded (a patch saves none)
    newest, older = list_checkpoints(ledger.path)
    newest.write_bytes(b"garbage\n")
    report = build(ledger.path, tmp_path / "fresh", checkpoint_every=10**9)
    assert (report.checkpoint_seq, report.events_folded) == (2, 2)


def test_old_checkpoints_are_pruned_and_as_of_uses_an_earlier_one(ledger: Ledger, tmp_path: Path) -> None:
    for i in range(KEEP + 2):
        _grow(ledger, 1, f"g{i}")
        build(ledger.path, tmp_path / f"out{i}", checkpoint_every=1)  # new out dirs: folded, not patched
    seqs = [int(p.name[6:-5]) for p in list_checkpoints(ledger.path)]
    assert seqs == [5, 4, 3]
    report = build(ledger.path, ledger.path / "asof", as_of=4)
    assert (report.checkpoint_seq, report.events_folded) == (4, 0)


def test_checkpoint_bytes_do_not_depend_on_batching(tmp_path: Path) -> None:
    a, b = Ledger.init(tmp_path / "a"), Ledger.init(tmp_path / "b")
    events = [{**created("A", "draft", f"d{i}"), "id": f"e{i}"} for i in range(4)]
    a.append(events)
    for ev in events:
        b.append([ev])
    assert state_to_bytes(a.state) == state_to_bytes(b.state)

"""What a reader enforces on a committed log (docs/FORMAT.md §4.4), tested with a foreign writer.

Each event below has a valid chain, so `verify` (the chain only) accepts the log; the fold
(state load, `build`) must then refuse it as corruption at that event's seq, exit 1 — or,
for an event type or `v` newer than this reader, as a newer format, exit 2. What binds
writers only (`by` keys, payload keys, id syntax) is read and ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import projections
from ledger import CorruptLogError, Ledger, NewerFormatError

from helpers.builders import created, run_cli
from helpers.forge import AT, forge_batch

LATER = "2026-01-02T00:00:00.000000Z"


def opened(cohort: str, **extra: Any) -> dict[str, Any]:
    return {"type": "cohort.opened", "data": {"cohort_id": cohort}, **extra}


def draft(gen_id: str, cohort: str = "A", **data: Any) -> dict[str, Any]:
    ev = created(cohort, "draft", gen_id)
    ev["data"].update({"replicate": 1, **data})
    return ev


def corrupt_at(path: Path, seq: int, reason: str) -> None:
    """The chain verifies; loading the state, building and the CLI all name `seq` (exit 1)."""
    assert Ledger.open(path).verify().head.seq >= seq
    with pytest.raises(CorruptLogError, match=reason) as exc:
        Ledger.open(path).state
    assert exc.value.seq == seq
    with pytest.raises(CorruptLogError):
        projections.build(path, out_dir=path.parent / "out")
    assert not (path.parent / "out").exists()
    r = run_cli("build", "--out", str(path.parent / "out2"), ledger=path)
    assert r.returncode == 1 and f"corrupt at seq {seq}:".encode() in r.stderr and b"Traceback" not in r.stderr
    assert run_cli("verify", ledger=path).returncode == 0


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """A ledger with one valid batch at seq 1-2, committed at AT."""
    path = tmp_path / "ledger"
    Ledger.init(path)
    forge_batch(path, [opened("A"), draft("d1")])
    Ledger.open(path).state  # the valid prefix folds
    return path


@pytest.mark.parametrize("extra, drop, reason", [
    ({"note": "x"}, (), "envelope keys"),
    ({}, ("by",), "envelope keys"),
    ({"idx": "x"}, ("id",), "malformed envelope or payload: no key 'id'"),
])
def test_envelope_must_have_exactly_the_ten_keys(base: Path, extra: dict[str, Any], drop: tuple[str, ...],
                                                  reason: str) -> None:
    forge_batch(base, [draft("d2")], drop=drop, **extra)
    corrupt_at(base, 3, reason)


def test_at_never_goes_back(base: Path) -> None:
    forge_batch(base, [draft("d2")], at="2025-12-31T23:59:59.999999Z")
    corrupt_at(base, 3, "earlier than the previous")


def test_at_is_equal_within_a_batch(base: Path) -> None:
    forge_batch(base, [draft("d2"), {**draft("d3"), "at": LATER}])
    corrupt_at(base, 4, "differs from its batch")


def test_a_later_batch_may_have_a_later_or_equal_at(base: Path) -> None:
    forge_batch(base, [draft("d2")])
    forge_batch(base, [draft("d3"), draft("d4")], at=LATER)
    assert Ledger.open(base).state.at == LATER


def test_ids_are_unique(base: Path) -> None:
    forge_batch(base, [{**draft("d2"), "id": "forged-1"}])
    corrupt_at(base, 3, "id forged-1 was already used at seq 1")


def test_v0_is_corruption_not_an_internal_error(base: Path) -> None:
    forge_batch(base, [{**draft("d2"), "v": 0}])
    corrupt_at(base, 3, "v 0 is not a payload version")
    r = run_cli("log", ledger=base)
    assert r.returncode == 1 and b"corrupt at seq 3" in r.stderr and b"Traceback" not in r.stderr


@pytest.mark.parametrize("ev, message", [
    ({**draft("d2"), "v": 2}, "v2 at seq 3 was written by a newer cohort-ledger"),
    ({"type": "cohort.archived", "data": {"cohort_id": "A"}}, "unknown event type 'cohort.archived' at seq 3"),
])
def test_newer_type_or_version_refuses_the_fold_with_exit_2(base: Path, ev: dict[str, Any], message: str) -> None:
    forge_batch(base, [ev])
    assert Ledger.open(base).verify().head.seq == 3  # the chain is fine
    with pytest.raises(NewerFormatError, match=message):
        Ledger.open(base).state
    r = run_cli("build", ledger=base)
    assert r.returncode == 2 and message.encode() in r.stderr


def test_replicate_below_one_is_corruption(base: Path) -> None:
    forge_batch(base, [draft("d2", replicate=0)])
    corrupt_at(base, 3, "replicate 0 is not an integer >= 1")


def test_an_unsafe_cohort_id_is_corruption(base: Path) -> None:
    forge_batch(base, [opened("../etc")])
    corrupt_at(base, 3, "cohort id '../etc' is not an identifier")


def test_a_no_op_in_the_log_is_corruption(base: Path) -> None:
    forge_batch(base, [draft("d1")])
    corrupt_at(base, 3, "repeats the effect of seq 2")


def test_a_re_create_into_a_sealed_cohort_is_a_no_op_first(base: Path) -> None:
    """Both rules apply; the no-op rule is checked first, at append time and on replay alike."""
    forge_batch(base, [{"type": "cohort.sealed", "data": {"cohort_id": "A"}}])
    assert Ledger.open(base).append([draft("d1")]) == [2]  # the library: a no-op, nothing written
    forge_batch(base, [draft("d1")])
    corrupt_at(base, 4, "repeats the effect of seq 2")


def test_writer_only_rules_are_ignored_by_readers(base: Path, tmp_path: Path) -> None:
    """`by` keys, payload keys and id syntax bind writers; a reader folds such events as if
    the extras were absent, so every implementation gets the same state and projections."""
    forge_batch(base, [{**draft("d2", colour="blue"), "id": "an id with spaces", "by": {"host": "x"}}])
    state = Ledger.open(base).state
    assert state.seq == 3 and state.generations["d2"].metadata()["template_id"] == "t1"
    assert state.event_ids["an id with spaces"] == 3

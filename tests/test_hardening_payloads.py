"""Issue 11, items 12 and 13: free-form JSON payloads (`spec`, `matched_on`) have a depth and
a size limit, and every integer is within signed 64 bits, enforced at append (exit 2 naming
the event) on the CLI and the library; the checkpoint writer never meets what append refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers.builders import created, event, jsonl, run_cli
from helpers.faults import dir_snapshot

from ledger import EventRejected, Ledger
from ledger.domain.events import MAX_FREE_FORM_BYTES, MAX_FREE_FORM_DEPTH
from projections import build


def nested(depth: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        doc = {"k": doc}
    return doc


def opened(spec: Any, event_id: str = "open-c") -> dict[str, Any]:
    return event("cohort.opened", event_id, cohort_id="C", spec=spec)


@pytest.mark.parametrize("spec", [nested(MAX_FREE_FORM_DEPTH + 1), nested(252),
                                  {"blob": "x" * (MAX_FREE_FORM_BYTES + 1)},
                                  {"n": 2**63}, {"n": 2**64 - 1}, {"n": -(2**63) - 1}, {"n": [1, {"m": 10**30}]}],
                         ids=["depth 33", "depth 252", "too large", "2^63", "2^64-1", "-2^63-1", "10^30 nested"])
def test_the_library_refuses_what_the_format_cannot_hold(ledger: Ledger, spec: Any) -> None:
    before = dir_snapshot(ledger.path)
    with pytest.raises(EventRejected, match="open-c"):
        ledger.append([opened(spec)])
    assert dir_snapshot(ledger.path) == before


@pytest.mark.parametrize("raw", [b'{"n": 123456789012345678901234567890}', b'{"n": 18446744073709551615}',
                                 b'{"n": 9223372036854775808}', b'{"a": [0, -9223372036854775809]}'],
                         ids=["30 digits", "2^64-1", "2^63", "-2^63-1"])
def test_the_cli_refuses_integers_beyond_64_bits(ledger: Ledger, raw: bytes) -> None:
    line = b'{"type":"cohort.opened","id":"open-c","data":{"cohort_id":"C","spec":' + raw + b"}}\n"
    before = dir_snapshot(ledger.path)
    r = run_cli("append", ledger=ledger.path, stdin=line)
    assert r.returncode == 2 and r.stderr.count(b"\n") == 1 and b"event #1" in r.stderr, r.stderr
    assert b"64" in r.stderr
    assert dir_snapshot(ledger.path) == before


def test_the_limits_themselves_are_accepted_and_checkpointed(ledger: Ledger, tmp_path: Path) -> None:
    ledger.append([opened({"deep": nested(MAX_FREE_FORM_DEPTH - 1), "max": 2**63 - 1, "min": -(2**63),
                           "big": "y" * (MAX_FREE_FORM_BYTES // 2), "f": 1e30, "s": "123456789012345678901234567890"})])
    ledger.append([created("C", "draft", "d1"),
                   event("generation.reused", cohort_id="D", stage="draft", gen_id="d1", reason="manual",
                         matched_on={"replicate": 2**63 - 1})])
    report = build(ledger.path, tmp_path / "out", checkpoint_every=1)  # used to crash: RecursionError
    assert report.checkpoint_written == 3
    assert Ledger.open(ledger.path).state.cohorts["C"].spec["max"] == 2**63 - 1


def test_digits_inside_strings_are_not_numbers(ledger: Ledger) -> None:
    r = run_cli("append", ledger=ledger.path, stdin=jsonl(opened({"note": "12345678901234567890123 is a string"})))
    assert r.returncode == 0, r.stderr

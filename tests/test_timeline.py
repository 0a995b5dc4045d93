"""The audit scan: the two-core read gives exactly the one-pass result, and corruption is
named at its seq either way."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Iterator
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.audit_logs import histories
from helpers.builders import created
from ledger import CorruptLogError, Ledger
from ledger.cohorts import timeline
from ledger.cohorts.timeline import scan


@contextmanager
def two_cores(on: bool) -> Iterator[None]:
    old = timeline.PARALLEL_MIN_BYTES
    timeline.PARALLEL_MIN_BYTES = 0 if on else 1 << 62
    try:
        yield
    finally:
        timeline.PARALLEL_MIN_BYTES = old


def _as_tuple(r: timeline.AuditScan) -> tuple[Any, ...]:
    return (r.seq, r.hash, r.at, r.origins, r.materialized, r.known, r.point_hash,
            {c: (t.opened_seq, t.description, t.sealed_seq, t.stints, t.events) for c, t in r.cohorts.items()})


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.data())
def test_two_halves_equal_one_pass(batches: list[list[dict[str, Any]]], data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        led = Ledger.init(Path(tmp) / "ledger")
        for batch in batches:
            led.append(batch)
        head = led.head.seq
        until = data.draw(st.none() | st.integers(1, head))
        cohorts = data.draw(st.none() | st.lists(st.sampled_from(["A", "B", "C"]), unique=True, min_size=1))
        points = data.draw(st.lists(st.integers(0, until or head), max_size=3))
        results = []
        for on in (False, True):
            with two_cores(on):
                results.append(_as_tuple(scan(led, cohorts, until, points=points, keep_events=True)))
        assert results[0] == results[1]


def _log(path: Path) -> Ledger:
    led = Ledger.init(path)
    for i in range(8):
        led.append([created("A", "draft", f"d{i}")])
    return led


@pytest.mark.parametrize("bad_seq", [2, 7])  # in the first half, and in the half the child reads
def test_corruption_is_named_at_its_seq_either_way(tmp_path: Path, bad_seq: int) -> None:
    led = _log(tmp_path / "ledger")
    lines = led.log_path.read_bytes().splitlines(keepends=True)
    lines[bad_seq - 1] = lines[bad_seq - 1].replace(b'"d', b'"x', 1)
    led.log_path.write_bytes(b"".join(lines))
    for on in (False, True):
        with two_cores(on), pytest.raises(CorruptLogError) as err:
            scan(Ledger.open(led.path), ["A"])
        assert err.value.seq == bad_seq

"""Projections are a pure function of the log prefix: properties over random valid logs."""

from __future__ import annotations

import tempfile
from pathlib import Path

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from helpers.logs import append_in_batches, batch_sizes, event_logs, snapshot

from ledger import Ledger
from ledger.log.checkpoint import state_from_bytes, state_to_bytes
from ledger.log.scan import Position
from projections import build

SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _record(out: Path) -> dict:
    return orjson.loads((out / "_projection.json").read_bytes())


@SETTINGS
@given(st.data())
def test_batching_and_checkpoints_do_not_change_bytes(data: st.DataObject) -> None:
    events = data.draw(event_logs())
    sizes_a = data.draw(batch_sizes(len(events)))
    sizes_b = data.draw(batch_sizes(len(events)))
    split = data.draw(st.integers(0, len(sizes_a)))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        append_in_batches(root / "a", events, sizes_a)
        append_in_batches(root / "b", events, sizes_b)
        full_a = build(root / "a", root / "out-a", full=True, checkpoint_every=10**9)
        build(root / "b", root / "out-b", full=True, checkpoint_every=10**9)
        # Logs of the same events in other batches differ in txn, at and ledger_id, hence in
        # their chain hashes: _projection.json (which records the hash) differs, nothing else.
        assert snapshot(root / "out-a", with_record=False) == snapshot(root / "out-b", with_record=False)
        assert _record(root / "out-a")["files"] == _record(root / "out-b")["files"]

        # checkpoint at a batch boundary, then a build of the tail on top of it
        ledger = append_in_batches(root / "c", events[:sum(sizes_a[:split])], sizes_a[:split])
        first = build(root / "c", root / "out-c", checkpoint_every=1)
        assert first.checkpoint_written == (first.seq or None)
        start = sum(sizes_a[:split])
        for size in sizes_a[split:]:
            ledger.append(events[start:start + size])
            start += size
        tail = build(root / "c", root / "out-c", checkpoint_every=1)
        # nothing appended since the first build (and it wrote something): the out dir is current as it is
        assert tail.up_to_date == (split == len(sizes_a) and first.seq > 0)
        if not tail.up_to_date:  # the projection at the split, patched with the tail
            assert (tail.patched_from, tail.checkpoint_seq) == (first.seq, None)
            # into an out dir with no projection: folded from the checkpoint, to the same bytes
            resumed = build(root / "c", root / "out-c-resumed", checkpoint_every=1)
            assert resumed.checkpoint_seq == first.checkpoint_written
            assert resumed.events_folded == len(events) - (first.checkpoint_written or 0)
            assert snapshot(root / "out-c-resumed") == snapshot(root / "out-c")
        build(root / "c", root / "out-c-full", full=True)
        assert snapshot(root / "out-c") == snapshot(root / "out-c-full")
        assert snapshot(root / "out-c", with_record=False) == snapshot(root / "out-a", with_record=False)
        assert full_a.seq == tail.seq == len(events)


@SETTINGS
@given(st.data())
def test_as_of_seq_matches_a_build_of_the_truncated_log(data: st.DataObject) -> None:
    events = data.draw(event_logs())
    sizes = data.draw(batch_sizes(len(events)))
    k = data.draw(st.integers(0, len(events)))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        append_in_batches(root / "a", events, sizes)
        build(root / "a", checkpoint_every=1)  # a checkpoint at the head, past k: must not be used
        report = build(root / "a", root / "asof", as_of=k)
        assert report.seq == k and report.checkpoint_written is None
        if k < len(events):
            assert report.checkpoint_seq is None
        truncated = root / "t"
        if k:
            append_in_batches(truncated, events[:k], [k])
        else:
            Ledger.init(truncated)
        build(truncated, root / "expected")
        assert snapshot(root / "asof", with_record=False) == snapshot(root / "expected", with_record=False)
        assert _record(root / "asof")["seq"] == k
        if k:
            (line,) = [e for e in Ledger.open(root / "a").read(k, k)]
            assert _record(root / "asof")["hash"] == line.hash  # the hash of event k, even inside a batch


@SETTINGS
@given(event_logs())
def test_checkpoint_state_round_trips(events: list) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ledger = append_in_batches(Path(tmp) / "l", events, [len(events)])
        state = ledger.state
        pos = Position(state.seq, state.hash, ledger.log_path.stat().st_size, state.at)
        back = state_from_bytes(ledger.config, state_to_bytes(state), pos)
        for attr in ("seq", "hash", "at", "generations", "cohorts", "key_names", "event_ids"):
            assert getattr(back, attr) == getattr(state, attr), attr
        assert back.manifest_columns() == state.manifest_columns()

"""PipelineRecorder: deterministic ids, retries as no-ops, many processes recording the same events."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from ledger import EventRejected, Ledger
from ledger.domain.events import EventIn
from ledger.cohorts.hooks import PipelineRecorder, hook_event_id

SHA = "ab" * 32

# One pipeline run as a hook sees it: the same script runs in every process below.
RUN_SCRIPT = r"""
import sys, time
from pathlib import Path
from ledger.cohorts.hooks import PipelineRecorder

ledger_path, go = sys.argv[1], Path(sys.argv[2])
while not go.exists():
    time.sleep(0.005)
rec = PipelineRecorder(ledger_path, run_id="run 2025-06-01/#7", actor="dagster")
for i in range(4):
    rec.record_created("A", "draft", f"d{i}", "tpl", combo_id=f"c{i}", llm_model_id="m")
    rec.record_created("A", "essay", f"e{i}", "tpl", parent_gen_id=f"d{i}", llm_model_id="m")
    rec.record_materialized("A", "essay", f"e{i}", {"parsed": "%s"})
    rec.record_reused("B", "essay", f"e{i}", matched_on={"parent_gen_id": f"d{i}", "template_id": "tpl", "replicate": 1})
rec.record_removed("B", "essay", "e3", "judged off-topic")
print(sum(rec.is_materialized(f"e{i}") for i in range(4)))
""" % SHA


def test_three_processes_record_each_event_once(tmp_path: Path) -> None:
    led = Ledger.init(tmp_path / "ledger")
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", RUN_SCRIPT, str(led.path), str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    time.sleep(0.2)
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err for _, err in outs]
    assert [out.strip() for out, _ in outs] == [b"4"] * 3
    events = list(Ledger.open(led.path).read())
    counts = Counter(e.id for e in events)
    assert len(events) == 4 * 4 + 1 and set(counts.values()) == {1}
    assert Counter(e.type for e in events) == {"generation.created": 8, "generation.materialized": 4,
                                               "generation.reused": 4, "generation.removed": 1}
    assert all(e.by == {"run_id": "run 2025-06-01/#7", "source": "pipeline-hook", "actor": "dagster"} for e in events)
    assert all(e.id == hook_event_id("run 2025-06-01/#7", e.type, e.data["cohort_id"], e.data["gen_id"])
               for e in events)
    assert led.verify().events == 17


def test_retry_returns_the_original_seq(ledger: Ledger) -> None:
    rec = PipelineRecorder(ledger.path, run_id="r1")
    seq = rec.record_created("A", "draft", "d1", "tpl", combo_id="c1")
    assert rec.record_created("A", "draft", "d1", "tpl", combo_id="c1") == seq
    assert not rec.is_materialized("d1") and not rec.is_materialized("unknown")
    mat = rec.record_materialized("A", "draft", "d1", {"raw": SHA})
    assert rec.is_materialized("d1")
    assert PipelineRecorder(ledger.path, run_id="r1").record_materialized("A", "draft", "d1", {"raw": SHA}) == mat
    with pytest.raises(EventRejected, match="different payload"):
        rec.record_materialized("A", "draft", "d1", {"raw": "cd" * 32})
    # another run materialising the same gen is a new fact, with its own id
    assert PipelineRecorder(ledger.path, run_id="r2").record_materialized("A", "draft", "d1", {"raw": SHA}) > mat
    rec.record_reused("B", "draft", "d1")
    rec.record_removed("B", "draft", "d1", "not wanted")
    assert not ledger.state.is_member("B", "d1")
    assert ledger.head.seq == 5
    assert [e.data.get("run_id") for e in ledger.read() if e.type == "generation.materialized"] == ["r1", "r2"]


@pytest.mark.parametrize("run_id", ["r", "x" * 4096, "run with spaces\tand\nnewlines", "ünïcode-run"])
def test_ids_fit_the_event_id_rule(run_id: str) -> None:
    eid = hook_event_id(run_id, "generation.materialized", "c" * 128, "g" * 128)
    EventIn.model_validate({"type": "generation.materialized", "data": {}, "id": eid})
    assert eid.startswith("hook1:generation.materialized:")
    assert eid != hook_event_id(run_id, "generation.materialized", "c" * 128, "g" * 127)


def test_record_plan_is_one_batch_at_the_plan_seq(tmp_path: Path) -> None:
    from ledger import ConflictError
    from ledger.cohorts.reuse import Wanted, plan_reuse
    from ledger.ids import gen_id

    led = Ledger.init(tmp_path / "ledger")
    rec = PipelineRecorder(led.path, run_id="r1", asset_key="cohort_membership", partition_key="B")
    rec.record_created("A", "draft", "d_a", "tpl", combo_id="c1", llm_model_id="m")
    wanted = [Wanted({"combo_id": "c1", "template_id": "tpl", "llm_model_id": "m"}, 2)]
    plan = plan_reuse(led.state, "B", "draft", wanted, allowed_origins=["A"])
    stale = plan_reuse(led.state, "C", "draft", wanted, allowed_origins=["A"])
    seqs = rec.record_plan(plan, {"mode": "llm"})
    events = list(led.read(2))
    assert seqs == [2, 3] and {e.txn for e in events} == {(2, 2)}
    assert [(e.type, e.data["gen_id"]) for e in events] == [
        ("generation.reused", "d_a"),
        ("generation.created", gen_id("draft", combo_id="c1", template_id="tpl", llm_model_id="m", replicate=2))]
    assert events[1].data == {"cohort_id": "B", "stage": "draft", "gen_id": events[1].data["gen_id"], "combo_id": "c1",
                              "template_id": "tpl", "llm_model_id": "m", "replicate": 2, "mode": "llm"}
    assert events[0].by == {"run_id": "r1", "source": "pipeline-hook", "asset_key": "cohort_membership",
                            "partition_key": "B"}
    assert rec.record_plan(plan, {"mode": "llm"}) == [2, 3]  # a retry: the same ids, no-ops
    before = (led.path / "events.jsonl").read_bytes()
    with pytest.raises(ConflictError):
        rec.record_plan(stale)  # made before the first plan was recorded: may collide, refused
    assert (led.path / "events.jsonl").read_bytes() == before
    assert rec.record_plan(plan_reuse(led.state, "B", "draft", wanted, allowed_origins=["A"])) == []

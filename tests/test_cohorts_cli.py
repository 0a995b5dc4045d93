"""show, history, seal, rename-key through the real CLI: the audit questions and the refusals."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from helpers.builders import created, jsonl, run_cli
from ledger import Ledger


def reused(cohort: str, stage: str, gid: str, reason: str = "skip-existing") -> dict:
    return {"type": "generation.reused", "data": {"cohort_id": cohort, "stage": stage, "gen_id": gid, "reason": reason}}


@pytest.fixture
def led(tmp_path: Path) -> Path:
    path = tmp_path / "ledger"
    assert run_cli("init", ledger=path).returncode == 0
    batches = [
        [created("A", "draft", "d1", combo_id="c1", llm_model_id="m1"),
         created("A", "essay", "e1", parent="d1", llm_model_id="m1"),
         created("A", "evaluation", "v1", parent="e1", llm_model_id="m1")],
        [{**reused("B", "essay", "e1"), "by": {"actor": "alice", "run_id": "run-7"}},
         {**reused("B", "evaluation", "v1"), "by": {"actor": "alice", "run_id": "run-7"}}],
        [{**created("B", "evaluation", "v2", parent="e1", llm_model_id="m2"), "by": {"run_id": "run-8"}}],
        [{"type": "generation.removed", "data": {"cohort_id": "B", "stage": "evaluation", "gen_id": "v1",
                                                  "reason": "truncated output"}, "by": {"actor": "bob"}}],
    ]
    for batch in batches:
        r = run_cli("append", ledger=path, stdin=jsonl(*batch))
        assert r.returncode == 0, r.stderr
    return path


def test_show_answers_who_is_in_b_and_from_where(led: Path) -> None:
    r = run_cli("show", "B", "--json", ledger=led)
    assert r.returncode == 0, r.stderr
    rows = orjson.loads(r.stdout)
    assert [(m["stage"], m["gen_id"], m["origin_cohort_id"], m["reused"], m["added_seq"]) for m in rows] == [
        ("essay", "e1", "A", True, 4), ("evaluation", "v2", "B", False, 6)]
    assert rows[0]["parent_gen_id"] == "d1" and rows[1]["llm_model_id"] == "m2" and rows[0]["cohort_id"] == "B"
    only = orjson.loads(run_cli("show", "B", "--stage", "evaluation", "--json", ledger=led).stdout)
    assert [m["gen_id"] for m in only] == ["v2"]
    text = run_cli("show", "B", ledger=led)
    assert text.returncode == 0 and b"2 active member(s), 1 reused" in text.stdout and b"v2" in text.stdout
    assert run_cli("show", "nope", ledger=led).returncode == 2
    bad = run_cli("show", "B", "--stage", "summary", ledger=led)
    assert bad.returncode == 2 and b"summary" in bad.stderr


def test_history_answers_when_and_by_whom(led: Path) -> None:
    r = run_cli("history", "B", "--json", ledger=led)
    assert r.returncode == 0, r.stderr
    entries = orjson.loads(r.stdout)
    assert [(e["seq"], e["type"], e["gen_id"], e["origin_cohort_id"], e["by"].get("actor"), e["counts"])
            for e in entries] == [
        (4, "generation.reused", "e1", "A", "alice", {"draft": 0, "essay": 1, "evaluation": 0}),
        (5, "generation.reused", "v1", "A", "alice", {"draft": 0, "essay": 1, "evaluation": 1}),
        (6, "generation.created", "v2", "B", None, {"draft": 0, "essay": 1, "evaluation": 2}),
        (7, "generation.removed", "v1", "A", "bob", {"draft": 0, "essay": 1, "evaluation": 1}),
    ]
    assert entries[3]["reason"] == "truncated output" and entries[0]["at"].endswith("Z")
    text = run_cli("history", "B", ledger=led).stdout
    assert b"actor=alice run_id=run-7" in text and b"evaluation=1" in text
    assert run_cli("history", "nope", ledger=led).returncode == 2


def test_sealed_cohort_refuses_changes(led: Path) -> None:
    r = run_cli("seal", "A", "--reason", "scores published", "--json", ledger=led)
    assert r.returncode == 0, r.stderr
    assert orjson.loads(r.stdout) == {"cohort_id": "A", "seq": 8, "reason": "scores published"}
    head = Ledger.open(led).head
    for batch in ([reused("A", "evaluation", "v2")],
                  [created("A", "evaluation", "v9", parent="e1")],
                  [{"type": "generation.removed", "data": {"cohort_id": "A", "stage": "draft", "gen_id": "d1",
                                                            "reason": "x"}}]):
        r = run_cli("append", ledger=led, stdin=jsonl(*batch))
        assert r.returncode == 2 and b"cohort A is sealed" in r.stderr
    assert run_cli("seal", "A", ledger=led).returncode == 2
    assert run_cli("seal", "nope", ledger=led).returncode == 2
    assert Ledger.open(led).head == head
    # B still changes: sealing is per cohort; A's gens can still be reused elsewhere
    assert run_cli("append", ledger=led, stdin=jsonl(reused("C", "draft", "d1", "curated"))).returncode == 0


def test_rename_key_phases(led: Path) -> None:
    def rename(*args: str):
        return run_cli("rename-key", *args, ledger=led)

    r = rename("cohort_id", "origin_cohort_id", "--phase", "final")
    assert r.returncode == 2 and b"needs the alias phase first" in r.stderr
    assert rename("template_id", "combo_id", "--phase", "alias").returncode == 2  # collision
    assert rename("template_id", "gen_id", "--phase", "alias").returncode == 2
    assert rename("cohort_id", "origin_cohort_id", "--phase", "bogus").returncode == 2
    ok = rename("cohort_id", "origin_cohort_id", "--phase", "alias", "--json")
    assert ok.returncode == 0 and orjson.loads(ok.stdout)["seq"] == 8
    assert rename("cohort_id", "origin_cohort_id", "--phase", "alias").returncode == 2
    assert Ledger.open(led).state.manifest_columns()[2:4] == ["cohort_id", "origin_cohort_id"]
    assert rename("cohort_id", "origin_cohort_id", "--phase", "final").returncode == 0
    state = Ledger.open(led).state
    assert "cohort_id" not in state.manifest_columns() and "origin_cohort_id" in state.manifest_columns()
    events = list(Ledger.open(led).read(8))
    assert [(e.data["phase"], e.by["source"]) for e in events] == [("alias", "cli"), ("final", "cli")]

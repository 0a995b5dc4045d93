"""The example Dagster pipeline, run for real: cohort A, then cohort B reusing A's gens.

One in-memory Dagster instance and one ledger for the whole module (the runs are the
expensive part); each test reads what those runs left. Under CI a missing Dagster fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pytest

if os.environ.get("CI", "").lower() not in ("true", "1"):
    pytest.importorskip("dagster")

import dagster as dg  # noqa: E402
import pyarrow.csv as pacsv  # noqa: E402

from ledger import Ledger  # noqa: E402
from ledger.ids import gen_id  # noqa: E402
from ledger.scope import CohortScope  # noqa: E402

from examples.dagster_pipeline.demo import CohortRun, run_cohort  # noqa: E402
from examples.dagster_pipeline.llm import calls  # noqa: E402
from examples.dagster_pipeline.spec import COHORTS, CohortSpec  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def expected_gens(spec: CohortSpec) -> dict[str, list[str]]:
    """The gen ids a spec wants, computed from the signatures, independently of the planner."""
    drafts = [gen_id("draft", combo_id=c, template_id=spec.draft_template, llm_model_id=spec.model, replicate=1)
              for c in spec.combos]
    essays = [gen_id("essay", parent_gen_id=d, template_id=spec.essay_template, replicate=1) for d in drafts]
    evals = [gen_id("evaluation", parent_gen_id=e, template_id=t, llm_model_id=m, replicate=1)
             for e in essays for t in spec.evaluation_templates for m in spec.evaluation_models]
    return {"draft": sorted(drafts), "essay": sorted(essays), "evaluation": sorted(evals)}


class Pipeline:
    def __init__(self, base: Path) -> None:
        self.ledger = base / "ledger"
        self.data = base / "data"
        Ledger.init(self.ledger)
        self.data.mkdir()
        self.instance = dg.DagsterInstance.ephemeral()
        self.runs: dict[str, CohortRun] = {}
        self.calls: dict[str, list[str]] = {}
        self.log_after: dict[str, bytes] = {}  # events.jsonl after each cohort's runs

    def run(self, cohort: str) -> CohortRun:
        before = len(calls(self.data))
        run = run_cohort(self.instance, str(self.ledger), str(self.data), cohort)
        self.calls[cohort] = [c["gen_id"] for c in calls(self.data)[before:]]
        self.log_after[cohort] = (self.ledger / "events.jsonl").read_bytes()
        return run

    def events(self) -> list[Any]:
        return list(Ledger.open(self.ledger).read())


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    p = Pipeline(tmp_path_factory.mktemp("dagster-example"))
    p.runs["cohort-a"] = p.run("cohort-a")
    p.runs["cohort-b"] = p.run("cohort-b")
    yield p
    p.instance.dispose()


A, B = expected_gens(COHORTS["cohort-a"]), expected_gens(COHORTS["cohort-b"])
A_ALL = {g for gens in A.values() for g in gens}
B_ALL = {g for gens in B.values() for g in gens}


def test_model_called_once_per_new_gen(pipeline: Pipeline) -> None:
    assert sorted(pipeline.calls["cohort-a"]) == sorted(A_ALL)
    assert sorted(pipeline.calls["cohort-b"]) == sorted(B_ALL - A_ALL)  # B's new gens only, once each
    assert len(B_ALL - A_ALL) == 6 and len(B_ALL & A_ALL) == 6


def test_ledger_holds_exactly_the_expected_events(pipeline: Pipeline) -> None:
    got = Counter((e.type, e.data["cohort_id"], e.data["gen_id"]) for e in pipeline.events())
    want = Counter({("generation.created", "cohort-a", g): 1 for g in A_ALL})
    want.update({("generation.created", "cohort-b", g): 1 for g in B_ALL - A_ALL})
    want.update({("generation.reused", "cohort-b", g): 1 for g in B_ALL & A_ALL})
    want.update({("generation.materialized", "cohort-a", g): 1 for g in A_ALL})
    want.update({("generation.materialized", "cohort-b", g): 1 for g in B_ALL - A_ALL})
    assert got == want


def test_events_name_the_run_asset_and_partition(pipeline: Pipeline) -> None:
    for e in pipeline.events():
        assert e.by["source"] == "pipeline-hook" and e.by["actor"] == "dagster" and e.by["run_id"]
        if e.type == "generation.materialized":
            assert (e.by["asset_key"], e.by["partition_key"]) == (e.data["stage"], e.data["gen_id"])
            assert e.data["run_id"] == e.by["run_id"]
        else:
            assert (e.by["asset_key"], e.by["partition_key"]) == ("cohort_membership", e.data["cohort_id"])
        if e.type == "generation.reused":
            assert e.data["reason"] == "skip-existing"


def test_reused_gens_short_circuit_with_their_origin_and_seq(pipeline: Pipeline) -> None:
    run = pipeline.runs["cohort-b"]
    assert sorted(g for gens in run.reused.values() for g in gens) == sorted(B_ALL & A_ALL)
    assert sorted(g for gens in run.generated.values() for g in gens) == sorted(B_ALL - A_ALL)
    materialized = {e.data["gen_id"]: e.seq for e in pipeline.events() if e.type == "generation.materialized"}
    assert run.notes == {g: f"reused from cohort-a, materialized at seq {materialized[g]}" for g in B_ALL & A_ALL}
    rows = {(r["stage"], r["gen_id"]): (r["action"], r["origin_cohort_id"]) for r in run.plan_rows}
    assert rows == {**{(s, g): ("reuse", "cohort-a") for s, gens in B.items() for g in gens if g in A_ALL},
                    **{(s, g): ("create", "cohort-b") for s, gens in B.items() for g in gens if g not in A_ALL}}
    assert run.plan == {"draft_new": 1, "draft_reused": 2, "draft_active": 3, "essay_new": 1, "essay_reused": 2,
                        "essay_active": 3, "evaluation_new": 4, "evaluation_reused": 2, "evaluation_active": 6}


def test_cohort_scores_are_exactly_the_active_evaluations(pipeline: Pipeline) -> None:
    scope = CohortScope.open(pipeline.ledger)
    for cohort, want in (("cohort-a", A), ("cohort-b", B)):
        table = pacsv.read_csv(pipeline.data / "reports" / cohort / "scores.csv")
        assert sorted(table["gen_id"].to_pylist()) == scope.active_stage_gen_ids(cohort, "evaluation")
        assert sorted(table["gen_id"].to_pylist()) == want["evaluation"]
    b = pacsv.read_csv(pipeline.data / "reports" / "cohort-b" / "scores.csv").to_pylist()
    # B holds two of A's evaluations (reused) and none of A's insight-depth ones
    reused = sorted(set(A["evaluation"]) & set(B["evaluation"]))
    assert len(reused) == 2
    assert sorted(r["gen_id"] for r in b if r["origin_cohort_id"] == "cohort-a") == reused
    assert {r["template_id"] for r in b} == {"novelty-v2"}


def test_checks_pass_and_projections_are_current(pipeline: Pipeline) -> None:
    for run in pipeline.runs.values():
        assert run.checks == {"ledger_chain_verifies": True, "cohort_members_complete": True,
                              "projections_current": True}
    head = Ledger.open(pipeline.ledger).head
    assert CohortScope.open(pipeline.data).seq == head.seq
    mats = pipeline.instance.get_latest_materialization_event(dg.AssetKey("ledger_membership"))
    assert mats is not None and mats.asset_materialization is not None
    meta = mats.asset_materialization.metadata
    assert meta["seq"].value == head.seq
    assert meta["dagster/row_count"].value == 8 + 12  # A's members, B's
    overview = pipeline.instance.get_latest_materialization_event(dg.AssetKey("cohort_overview"))
    assert overview is not None and overview.asset_materialization is not None
    rows = [dict(r.data) for r in overview.asset_materialization.metadata["overview"].value.records]
    assert rows == [{"cohort_id": "cohort-a", "draft": 2, "essay": 2, "evaluation": 4, "reused": 0},
                    {"cohort_id": "cohort-b", "draft": 3, "essay": 3, "evaluation": 6, "reused": 6}]
    schema = meta["dagster/column_schema"].value
    assert [c.name for c in schema.columns] == ["cohort_id", "stage", "gen_id", "origin_cohort_id", "reused",
                                                "added_seq"]


def test_rerunning_a_cohort_writes_and_calls_nothing(pipeline: Pipeline) -> None:
    """A re-execution (new run ids): the plan finds every gen active, every gen is materialized."""
    before = (pipeline.ledger / "events.jsonl").read_bytes()
    run = pipeline.run("cohort-b")
    assert pipeline.calls["cohort-b"] == []
    assert pipeline.log_after["cohort-b"] == before
    assert run.plan["evaluation_new"] == 0 and run.plan["evaluation_reused"] == 0
    assert sorted(g for gens in run.reused.values() for g in gens) == sorted(B_ALL)


def test_a_removed_evaluation_leaves_the_scores(pipeline: Pipeline) -> None:
    """The seed's Phase 4 regression: reused rows count, removed ones do not (runs last: it
    changes cohort B)."""
    from examples.dagster_pipeline.assets import cohort_scores
    from examples.dagster_pipeline.definitions import ASSETS, resources
    from ledger.hooks import PipelineRecorder

    gone = sorted(set(A["evaluation"]) & set(B["evaluation"]))[0]
    PipelineRecorder(pipeline.ledger, run_id="operator-1").record_removed("cohort-b", "evaluation", gone, "judged unfair")
    result = dg.materialize(ASSETS, selection=[cohort_scores], partition_key="cohort-b", instance=pipeline.instance,
                            resources=resources(str(pipeline.ledger), str(pipeline.data)))
    assert result.asset_materializations_for_node("cohort_scores")[0].metadata["dagster/row_count"].value == 5
    table = pacsv.read_csv(pipeline.data / "reports" / "cohort-b" / "scores.csv")
    assert sorted(table["gen_id"].to_pylist()) == sorted(set(B["evaluation"]) - {gone})
    assert gone in CohortScope.open(pipeline.ledger).active_stage_gen_ids("cohort-a", "evaluation")  # A keeps it

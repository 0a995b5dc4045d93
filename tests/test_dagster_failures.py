"""Dagster under faults: a step dying right after its append is retried and writes nothing
twice; a failing blocking check stops the run's downstream assets and names the gens."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest

if os.environ.get("CI", "").lower() not in ("true", "1"):
    pytest.importorskip("dagster")

import dagster as dg  # noqa: E402

from ledger import InvalidInputError, Ledger  # noqa: E402
from ledger.dagster import CohortLedgerResource, ledger_checks  # noqa: E402
from ledger.dagster.checks import chain_problem  # noqa: E402
from ledger.hooks import PipelineRecorder  # noqa: E402
from ledger.scope import CohortScope  # noqa: E402

from examples.dagster_pipeline.assets import cohort_membership, cohort_overview, cohort_scores  # noqa: E402
from examples.dagster_pipeline.definitions import ASSETS, checks, resources  # noqa: E402
from examples.dagster_pipeline.llm import calls  # noqa: E402


class FlakyLedger(CohortLedgerResource):
    """The example's ledger resource, except that while `fail_flag` exists, the first append
    a recorder makes succeeds and then the step dies (the flag is removed: one failure)."""

    fail_flag: str

    def recorder(self, context: Any) -> PipelineRecorder:
        rec = super().recorder(context)
        flag, append = Path(self.fail_flag), rec.ledger.append

        def append_then_die(events: Any, expected_seq: int | None = None) -> list[int]:
            seqs = append(events, expected_seq)
            if flag.exists():
                flag.unlink()
                raise RuntimeError("injected failure after the append")
            return seqs

        rec.ledger.append = append_then_die  # type: ignore[method-assign]
        return rec


class Env:
    def __init__(self, base: Path) -> None:
        self.ledger, self.data, self.flag = base / "ledger", base / "data", base / "fail-once"
        Ledger.init(self.ledger)
        self.data.mkdir()
        self.instance = dg.DagsterInstance.ephemeral()
        self.res = {**resources(str(self.ledger), str(self.data)),
                    "ledger": FlakyLedger(ledger_path=str(self.ledger), projections_dir=str(self.data),
                                          fail_flag=str(self.flag))}

    def run(self, keys: Sequence[dg.AssetKey], partition_key: str | None = None,
            asset_checks: Sequence[dg.AssetChecksDefinition] = tuple(checks),
            selection: dg.AssetSelection | None = None) -> dg.ExecuteInProcessResult:
        return dg.materialize([*ASSETS, *asset_checks], selection=selection or dg.AssetSelection.assets(*keys),
                              partition_key=partition_key, instance=self.instance, resources=self.res,
                              raise_on_error=False)

    def events(self) -> list[Any]:
        return list(Ledger.open(self.ledger).read())


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    e.instance.dispose()


def retried(result: dg.ExecuteInProcessResult) -> int:
    return sum(1 for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY")


def no_duplicates(events: list[Any]) -> None:
    assert len({e.id for e in events}) == len(events)
    keys = Counter((e.type, e.data.get("cohort_id"), e.data.get("gen_id")) for e in events)
    assert max(keys.values()) == 1, keys.most_common(3)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


def test_retried_steps_write_nothing_twice(env: Env) -> None:
    env.flag.touch()
    result = env.run([cohort_membership.key], "cohort-a")
    assert result.success and retried(result) == 1 and not env.flag.exists()
    events = env.events()
    no_duplicates(events)
    assert Counter(e.type for e in events) == {"generation.created": 8}  # drafts before the failure, the rest after

    draft = sorted(CohortScope.open(env.ledger).active_stage_gen_ids("cohort-a", "draft"))[0]
    env.flag.touch()
    result = env.run([dg.AssetKey("draft")], draft)
    assert result.success and retried(result) == 1
    assert [c["gen_id"] for c in calls(env.data)] == [draft]  # the retry short-circuited
    events = env.events()
    no_duplicates(events)
    (mat,) = [e for e in events if e.type == "generation.materialized"]
    note = result.asset_materializations_for_node("draft")[0].metadata["note"].value
    assert note == f"reused from cohort-a, materialized at seq {mat.seq}"


def failed_checks(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    return {e.check_name: e.description or "" for e in result.get_asset_check_evaluations() if not e.passed}


def materialized(result: dg.ExecuteInProcessResult) -> list[str]:
    return [e.asset_key.to_user_string() for e in result.get_asset_materialization_events() if e.asset_key]


def test_member_without_metadata_blocks_downstream(env: Env) -> None:
    assert env.run([cohort_membership.key], "cohort-a").success
    Ledger.open(env.ledger).append([  # a legacy draft: imported without combo or model
        {"type": "generation.created", "data": {"cohort_id": "legacy", "stage": "draft", "gen_id": "d_legacy1",
                                                "template_id": "creative-synthesis-v10"}},
        {"type": "generation.reused", "data": {"cohort_id": "cohort-a", "stage": "draft", "gen_id": "d_legacy1",
                                               "reason": "curated"}}])
    result = env.run([cohort_membership.key, cohort_scores.key], "cohort-a")
    assert failed_checks(result) == {"cohort_members_complete":
                                     "1 of 12 member(s) fail: d_legacy1: no combo_id, llm_model_id"}
    assert materialized(result) == ["cohort_membership"]  # cohort_scores did not run


def test_parent_outside_the_cohort_blocks_downstream(env: Env) -> None:
    assert env.run([cohort_membership.key], "cohort-a").success
    scope = CohortScope.open(env.ledger)
    essay = scope.active_stage_gen_ids("cohort-a", "essay")[0]
    orphans = sorted(m["gen_id"] for m in scope.members("cohort-a", "evaluation") if m["parent_gen_id"] == essay)
    Ledger.open(env.ledger).append([{"type": "generation.removed", "data": {
        "cohort_id": "cohort-a", "stage": "essay", "gen_id": essay, "reason": "judged off-topic"}}])
    result = env.run([cohort_membership.key, cohort_scores.key], "cohort-a")
    description = failed_checks(result)["cohort_members_complete"]
    assert len(orphans) == 2 and description.startswith("2 of ")
    for gen in orphans:
        assert f"{gen}: parent {essay} is not an active essay of cohort cohort-a" in description
    assert materialized(result) == ["cohort_membership"]


def test_pinned_hash_mismatch_blocks_downstream(env: Env) -> None:
    assert env.run([cohort_membership.key], "cohort-a").success
    real = next(iter(Ledger.open(env.ledger).read(3, 3))).hash
    pinned = ledger_checks(cohort_membership, pins=["3:" + "0" * 64])
    result = env.run([cohort_membership.key, cohort_scores.key], "cohort-a", asset_checks=pinned)
    assert failed_checks(result)["ledger_chain_verifies"].startswith(f"seq 3 has hash {real}, not the pinned {'0' * 64}")
    assert materialized(result) == ["cohort_membership"]
    good = ledger_checks(cohort_membership, pins=[f"3:{real}"])
    assert env.run([cohort_membership.key, cohort_scores.key], "cohort-a", asset_checks=good).success
    with pytest.raises(InvalidInputError, match="is not SEQ:HASH"):
        ledger_checks(cohort_membership, pins=["3-abc"])


def test_stale_projections_fail_their_check(env: Env) -> None:
    assert env.run([cohort_membership.key], "cohort-a").success
    projection_keys = [dg.AssetKey("ledger_manifest"), dg.AssetKey("ledger_membership")]
    assert env.run(projection_keys).success
    head = Ledger.open(env.ledger).head
    Ledger.open(env.ledger).append([{"type": "cohort.opened", "data": {"cohort_id": "cohort-c"}}])
    # the overview reads the projection files: a stale set must not reach it
    result = env.run([], selection=dg.AssetSelection.assets(cohort_overview)
                     | dg.AssetSelection.checks_for_assets(*projection_keys))
    assert failed_checks(result) == {"projections_current": f"projections in {env.data} are at seq {head.seq}, "
                                                           f"the ledger's head is seq {head.seq + 1}"}
    assert materialized(result) == []
    assert env.run(projection_keys + [cohort_overview.key]).success  # rebuilt: current again


def test_a_corrupt_chain_is_named_by_seq(env: Env) -> None:
    assert env.run([cohort_membership.key], "cohort-a").success
    log = env.ledger / "events.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    lines[4] = lines[4].replace(b'"replicate":1', b'"replicate":2')
    log.write_bytes(b"".join(lines))
    assert (chain_problem(Ledger.open(env.ledger)) or "").startswith("events.jsonl is corrupt at seq 5:")
    result = env.run([], selection=dg.AssetSelection.checks_for_assets(cohort_membership))
    failed = failed_checks(result)
    assert failed.keys() == {"ledger_chain_verifies", "cohort_members_complete"}
    assert all(d.startswith("events.jsonl is corrupt at seq 5:") for d in failed.values())

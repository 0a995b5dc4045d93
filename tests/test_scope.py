"""CohortScope: the same answers from a ledger and from a projection directory; the reporting filter."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.builders import created
from ledger import InvalidInputError, Ledger
from ledger.cohorts.scope import CohortScope
import projections

S = pa.string()
MEMBERSHIP_SCHEMA = pa.schema([("cohort_id", S), ("stage", S), ("gen_id", S), ("origin_cohort_id", S),
                               ("reused", pa.bool_()), ("added_seq", pa.int64())])


def reused(cohort: str, stage: str, gid: str) -> dict:
    return {"type": "generation.reused", "data": {"cohort_id": cohort, "stage": stage, "gen_id": gid, "reason": "manual"}}


def story(ledger: Ledger) -> None:
    """seq 1..5: cohort A; 6..11: B reuses e1, v1, v2, creates v3, drops v1; 12: v1 materialized; 13: C opened."""
    ledger.append([created("A", "draft", "d1", combo_id="c1", llm_model_id="m1"),
                   created("A", "essay", "e1", parent="d1", llm_model_id="m1", mode="llm"),
                   created("A", "evaluation", "v1", parent="e1", llm_model_id="m1"),
                   created("A", "evaluation", "v2", parent="e1", llm_model_id="m1", replicate=2),
                   {"type": "cohort.opened", "data": {"cohort_id": "B"}}])
    ledger.append([reused("B", "essay", "e1"), reused("B", "evaluation", "v1")])
    ledger.append([created("B", "evaluation", "v3", parent="e1", llm_model_id="m2")])
    ledger.append([{"type": "generation.removed",
                    "data": {"cohort_id": "B", "stage": "evaluation", "gen_id": "v1", "reason": "bad"}}])
    ledger.append([reused("B", "evaluation", "v2")])
    ledger.append([{"type": "generation.removed",
                    "data": {"cohort_id": "A", "stage": "evaluation", "gen_id": "v2", "reason": "dup"}}])
    ledger.append([{"type": "generation.materialized", "data": {"cohort_id": "A", "stage": "evaluation",
                                                                "gen_id": "v1", "artifacts": {"raw": "0" * 64}}}])
    ledger.append([{"type": "cohort.opened", "data": {"cohort_id": "C"}}])


def write_projection(out: Path, origin_columns: tuple[str, ...]) -> None:
    """The projection of `story`, written by hand in the contract's schema (origin key per rename phase)."""
    out.mkdir()
    cols = [("stage", S), ("gen_id", S), *((c, S) for c in origin_columns), ("template_id", S), ("combo_id", S),
            ("llm_model_id", S), ("parent_gen_id", S), ("replicate", pa.int64()), ("mode", S),
            ("created_seq", pa.int64()), ("materialized", pa.bool_())]
    rows = [  # stage, gen_id, origin, template, combo, model, parent, replicate, mode, created_seq, materialized
        ("draft", "d1", "A", "t1", "c1", "m1", None, 1, None, 1, False),
        ("essay", "e1", "A", "t1", None, "m1", "d1", 1, "llm", 2, False),
        ("evaluation", "v1", "A", "t1", None, "m1", "e1", 1, None, 3, True),
        ("evaluation", "v2", "A", "t1", None, "m1", "e1", 2, None, 4, False),
        ("evaluation", "v3", "B", "t1", None, "m2", "e1", 1, None, 8, False),
    ]
    wide = [(r[0], r[1], *([r[2]] * len(origin_columns)), *r[3:]) for r in rows]
    pq.write_table(pa.Table.from_pylist([dict(zip([c for c, _ in cols], r)) for r in wide], schema=pa.schema(cols)),
                   out / "manifest.parquet")
    members = [("A", "draft", "d1", "A", False, 1), ("A", "essay", "e1", "A", False, 2),
               ("A", "evaluation", "v1", "A", False, 3),
               ("B", "essay", "e1", "A", True, 6), ("B", "evaluation", "v2", "A", True, 10),
               ("B", "evaluation", "v3", "B", False, 8)]
    pq.write_table(pa.Table.from_pylist([dict(zip(MEMBERSHIP_SCHEMA.names, m)) for m in members],
                                        schema=MEMBERSHIP_SCHEMA), out / "membership.parquet")
    key_names = {"cohort_id": list(origin_columns), **{k: [k] for k in ("template_id", "combo_id", "llm_model_id",
                                                                        "parent_gen_id", "replicate", "mode")}}
    (out / "_projection.json").write_text(json.dumps({"seq": 13, "key_names": key_names, "cohorts": ["A", "B", "C"]}))


def answers(scope: CohortScope, cohorts=("A", "B", "C", "nope"), gens=("d1", "e1", "v1", "v2", "v3")) -> dict:
    """Every query of the API, over every cohort/stage/gen of the story. The two a projection
    scope answers without loading its files come first, so both of its paths are compared."""
    stages = ("draft", "essay", "evaluation")
    return {
        "active": {(c, s): scope.active_stage_gen_ids(c, s) for c in cohorts for s in stages},
        "origin": {g: _origin_or_error(scope, g) for g in gens},
        "cohorts": scope.cohorts(),
        "origin again": {g: _origin_or_error(scope, g) for g in gens},
        "reused": {(c, g): scope.is_reused(c, g) for c in cohorts for g in gens},
        "members": {(c, s): scope.members(c, s) for c in cohorts for s in (None, *stages)},
    }


def _origin_or_error(scope: CohortScope, gen_id: str) -> dict | str:
    try:
        return scope.origin_metadata(gen_id)
    except InvalidInputError as exc:
        return str(exc)


def test_a_projection_scope_reads_only_what_the_two_pipeline_queries_need(ledger: Ledger, tmp_path: Path) -> None:
    story(ledger)
    projections.build(ledger.path, tmp_path / "proj")
    scope = CohortScope.from_projection(tmp_path / "proj")
    assert scope.active_stage_gen_ids("B", "evaluation") == CohortScope.from_ledger(ledger).active_stage_gen_ids(
        "B", "evaluation")
    assert scope.origin_metadata("d1")["gen_id"] == "d1"
    assert not {"_gens", "_members"} & set(vars(scope))  # neither file was loaded whole


@pytest.mark.parametrize("origin_columns", [("cohort_id",), ("cohort_id", "origin_cohort_id"), ("origin_cohort_id",)])
def test_ledger_and_projection_agree(ledger: Ledger, tmp_path: Path, origin_columns) -> None:
    story(ledger)
    write_projection(tmp_path / "proj", origin_columns)
    from_ledger = CohortScope.from_ledger(ledger)
    from_projection = CohortScope.open(tmp_path / "proj")
    assert from_ledger.seq == from_projection.seq == 13
    got = answers(from_ledger)
    assert got == answers(from_projection)
    assert got["cohorts"] == ["A", "B", "C"]  # C: opened, never a member; still a cohort
    assert got["active"][("B", "evaluation")] == ["v2", "v3"] and got["active"][("A", "evaluation")] == ["v1"]
    assert got["active"][("nope", "draft")] == []
    assert got["reused"][("B", "e1")] and got["reused"][("B", "v2")]
    assert not got["reused"][("B", "v3")] and not got["reused"][("B", "v1")] and not got["reused"][("A", "e1")]
    assert got["origin"]["v1"]["materialized"] and got["origin"]["v3"]["origin_cohort_id"] == "B"
    assert [(m["gen_id"], m["origin_cohort_id"], m["reused"], m["added_seq"]) for m in got["members"][("B", None)]] == [
        ("e1", "A", True, 6), ("v2", "A", True, 10), ("v3", "B", False, 8)]
    with pytest.raises(InvalidInputError, match="unknown"):
        from_ledger.origin_metadata("zzz")


def test_missing_projection_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="_projection.json is missing: run `cohort-ledger build` first"):
        CohortScope.from_projection(tmp_path)


def test_projection_without_rename_state_says_rebuild(ledger: Ledger, tmp_path: Path) -> None:
    story(ledger)
    write_projection(tmp_path / "proj", ("cohort_id",))
    (tmp_path / "proj" / "_projection.json").write_text('{"seq": 13}')
    with pytest.raises(InvalidInputError, match="does not record the rename state and cohorts.*rebuild"):
        CohortScope.from_projection(tmp_path / "proj")


def test_filter_pyarrow(ledger: Ledger) -> None:
    story(ledger)
    scope = CohortScope.from_ledger(ledger)
    scores = pa.table({"gen_id": ["v1", "v2", None, "v3", "v9", "e1", "v2"], "score": [1, 2, 3, 4, 5, 6, 7]})
    assert scope.filter(scores, "B").to_pydict() == {"gen_id": ["v2", "v3", "e1", "v2"], "score": [2, 4, 6, 7]}
    assert scope.filter(scores, "B", stage="evaluation")["score"].to_pylist() == [2, 4, 7]
    assert scope.filter(scores, "C").num_rows == 0
    encoded = pa.table({"evaluation_gen": pa.array(["v3", "v1", "v3"]).dictionary_encode(), "x": [1, 2, 3]})
    assert scope.filter(encoded, "B", gen_id_column="evaluation_gen")["x"].to_pylist() == [1, 3]
    large = pa.table({"gen_id": pa.array(["v1", "v3"], type=pa.large_string())})
    assert scope.filter(large, "B")["gen_id"].to_pylist() == ["v3"]
    with pytest.raises(InvalidInputError, match="no column 'gid'"):
        scope.filter(scores, "B", gen_id_column="gid")
    with pytest.raises(TypeError):
        scope.filter([{"gen_id": "v1"}], "B")


def test_filter_pandas(ledger: Ledger) -> None:
    story(ledger)
    df = pd.DataFrame({"gen_id": ["v1", "v2", "v3", None], "score": [1, 2, 3, 4]})
    out = CohortScope.from_ledger(ledger).filter(df, "B", stage="evaluation")
    assert out["score"].tolist() == [2, 3]


events = st.lists(st.tuples(st.sampled_from(["create", "reuse", "remove", "materialize"]),
                            st.sampled_from("ABC"), st.integers(0, 5)), max_size=40)


@settings(max_examples=15, deadline=None)
@given(ops=events)
def test_real_build_agrees_with_ledger(tmp_path_factory, ops) -> None:
    ledger = Ledger.init(tmp_path_factory.mktemp("l") / "ledger")
    ledger.append([created("A", "draft", "d0", combo_id="c")])
    for op, cohort, n in ops:
        state = ledger.state
        gid = f"d{n}"
        gen = state.generations.get(gid)
        if op == "create" and gen is None:
            ev = created(cohort, "draft", gid, combo_id="c", replicate=n + 1)
        elif gen is None:
            continue
        elif op == "reuse":
            ev = reused(cohort, "draft", gid)
        elif op == "remove" and state.is_member(cohort, gid):
            ev = {"type": "generation.removed", "data": {"cohort_id": cohort, "stage": "draft", "gen_id": gid,
                                                         "reason": "r"}}
        elif op == "materialize":
            ev = {"type": "generation.materialized",
                  "data": {"cohort_id": cohort, "stage": "draft", "gen_id": gid, "artifacts": {}}}
        else:
            continue
        ledger.append([ev])
    out = ledger.path.parent / "proj"
    projections.build(ledger.path, out_dir=out)
    gens = tuple(ledger.state.generations)
    assert answers(CohortScope.from_projection(out), gens=gens) == answers(CohortScope.from_ledger(ledger), gens=gens)


RENAME_TARGETS = ("origin_cohort_id", "cohort_id", "template_id", "tmpl", "model", "parent")


@settings(max_examples=25, deadline=None)
@given(ops=st.lists(st.one_of(
    st.tuples(st.just("rename"), st.sampled_from(["cohort_id", "origin_cohort_id", "template_id", "tmpl",
                                                  "llm_model_id", "model", "parent_gen_id"]),
              st.sampled_from(RENAME_TARGETS), st.sampled_from(["alias", "final"])),
    st.tuples(st.just("open"), st.sampled_from("ABCD"), st.none(), st.none()),
    st.tuples(st.sampled_from(["create", "reuse", "remove"]), st.sampled_from("ABC"), st.integers(0, 4), st.none()),
), max_size=30))
def test_scope_from_projection_equals_scope_from_ledger_after_renames(tmp_path_factory, ops) -> None:
    """Random legal rename sequences (a rename the fold refuses is skipped), empty cohorts, memberships:
    the projection's scope finds every key's column through `_projection.json`, whatever it is called."""
    import projections

    from ledger import EventRejected

    ledger = Ledger.init(tmp_path_factory.mktemp("l") / "ledger")
    ledger.append([created("A", "draft", "d0", combo_id="c", llm_model_id="m"),
                   created("B", "essay", "e0", parent="d0", llm_model_id="m2")])
    for op, a, b, c in ops:
        state = ledger.state
        if op == "rename":
            ev = {"type": "metadata.key_renamed", "data": {"old_key": a, "new_key": b, "phase": c}}
        elif op == "open":
            ev = {"type": "cohort.opened", "data": {"cohort_id": a}}
        elif op == "create":
            ev = created(a, "draft", f"d{b}", combo_id="c", llm_model_id=f"m{b}", replicate=b + 1)
        elif op == "reuse":
            ev = reused(a, "draft", f"d{b}")
        else:
            ev = {"type": "generation.removed", "data": {"cohort_id": a, "stage": "draft", "gen_id": f"d{b}",
                                                         "reason": "r"}}
        try:
            ledger.append([ev])
        except EventRejected:
            continue
    out = ledger.path.parent / "proj"
    projections.build(ledger.path, out_dir=out)
    gens = tuple(ledger.state.generations)
    cohorts = ("A", "B", "C", "D")
    from_projection, from_ledger = CohortScope.from_projection(out), CohortScope.from_ledger(ledger)
    assert answers(from_projection, cohorts=cohorts, gens=gens) == answers(from_ledger, cohorts=cohorts, gens=gens)
    assert {g: from_projection.origin_metadata(g)["origin_cohort_id"] for g in gens} == {
        g: gen.origin_cohort_id for g, gen in ledger.state.generations.items()}

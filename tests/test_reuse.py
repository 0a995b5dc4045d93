"""The skip-existing planner: properties over random ledgers, apply/conflict, and the `reuse` CLI."""

from __future__ import annotations

import itertools
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.builders import created, jsonl, run_cli
from ledger import ConflictError, InvalidInputError, Ledger, LedgerConfig, State
from ledger.domain.ids import collision_gen_id, gen_id
from ledger.cohorts.reuse import Wanted, apply_plan, plan_and_apply, plan_reuse, read_wanted

ORIGINS = ("A", "B", "C", "T")
SIGS = [{"parent_gen_id": e, "template_id": t, "llm_model_id": "m1"} for e in ("e1", "e2") for t in ("t1", "T2")]


def fold(events: list[dict]) -> State:
    """The real fold, without a disk: each event applied exactly as the store would."""
    state = State(LedgerConfig.new())
    for seq, ev in enumerate(events, 1):
        state.apply(ev["type"], ev["data"], seq, f"id{seq}", "2026-01-01T00:00:00.000000Z")
    return state


def base_events() -> list[dict]:
    return [created("X", "draft", "d1", combo_id="c1"), created("X", "essay", "e1", parent="d1"),
            created("X", "essay", "e2", parent="d1")]


def evaluation(origin: str, gid: str, sig: dict, replicate: int) -> dict:
    data = {"cohort_id": origin, "stage": "evaluation", "gen_id": gid, **sig, "replicate": replicate}
    return {"type": "generation.created", "data": data}


@st.composite
def scenarios(draw):
    """Existing evaluations (deterministic or legacy ids, any origin), a target T's history, a wanted list."""
    events = base_events()
    gens: list[dict] = []
    taken: set[str] = set()
    for n in range(draw(st.integers(0, 14))):
        sig = SIGS[draw(st.integers(0, len(SIGS) - 1))]
        rep = draw(st.integers(1, 6))
        gid = gen_id("evaluation", **sig, replicate=rep) if draw(st.booleans()) else f"v_legacy{n}"
        if gid in taken:
            continue
        taken.add(gid)
        ev = evaluation(draw(st.sampled_from(ORIGINS)), gid, sig, rep)
        events.append(ev)
        gens.append(ev["data"])
    for g in gens:  # some reused into T, some of those removed again
        if g["cohort_id"] != "T" and draw(st.booleans()):
            events.append({"type": "generation.reused",
                           "data": {"cohort_id": "T", "stage": "evaluation", "gen_id": g["gen_id"], "reason": "manual"}})
            if draw(st.integers(0, 3)) == 0:
                events.append({"type": "generation.removed",
                               "data": {"cohort_id": "T", "stage": "evaluation", "gen_id": g["gen_id"], "reason": "x"}})
    chosen = draw(st.lists(st.integers(0, len(SIGS) - 1), unique=True, max_size=len(SIGS)))
    wanted = [Wanted(dict(SIGS[i]), draw(st.integers(0, 6))) for i in chosen]
    allowed = draw(st.none() | st.sets(st.sampled_from(ORIGINS)))
    return events, wanted, allowed


def _key(gen) -> tuple:
    return (gen.parent_gen_id.lower(), gen.template_id.lower(), gen.llm_model_id.lower())


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_planner_invariants(scenario) -> None:
    events, wanted, allowed = scenario
    state = fold(events)
    plan = plan_reuse(state, "T", "evaluation", wanted, allowed)
    assert plan.seq == state.seq and plan.cohort_id == "T"
    members = state.cohorts["T"].members if "T" in state.cohorts else {}
    created_ids = [c.gen_id for c in plan.create]
    assert len(set(created_ids)) == len(created_ids)
    assert not set(created_ids) & set(state.generations)
    assert len({r.gen_id for r in plan.reuse}) == len(plan.reuse)
    for sp, w in zip(plan.signatures, wanted, strict=True):
        assert sp.wanted == w
        same = [g for g in state.generations.values()
                if g.stage == "evaluation" and _key(g) == tuple(v.lower() for v in w.signature.values())]
        active = {g.gen_id for g in same if g.gen_id in members}
        assert set(sp.active) == active
        # reuse + already active + create = wanted (active beyond the wanted count is left alone)
        assert len(sp.reuse) + len(active) + len(sp.create) == max(w.replicates, len(active))
        candidates = sorted((g for g in same if g.gen_id not in members
                             and (allowed is None or g.origin_cohort_id in allowed)),
                            key=lambda g: (g.replicate, g.gen_id))
        # only allowed, non-member gens; the lowest replicates first
        assert [r.gen_id for r in sp.reuse] == [g.gen_id for g in candidates[:len(sp.reuse)]]
        if sp.create:
            assert len(sp.reuse) == len(candidates)  # nothing left that could have been reused
        used = {g.replicate for g in same}
        free = (r for r in itertools.count(1)
                if r not in used and gen_id("evaluation", **w.signature, replicate=r) not in state.generations)
        assert [c.replicate for c in sp.create] == list(itertools.islice(free, len(sp.create)))
        for c in sp.create:
            assert c.gen_id == gen_id("evaluation", **w.signature, replicate=c.replicate)
        for r in sp.reuse:
            gen = state.generations[r.gen_id]
            assert r.matched_on == {**{k: getattr(gen, k) for k in w.signature}, "replicate": gen.replicate}


@settings(max_examples=25, deadline=None)
@given(scenarios())
def test_apply_then_replan_is_settled(tmp_path_factory, scenario) -> None:
    events, wanted, allowed = scenario
    led = Ledger.init(tmp_path_factory.mktemp("l") / "ledger")
    led.append(events)
    plan = plan_reuse(led.state, "T", "evaluation", wanted, allowed)
    seqs = apply_plan(led, plan)
    assert len(seqs) == len(plan.reuse) and (not seqs or seqs[0] == plan.seq + 1)
    written = list(led.read(plan.seq + 1))
    assert [e.data["gen_id"] for e in written] == [r.gen_id for r in plan.reuse]
    assert all(e.data["reason"] == "skip-existing" and e.txn == (plan.seq + 1, len(seqs)) for e in written)
    again = plan_reuse(led.state, "T", "evaluation", wanted, allowed)
    assert again.reuse == [] and again.create == plan.create


def test_conflict_writes_nothing_and_replanning_recovers(ledger: Ledger) -> None:
    sig = SIGS[0]
    ledger.append([*base_events(), evaluation("A", "v_a1", sig, 1), evaluation("A", "v_a2", sig, 2)])
    plan = plan_reuse(ledger.state, "T", "evaluation", [Wanted(dict(sig), 1)])
    ledger.append([{"type": "generation.reused",
                    "data": {"cohort_id": "T", "stage": "evaluation", "gen_id": "v_a2", "reason": "manual"}}])
    head = ledger.head
    with pytest.raises(ConflictError):
        apply_plan(ledger, plan)
    assert ledger.head == head
    replanned, seqs = plan_and_apply(ledger, "T", "evaluation", [Wanted(dict(sig), 2)])
    assert [r.gen_id for r in replanned.reuse] == ["v_a1"] and seqs == [head.seq + 1]


def test_planner_refusals(ledger: Ledger) -> None:
    ledger.append([*base_events(), {"type": "cohort.sealed", "data": {"cohort_id": "X"}}])
    state = ledger.state
    with pytest.raises(InvalidInputError, match="sealed"):
        plan_reuse(state, "X", "essay", [Wanted({"parent_gen_id": "d1", "template_id": "t1"}, 1)])
    with pytest.raises(InvalidInputError, match="wanted twice"):
        plan_reuse(state, "T", "essay", [Wanted({"parent_gen_id": "d1", "template_id": "t1"}, 1),
                                         Wanted({"parent_gen_id": "D1", "template_id": "t1"}, 1)])
    with pytest.raises(InvalidInputError, match="no signature scheme"):
        plan_reuse(state, "T", "summary", [])


WANTED_HEADER = "parent_gen_id,template_id,llm_model_id,replicates\n"


@pytest.mark.parametrize(("body", "where"), [
    ("parent_gen_id,template_id,replicates\ne1,t1,2\n", ":1: column 'llm_model_id' is missing"),
    ("parent_gen_id,template_id,llm_model_id,replicates,x\n", ":1: unknown column 'x'"),
    (WANTED_HEADER + "e1,t1,m1,2\ne1,t1,m1,two\n", ":3: column 'replicates'"),
    (WANTED_HEADER + "e1,../t,m1,2\n", ":2: column 'template_id'"),
    (WANTED_HEADER + "e1,t1,m1\n", ":2: 3 cells"),
    (WANTED_HEADER + "e1,t1,m1,1\nE1,t1,m1,2\n", ":3: signature repeats line 2"),
    ("", "empty file"),
])
def test_bad_wanted_csv(tmp_path: Path, body: str, where: str) -> None:
    path = tmp_path / "wanted.csv"
    path.write_text(body)
    with pytest.raises(InvalidInputError) as err:
        read_wanted(path, "evaluation")
    assert str(err.value).startswith(str(path)) and where in str(err.value)


def test_reuse_cli(tmp_path: Path) -> None:
    led = tmp_path / "l"
    Ledger.init(led).append([*base_events(), evaluation("A", "v_a1", SIGS[0], 1), evaluation("C", "v_c2", SIGS[0], 2),
                             evaluation("A", "v_b1", SIGS[1], 1)])
    wanted = tmp_path / "wanted.csv"
    wanted.write_text(WANTED_HEADER + "e1,t1,m1,3\ne1,T2,m1,1\ne2,t1,m1,1\n")
    args = ("reuse", "--cohort", "T", "--stage", "evaluation", "--wanted", str(wanted), "--allow-origin", "A")
    dry = run_cli(*args, "--json", ledger=led)
    assert dry.returncode == 0, dry.stderr
    out = orjson.loads(dry.stdout)
    assert [r["gen_id"] for r in out["reuse"]] == ["v_a1", "v_b1"]
    assert [(c["parent_gen_id"], c["template_id"], c["replicate"]) for c in out["create"]] == [
        ("e1", "t1", 3), ("e1", "t1", 4), ("e2", "t1", 1)]
    assert out["create"][0]["gen_id"] == gen_id("evaluation", **SIGS[0], replicate=3)
    assert Ledger.open(led).head.seq == 6  # a plan writes nothing
    applied = run_cli(*args, "--apply", ledger=led)
    assert applied.returncode == 0, applied.stderr
    assert b"2 to reuse, 3 to create" in applied.stdout and b"appended 2" in applied.stdout
    events = list(Ledger.open(led).read(7))
    assert [(e.type, e.data["gen_id"], e.data["matched_on"]["replicate"]) for e in events] == [
        ("generation.reused", "v_a1", 1), ("generation.reused", "v_b1", 1)]
    assert events[0].by["source"] == "cli"


def test_reuse_cli_bad_input_exit_2(tmp_path: Path) -> None:
    led = tmp_path / "l"
    assert run_cli("init", ledger=led).returncode == 0
    assert run_cli("append", ledger=led, stdin=jsonl(*base_events(), {"type": "cohort.sealed",
                                                                     "data": {"cohort_id": "X"}})).returncode == 0
    wanted = tmp_path / "w.csv"
    wanted.write_text("parent_gen_id,template_id,replicates\nd1,t1,x\n")
    r = run_cli("reuse", "--cohort", "T", "--stage", "essay", "--wanted", str(wanted), "--apply", ledger=led)
    assert r.returncode == 2 and f"{wanted}:2: column 'replicates'".encode() in r.stderr
    wanted.write_text("parent_gen_id,template_id,replicates\nd1,t1,1\n")
    r = run_cli("reuse", "--cohort", "X", "--stage", "essay", "--wanted", str(wanted), "--apply", ledger=led)
    assert r.returncode == 2 and b"sealed" in r.stderr
    assert Ledger.open(led).head.seq == 4


def test_unreadable_wanted_csv(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="missing.csv: cannot read"):
        read_wanted(tmp_path / "missing.csv", "essay")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("parent_gen_id,template_id,replicates\nd1,caf\xe9,1\n".encode("latin-1"))
    with pytest.raises(InvalidInputError, match="latin.csv: not UTF-8"):
        read_wanted(latin, "essay")


def test_an_id_held_by_another_signature_gets_the_collision_suffix() -> None:
    """A legacy gen sits on the id replicate 1 of T2 would get: the new one is `…-1`, as the pipeline names it."""
    sig = SIGS[1]
    squatter = gen_id("evaluation", **sig, replicate=1)
    state = fold(base_events() + [evaluation("A", squatter, SIGS[0], 5)])
    plan = plan_reuse(state, "T", "evaluation", [Wanted(sig, 2)])
    assert [(c.gen_id, c.replicate) for c in plan.create] == [
        (collision_gen_id("evaluation", 1, **sig, replicate=1), 1), (gen_id("evaluation", **sig, replicate=2), 2)]
    assert plan.create[0].gen_id.endswith("-1") and plan.create[0].gen_id not in state.generations

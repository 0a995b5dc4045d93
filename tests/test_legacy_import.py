"""import-legacy: a data root in any shape becomes the events that reproduce it, or a problem list."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import orjson
import pytest
from helpers.builders import REFERENCE, jsonl, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from helpers.legacy_root import CSV_SHAPES, META_SHAPES, SourceGen, write_root

from ledger import Ledger
from ledger.legacy import LegacyProblems, SourceDisagrees, apply_import, import_event_id, plan_import

POOL = ["A", "best_novelty_all_evals", "c-2", "c.3", "lost-drafts"]


def members_by_cohort(ledger: Ledger) -> dict[str, set[tuple[str, str]]]:
    state = ledger.state
    return {c: {(state.generations[g].stage, g) for g in coh.members}
            for c, coh in state.cohorts.items() if coh.members}


def source_members(gens: dict[str, SourceGen], cohorts: dict[str, list[str]]) -> dict[str, set[tuple[str, str]]]:
    return {c: {(gens[g].stage, g) for g in ms} for c, ms in cohorts.items() if ms}


def do_import(ledger: Ledger, root: Path) -> list[int]:
    plan = plan_import(ledger.state, root)
    plan.raise_for_problems()
    return apply_import(ledger, plan)


# -- the reference data root --------------------------------------------------------------

def test_reference_root_reproduced(tmp_path: Path, ledger: Ledger) -> None:
    do_import(ledger, REFERENCE / "data")
    state = ledger.state
    assert members_by_cohort(ledger) == {"best_novelty_all_evals": {
        ("draft", "d_5ezrffv9uf3lr37d"), ("essay", "e_sq5klak2lljyyom"), ("evaluation", "v_2pzejj5kr4xwdzil")}}
    g1 = state.generations["G1"]  # the compact legacy file, listed in no membership.csv
    assert g1.metadata() == {"stage": "draft", "gen_id": "G1", "cohort_id": "lost-drafts",
                             "template_id": "draft-template", "combo_id": "combo_v1_123", "llm_model_id": "model-x",
                             "parent_gen_id": None, "replicate": 1, "mode": "llm"}
    assert "lost-drafts" in state.cohorts and not state.cohorts["lost-drafts"].members  # a header-only CSV
    events = list(ledger.read())
    # three files use origin_cohort_id only (today's pipeline), G1 cohort_id only: the root is at `final`
    assert [e.type for e in events] == ["metadata.key_renamed"] * 2 + [
        "generation.created", "generation.removed"] + ["generation.created"] * 3
    assert [e.data["phase"] for e in events[:2]] == ["alias", "final"]
    assert state.key_names["cohort_id"] == ("origin_cohort_id",)
    assert {e.txn for e in events} == {(1, 7)} and all(e.by == {"source": "import-legacy"} for e in events)
    assert events[3].data["reason"] == "imported"


def test_reference_8col_lists_gens_without_metadata(tmp_path: Path, ledger: Ledger) -> None:
    root = tmp_path / "data"
    shutil.copytree(REFERENCE / "data", root)
    shutil.copy(REFERENCE / "wide" / "membership-8col.csv", root / "cohorts" / "best_novelty_all_evals" / "membership.csv")
    plan = plan_import(ledger.state, root)
    missing = {p.gen_id for p in plan.problems if "no gens/evaluation" in p.message}
    assert missing == {"v_k3s0ttepl5hdxhi", "v_4xdwfjt7penqwg2g", "v_1fo1pv48lzrkhwlh"}
    assert len(plan.problems) == 3 and plan.events == []


def test_reference_7col_with_its_metadata(tmp_path: Path, ledger: Ledger) -> None:
    """The 7-column file repeats combo-1 on an essay whose metadata has none: not a contradiction."""
    root = tmp_path / "data"
    write_root(root, [SourceGen("draft", "D100", "C-COPY", "links-vX", combo="combo-1", model="gen-1"),
                      SourceGen("essay", "E100", "C-COPY", "parsed-from-links-v1", parent="D100", model="gen-1",
                                mode="copy", meta_shape="legacy")], {})
    (root / "cohorts" / "C-COPY").mkdir(parents=True)
    shutil.copy(REFERENCE / "wide" / "membership-7col.csv", root / "cohorts" / "C-COPY" / "membership.csv")
    do_import(ledger, root)
    assert members_by_cohort(ledger) == {"C-COPY": {("draft", "D100"), ("essay", "E100")}}
    assert ledger.state.generations["E100"].combo_id is None
    assert ledger.state.generations["E100"].mode == "copy"


# -- any data root: hypothesis ------------------------------------------------------------

@st.composite
def data_roots(draw: st.DrawFn) -> tuple[list[SourceGen], dict[str, list[str]], dict[str, str]]:
    cohorts = draw(st.lists(st.sampled_from(POOL), min_size=1, max_size=4, unique=True))
    ids = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)
    gens: list[SourceGen] = []
    counts = {"draft": draw(st.integers(1, 5)), "essay": draw(st.integers(0, 6)), "evaluation": draw(st.integers(0, 6))}
    for stage, prefix, parent_stage in (("draft", "d_", None), ("essay", "e_", "draft"), ("evaluation", "v_", "essay")):
        parents = [g for g in gens if g.stage == parent_stage]
        if parent_stage and not parents:
            break
        for gid in draw(st.lists(ids, min_size=counts[stage], max_size=counts[stage], unique=True)):
            shape = draw(st.sampled_from(META_SHAPES))
            parent = draw(st.sampled_from(parents)) if parents else None
            # a builder-era file repeats its draft's combo_id on every stage, and the ledger records it
            combo = (draw(st.sampled_from(["combo_1", "combo_2"])) if parent is None
                     else parent.combo if shape == "builder" else None)
            g = SourceGen(stage, prefix + gid, draw(st.sampled_from(cohorts)), draw(st.sampled_from(["t1", "t-2", "t.3"])),
                          combo=combo, model=draw(st.sampled_from([None, "gemini_25_pro", "sonnet-4"])),
                          parent=parent.gen_id if parent else None, replicate=draw(st.integers(1, 3)),
                          mode=draw(st.sampled_from([None, "llm", "copy"])), meta_shape=shape)
            gens.append(g)
    members: dict[str, list[str]] = {c: [] for c in cohorts}
    for g in gens:
        for c in draw(st.sets(st.sampled_from(cohorts))):
            members[c].append(g.gen_id)
    # a cohort may have no membership.csv at all (then none of its origins are listed there)
    files = {c: ms for c, ms in members.items() if ms or draw(st.booleans())}
    shapes = {c: draw(st.sampled_from(CSV_SHAPES)) for c in files}
    return gens, files, shapes


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data_roots())
def test_import_reproduces_any_root(root_model: tuple[list[SourceGen], dict[str, list[str]], dict[str, str]]) -> None:
    gens, cohorts, shapes = root_model
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        by_id = write_root(root, gens, cohorts, shapes)
        ledger = Ledger.init(Path(tmp) / "ledger")
        do_import(ledger, root)
        reopened = Ledger.open(Path(tmp) / "ledger")
        assert members_by_cohort(reopened) == source_members(by_id, cohorts)
        assert {g: gen.metadata() for g, gen in reopened.state.generations.items()} == {
            g.gen_id: g.metadata() for g in gens}
        before = (Path(tmp) / "ledger" / "events.jsonl").read_bytes()
        assert plan_import(reopened.state, root).events == []
        assert (Path(tmp) / "ledger" / "events.jsonl").read_bytes() == before


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data_roots(), st.data())
def test_synced_reimport_of_shrunk_cohorts_reproduces_the_source(
        root_model: tuple[list[SourceGen], dict[str, list[str]], dict[str, str]], data: st.DataObject) -> None:
    """Re-run cohorts with fewer gens (maybe none): the dropped ones are `stale`; `--sync` removes
    exactly those, and the ledger's memberships equal the shrunk source's, empty cohorts included."""
    gens, cohorts, shapes = root_model
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        by_id = write_root(root, gens, cohorts, shapes)
        ledger = Ledger.init(Path(tmp) / "ledger")
        do_import(ledger, root)
        shrunk = {c: [g for g in ms if data.draw(st.booleans())] for c, ms in cohorts.items()}
        for c, ms in shrunk.items():
            (root / "cohorts" / c / "membership.csv").unlink()
        write_root(root, gens, shrunk, shapes)
        dropped = {(c, g) for c in cohorts for g in set(cohorts[c]) - set(shrunk[c])}
        plan = plan_import(ledger.state, root)
        assert {(s.cohort_id, s.gen_id) for s in plan.stale} == dropped
        if dropped:
            with pytest.raises(SourceDisagrees):
                apply_import(ledger, plan)
        apply_import(ledger, plan_import(ledger.state, root, sync=True))
        state = Ledger.open(Path(tmp) / "ledger").state
        assert members_by_cohort(Ledger.open(Path(tmp) / "ledger")) == source_members(by_id, shrunk)
        assert set(shrunk) <= set(state.cohorts)  # an emptied cohort still exists (header-only CSV)
        assert plan_import(state, root).events == [] and plan_import(state, root).stale == []


def test_events_come_parents_first_then_stage_then_gen_id(tmp_path: Path, ledger: Ledger) -> None:
    gens = [SourceGen("evaluation", "v_a", "A", "t", parent="e_z"), SourceGen("essay", "e_z", "B", "t", parent="d_b"),
            SourceGen("draft", "d_b", "A", "t"), SourceGen("draft", "d_a", "B", "t")]
    write_root(tmp_path / "data", gens, {"A": ["v_a", "d_a", "d_b"], "B": ["e_z"]})
    plan = plan_import(ledger.state, tmp_path / "data")
    gens = [e for e in plan.events if e["type"].startswith("generation.")]  # after the key-state renames
    assert [(e["type"].split(".")[1], e["data"]["cohort_id"], e["data"]["gen_id"]) for e in gens] == [
        ("created", "B", "d_a"), ("removed", "B", "d_a"), ("reused", "A", "d_a"),
        ("created", "A", "d_b"), ("created", "B", "e_z"), ("created", "A", "v_a")]
    assert plan.counts()[0] == {"cohort_id": "A", "stage": "draft", "created": 1, "reused": 1, "removed": 0}


# -- idempotency --------------------------------------------------------------------------

def test_second_cli_import_appends_nothing(tmp_path: Path) -> None:
    led = tmp_path / "ledger"
    assert run_cli("init", ledger=led).returncode == 0
    first = run_cli("import-legacy", "--data-root", str(REFERENCE / "data"), "--apply", ledger=led)
    assert first.returncode == 0, first.stderr
    before = (led / "events.jsonl").read_bytes()
    again = run_cli("import-legacy", "--data-root", str(REFERENCE / "data"), "--apply", "--json", ledger=led)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["events"] == 0
    assert (led / "events.jsonl").read_bytes() == before


def test_dry_run_writes_nothing_and_counts(tmp_path: Path) -> None:
    led = tmp_path / "ledger"
    run_cli("init", ledger=led)
    r = run_cli("import-legacy", "--data-root", str(REFERENCE), ledger=led)  # a checkout: data/ is found
    assert r.returncode == 0, r.stderr
    assert (led / "events.jsonl").read_bytes() == b""
    out = r.stdout.decode()
    assert "would append 7 events" in out and "lost-drafts" in out
    assert "origin key: final (1 before, 3 final); records rename cohort_id -> origin_cohort_id (alias)" in out
    assert not r.stderr  # no progress bar when stderr is not a terminal


def test_grown_root_appends_only_the_new(tmp_path: Path, ledger: Ledger) -> None:
    root = tmp_path / "data"
    gens = [SourceGen("draft", "d1", "A", "t"), SourceGen("draft", "d2", "A", "t"),
            SourceGen("essay", "e1", "A", "t", parent="d1")]
    write_root(root, gens, {"A": ["d1", "e1"]})  # d2 not listed in its origin: created + removed
    do_import(ledger, root)
    assert members_by_cohort(ledger) == {"A": {("draft", "d1"), ("essay", "e1")}}
    seq = ledger.head.seq
    grown = gens + [SourceGen("essay", "e2", "B", "t", parent="d2", meta_shape="legacy")]
    write_root(root, grown, {"A": ["d1", "e1", "d2"], "B": ["e2", "d1"]}, {"B": "wide-8"})
    plan = plan_import(ledger.state, root)
    assert [(e["type"], e["data"]["cohort_id"], e["data"]["gen_id"]) for e in plan.events] == [
        ("generation.reused", "B", "d1"), ("generation.reused", "A", "d2"), ("generation.created", "B", "e2")]
    apply_import(ledger, plan)
    assert [e.seq for e in ledger.read(seq + 1)] == [seq + 1, seq + 2, seq + 3]
    assert members_by_cohort(ledger) == {"A": {("draft", "d1"), ("essay", "e1"), ("draft", "d2")},
                                         "B": {("essay", "e2"), ("draft", "d1")}}
    assert plan_import(ledger.state, root).events == []


def test_membership_removed_in_the_ledger_stays_removed(tmp_path: Path, ledger: Ledger) -> None:
    """Once imported, a membership is the ledger's: a later removal there is not undone by re-import."""
    root = tmp_path / "data"
    write_root(root, [SourceGen("draft", "d1", "A", "t")], {"A": ["d1"], "B": ["d1"]})
    do_import(ledger, root)
    ledger.append([{"type": "generation.removed",
                    "data": {"cohort_id": c, "stage": "draft", "gen_id": "d1", "reason": "curated out"}}
                   for c in ("A", "B")])
    assert members_by_cohort(ledger) == {}
    assert plan_import(ledger.state, root).events == []
    assert import_event_id("reused", "B", "d1") in ledger.state.event_ids


def test_origin_fallback_from_8col_rows(tmp_path: Path, ledger: Ledger) -> None:
    root = tmp_path / "data"
    write_root(root, [SourceGen("draft", "d1", "A", "t", combo="c"), SourceGen("draft", "d2", "A", "t")],
               {"B": ["d1", "d2"], "C": ["d2"]}, {"B": "wide-8-curated", "C": "wide-8-curated"}, origin_column=True)
    for gen in ("d1", "d2"):
        (root / f"gens/draft/{gen}/metadata.json").write_text(f'{{"gen_id": "{gen}", "template_id": "t"}}')
    path = root / "cohorts/C/membership.csv"
    path.write_bytes(path.read_bytes().replace(b"draft,d2,A,", b"draft,d2,Z,"))
    plan = plan_import(ledger.state, root)
    assert [(p.gen_id, p.message) for p in plan.problems] == [
        ("d2", "no origin cohort in metadata.json and wide membership rows disagree: "
               "A (cohorts/B/membership.csv:3), Z (cohorts/C/membership.csv:2)")]
    path.write_bytes(path.read_bytes().replace(b"draft,d2,Z,", b"draft,d2,A,"))
    do_import(ledger, root)
    assert ledger.state.generations["d1"].origin_cohort_id == "A"
    assert members_by_cohort(ledger) == {"B": {("draft", "d1"), ("draft", "d2")}, "C": {("draft", "d2")}}


def test_gen_created_by_a_hook_gets_only_its_extra_memberships(tmp_path: Path, ledger: Ledger) -> None:
    ledger.append([{"type": "generation.created", "data": {"cohort_id": "A", "stage": "draft", "gen_id": "d1",
                                                            "template_id": "t", "mode": "llm"}}])
    write_root(tmp_path / "data", [SourceGen("draft", "d1", "A", "t")], {"B": ["d1"]})
    plan = plan_import(ledger.state, tmp_path / "data")
    assert [(e["type"], e["data"]["cohort_id"]) for e in plan.events if e["type"] != "metadata.key_renamed"] == [
        ("generation.reused", "B")]


# -- problems -----------------------------------------------------------------------------

def _case(root: Path, name: str, s: str = "") -> tuple[str | None, str]:
    """Build one broken data root (ids and cohorts suffixed with `s`, so cases can share a root);
    return (gen id, text) its single problem must have."""
    d1, e1, v1, a, b = f"d1{s}", f"e1{s}", f"v1{s}", f"A{s}", f"B{s}"
    ok = [SourceGen("draft", d1, a, "t"), SourceGen("essay", e1, a, "t", parent=d1)]
    if name == "no-metadata":
        write_root(root, ok, {a: [d1, e1]})
        (root / "cohorts" / a / "membership.csv").write_text(f"stage,gen_id\ndraft,{d1}\nevaluation,v_ghost{s}\n")
        return f"v_ghost{s}", f"no gens/evaluation/v_ghost{s}/metadata.json"
    if name == "no-origin":
        write_root(root, ok, {a: [d1, e1]})
        (root / "gens/draft" / d1 / "metadata.json").write_text(f'{{"gen_id": "{d1}", "template_id": "t"}}')
        return d1, "no origin cohort anywhere"
    if name == "no-template":
        write_root(root, ok, {a: [d1, e1]})
        (root / "gens/draft" / d1 / "metadata.json").write_text(f'{{"cohort_id": "{a}", "essay_template": "x"}}')
        return d1, "no template anywhere"
    if name == "origin-keys-disagree":
        write_root(root, ok, {a: [d1, e1]})
        (root / "gens/draft" / d1 / "metadata.json").write_text(
            f'{{"cohort_id": "{a}", "origin_cohort_id": "{b}", "template_id": "t"}}')
        return d1, "origin cohort keys disagree"
    contradictions = {"wide-template": (5, "t9", "template_id is 't9' here but 't'"),
                      "wide-parent": (3, "d9", f"parent_gen_id is 'd9' here but '{d1}'"),
                      "wide-model": (6, "m9", "llm_model_id is 'm9' here but 'sonnet-4'"),
                      "wide-replicate": (7, "2", "replicate is 2 here but 1"),
                      "wide-origin": (2, b, f"cohort_id is '{b}' here: neither this file's cohort '{a}' nor the origin '{a}'"),
                      "wide-combo": (4, "combo_9", "combo_id is 'combo_9' here but 'combo_1'")}
    if name in contradictions:
        col, value, text = contradictions[name]
        gens = [SourceGen("draft", d1, a, "t", combo="combo_1", model="sonnet-4"),
                SourceGen("essay", e1, a, "t", parent=d1, model="sonnet-4")]
        write_root(root, gens, {a: [d1, e1]}, {a: "wide-8-curated"})
        path = root / "cohorts" / a / "membership.csv"
        lines = path.read_bytes().decode().split("\r\n")
        target = 1 if name == "wide-combo" else 2
        cells = lines[target].split(",")
        cells[col] = value
        lines[target] = ",".join(cells)
        path.write_bytes("\r\n".join(lines).encode())
        return (d1 if target == 1 else e1), text
    if name == "parent-missing":
        write_root(root, [SourceGen("essay", e1, a, "t", parent=f"d_gone{s}")], {a: [e1]})
        return e1, f"parent d_gone{s} does not exist"
    if name == "parent-wrong-stage":
        write_root(root, ok + [SourceGen("evaluation", v1, a, "t", parent=d1)], {a: [d1, e1, v1]})
        return v1, f"parent {d1} is a draft, not a essay"
    if name == "7col-cohort":
        write_root(root, ok, {a: [d1, e1]}, {a: "wide-7"})
        path = root / "cohorts" / a / "membership.csv"
        path.write_text(path.read_text().replace(f"draft,{d1},{a},", f"draft,{d1},Z{s},"))
        return d1, f"cohort_id is 'Z{s}' here: neither this file's cohort '{a}' nor the origin '{a}'"
    if name == "unsafe-id":
        write_root(root, [SourceGen("draft", d1, a, "t")], {a: [d1]})
        (root / "gens/draft" / d1 / "metadata.json").write_text(f'{{"cohort_id": "{a}", "template_id": "../t"}}')
        return d1, "not a safe identifier: template_id '../t'"
    raise AssertionError(name)


CASES = ["no-metadata", "no-origin", "no-template", "origin-keys-disagree", "wide-template", "wide-parent",
         "wide-model", "wide-replicate", "wide-origin", "wide-combo", "parent-missing", "parent-wrong-stage",
         "7col-cohort", "unsafe-id"]


@pytest.mark.parametrize("case", CASES)
def test_each_problem_alone(tmp_path: Path, ledger: Ledger, case: str) -> None:
    gen_id, text = _case(tmp_path / "data", case)
    plan = plan_import(ledger.state, tmp_path / "data")
    assert plan.events == []
    assert [(p.gen_id, text in p.message) for p in plan.problems] == [(gen_id, True)], plan.problems
    with pytest.raises(LegacyProblems) as info:
        apply_import(ledger, plan)
    assert info.value.exit_code == 2 and "import-legacy: 1 problem; first: " in str(info.value)
    assert ledger.head.seq == 0


def test_gen_in_ledger_with_other_metadata(tmp_path: Path, ledger: Ledger) -> None:
    ledger.append([{"type": "generation.created", "data": {"cohort_id": "A", "stage": "draft", "gen_id": "d1",
                                                            "template_id": "other"}}])
    write_root(tmp_path / "data", [SourceGen("draft", "d1", "A", "t")], {"A": ["d1"]})
    plan = plan_import(ledger.state, tmp_path / "data")
    assert len(plan.problems) == 1
    assert "already in the ledger with other origin metadata: template_id 't' (ledger: 'other')" in plan.problems[0].message


def test_sealed_cohort_is_a_problem(tmp_path: Path, ledger: Ledger) -> None:
    ledger.append([{"type": "cohort.opened", "data": {"cohort_id": "A"}},
                   {"type": "cohort.sealed", "data": {"cohort_id": "A"}}])
    write_root(tmp_path / "data", [SourceGen("draft", "d1", "B", "t")], {"A": ["d1"], "B": ["d1"]})
    plan = plan_import(ledger.state, tmp_path / "data")
    assert [p.message for p in plan.problems] == [
        "cohort A is sealed (seq 2): its membership cannot change; the source differs from the ledger there"]


def test_cli_lists_every_problem_and_appends_nothing(tmp_path: Path) -> None:
    """All cases in one root: exit 2, every one named on stderr and in --report, events.jsonl untouched."""
    led = tmp_path / "ledger"
    run_cli("init", ledger=led)
    seed = run_cli("append", ledger=led, stdin=jsonl({"type": "cohort.opened", "data": {"cohort_id": "seed"}}))
    assert seed.returncode == 0
    before = (led / "events.jsonl").read_bytes()
    root = tmp_path / "data"
    expected = [(case, *_case(root, case, f"x{i}")) for i, case in enumerate(CASES)]
    report = tmp_path / "report.json"
    r = run_cli("import-legacy", "--data-root", str(root), "--apply", "--report", str(report), ledger=led)
    assert r.returncode == 2, r.stdout
    assert (led / "events.jsonl").read_bytes() == before
    stderr = r.stderr.decode()
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"cohort-ledger: error: import-legacy: {len(CASES)} problems; first: ")
    problems = orjson.loads(report.read_bytes())["problems"]
    assert len(problems) == len(CASES)
    for case, gen_id, text in expected:
        hits = [p for p in problems if p["gen_id"] == gen_id]
        assert len(hits) == 1 and text in hits[0]["message"], (case, problems)
        assert hits[0]["file"] and f"problem: {gen_id}: {hits[0]['file']}: " in stderr, case


def test_progress_bar_only_on_a_terminal(tmp_path: Path) -> None:
    """stderr a pseudo-terminal: a rich bar is drawn there; stdout keeps only the report."""
    import os
    import pty
    import subprocess
    import sys

    led = tmp_path / "ledger"
    run_cli("init", ledger=led)
    master, slave = pty.openpty()
    try:
        r = subprocess.run([sys.executable, "-m", "ledger", "--ledger", str(led), "import-legacy",
                            "--data-root", str(REFERENCE / "data"), "--json"],
                           stdout=subprocess.PIPE, stderr=slave, timeout=120)
        os.close(slave)
        drawn = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(master)
    assert r.returncode == 0
    assert json.loads(r.stdout)["events"] == 7  # 2 renames, 5 gen events
    assert b"metadata.json" in drawn


def test_problems_with_and_without_gen_id_in_one_file(tmp_path: Path, ledger: Ledger) -> None:
    write_root(tmp_path / "data", [SourceGen("draft", "d1", "A", "t")], {"A": ["d1"]})
    (tmp_path / "data/cohorts/A/membership.csv").write_text("stage,gen_id\ndraft,d_none\n,\ndraft,\n")
    plan = plan_import(ledger.state, tmp_path / "data")
    assert [(p.file, p.gen_id) for p in plan.problems] == [
        ("cohorts/A/membership.csv:2", "d_none"), ("cohorts/A/membership.csv:3", None),
        ("cohorts/A/membership.csv:4", None)]

"""The pipeline's real history: data roots in every shape its code ever wrote, imported and built.

Each era's root is written the way that era's pipeline code wrote it (docs/migration.md,
shapes table): the cohort builder's wide 8-column file with `cohort_id` = the file's cohort and
builder-era metadata.json (`cohort_id`, `combo_id` on every stage); the curated-cohort script's
8-column file whose `origin_cohort_id` column is the new cohort; the oldest 7-column file; the
current slim file with `origin_cohort_id`-only metadata. After `import-legacy --apply` and
`build --out`, every cohort's (stage, gen_id) set read from the built CSVs, and every gen's
origin metadata read from the built projection, must equal the source's.
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from helpers.builders import REFERENCE, run_cli
from helpers.legacy_root import SourceGen, write_root

from ledger.cohorts.scope import CohortScope
from ledger.ids import collision_gen_id, gen_id


def lineage(origin: str, combo: str, draft_tpl: str, essay_tpl: str, model: str, judges: tuple[str, ...],
            meta_shape: str, replicates: int = 1) -> list[SourceGen]:
    """One draft, its essay and its evaluations, under the pipeline's deterministic ids."""
    builder = meta_shape == "builder"  # builder-era metadata repeats the draft's combo on every stage
    d = SourceGen("draft", gen_id("draft", combo_id=combo, template_id=draft_tpl, llm_model_id=model, replicate=1),
                  origin, draft_tpl, combo=combo, model=model, meta_shape=meta_shape)
    e = SourceGen("essay", gen_id("essay", parent_gen_id=d.gen_id, template_id=essay_tpl, replicate=1), origin,
                  essay_tpl, combo=combo if builder else None, model=model, parent=d.gen_id, meta_shape=meta_shape)
    evals = [SourceGen("evaluation", gen_id("evaluation", parent_gen_id=e.gen_id, template_id="novelty-v2",
                                            llm_model_id=judge, replicate=r),
                       origin, "novelty-v2", combo=combo if builder else None, model=judge, parent=e.gen_id,
                       replicate=r, meta_shape=meta_shape)
             for judge in judges for r in range(1, replicates + 1)]
    return [d, e, *evals]


def ids(gens: list[SourceGen]) -> list[str]:
    return [g.gen_id for g in gens]


def era_builder() -> tuple[list[SourceGen], dict[str, list[str]], dict[str, str]]:
    """Cohort builder before the slim CSV: wide 8 columns, `cohort_id` is the file's cohort."""
    a = lineage("cohort-a", "combo_v1_85128e4e5ef3", "creative-synthesis-v10", "creative-synthesis-v10",
                "gemini_25_pro", ("gemini_25_pro", "sonnet-4"), "builder", replicates=2)
    b = lineage("cohort-b", "combo_v1_123", "links-v4", "essay-v3", "sonnet-4", ("sonnet-4",), "builder")
    # cohort-b re-ran a's evaluations of one judge (skip-existing): listed in b's file with cohort_id=cohort-b
    reused = [g for g in a if g.stage == "evaluation" and g.model == "sonnet-4"]
    return a + b, {"cohort-a": ids(a), "cohort-b": ids(b) + ids(reused)}, {"cohort-a": "wide-8", "cohort-b": "wide-8"}


def era_curated() -> tuple[list[SourceGen], dict[str, list[str]], dict[str, str]]:
    """The curated-cohort script: a new cohort from gens of others; its third column is the new cohort."""
    b = lineage("cohort-b", "combo_v1_9", "creative-synthesis-v10", "creative-synthesis-v10", "gemini_25_pro",
                ("sonnet-4",), "current")
    c = lineage("cohort-c", "combo_v1_10", "creative-synthesis-v10", "creative-synthesis-v10", "gemini_25_pro",
                ("gemini_25_pro",), "current")
    picked = [b[0], b[1], b[2], c[1], c[2]]
    return b + c, {"cohort-b": ids(b), "cohort-c": ids(c), "cohort-e": ids(picked)}, {
        "cohort-b": "slim", "cohort-c": "slim", "cohort-e": "wide-8-curated"}


def era_wide7() -> tuple[list[SourceGen], dict[str, list[str]], dict[str, str]]:
    """The oldest builder file: 7 columns, no replicate; legacy (pandas-era) metadata."""
    g = lineage("C-COPY", "combo-1", "links-vX", "parsed-from-links-v1", "gen-1", ("gen-1",), "legacy")
    g[1] = replace(g[1], mode="copy")
    return g, {"C-COPY": ids(g)}, {"C-COPY": "wide-7"}


def era_current() -> tuple[list[SourceGen], dict[str, list[str]], dict[str, str]]:
    """Today's pipeline: slim `stage,gen_id`, metadata with `origin_cohort_id` only, an empty cohort."""
    g = lineage("best_novelty_all_evals", "combo_v1_85128e4e5ef3", "creative-synthesis-v10",
                "creative-synthesis-v10", "gemini_25_pro", ("gemini_25_pro", "sonnet-4"), "current", replicates=2)
    return g, {"best_novelty_all_evals": ids(g), "empty-rerun": []}, {"empty-rerun": "slim"}


def era_projection() -> tuple[list[SourceGen], dict[str, list[str]], dict[str, str]]:
    """This project's own `build --out` output: slim with cohort, read back (the rollout state both keys)."""
    g = lineage("P", "combo_p", "t1", "t2", "m", ("m",), "both")
    return g, {"P": ids(g), "Q": ids(g[1:])}, {"P": "slim-cohort", "Q": "slim-cohort"}


ERAS = {"builder": era_builder, "curated": era_curated, "wide7": era_wide7, "current": era_current,
        "projection": era_projection}


def import_and_build(tmp_path: Path, root: Path) -> Path:
    led, out = tmp_path / "ledger", tmp_path / "out"
    assert run_cli("init", ledger=led).returncode == 0
    r = run_cli("import-legacy", "--data-root", str(root), "--apply", ledger=led)
    assert r.returncode == 0, r.stderr.decode()
    r = run_cli("build", "--out", str(out), ledger=led)
    assert r.returncode == 0, r.stderr.decode()
    return out


def built_memberships(out: Path) -> dict[str, set[tuple[str, str]]]:
    """What the pipeline's readers see: cohorts/<id>/membership.csv, (stage, gen_id) per cohort."""
    found = {}
    for path in sorted(out.glob("cohorts/*/membership.csv")):
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        assert all(r["cohort_id"] == path.parent.name for r in rows)
        found[path.parent.name] = {(r["stage"], r["gen_id"]) for r in rows}
    return found


def check_against_source(out: Path, gens: list[SourceGen], cohorts: dict[str, list[str]]) -> None:
    by_id = {g.gen_id: g for g in gens}
    assert built_memberships(out) == {c: {(by_id[g].stage, g) for g in ms} for c, ms in cohorts.items()}
    scope = CohortScope.from_projection(out)
    assert scope.cohorts() == sorted(cohorts)
    for g in gens:
        got = scope.origin_metadata(g.gen_id)
        want = {**g.metadata(), "origin_cohort_id": g.origin}
        del want["cohort_id"]
        assert {k: got[k] for k in want} == want, g.gen_id


@pytest.mark.parametrize("era", sorted(ERAS))
def test_each_era_round_trips(tmp_path: Path, era: str) -> None:
    gens, cohorts, shapes = ERAS[era]()
    write_root(tmp_path / "data", gens, cohorts, shapes)
    check_against_source(import_and_build(tmp_path, tmp_path / "data"), gens, cohorts)


def test_all_eras_in_one_root(tmp_path: Path) -> None:
    """A data root that lived through every era, plus the reference files, imports in one batch."""
    gens, cohorts, shapes = [], {}, {}
    for make in ERAS.values():
        g, c, s = make()
        gens += [x for x in g if x.gen_id not in {y.gen_id for y in gens}]
        for cohort, members in c.items():
            cohorts[cohort] = cohorts.get(cohort, []) + [m for m in members if m not in cohorts.get(cohort, [])]
        shapes.update(s)
    root = tmp_path / "data"
    shutil.copytree(REFERENCE / "data", root)
    with open(REFERENCE / "data/cohorts/best_novelty_all_evals/membership.csv", newline="") as f:
        reference_members = [r["gen_id"] for r in csv.DictReader(f)]
    cohorts["best_novelty_all_evals"] = list(dict.fromkeys(reference_members + cohorts["best_novelty_all_evals"]))
    write_root(root, gens, cohorts, shapes)
    assert set(reference_members) <= {g.gen_id for g in gens}  # the current era's ids are the reference's own
    out = import_and_build(tmp_path, root)
    check_against_source(out, gens, cohorts | {"lost-drafts": []})  # G1: created in lost-drafts, listed nowhere


def test_curated_column_is_the_member_cohort_not_the_origin(tmp_path: Path) -> None:
    """The rejection the issue reported: every curated row names the new cohort, none is a problem."""
    gens, cohorts, shapes = era_curated()
    write_root(tmp_path / "data", gens, cohorts, shapes)
    text = (tmp_path / "data/cohorts/cohort-e/membership.csv").read_text()
    assert {line.split(",")[2] for line in text.splitlines()[1:]} == {"cohort-e"}
    out = import_and_build(tmp_path, tmp_path / "data")
    scope = CohortScope.from_projection(out)
    assert all(scope.is_reused("cohort-e", g) for g in cohorts["cohort-e"])
    assert {scope.origin_metadata(g)["origin_cohort_id"] for g in cohorts["cohort-e"]} == {"cohort-b", "cohort-c"}


def test_wide_cell_naming_another_cohort(tmp_path: Path) -> None:
    """A cohort cell that is neither the file's cohort nor the metadata's origin is the one problem."""
    gens, cohorts, shapes = era_curated()
    root = tmp_path / "data"
    write_root(root, gens, cohorts, shapes, origin_column=True)  # cells = each gen's origin: also accepted
    led = tmp_path / "ledger"
    run_cli("init", ledger=led)
    assert run_cli("import-legacy", "--data-root", str(root), ledger=led).returncode == 0
    path = root / "cohorts/cohort-e/membership.csv"
    path.write_bytes(path.read_bytes().replace(b",cohort-c,", b",cohort-z,", 1))
    r = run_cli("import-legacy", "--data-root", str(root), "--json", ledger=led)
    assert r.returncode == 2
    (problem,) = orjson.loads(r.stdout)["problems"]
    assert problem["file"].startswith("cohorts/cohort-e/membership.csv:") and (
        "origin_cohort_id is 'cohort-z' here: neither this file's cohort 'cohort-e' nor the origin 'cohort-c'"
        in problem["message"])


def test_missing_metadata_fields_come_from_agreeing_wide_rows(tmp_path: Path) -> None:
    """Drafts of an older metadata shape without combo_id (and model, replicate): the wide rows have them."""
    gens, cohorts, shapes = era_builder()
    root = tmp_path / "data"
    write_root(root, gens, cohorts, shapes)
    for g in gens:
        if g.stage == "draft":
            path = root / "gens/draft" / g.gen_id / "metadata.json"
            doc = json.loads(path.read_bytes())
            for key in ("combo_id", "llm_model_id", "replicate"):
                del doc[key]
            path.write_text(json.dumps(doc, indent=2))
    check_against_source(import_and_build(tmp_path, root), gens, cohorts)
    # rows that disagree on a missing field: a problem, not a pick
    path = root / "cohorts/cohort-b/membership.csv"
    lines = path.read_text().splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("draft,"))
    cells = lines[row].split(",")
    draft = cells[1]
    (root / "cohorts/cohort-z").mkdir()
    (root / "cohorts/cohort-z/membership.csv").write_text(
        lines[0] + "\n" + ",".join([*cells[:2], "cohort-z", cells[3], "combo_other", *cells[5:]]) + "\n")
    led2 = tmp_path / "ledger2"
    run_cli("init", ledger=led2)
    r = run_cli("import-legacy", "--data-root", str(root), "--json", ledger=led2)
    assert r.returncode == 2
    (problem,) = orjson.loads(r.stdout)["problems"]
    assert problem["gen_id"] == draft and "no combo_id in metadata.json and wide membership rows disagree" in (
        problem["message"])


def test_collision_suffixed_ids_import(tmp_path: Path) -> None:
    """The pipeline names a colliding id `<id>-<k>`: such gens import and build like any other."""
    d = SourceGen("draft", collision_gen_id("draft", 1, combo_id="c", template_id="t", llm_model_id="m", replicate=1),
                  "A", "t", combo="c", model="m")
    e = SourceGen("essay", collision_gen_id("essay", 2, parent_gen_id=d.gen_id, template_id="t", replicate=1),
                  "A", "t", parent=d.gen_id, model="m")
    assert d.gen_id.endswith("-1") and e.gen_id.endswith("-2")
    write_root(tmp_path / "data", [d, e], {"A": [d.gen_id, e.gen_id]}, {"A": "wide-8"})
    check_against_source(import_and_build(tmp_path, tmp_path / "data"), [d, e], {"A": [d.gen_id, e.gen_id]})


# -- through the CLI: the empty cohort, the shrinking cohort, the key state --------------------

def test_empty_cohort_cli(tmp_path: Path) -> None:
    root = tmp_path / "data"
    gens, cohorts, shapes = era_current()
    write_root(root, gens, cohorts | {"wide-empty": []}, shapes | {"wide-empty": "wide-8-curated"})
    led, out = tmp_path / "ledger", tmp_path / "out"
    run_cli("init", ledger=led)
    dry = run_cli("import-legacy", "--data-root", str(root), ledger=led)
    assert dry.returncode == 0 and b"empty cohorts to open: empty-rerun, wide-empty" in dry.stdout
    assert run_cli("import-legacy", "--data-root", str(root), "--apply", ledger=led).returncode == 0
    assert run_cli("build", "--out", str(out), ledger=led).returncode == 0
    for cohort in ("empty-rerun", "wide-empty"):
        assert (out / "cohorts" / cohort / "membership.csv").read_bytes() == b"stage,gen_id,cohort_id\n"
        shown = run_cli("show", cohort, "--json", ledger=led)
        assert shown.returncode == 0 and orjson.loads(shown.stdout) == []
    assert CohortScope.open(out).cohorts() == CohortScope.open(led).cohorts() == [
        "best_novelty_all_evals", "empty-rerun", "wide-empty"]
    again = run_cli("import-legacy", "--data-root", str(root), "--apply", "--json", ledger=led)
    assert again.returncode == 0 and orjson.loads(again.stdout)["events"] == 0


def _shrinking_root(root: Path, n: int) -> list[str]:
    gens = lineage("big", "combo_x", "t", "t", "m", ("j1", "j2", "j3"), "current", replicates=n // 3)
    evals = [g.gen_id for g in gens if g.stage == "evaluation"]
    write_root(root, gens, {"big": evals})
    return evals


def test_shrinking_cohort_cli(tmp_path: Path) -> None:
    """30 rows, re-run with a smaller spec: 18. Without --sync exit 1, nothing appended; with it, removed."""
    root, led, out = tmp_path / "data", tmp_path / "ledger", tmp_path / "out"
    run_cli("init", ledger=led)
    thirty = _shrinking_root(root, 30)
    assert len(thirty) == 30
    assert run_cli("import-legacy", "--data-root", str(root), "--apply", ledger=led).returncode == 0
    kept = thirty[:18]
    (root / "cohorts/big/membership.csv").write_text("stage,gen_id\n" + "".join(f"evaluation,{g}\n" for g in kept))
    log = (led / "events.jsonl").read_bytes()
    for args in ((), ("--apply",)):
        r = run_cli("import-legacy", "--data-root", str(root), *args, ledger=led)
        assert r.returncode == 1, r.stderr
        assert b"source and ledger disagree: 12 gens the ledger has in a cohort are not in its membership.csv" in (
            r.stderr) and b"rerun with --sync to record the removals" in r.stderr
        assert r.stderr.decode().strip().count("\n") == 0  # one line
        assert b"12 gen(s) the ledger has in a cohort no longer listed by the source" in r.stdout
        assert (led / "events.jsonl").read_bytes() == log
    listed = run_cli("import-legacy", "--data-root", str(root), "--json", ledger=led)
    assert listed.returncode == 1
    report = orjson.loads(listed.stdout)
    assert not report["ok"] and sorted(s["gen_id"] for s in report["stale"]) == sorted(thirty[18:])
    r = run_cli("import-legacy", "--data-root", str(root), "--apply", "--sync", ledger=led)
    assert r.returncode == 0, r.stderr
    assert run_cli("build", "--out", str(out), ledger=led).returncode == 0
    assert built_memberships(out) == {"big": {("evaluation", g) for g in kept}}
    events = [orjson.loads(line) for line in (led / "events.jsonl").read_bytes().splitlines()]
    last = [e for e in events if e["txn"] == events[-1]["txn"]]
    assert [e["type"] for e in last] == ["generation.removed"] * 12 and {e["data"]["reason"] for e in last} == {"imported"}
    assert sorted(e["data"]["gen_id"] for e in last) == sorted(thirty[18:])
    again = run_cli("import-legacy", "--data-root", str(root), "--apply", "--json", ledger=led)
    assert again.returncode == 0 and orjson.loads(again.stdout)["events"] == 0


def test_shrinking_sealed_cohort_is_a_problem(tmp_path: Path) -> None:
    root, led = tmp_path / "data", tmp_path / "ledger"
    run_cli("init", ledger=led)
    evals = _shrinking_root(root, 6)
    assert run_cli("import-legacy", "--data-root", str(root), "--apply", ledger=led).returncode == 0
    assert run_cli("seal", "big", ledger=led).returncode == 0
    (root / "cohorts/big/membership.csv").write_text("stage,gen_id\n" + "".join(f"evaluation,{g}\n" for g in evals[:4]))
    log = (led / "events.jsonl").read_bytes()
    r = run_cli("import-legacy", "--data-root", str(root), "--apply", "--sync", ledger=led)
    assert r.returncode == 2 and b"cohort big is sealed" in r.stderr
    assert (led / "events.jsonl").read_bytes() == log


@pytest.mark.parametrize(("shapes", "state", "names"), [
    (("legacy", "builder"), "before", ["cohort_id"]),
    (("both",), "alias", ["cohort_id", "origin_cohort_id"]),
    (("current",), "final", ["origin_cohort_id"]),
    (("legacy", "both"), "alias", ["cohort_id", "origin_cohort_id"]),
    (("legacy", "current"), "final", ["origin_cohort_id"]),
])
def test_key_state_cli(tmp_path: Path, shapes: tuple[str, ...], state: str, names: list[str]) -> None:
    """import records the files' rename state; export then writes what the pipeline already reads."""
    root, led = tmp_path / "data", tmp_path / "ledger"
    gens = [g for i, shape in enumerate(shapes)
            for g in lineage(f"c{i}", f"combo{i}", "t", "t", "m", ("j",), shape)]
    write_root(root, gens, {"c0": ids(gens)})
    run_cli("init", ledger=led)
    r = run_cli("import-legacy", "--data-root", str(root), "--apply", "--json", ledger=led)
    assert r.returncode == 0, r.stderr
    assert orjson.loads(r.stdout)["key_state"] == state
    before = {p: p.read_bytes() for p in root.glob("gens/*/*/metadata.json")}
    r = run_cli("export-metadata", "--data-root", str(root), "--apply", "--json", ledger=led)
    assert r.returncode == 0, r.stderr
    summary = orjson.loads(r.stdout)
    assert summary["origin_keys"] == names
    after = {p: p.read_bytes() for p in root.glob("gens/*/*/metadata.json")}
    old = {p for p, raw in before.items() if json.loads(raw).keys() >= {"cohort_id"} and state == "final"
           or "origin_cohort_id" not in json.loads(raw) and state == "alias"}
    assert {p for p in after if after[p] != before[p]} == old  # only older-era files move forward
    assert all(set(names) <= json.loads(raw).keys() for raw in after.values())
    assert all("cohort_id" not in json.loads(raw) for raw in after.values()) or "cohort_id" in names
    again = run_cli("import-legacy", "--data-root", str(root), "--apply", "--json", ledger=led)
    assert again.returncode == 0 and orjson.loads(again.stdout)["events"] == 0

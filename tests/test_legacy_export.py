"""export-metadata: origin keys per the rename state; every other key, value and position kept."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from helpers.builders import REFERENCE, run_cli
from helpers.legacy_root import SourceGen, write_root

from ledger import Ledger
from ledger.legacy import LegacyProblems, apply_export, apply_import, plan_export, plan_import

ORIGIN = ("cohort_id", "origin_cohort_id")
GENS = [SourceGen("draft", "d1", "A", "t", combo="c1", meta_shape="legacy"),
        SourceGen("draft", "d2", "B", "t", combo="c2", meta_shape="current"),
        SourceGen("essay", "e1", "A", "t", parent="d1", meta_shape="both"),
        SourceGen("essay", "e2", "B", "t", parent="d2", meta_shape="legacy", replicate=2)]


def _mixed_root(root: Path, with_reference: bool, legacy_only: bool = False) -> Path:
    if with_reference:
        shutil.copytree(REFERENCE / "data", root)
    gens = [replace(g, meta_shape="legacy") for g in GENS] if legacy_only else GENS
    write_root(root, gens, {"A": ["d1", "e1"], "B": ["d2", "e2", "d1"]})
    if legacy_only:  # the same gens, every file from before the rename
        for path in root.glob("gens/*/*/metadata.json"):
            path.write_bytes(path.read_bytes().replace(b'"origin_cohort_id"', b'"cohort_id"'))
    return root


def imported(tmp_path: Path, ledger: Ledger, with_reference: bool = True) -> Path:
    """A mixed-era root, and a ledger holding its gens at "no rename yet".

    Importing the mixed root itself would record the rename its newest files show; the
    ledger imports an all-`cohort_id` copy of it instead, so each test picks the phase.
    """
    plan = plan_import(ledger.state, _mixed_root(tmp_path / "legacy", with_reference, legacy_only=True))
    plan.raise_for_problems()
    apply_import(ledger, plan)
    assert ledger.state.key_names["cohort_id"] == ("cohort_id",)
    return _mixed_root(tmp_path / "data", with_reference)


def rename(ledger: Ledger, phase: str) -> None:
    ledger.append([{"type": "metadata.key_renamed",
                    "data": {"old_key": "cohort_id", "new_key": "origin_cohort_id", "phase": phase}}])


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.glob("gens/*/*/metadata.json"))}


def docs(files: dict[str, bytes]) -> dict[str, dict]:
    return {k: json.loads(v) for k, v in files.items()}


def without_origin(doc: dict) -> list:
    return [(k, "NaN" if isinstance(v, float) and math.isnan(v) else v) for k, v in doc.items() if k not in ORIGIN]


def export(ledger: Ledger, root: Path) -> None:
    plan = plan_export(ledger.state, root)
    apply_export(plan)


def test_alias_phase_both_keys_everything_else_intact(tmp_path: Path, ledger: Ledger) -> None:
    root = imported(tmp_path, ledger)
    before = docs(snapshot(root))
    rename(ledger, "alias")
    export(ledger, root)
    after = docs(snapshot(root))
    assert after.keys() == before.keys()
    for name, doc in after.items():
        gen = ledger.state.generations[doc["gen_id"]]
        assert doc["cohort_id"] == doc["origin_cohort_id"] == gen.origin_cohort_id, name
        assert without_origin(doc) == without_origin(before[name]), name  # values and order
        keys, old_keys = list(doc), list(before[name])
        assert [k for k in keys if k in before[name]] == old_keys, name  # no key lost or moved
        added = [k for k in keys if k not in before[name]]
        at = keys.index("gen_id") + 1
        assert keys[at:at + len(added)] == added, name  # added keys right after gen_id


def test_added_key_goes_right_after_gen_id(tmp_path: Path, ledger: Ledger) -> None:
    root = imported(tmp_path, ledger)
    rename(ledger, "alias")
    export(ledger, root)
    g1 = list(json.loads((root / "gens/draft/G1/metadata.json").read_bytes()))
    assert g1[:3] == ["stage", "gen_id", "origin_cohort_id"] and g1[-2:] == ["cohort_id", "combo_id"]
    d2 = list(json.loads((root / "gens/draft/d2/metadata.json").read_bytes()))
    assert d2[:4] == ["stage", "gen_id", "cohort_id", "origin_cohort_id"]


def test_before_rename_adds_cohort_id_and_leaves_origin_cohort_id(tmp_path: Path, ledger: Ledger) -> None:
    root = imported(tmp_path, ledger)
    before = snapshot(root)
    plan = plan_export(ledger.state, root)
    assert {c.gen_id: c.keys for c in plan.changes} == {
        "d2": "+cohort_id", "d_5ezrffv9uf3lr37d": "+cohort_id", "e_sq5klak2lljyyom": "+cohort_id",
        "v_2pzejj5kr4xwdzil": "+cohort_id"}
    assert snapshot(root) == before  # planning writes nothing
    apply_export(plan)
    d2 = json.loads((root / "gens/draft/d2/metadata.json").read_bytes())
    assert list(d2)[:4] == ["stage", "gen_id", "cohort_id", "origin_cohort_id"] and d2["cohort_id"] == "B"


def test_final_phase_removes_only_the_old_key(tmp_path: Path, ledger: Ledger) -> None:
    root = imported(tmp_path, ledger)
    rename(ledger, "alias")
    export(ledger, root)
    alias = docs(snapshot(root))
    rename(ledger, "final")
    export(ledger, root)
    final = docs(snapshot(root))
    for name, doc in final.items():
        assert [(k, v) for k, v in alias[name].items() if k != "cohort_id"] == list(doc.items()), name


def test_final_phase_replaces_old_key_in_place(tmp_path: Path, ledger: Ledger) -> None:
    """Straight from `cohort_id`-only files to final: origin_cohort_id takes cohort_id's position."""
    root = imported(tmp_path, ledger)
    before = docs(snapshot(root))
    rename(ledger, "alias")
    rename(ledger, "final")
    export(ledger, root)
    g1_before, g1 = before["gens/draft/G1/metadata.json"], docs(snapshot(root))["gens/draft/G1/metadata.json"]
    assert list(g1) == [("origin_cohort_id" if k == "cohort_id" else k) for k in g1_before]
    assert g1["origin_cohort_id"] == "lost-drafts"


def test_formatting_is_preserved(tmp_path: Path, ledger: Ledger) -> None:
    root = imported(tmp_path, ledger)
    rename(ledger, "alias")
    export(ledger, root)
    g1 = (root / "gens/draft/G1/metadata.json").read_bytes()  # compact one-line legacy shape, "\n"-terminated
    assert g1.count(b"\n") == 1 and g1.endswith(b"}\n") and b'"gen_id":"G1","origin_cohort_id":"lost-drafts"' in g1
    d = (root / "gens/draft/d_5ezrffv9uf3lr37d/metadata.json").read_bytes()
    assert d == json.dumps(json.loads(d), indent=2).encode()
    assert b'\n  "cohort_id": "best_novelty_all_evals",\n' in d


def test_nothing_rewritten_when_nothing_changes(tmp_path: Path, ledger: Ledger) -> None:
    root = imported(tmp_path, ledger)
    rename(ledger, "alias")
    export(ledger, root)
    stats = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in root.glob("gens/*/*/metadata.json")}
    plan = plan_export(ledger.state, root)
    assert plan.changes == [] and plan.unchanged == len(stats)
    apply_export(plan)
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in root.glob("gens/*/*/metadata.json")} == stats


def test_missing_files_are_created_in_current_shape(tmp_path: Path, ledger: Ledger) -> None:
    root = imported(tmp_path, ledger)
    shutil.rmtree(root / "gens" / "essay")
    rename(ledger, "alias")
    plan = plan_export(ledger.state, root)
    assert sorted(c.gen_id for c in plan.changes if c.action == "create") == ["e1", "e2", "e_sq5klak2lljyyom"]
    apply_export(plan)
    e2 = (root / "gens/essay/e2/metadata.json").read_bytes()
    assert e2 == json.dumps({"stage": "essay", "gen_id": "e2", "cohort_id": "B", "origin_cohort_id": "B",
                             "mode": "llm", "template_id": "t", "parent_gen_id": "d2", "replicate": 2},
                            indent=2).encode()
    again = plan_import(ledger.state, root)  # what export writes, import reads back as the same gens
    assert again.problems == [] and again.events == []


def test_disagreeing_origin_fails_and_writes_nothing(tmp_path: Path, ledger: Ledger) -> None:
    root = imported(tmp_path, ledger)
    path = root / "gens/draft/d2/metadata.json"
    path.write_text(path.read_text().replace('"origin_cohort_id": "B"', '"origin_cohort_id": "Q"'))
    before = snapshot(root)
    plan = plan_export(ledger.state, root)
    assert [(p.gen_id, p.file) for p in plan.problems] == [("d2", "gens/draft/d2/metadata.json")]
    assert "origin_cohort_id is 'Q' but the ledger's origin is 'B'" in plan.problems[0].message
    with pytest.raises(LegacyProblems):
        apply_export(plan)
    assert snapshot(root) == before


def test_cli_dry_run_apply_and_json(tmp_path: Path) -> None:
    led, root = tmp_path / "ledger", tmp_path / "data"
    shutil.copytree(REFERENCE / "data", root)
    run_cli("init", ledger=led)
    assert run_cli("import-legacy", "--data-root", str(root), "--apply", ledger=led).returncode == 0
    before = snapshot(root)
    r = run_cli("export-metadata", "--data-root", str(root), ledger=led)
    assert r.returncode == 0, r.stderr
    # today's files use origin_cohort_id only, so the import recorded `final`: only G1 (cohort_id) changes
    assert b"would write 0 new and 1 updated" in r.stdout and snapshot(root) == before
    r = run_cli("export-metadata", "--data-root", str(root), "--apply", "--json", ledger=led)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["update"], out["written"], out["origin_keys"]) == (1, 1, ["origin_cohort_id"])
    assert snapshot(root) != before
    path = root / "gens/draft/G1/metadata.json"
    path.write_bytes(path.read_bytes().replace(b'"origin_cohort_id":"lost-drafts"', b'"origin_cohort_id":"elsewhere"'))
    r = run_cli("export-metadata", "--data-root", str(root), "--apply", "--json", ledger=led)
    assert r.returncode == 2
    assert b"problem: G1: gens/draft/G1/metadata.json: origin_cohort_id is 'elsewhere'" in r.stderr
    assert [p["gen_id"] for p in json.loads(r.stdout)["problems"]] == ["G1"]


def test_apply_is_all_or_nothing_when_a_directory_refuses(tmp_path: Path, ledger: Ledger) -> None:
    """Issue 11, item 10: every new file is staged (temp + fsync) before any is renamed, so a
    directory that refuses a write (here: immutable, which stops even root) leaves every
    original byte-identical and no temp file behind."""
    import subprocess

    from helpers.env import unavailable
    from ledger import LedgerEnvironmentError

    root = imported(tmp_path, ledger, with_reference=False)
    rename(ledger, "alias")
    plan = plan_export(ledger.state, root)
    assert len(plan.changes) == 3
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    last = plan.changes[-1].path.parent
    if subprocess.run(["chattr", "+i", str(last)], capture_output=True).returncode != 0:
        unavailable("chattr +i is not supported here")
    try:
        with pytest.raises(LedgerEnvironmentError):
            apply_export(plan)
    finally:
        subprocess.run(["chattr", "-i", str(last)], check=True)
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    apply_export(plan)
    assert all(change.path.read_bytes() == change.after for change in plan.changes)

"""`cohort-ledger demo`, run as a user would, and what it leaves behind."""

from __future__ import annotations

import csv
from pathlib import Path

import orjson
import pyarrow.parquet as pq

from helpers.builders import run_cli
from ledger import Ledger
from ledger.cohorts.hooks import hook_event_id



def test_demo_tells_the_story_and_leaves_a_consistent_ledger(tmp_path: Path) -> None:
    runs = []
    for name in ("one", "two"):
        r = run_cli("demo", str(tmp_path / name))
        assert r.returncode == 0, r.stderr
        runs.append(r.stdout.decode())
    out = runs[0]
    for step in range(1, 13):
        assert f"\n{step}. " in "\n" + out
    page = tmp_path / "one" / "report.html"
    assert out.rstrip().splitlines()[-2] == f"Done. Report: {page}"  # the last thing the demo tells
    assert page.read_bytes().startswith(b"<!DOCTYPE html>") and (tmp_path / "one" / "report.md").exists()
    assert "skipped 8 evaluations" in out and "refused: cohort cohort-a is sealed" in out
    # tamper evidence: a rewritten copy verifies, and only the pin kept outside refuses it
    assert "pin kept OUTSIDE the ledger" in out and "still verifies" in out and "the pin refuses it" in out
    assert run_cli("verify", ledger=tmp_path / "one" / "rewritten-copy").returncode == 0

    led = tmp_path / "one" / "ledger"
    assert run_cli("verify", ledger=led).returncode == 0
    members = orjson.loads(run_cli("show", "cohort-b", "--json", ledger=led).stdout)
    by_stage = {s: [m for m in members if m["stage"] == s] for s in ("draft", "essay", "evaluation")}
    assert [len(v) for v in by_stage.values()] == [2, 2, 11]
    assert sum(m["reused"] for m in members) == 11 and {m["origin_cohort_id"] for m in members} == {"cohort-a", "cohort-b"}
    # the sample's first gens carry the real pipeline's ids
    assert {"d_5ezrffv9uf3lr37d", "e_sq5klak2lljyyom"} <= {m["gen_id"] for m in members}

    data = tmp_path / "one" / "data"
    manifest = pq.read_table(data / "manifest.parquet")
    assert "origin_cohort_id" in manifest.column_names and "cohort_id" not in manifest.column_names
    with open(data / "cohorts" / "cohort-b" / "membership.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["stage"], r["gen_id"]) for r in rows) == sorted((m["stage"], m["gen_id"]) for m in members)

    events = list(Ledger.open(led).read())
    removed = [e for e in events if e.type == "generation.removed"]
    assert len(removed) == 1 and removed[0].id == hook_event_id(
        "dagster-run-b-0001", "generation.removed", "cohort-b", removed[0].data["gen_id"])
    # deterministic apart from timestamps: the same projections, byte for byte, on a second run
    for rel in ("manifest.parquet", "membership.parquet", "cohorts/cohort-a/membership.csv",
                "cohorts/cohort-b/membership.csv"):
        assert (data / rel).read_bytes() == (tmp_path / "two" / "data" / rel).read_bytes(), rel


def test_demo_refuses_an_existing_ledger(tmp_path: Path) -> None:
    (tmp_path / "ledger").mkdir()
    (tmp_path / "ledger" / "keep.txt").write_text("mine")
    r = run_cli("demo", str(tmp_path))
    assert r.returncode == 2 and b"already exists" in r.stderr
    assert (tmp_path / "ledger" / "keep.txt").read_text() == "mine"

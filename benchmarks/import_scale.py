"""How long import-legacy takes on a data root of realistic size (a section of benchmarks.run).

Generates N gens (1/5 drafts, 3/10 essays, 1/2 evaluations) over a few cohorts, with every
metadata.json shape and every membership.csv shape, about a fifth of the gens reused into
a second cohort and some never listed in their origin; then times plan_import, the atomic
append, and a second (no-op) plan.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from helpers.legacy_root import CSV_SHAPES, META_SHAPES, SourceGen, write_root  # noqa: E402

from ledger import Ledger  # noqa: E402
from ledger.legacy import apply_import, plan_import  # noqa: E402

COHORTS = [f"cohort-{i}" for i in range(6)]


def make_model(n: int, rng: random.Random) -> tuple[list[SourceGen], dict[str, list[str]]]:
    gens: list[SourceGen] = []
    drafts = [SourceGen("draft", f"d_{i:07d}", rng.choice(COHORTS), "draft-t", combo=f"combo_{i % 500}",
                        model="gemini_25_pro", meta_shape=rng.choice(META_SHAPES)) for i in range(n // 5)]
    essays = [SourceGen("essay", f"e_{i:07d}", rng.choice(COHORTS), "essay-t", parent=rng.choice(drafts).gen_id,
                        model="sonnet-4", meta_shape=rng.choice(META_SHAPES)) for i in range(n * 3 // 10)]
    evals = [SourceGen("evaluation", f"v_{i:07d}", rng.choice(COHORTS), "novelty-v2",
                       parent=rng.choice(essays).gen_id, model="sonnet-4", replicate=rng.randint(1, 3),
                       meta_shape=rng.choice(META_SHAPES)) for i in range(n - len(drafts) - len(essays))]
    gens = drafts + essays + evals
    members: dict[str, list[str]] = {c: [] for c in COHORTS}
    for g in gens:
        if rng.random() < 0.97:
            members[g.origin].append(g.gen_id)
        if rng.random() < 0.2:
            other = rng.choice(COHORTS)
            if other != g.origin:
                members[other].append(g.gen_id)
    return gens, members


def measure(gens_wanted: int, work: Path) -> dict[str, float | int]:
    """Write a data root of `gens_wanted` gens (not timed), then time plan, apply and a no-op re-plan."""
    gens, members = make_model(gens_wanted, random.Random(42))
    shapes = {c: CSV_SHAPES[i % len(CSV_SHAPES)] for i, c in enumerate(COHORTS)}
    write_root(work / "data", gens, members, shapes)
    ledger = Ledger.init(work / "ledger")
    t0 = time.perf_counter()
    plan = plan_import(ledger.state, work / "data")
    t_plan = time.perf_counter() - t0
    plan.raise_for_problems()
    t0 = time.perf_counter()
    apply_import(ledger, plan)
    t_apply = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = plan_import(Ledger.open(work / "ledger").state, work / "data")
    t_again = time.perf_counter() - t0
    return {"gens": len(gens), "events": len(plan.events), "plan_seconds": t_plan, "apply_seconds": t_apply,
            "total_seconds": t_plan + t_apply, "replan_seconds": t_again, "replan_new_events": len(again.events)}

"""How long import-legacy takes on a data root of realistic size (not run by the test suite).

Generates N gens (1/5 drafts, 3/10 essays, 1/2 evaluations) over a few cohorts, with every
metadata.json shape and every membership.csv shape, about a fifth of the gens reused into
a second cohort and some never listed in their origin; then times plan_import, the atomic
append, and a second (no-op) plan.

    python benchmarks/import_scale.py [--gens 100000] [--dir DIR]
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from legacy_root import CSV_SHAPES, META_SHAPES, SourceGen, write_root  # noqa: E402

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gens", type=int, default=100_000)
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a temp dir, removed)")
    args = ap.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="import-scale-"))
    try:
        gens, members = make_model(args.gens, random.Random(42))
        shapes = {c: CSV_SHAPES[i % len(CSV_SHAPES)] for i, c in enumerate(COHORTS)}
        t0 = time.perf_counter()
        write_root(work / "data", gens, members, shapes)
        t_write = time.perf_counter() - t0
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
        print(f"gens={len(gens)} events={len(plan.events)} (write root {t_write:.1f}s, not timed below)")
        print(f"plan {t_plan:.2f}s  apply {t_apply:.2f}s  total {t_plan + t_apply:.2f}s")
        print(f"re-plan (open + fold {len(plan.events)} events + read root) {t_again:.2f}s, "
              f"{len(again.events)} new events")
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Run the example headless: cohort A, then cohort B reusing A's evaluations.

    python -m examples.dagster_pipeline.demo DIR      (what `make demo-dagster` runs)

DIR gets `ledger/` and `data/` (outputs, projections, reports); the Dagster instance is
in memory. Each gen partition is its own run, as in the pipeline; a
gen whose outputs the ledger already records returns without calling the model.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import dagster as dg

from ledger import Ledger
from ledger.scope import CohortScope

from .assets import cohort_membership, cohort_overview, cohort_scores
from .definitions import ASSETS, checks, projections, resources
from .llm import calls
from .spec import STAGES


#: Dagster's own log lines on stderr: warnings and errors only
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class CohortRun:
    """What one cohort's runs did: per stage, the gens generated and the gens short-circuited."""

    cohort_id: str
    plan: dict[str, Any] = field(default_factory=dict)
    #: the rows of the plan table (one per gen reused or created)
    plan_rows: list[dict[str, Any]] = field(default_factory=list)
    generated: dict[str, list[str]] = field(default_factory=dict)
    reused: dict[str, list[str]] = field(default_factory=dict)
    #: gen -> "reused from <origin>, materialized at seq N" for the short-circuited ones
    notes: dict[str, str] = field(default_factory=dict)
    #: check name -> passed, for every check evaluated in the cohort's runs
    checks: dict[str, bool] = field(default_factory=dict)
    scores: int = 0
    runs: int = 0


def _materialize(instance: dg.DagsterInstance, res: Any, keys: Sequence[dg.AssetKey],
                 partition_key: str | None = None) -> dg.ExecuteInProcessResult:
    """One run of the assets `keys` and their checks."""
    return dg.materialize([*ASSETS, *checks], selection=dg.AssetSelection.assets(*keys),
                          partition_key=partition_key, instance=instance, resources=res, run_config=QUIET)


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def run_cohort(instance: dg.DagsterInstance, ledger_path: str, data_root: str, cohort_id: str) -> CohortRun:
    """Membership (with its checks), every active gen stage by stage, the scores, the
    projections and the overview read from them."""
    res = resources(ledger_path, data_root)
    out = CohortRun(cohort_id)
    result = _materialize(instance, res, [cohort_membership.key], cohort_id)
    out.checks.update(_checks(result))
    metadata = result.asset_materializations_for_node("cohort_membership")[0].metadata
    out.plan = {k: v.value for k, v in metadata.items() if k.endswith(("_new", "_reused", "_active"))}
    out.plan_rows = [dict(r.data) for r in metadata["plan"].value.records]
    out.runs += 1
    for stage in STAGES:
        out.generated[stage], out.reused[stage] = [], []
        for gen_id in CohortScope.from_ledger(ledger_path).active_stage_gen_ids(cohort_id, stage):
            result = _materialize(instance, res, [dg.AssetKey(stage)], gen_id)
            metadata = result.asset_materializations_for_node(stage)[0].metadata
            (out.generated if metadata["status"].value == "generated" else out.reused)[stage].append(gen_id)
            if "note" in metadata:
                out.notes[gen_id] = str(metadata["note"].value)
            out.runs += 1
    result = _materialize(instance, res, [cohort_scores.key], cohort_id)
    out.scores = result.asset_materializations_for_node("cohort_scores")[0].metadata["dagster/row_count"].value
    out.checks.update(_checks(_materialize(instance, res, [*projections.keys, cohort_overview.key])))
    out.runs += 2
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path)
    args = parser.parse_args(argv)
    base: Path = args.dir
    if base.exists() and any(base.iterdir()):
        print(f"{base} is not empty: give a new directory", file=sys.stderr)
        return 2
    ledger_path, data_root = base / "ledger", base / "data"
    Ledger.init(ledger_path)
    data_root.mkdir(parents=True)
    with dg.DagsterInstance.ephemeral() as instance:  # in memory: the ledger is what persists
        for cohort_id in ("cohort-a", "cohort-b"):
            started, before = time.monotonic(), len(calls(data_root))
            run = run_cohort(instance, str(ledger_path), str(data_root), cohort_id)
            print(f"{cohort_id}: planned {run.plan}")
            for stage in STAGES:
                print(f"  {stage:<10} ran the model for {len(run.generated[stage])}, "
                      f"short-circuited {len(run.reused[stage])} (already materialized)")
            for gen_id, note in run.notes.items():
                print(f"    {gen_id}: {note}")
            print("  checks: " + ", ".join(f"{k} {'passed' if ok else 'FAILED'}" for k, ok in run.checks.items()))
            print(f"  model calls {len(calls(data_root)) - before}, cohort_scores rows {run.scores}, "
                  f"{run.runs} runs in {time.monotonic() - started:.1f}s")
    head = Ledger.open(ledger_path).head
    print(f"ledger {ledger_path}: head seq {head.seq} {head.hash}; projections and reports in {data_root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

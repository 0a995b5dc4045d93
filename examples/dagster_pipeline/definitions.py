"""The example's Definitions: `dagster dev -m examples.dagster_pipeline` (docs/dagster.md).

Paths come from the environment, read when a run starts: `COHORT_LEDGER` (the ledger) and
`PIPELINE_DATA_ROOT` (outputs, reports, and the projections, as the pipeline's data root).
"""

from __future__ import annotations

from typing import Any, Mapping

import dagster as dg

from ledger.dagster import CohortLedgerResource, ledger_checks, projection_assets

from .assets import cohort_membership, cohort_overview, cohort_scores, draft, essay, evaluation
from .llm import GenStore, StandInLLM

projections = projection_assets(deps=[dg.AssetDep(cohort_membership, partition_mapping=dg.AllPartitionMapping())],
                                group_name="cohorts")
checks = ledger_checks(cohort_membership, projections_asset="ledger_membership")
ASSETS = [cohort_membership, draft, essay, evaluation, cohort_scores, projections, cohort_overview]


def resources(ledger_path: Any, data_root: Any) -> Mapping[str, Any]:
    """The example's resources over a ledger and a data root (strings, or `dg.EnvVar`s)."""
    return {"ledger": CohortLedgerResource(ledger_path=ledger_path, projections_dir=data_root),
            "store": GenStore(root=data_root), "llm": StandInLLM(root=data_root)}


defs = dg.Definitions(assets=ASSETS, asset_checks=checks,
                      resources=resources(dg.EnvVar("COHORT_LEDGER"), dg.EnvVar("PIPELINE_DATA_ROOT")))

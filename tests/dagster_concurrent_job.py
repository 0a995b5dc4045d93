"""A job whose four steps run at once, each planning and generating one cohort of the example
through `CohortLedgerResource`, all four appending to one ledger (test_dagster_multiprocess).

The cohorts want the same gens and may reuse each other's, so the steps race for every
create, reuse and materialization. Resources come from the environment (`COHORT_LEDGER`,
`PIPELINE_DATA_ROOT`), which the step processes inherit.
"""


import time
from pathlib import Path

import dagster as dg

from examples.dagster_pipeline.assets import materialize_gen, plan_cohort
from examples.dagster_pipeline.definitions import resources
from examples.dagster_pipeline.llm import GenStore, StandInLLM
from examples.dagster_pipeline.spec import STAGES, CohortSpec
from ledger.dagster import CohortLedgerResource

COHORTS = tuple(f"mp-{i}" for i in range(1, 5))
SPEC = CohortSpec(combos=("combo_v1_85128e4e5ef3", "combo_v1_2b7e0c1f9a44"), draft_template="creative-synthesis-v10",
                  model="gemini_25_pro", essay_template="creative-synthesis-v10",
                  evaluation_templates=("novelty-v2",), evaluation_models=("sonnet-4",), allowed_origins=COHORTS)
BARRIER_TIMEOUT = 300.0


def _wait_for_all(store: GenStore, cohort: str) -> None:
    """Start the real work only when all four steps are running: they must overlap."""
    barrier = Path(store.root) / "barrier"
    barrier.mkdir(exist_ok=True)
    (barrier / cohort).touch()
    deadline = time.monotonic() + BARRIER_TIMEOUT
    while len(list(barrier.iterdir())) < len(COHORTS):
        if time.monotonic() > deadline:
            raise dg.Failure("the four steps never ran at the same time")
        time.sleep(0.01)


def cohort_step(cohort: str) -> dg.OpDefinition:
    @dg.op(name=f"cohort_{cohort.replace('-', '_')}")
    def _step(context: dg.OpExecutionContext, ledger: CohortLedgerResource, llm: StandInLLM,
              store: GenStore) -> None:
        _wait_for_all(store, cohort)
        plan_cohort(context, ledger, cohort, SPEC, SPEC.allowed_origins)
        scope = ledger.scope()
        for stage in STAGES:
            for gen_id in scope.active_stage_gen_ids(cohort, stage):
                materialize_gen(context, ledger, llm, store, stage, gen_id)

    return _step


STEPS = [cohort_step(c) for c in COHORTS]


@dg.job(executor_def=dg.multiprocess_executor.configured({"max_concurrent": len(COHORTS)}),
        resource_defs=dict(resources(dg.EnvVar("COHORT_LEDGER"), dg.EnvVar("PIPELINE_DATA_ROOT"))))
def four_cohorts() -> None:
    for step in STEPS:
        step()

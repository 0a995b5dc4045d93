"""The example pipeline: cohort membership -> drafts -> essays -> evaluations -> scores.

Cohorts are static partitions; every gen is a dynamic partition of its stage
(`draft_gens`, `essay_gens`, `evaluation_gens`), registered add-only by `cohort_membership`.
A gen asset whose outputs the ledger already records returns at once: that is where
skip-existing saves the LLM calls.

No `from __future__ import annotations` here: Dagster reads the annotations of the
decorated functions (context, config, resources) when it builds the definitions.
"""


from typing import Any, Sequence

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ledger.cohorts.reuse import ReusePlan
from ledger.dagster import CohortLedgerResource, plan_table
from ledger.domain.state import Generation
from ledger.scope import CohortScope

from .llm import GenStore, StandInLLM
from .spec import COHORTS, STAGES, CohortSpec

cohort_partitions = dg.StaticPartitionsDefinition(list(COHORTS))
GEN_PARTITIONS = {stage: dg.DynamicPartitionsDefinition(name=f"{stage}_gens") for stage in STAGES}
PARENT = {"essay": "draft", "evaluation": "essay"}
#: steps are retried once: a retry re-plans (nothing left to record) or short-circuits
RETRY = dg.RetryPolicy(max_retries=1)


class CohortConfig(dg.Config):
    #: cohorts whose gens may be reused; None: the cohort spec's `allowed_origins`
    allowed_origins: list[str] | None = None


def plan_cohort(context: dg.OpExecutionContext | dg.AssetExecutionContext, ledger: CohortLedgerResource,
                cohort_id: str, spec: CohortSpec, origins: Sequence[str]) -> list[ReusePlan]:
    """Plan and record the cohort stage by stage (reuse, else create); register its gens."""
    plans = [ledger.plan_cohort_stage(context, cohort_id, stage, spec.wanted(stage, ledger.scope(), cohort_id),
                                      origins, spec.create_fields(stage))
             for stage in STAGES]
    ledger.sync_partitions(context, cohort_id, GEN_PARTITIONS)
    return plans


@dg.asset(partitions_def=cohort_partitions, group_name="cohorts", retry_policy=RETRY)
def cohort_membership(context: dg.AssetExecutionContext, config: CohortConfig,
                      ledger: CohortLedgerResource) -> dg.MaterializeResult:
    """The cohort's membership, planned with skip-existing; its gens become partitions."""
    cohort = context.partition_key
    spec = COHORTS[cohort]
    origins = spec.allowed_origins if config.allowed_origins is None else tuple(config.allowed_origins)
    plans = plan_cohort(context, ledger, cohort, spec, origins)
    scope, head = ledger.scope(), ledger.head()
    metadata: dict[str, Any] = {}
    for plan in plans:
        metadata[f"{plan.stage}_new"] = len(plan.create)
        metadata[f"{plan.stage}_reused"] = len(plan.reuse)
        metadata[f"{plan.stage}_active"] = len(scope.active_stage_gen_ids(cohort, plan.stage))
    metadata.update({"head_seq": head.seq, "head_hash": head.hash, "plan": plan_table(plans)})
    return dg.MaterializeResult(metadata=metadata)


def _prompt(stage: str, gen: Generation, store: GenStore) -> str:
    if stage == "draft":
        return f"Draft with template {gen.template_id} for concept combination {gen.combo_id}"
    parent = store.read(PARENT[stage], gen.parent_gen_id or "")
    verb = "Write an essay" if stage == "essay" else "Evaluate"
    return f"{verb} with template {gen.template_id}:\n{parent}"


def _parsed(stage: str, raw: str) -> str:
    return raw.rsplit("SCORE: ", 1)[1] if stage == "evaluation" else raw


def materialize_gen(context: dg.OpExecutionContext | dg.AssetExecutionContext, ledger: CohortLedgerResource,
                    llm: StandInLLM, store: GenStore, stage: str, gen_id: str) -> dict[str, Any]:
    """Generate one gen and record its outputs, unless the ledger says they exist (then the
    step returns at once and downstream reads the cached files). Returns the metadata."""
    gen = ledger.generation(gen_id)
    if gen is None:
        raise dg.Failure(f"{gen_id} is not in the ledger: materialize cohort_membership first")
    if ledger.is_materialized(gen_id):
        note = f"reused from {gen.origin_cohort_id}, materialized at seq {gen.materialized_seq}"
        context.log.info(f"{gen_id}: {note}")
        return {"status": "reused", "note": note, "origin_cohort_id": gen.origin_cohort_id,
                "materialized_seq": gen.materialized_seq or 0}
    raw = llm.complete(gen.llm_model_id or "", _prompt(stage, gen, store), gen_id)
    artifacts = store.write(stage, gen_id, {"raw.txt": raw, "parsed.txt": _parsed(stage, raw)})
    seq = ledger.recorder(context).record_materialized(gen.origin_cohort_id, stage, gen_id, artifacts)
    return {"status": "generated", "origin_cohort_id": gen.origin_cohort_id, "materialized_seq": seq}


def gen_asset(stage: str) -> dg.AssetsDefinition:
    """The asset of one stage, partitioned by that stage's gens."""
    deps = [dg.AssetDep(PARENT[stage], partition_mapping=dg.AllPartitionMapping())] if stage in PARENT else []

    @dg.asset(name=stage, partitions_def=GEN_PARTITIONS[stage], deps=deps, retry_policy=RETRY, group_name="gens")
    def _gen(context: dg.AssetExecutionContext, ledger: CohortLedgerResource, llm: StandInLLM,
             store: GenStore) -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata=materialize_gen(context, ledger, llm, store, stage, context.partition_key))

    return _gen


draft, essay, evaluation = (gen_asset(stage) for stage in STAGES)


@dg.asset(partitions_def=cohort_partitions, group_name="cohorts",
          deps=[cohort_membership, dg.AssetDep("evaluation", partition_mapping=dg.AllPartitionMapping())])
def cohort_scores(context: dg.AssetExecutionContext, ledger: CohortLedgerResource,
                  store: GenStore) -> dg.MaterializeResult:
    """The cohort's evaluation scores: exactly its active evaluations, reused ones included."""
    cohort = context.partition_key
    scope = ledger.scope()
    scores = scope.filter(store.scores(), cohort, stage="evaluation")
    meta = [scope.origin_metadata(g) for g in scores["gen_id"].to_pylist()]
    table = scores.append_column("template_id", pa.array([m["template_id"] for m in meta], pa.string())) \
                  .append_column("llm_model_id", pa.array([m["llm_model_id"] for m in meta], pa.string())) \
                  .append_column("origin_cohort_id", pa.array([m["origin_cohort_id"] for m in meta], pa.string()))
    out = store.report_dir(cohort)
    pacsv.write_csv(table, out / "scores.csv")
    means = table.group_by(["template_id", "llm_model_id"]).aggregate([("score", "mean"), ("score", "count")]) \
                 .sort_by([("template_id", "ascending"), ("llm_model_id", "ascending")])
    rows = [dg.TableRecord({"template_id": r["template_id"], "llm_model_id": r["llm_model_id"],
                            "mean": round(r["score_mean"], 3), "n": r["score_count"]}) for r in means.to_pylist()]
    mean = pc.mean(table["score"]).as_py() if table.num_rows else None
    return dg.MaterializeResult(metadata={
        "dagster/row_count": table.num_rows, "mean_score": mean if mean is not None else float("nan"),
        "reused_evaluations": sum(scope.is_reused(cohort, g) for g in table["gen_id"].to_pylist()),
        "averages": dg.MetadataValue.table(rows, dg.TableSchema(columns=[
            dg.TableColumn("template_id", "string"), dg.TableColumn("llm_model_id", "string"),
            dg.TableColumn("mean", "float"), dg.TableColumn("n", "int")])),
        "path": dg.MetadataValue.path(str(out / "scores.csv"))})


@dg.asset(deps=["ledger_membership"], group_name="cohorts")
def cohort_overview(context: dg.AssetExecutionContext, ledger: CohortLedgerResource) -> dg.MaterializeResult:
    """Every cohort's active members per stage and how many are reused, read from the
    projection files as analysis code reads them (`projections_current` guards it)."""
    scope = CohortScope.from_projection(ledger.projections_out())
    rows = []
    for cohort in scope.cohorts():
        members = scope.members(cohort)
        counts = {stage: sum(m["stage"] == stage for m in members) for stage in STAGES}
        rows.append(dg.TableRecord({"cohort_id": cohort, **counts, "reused": sum(m["reused"] for m in members)}))
    schema = dg.TableSchema(columns=[dg.TableColumn("cohort_id", "string"),
                                     *(dg.TableColumn(stage, "int") for stage in STAGES), dg.TableColumn("reused", "int")])
    return dg.MaterializeResult(metadata={"cohorts": len(rows), "projection_seq": scope.seq or 0,
                                          "overview": dg.MetadataValue.table(rows, schema)})

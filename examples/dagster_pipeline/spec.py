"""The example's cohorts: what each one wants, per stage (the pipeline's cohort specs).

Cohort A generates everything. Cohort B wants A's drafts and essays plus one more combo,
and evaluates every essay with one of A's templates on two models: the planner reuses
A's matching gens and creates only what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledger.cohorts.reuse import Wanted
from ledger.scope import CohortScope

STAGES = ("draft", "essay", "evaluation")


@dataclass(frozen=True)
class CohortSpec:
    combos: tuple[str, ...]
    draft_template: str
    model: str
    essay_template: str
    evaluation_templates: tuple[str, ...]
    evaluation_models: tuple[str, ...]
    #: cohorts whose gens this one may reuse (skip-existing); the run config can override it
    allowed_origins: tuple[str, ...] = ()
    replicates: int = 1

    def wanted(self, stage: str, scope: CohortScope, cohort_id: str) -> list[Wanted]:
        """The stage's wanted signatures; essays and evaluations hang off the cohort's
        active gens of the previous stage, so plan the stages in order."""
        if stage == "draft":
            return [Wanted({"combo_id": c, "template_id": self.draft_template, "llm_model_id": self.model},
                           self.replicates) for c in self.combos]
        if stage == "essay":
            return [Wanted({"parent_gen_id": d, "template_id": self.essay_template}, self.replicates)
                    for d in scope.active_stage_gen_ids(cohort_id, "draft")]
        return [Wanted({"parent_gen_id": e, "template_id": t, "llm_model_id": m}, self.replicates)
                for e in scope.active_stage_gen_ids(cohort_id, "essay")
                for t in self.evaluation_templates for m in self.evaluation_models]

    def create_fields(self, stage: str) -> dict[str, Any]:
        """Created fields beyond the signature: every gen here is an LLM call; an essay's
        model is not part of its signature."""
        return {"mode": "llm", **({"llm_model_id": self.model} if stage == "essay" else {})}


COHORTS: dict[str, CohortSpec] = {
    "cohort-a": CohortSpec(
        combos=("combo_v1_85128e4e5ef3", "combo_v1_2b7e0c1f9a44"),
        draft_template="creative-synthesis-v10", model="gemini_25_pro", essay_template="creative-synthesis-v10",
        evaluation_templates=("novelty-v2", "insight-depth-v1"), evaluation_models=("sonnet-4",)),
    "cohort-b": CohortSpec(
        combos=("combo_v1_85128e4e5ef3", "combo_v1_2b7e0c1f9a44", "combo_v1_6d1f3a8b0c52"),
        draft_template="creative-synthesis-v10", model="gemini_25_pro", essay_template="creative-synthesis-v10",
        evaluation_templates=("novelty-v2",), evaluation_models=("sonnet-4", "gemini_25_pro"),
        allowed_origins=("cohort-a",)),
}

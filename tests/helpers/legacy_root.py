"""Writes pipeline data roots in every historical shape, for the legacy tests and the benchmark.

The model is the truth (`SourceGen`s and each cohort's member list); the files are one of
many renderings of it, and the import must read every rendering back to the same model.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

#: metadata.json shapes: current (origin_cohort_id only), legacy (pandas era: cohort_id, legacy
#: template key, "nan", run-time keys), both (the rename rollout), builder (cohort builder era:
#: cohort_id, combo_id on every stage -- give non-drafts their draft's combo to model it)
META_SHAPES = ("current", "legacy", "both", "builder")
CSV_SHAPES = ("slim", "slim-cohort", "wide-7", "wide-8", "wide-8-curated")
LEGACY_TEMPLATE_KEY = {"draft": "draft_template", "essay": "essay_template", "evaluation": "evaluation_template"}


@dataclass(frozen=True)
class SourceGen:
    stage: str
    gen_id: str
    origin: str
    template: str
    combo: str | None = None
    model: str | None = None
    parent: str | None = None
    replicate: int = 1
    mode: str | None = "llm"
    meta_shape: str = "current"

    def metadata(self) -> dict[str, Any]:
        """What the ledger must hold: `Generation.metadata()`'s keys."""
        return {"stage": self.stage, "gen_id": self.gen_id, "cohort_id": self.origin,
                "template_id": self.template, "combo_id": self.combo, "llm_model_id": self.model,
                "parent_gen_id": self.parent, "replicate": self.replicate, "mode": self.mode}


def metadata_bytes(g: SourceGen) -> bytes:
    if g.meta_shape == "legacy":  # pre-rename, pandas era: compact, "nan", run-time keys, no replicate when 1
        doc: dict[str, Any] = {"stage": g.stage, "gen_id": g.gen_id, LEGACY_TEMPLATE_KEY[g.stage]: g.template,
                               "llm_model_id": g.model if g.model is not None else "nan",
                               "parent_gen_id": g.parent if g.parent is not None else "nan",
                               "parser_name": "nan", "mode": g.mode, "usage": {"total_tokens": 7},
                               "run_id": "RUN1", "cohort_id": g.origin}
        if g.combo is not None:
            doc["combo_id"] = g.combo
        if g.replicate != 1:
            doc["replicate"] = g.replicate
        return json.dumps(doc, separators=(",", ":")).encode() + b"\n"
    if g.meta_shape == "builder":
        doc = {"stage": g.stage, "gen_id": g.gen_id, "cohort_id": g.origin, "template_id": g.template,
               "combo_id": g.combo, "parent_gen_id": g.parent, "llm_model_id": g.model, "replicate": g.replicate,
               "mode": g.mode}
        return json.dumps({k: v for k, v in doc.items() if v is not None}, indent=2).encode()
    doc = {"stage": g.stage, "gen_id": g.gen_id}
    if g.meta_shape == "both":
        doc["cohort_id"] = g.origin
    doc["origin_cohort_id"] = g.origin
    for key, value in (("mode", g.mode), ("template_id", g.template), ("combo_id", g.combo),
                       ("parent_gen_id", g.parent), ("llm_model_id", g.model)):
        if value is not None:
            doc[key] = value
    doc["replicate"] = g.replicate
    return json.dumps(doc, indent=2).encode()


def _root_combo(g: SourceGen, gens: dict[str, SourceGen]) -> str | None:
    while g.parent is not None:
        g = gens[g.parent]
    return g.combo


def membership_bytes(cohort: str, shape: str, members: Iterable[SourceGen], gens: dict[str, SourceGen],
                     origin_column: bool = False) -> bytes:
    """One cohort's membership.csv. Wide files repeat the draft's combo_id on every stage and
    put the file's own cohort in their cohort column, as the pipeline writes them;
    `origin_column` puts each gen's origin in the curated file's `origin_cohort_id` column
    instead (what its header suggests, and a reading the import must also accept)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n" if shape == "wide-8-curated" else "\n")
    from ledger.legacy.membership import SHAPES
    w.writerow(SHAPES[shape])
    for g in members:
        third = g.origin if origin_column else cohort
        if shape == "slim":
            w.writerow([g.stage, g.gen_id])
        elif shape == "slim-cohort":
            w.writerow([g.stage, g.gen_id, cohort])
        elif shape == "wide-7":
            w.writerow([g.stage, g.gen_id, third, g.parent or "", _root_combo(g, gens) or "", g.template, g.model or ""])
        else:
            w.writerow([g.stage, g.gen_id, third, g.parent or "", _root_combo(g, gens) or "", g.template,
                        g.model or "", g.replicate])
    return out.getvalue().encode()


def write_root(root: Path, gens: Iterable[SourceGen], cohorts: dict[str, list[str]],
               shapes: dict[str, str] | None = None, origin_column: bool = False) -> dict[str, SourceGen]:
    """Write gens/<stage>/<gen_id>/metadata.json and cohorts/<c>/membership.csv; return gens by id."""
    by_id = {g.gen_id: g for g in gens}
    for g in by_id.values():
        d = root / "gens" / g.stage / g.gen_id
        d.mkdir(parents=True, exist_ok=True)
        (d / "metadata.json").write_bytes(metadata_bytes(g))
    for cohort, members in cohorts.items():
        d = root / "cohorts" / cohort
        d.mkdir(parents=True, exist_ok=True)
        shape = (shapes or {}).get(cohort, "slim")
        (d / "membership.csv").write_bytes(
            membership_bytes(cohort, shape, (by_id[m] for m in members), by_id, origin_column))
    return by_id

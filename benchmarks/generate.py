"""A deterministic, realistic event stream for benchmarks.

The shape follows a real pipeline: cohort A runs drafts -> essays -> two evaluations per
essay, each generation followed by its `generation.materialized`, in runs of
`RUN_DRAFTS` drafts; cohort B then reuses a third of A's essays (with their draft and both
evaluations, reason `skip-existing`) and adds one new evaluation per reused essay. Ids are
the pipeline's deterministic gen ids, event ids are the idempotent ids a hook derives from
its run, so the same `n` always gives the same events (only `at` differs between runs).

Every prefix of the stream is a valid log, which the harness relies on: the first `n`
events make the ledger, the next ones are the "1% new events" of an incremental build.
"""

from __future__ import annotations

import hashlib
from itertools import islice
from typing import Any, Iterator

from ledger.domain.ids import gen_id

COHORT_A = "creative_sweep_2026_q3"
COHORT_B = "best_novelty_all_evals"
RUN_DRAFTS = 500
DRAFT_TEMPLATES = ("creative-synthesis-v10", "creative-synthesis-v9", "links-v4")
ESSAY_TEMPLATE = "parsed-from-links-v1"
EVAL_TEMPLATES = ("novelty-v2", "novelty-v3")
MODELS = ("gemini_25_pro", "sonnet-4", "gpt-5-mini")
#: events per draft of cohort A (4 created + 4 materialized) and of cohort B (6 per reused essay, 1 in 3)
EVENTS_PER_UNIT = 10

Event = dict[str, Any]


def _hex(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def _by(run_id: str) -> dict[str, str]:
    return {"run_id": run_id}


def _created(cohort: str, run_id: str, data: dict[str, Any]) -> Event:
    full = {"cohort_id": cohort, **data, "replicate": 1, "mode": "llm"}
    return {"type": "generation.created", "id": f"{run_id}/{data['gen_id']}/c", "by": _by(run_id), "data": full}


def _materialized(cohort: str, run_id: str, stage: str, gid: str) -> Event:
    return {"type": "generation.materialized", "id": f"{run_id}/{gid}/m", "by": _by(run_id),
            "data": {"cohort_id": cohort, "stage": stage, "gen_id": gid,
                     "artifacts": {"parsed.txt": _hex(gid, "parsed")}}}


def _reused(run_id: str, stage: str, gid: str, signature: dict[str, Any]) -> Event:
    return {"type": "generation.reused", "id": f"{run_id}/{gid}/r", "by": _by(run_id),
            "data": {"cohort_id": COHORT_B, "stage": stage, "gen_id": gid, "reason": "skip-existing",
                     "matched_on": signature}}


def _opened(cohort: str, description: str) -> Event:
    return {"type": "cohort.opened", "id": f"open:{cohort}", "by": {"actor": "operator", "source": "cli"},
            "data": {"cohort_id": cohort, "description": description,
                     "spec": {"fingerprint": _hex(cohort), "templates": list(DRAFT_TEMPLATES + EVAL_TEMPLATES)}}}


def _cohort_a(units: int) -> Iterator[tuple[Event, tuple[str, str, str] | None]]:
    """Cohort A's events; each essay is reported with its draft and evaluations for cohort B."""
    yield _opened(COHORT_A, "full sweep of combos x draft templates"), None
    for start in range(0, units, RUN_DRAFTS):
        run_id = f"run-a-{start // RUN_DRAFTS:06d}"
        ids = range(start, min(units, start + RUN_DRAFTS))
        drafts = []
        for i in ids:
            combo, tmpl, model = f"combo_v1_{_hex('combo', i)[:12]}", DRAFT_TEMPLATES[i % 3], MODELS[i % 2]
            d = gen_id("draft", combo_id=combo, template_id=tmpl, llm_model_id=model, replicate=1)
            drafts.append(d)
            yield _created(COHORT_A, run_id, {"stage": "draft", "gen_id": d, "template_id": tmpl,
                                              "combo_id": combo, "llm_model_id": model}), None
        for d in drafts:
            yield _materialized(COHORT_A, run_id, "draft", d), None
        essays = []
        for d in drafts:
            e = gen_id("essay", parent_gen_id=d, template_id=ESSAY_TEMPLATE, replicate=1)
            essays.append(e)
            yield _created(COHORT_A, run_id, {"stage": "essay", "gen_id": e, "template_id": ESSAY_TEMPLATE,
                                              "llm_model_id": MODELS[2], "parent_gen_id": d}), None
        for e in essays:
            yield _materialized(COHORT_A, run_id, "essay", e), None
        evals: list[list[str]] = [[] for _ in essays]
        for k, e in enumerate(essays):
            for model in MODELS[:2]:
                v = gen_id("evaluation", parent_gen_id=e, template_id=EVAL_TEMPLATES[0], llm_model_id=model, replicate=1)
                evals[k].append(v)
                yield _created(COHORT_A, run_id, {"stage": "evaluation", "gen_id": v, "template_id": EVAL_TEMPLATES[0],
                                                  "llm_model_id": model, "parent_gen_id": e}), None
        for k, i in enumerate(ids):
            for v in evals[k]:
                yield _materialized(COHORT_A, run_id, "evaluation", v), None
            if i % 3 == 0:
                yield {}, (drafts[k], essays[k], evals[k][0] + " " + evals[k][1])


def _cohort_b(reused: list[tuple[str, str, str]]) -> Iterator[Event]:
    yield _opened(COHORT_B, "novelty re-evaluation of a third of the essays")
    for start in range(0, len(reused), RUN_DRAFTS):
        run_id = f"run-b-{start // RUN_DRAFTS:06d}"
        for d, e, vs in reused[start : start + RUN_DRAFTS]:
            yield _reused(run_id, "draft", d, {"template_id": "reused"})
            yield _reused(run_id, "essay", e, {"parent_gen_id": d, "template_id": ESSAY_TEMPLATE, "replicate": 1})
            for v in vs.split():
                yield _reused(run_id, "evaluation", v, {"parent_gen_id": e, "template_id": EVAL_TEMPLATES[0],
                                                        "replicate": 1})
            v3 = gen_id("evaluation", parent_gen_id=e, template_id=EVAL_TEMPLATES[1], llm_model_id=MODELS[0], replicate=1)
            yield _created(COHORT_B, run_id, {"stage": "evaluation", "gen_id": v3, "template_id": EVAL_TEMPLATES[1],
                                              "llm_model_id": MODELS[0], "parent_gen_id": e})
            yield _materialized(COHORT_B, run_id, "evaluation", v3)


def stream(total: int) -> Iterator[Event]:
    """Exactly `total` events: a prefix of the stream sized for `total` events."""
    units = total // EVENTS_PER_UNIT + 1

    def everything() -> Iterator[Event]:
        reused: list[tuple[str, str, str]] = []
        for event, essay in _cohort_a(units):
            if essay is None:
                yield event
            else:
                reused.append(essay)
        yield from _cohort_b(reused)

    return islice(everything(), total)


def batches(events: Iterator[Event], size: int) -> Iterator[list[Event]]:
    while chunk := list(islice(events, size)):
        yield chunk


def fresh_drafts(tag: str, count: int) -> list[Event]:
    """`count` new drafts in cohort A that no stream prefix contains (for append benchmarks)."""
    out = []
    for i in range(count):
        combo = f"combo_{tag}_{i}"
        d = gen_id("draft", combo_id=combo, template_id=DRAFT_TEMPLATES[0], llm_model_id=MODELS[0], replicate=1)
        out.append(_created(COHORT_A, f"run-{tag}", {"stage": "draft", "gen_id": d, "template_id": DRAFT_TEMPLATES[0],
                                                     "combo_id": combo, "llm_model_id": MODELS[0]}))
    return out

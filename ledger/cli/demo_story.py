"""The end-to-end story of `cohort-ledger demo`, on the sample data in `ledger/sample/demo.json`.

It plays what a real deployment does over weeks, in a few seconds: a pipeline run records
cohort A through the hook API; cohort B is planned with skip-existing reuse and only runs
what is missing; an operator removes a bad evaluation, rolls out the origin-key rename,
seals A; the projections are built and the chain verified, and a rewritten copy of the log
shows why tamper evidence needs a pin kept outside the ledger; B's history is told back, and
the audit report page on both cohorts is written.
Everything but the timestamps (and so the hashes) is deterministic.

This module sits in the CLI layer (docs/architecture.md, "Layers"): unlike the library
below it, it calls `projections`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from ..cohorts.admin import rename_key, seal_cohort
from ..app.pins import Pin, check_pins
from ..errors import CheckFailed, EventRejected
from ..log.codec import encode_line, genesis_prev
from ..cohorts.history import HistoryEntry, cohort_history
from ..cohorts.hooks import PipelineRecorder
from ..domain.ids import gen_id
from ..cohorts.reuse import ReusePlan, Wanted, key_fields, plan_and_apply
from ..cohorts.scope import CohortScope
from ..app.service import Head, Ledger
from ..domain.state import Generation
from ..log.file_store import LOG_FILE

Say = Callable[[str], None]
OPERATOR = {"actor": "ops-oncall", "source": "demo"}


@dataclass(frozen=True)
class DemoResult:
    ledger_path: Path
    out_dir: Path
    head: Head
    #: cohort id -> stage -> active member count, from the built projection
    members: dict[str, dict[str, int]]
    history_b: list[str]
    #: the audit report page on both cohorts, and its Markdown twin
    report_html: Path
    report_md: Path


def load_sample() -> dict[str, Any]:
    sample: dict[str, Any] = json.loads((resources.files("ledger") / "sample" / "demo.json").read_text(encoding="utf-8"))
    return sample


def _artifacts(gid: str) -> dict[str, str]:
    """Stand-ins for the sha256 of the files a pipeline step writes (raw and parsed text)."""
    return {name: hashlib.sha256(f"{gid}/{name}.txt".encode()).hexdigest() for name in ("raw", "parsed")}


def _create(rec: PipelineRecorder, cohort: str, stage: str, replicate: int, **signature: str) -> str:
    """What a pipeline step records for a new gen: its deterministic id and origin metadata."""
    gid = gen_id(stage, **signature, replicate=replicate)  # fields outside the stage's signature are ignored
    rec.record_created(cohort, stage, gid, replicate=replicate, mode="llm", **signature)
    return gid


def _generate(rec: PipelineRecorder, cohort: str, stage: str, replicate: int, **signature: str) -> str:
    """Create a gen and record its outputs at once (cohort A's run, step by step)."""
    gid = _create(rec, cohort, stage, replicate, **signature)
    rec.record_materialized(cohort, stage, gid, _artifacts(gid))
    return gid


def _run_cohort_a(ledger: Ledger, a: dict[str, Any]) -> dict[str, list[str]]:
    rec = PipelineRecorder(ledger.path, run_id=a["run_id"], actor="dagster")
    ledger.append([{"type": "cohort.opened", "by": rec.by,
                    "data": {"cohort_id": a["cohort_id"], "description": a["description"],
                             "spec": {k: a[k] for k in ("combos", "draft_template", "essay_template",
                                                        "generation_model", "evaluations")}}}])
    made: dict[str, list[str]] = {"draft": [], "essay": [], "evaluation": []}
    model = a["generation_model"]
    for combo in a["combos"]:
        draft = _generate(rec, a["cohort_id"], "draft", 1, combo_id=combo,
                          template_id=a["draft_template"], llm_model_id=model)
        essay = _generate(rec, a["cohort_id"], "essay", 1, parent_gen_id=draft,
                          template_id=a["essay_template"], llm_model_id=model)
        made["draft"].append(draft)
        made["essay"].append(essay)
        for ev in a["evaluations"]:
            for r in range(1, ev["replicates"] + 1):
                made["evaluation"].append(_generate(rec, a["cohort_id"], "evaluation", r, parent_gen_id=essay,
                                                    template_id=ev["template_id"], llm_model_id=ev["llm_model_id"]))
    return made


def _signature(gen: Generation) -> dict[str, str]:
    """A gen's wanted-list signature (its stage's key fields), every one of them set."""
    values = {name: getattr(gen, name) for name in key_fields(gen.stage)}
    missing = [name for name, value in values.items() if value is None]
    if missing:
        raise ValueError(f"demo gen {gen.gen_id} has no {', '.join(missing)}")
    return values


def _wanted_b(ledger: Ledger, a_cohort: str, b: dict[str, Any]) -> dict[str, list[Wanted]]:
    """Cohort B's configuration as wanted signatures: A's drafts and essays, B's evaluation grid."""
    state = ledger.state
    a_gens = [state.generations[g] for g in sorted(state.cohorts[a_cohort].members)]
    return {
        "draft": [Wanted(_signature(g), 1) for g in a_gens if g.stage == "draft"],
        "essay": [Wanted(_signature(g), 1) for g in a_gens if g.stage == "essay"],
        "evaluation": [Wanted({"parent_gen_id": g.gen_id, "template_id": ev["template_id"],
                               "llm_model_id": ev["llm_model_id"]}, ev["replicates"])
                       for g in a_gens if g.stage == "essay" for ev in b["evaluations"]],
    }


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def summarize_history(entries: list[HistoryEntry]) -> list[str]:
    """Consecutive events of the same kind, origin and author folded into one readable line."""
    lines = []

    def kind(e: HistoryEntry) -> tuple[Any, ...]:
        return (e.type, e.stage, e.origin_cohort_id if e.type == "generation.reused" else None, e.reason,
                f"run {e.by['run_id']}" if "run_id" in e.by else e.by.get("actor"))

    for (etype, stage, origin, reason, who), group in itertools.groupby(entries, key=kind):
        items = list(group)
        n = len(items)
        what = {
            "cohort.opened": "opened",
            "cohort.sealed": f"sealed ({reason})" if reason else "sealed",
            "generation.created": f"created {_plural(n, str(stage))}",
            "generation.reused": f"reused {_plural(n, str(stage))} from {origin} ({reason})",
            "generation.removed": f"removed {_plural(n, str(stage))} ({reason})",
            "generation.materialized": f"recorded the outputs of {_plural(n, str(stage))}",
        }.get(etype, etype)
        seqs = f"{items[0].seq}" if n == 1 else f"{items[0].seq}-{items[-1].seq}"
        counts = ", ".join(f"{s} {c}" for s, c in items[-1].counts.items())
        lines.append(f"seq {seqs:<7} {what}{f' by {who}' if who else ''}  -> {counts}")
    return lines


def run_demo(directory: str | Path, say: Say = print) -> DemoResult:
    """Run the whole story in `directory` (its `ledger/` must not exist yet), narrating through `say`."""
    from projections import build  # the CLI layer may call projections (docs/architecture.md)

    directory = Path(directory)
    sample = load_sample()
    a, b = sample["cohort_a"], sample["cohort_b"]
    A, B = a["cohort_id"], b["cohort_id"]
    ledger = Ledger.init(directory / "ledger")
    out = directory / "data"
    say(f"1. Created an empty ledger in {ledger.path}: every change below is an event appended to "
        "its hash-chained events.jsonl; nothing is ever edited in place.")

    made = _run_cohort_a(ledger, a)
    say(f"2. Pipeline run {a['run_id']} built {A} through the hook API: {_plural(len(made['draft']), 'draft')}, "
        f"{_plural(len(made['essay']), 'essay')} and {_plural(len(made['evaluation']), 'evaluation')} "
        f"(two judges, two replicates each), each with its outputs recorded as materialized. Gen ids are the "
        f"pipeline's deterministic ones, e.g. {made['draft'][0]}. Head is now seq {ledger.head.seq}.")

    rec_b = PipelineRecorder(ledger.path, run_id=b["run_id"], actor="dagster")
    ledger.append([{"type": "cohort.opened", "by": rec_b.by,
                    "data": {"cohort_id": B, "description": b["description"], "spec": {"evaluations": b["evaluations"]}}}])
    plans: dict[str, ReusePlan] = {}
    for stage, wanted in _wanted_b(ledger, A, b).items():
        plans[stage], _ = plan_and_apply(ledger, B, stage, wanted, allowed_origins=[A], by=rec_b.by)
    ev_plan = plans["evaluation"]
    say(f"3. {B} was planned with skip-existing reuse (only gens from {A} allowed): it reuses "
        f"{_plural(len(plans['draft'].reuse), 'draft')}, {_plural(len(plans['essay'].reuse), 'essay')} and "
        f"{_plural(len(ev_plan.reuse), 'evaluation')} (lowest replicates first), and needs "
        f"{_plural(len(ev_plan.create), 'new evaluation')}: gemini replicate 3 of each essay and the new "
        f"insight-depth rubric. Each stage's reuse went in as one batch, accepted only because the ledger "
        f"was still at the seq its plan was made at (evaluations: seq {ev_plan.seq}); no metadata was copied or changed.")

    skipped = sum(rec_b.is_materialized(r.gen_id) for r in ev_plan.reuse)
    new = [_create(rec_b, B, "evaluation", c.replicate, **c.signature) for c in ev_plan.create]
    for gid in new:  # ... the judges run ...
        rec_b.record_materialized(B, "evaluation", gid, _artifacts(gid))
    say(f"4. Pipeline run {b['run_id']} asked is_materialized() for each reused evaluation and skipped "
        f"{_plural(skipped, 'evaluation')} whose outputs already exist; it ran only the "
        f"{_plural(len(ev_plan.create), 'new one')}, under the ids the plan gave them (e.g. {ev_plan.create[0].gen_id}).")

    bad = next(r for r in reversed(ev_plan.reuse) if r.matched_on["llm_model_id"] == "sonnet-4")
    rec_b.record_removed(B, "evaluation", bad.gen_id, b["removal_reason"])
    say(f"5. Removed evaluation {bad.gen_id} from {B} ({b['removal_reason']}). Only {B}'s membership changed: "
        f"it is still in {A}, its origin.")

    rename_key(ledger, "cohort_id", "origin_cohort_id", "alias", by=OPERATOR)
    build(ledger.path, out_dir=out)
    alias_cols = _origin_columns(out)
    rename_key(ledger, "cohort_id", "origin_cohort_id", "final", by=OPERATOR)
    say(f"6. Rolled out the rename cohort_id -> origin_cohort_id: in the alias phase a build wrote the manifest "
        f"with both columns ({', '.join(alias_cols)}), so old and new readers both work; the final phase keeps "
        "only origin_cohort_id.")

    seal_cohort(ledger, A, reason="scores published", by=OPERATOR)
    try:
        ledger.append([{"type": "generation.removed", "by": OPERATOR,
                        "data": {"cohort_id": A, "stage": "evaluation", "gen_id": made["evaluation"][0],
                                 "reason": "late cleanup"}}])
    except EventRejected as exc:
        refusal = exc.rule
    else:
        raise AssertionError(f"sealed cohort {A} accepted a membership change")
    say(f"7. Sealed {A} (its scores are published). A later attempt to remove one of its evaluations was "
        f"refused: {refusal}.")

    build(ledger.path, out_dir=out)
    scope = CohortScope.from_projection(out)
    members = {c: {s: len(scope.active_stage_gen_ids(c, s)) for s in ledger.config.stages} for c in scope.cohorts()}
    csvs = sorted(str(p.relative_to(out)) for p in out.glob("cohorts/*/membership.csv"))
    say(f"8. Built the projections into {out}: manifest.parquet (origin column now {', '.join(_origin_columns(out))}), "
        f"membership.parquet and {', '.join(csvs)} -- the files the pipeline reads. Active members: "
        + "; ".join(f"{c}: " + ", ".join(f"{n} {s}" for s, n in m.items()) for c, m in members.items()) + ".")

    scores = _score_table(scope)
    kept = scope.filter(scores, B, stage="evaluation")
    say(f"9. Reporting: a score table of all {scores.num_rows} evaluations, filtered by {B}'s active membership "
        f"(CohortScope.filter), keeps {kept.num_rows} rows (mean score {_mean(kept):.2f} vs {_mean(scores):.2f} "
        "overall): the removed evaluation is out of B's averages, the reused ones count without having been re-run.")

    report = ledger.verify()
    pin = Pin(report.head.seq, report.head.hash)
    say(f"10. Verified the chain: {report.events} events intact, head seq {report.head.seq} hash {report.head.hash}. "
        f"Tamper evidence needs that pin kept OUTSIDE the ledger: `verify --expect {pin.seq}:{pin.hash}` checks it "
        "however far the log grows. " + _show_a_rewrite(ledger, directory / "rewritten-copy", pin))

    history = summarize_history(list(cohort_history(ledger, B)))
    say(f"11. History of {B} (`cohort-ledger history {B}` has every event):")
    for line in history:
        say(f"    {line}")

    from ..report import write_report  # matplotlib: only when the report is written

    page, md = directory / "report.html", directory / "report.md"
    written = write_report(ledger, [B, A], page, md)
    say(f"12. Wrote the audit report on {B} and {A} as of seq {written.seq}: composition over time, reuse flows, "
        f"coverage, the removal and its reason, the timeline, the pin, and the overlap of the two cohorts "
        f"(`cohort-ledger report {B} {A} --html ...`). It opens offline in any browser:\n    {page.resolve()}")
    return DemoResult(ledger.path, out, report.head, members, history, page, md)


def _show_a_rewrite(ledger: Ledger, copy: Path, pin: Pin) -> str:
    """Rewrite a copy of the log without its removal, recomputing every hash as anyone with
    write access could: the copy's chain verifies, and only the pin tells it apart."""
    shutil.copytree(ledger.path, copy, ignore=shutil.ignore_patterns("checkpoint*", "projections"))
    events = [e for e in ledger.read() if e.type != "generation.removed"]
    prev, lines = genesis_prev(ledger.config.ledger_id), []
    for seq, ev in enumerate(events, start=1):
        line, prev = encode_line({**ev.model_dump(exclude={"hash"}), "seq": seq, "prev": prev, "txn": [seq, 1]})
        lines.append(line)
    (copy / LOG_FILE).write_bytes(b"".join(lines))
    forged = Ledger.open(copy)
    events_ok = forged.verify().events
    try:
        check_pins(forged, [pin])
        verdict = "the pin still matched (unexpected)"
    except CheckFailed as exc:
        verdict = f"the pin refuses it: {exc}"
    return (f"A copy rewritten without the removal ({copy.name}/) still verifies ({events_ok} events, a valid "
            f"chain); {verdict}.")


def _origin_columns(out: Path) -> list[str]:
    import pyarrow.parquet as pq

    names = pq.read_schema(out / "manifest.parquet").names
    return [n for n in ("cohort_id", "origin_cohort_id") if n in names]


def _mean(table: Any) -> float:
    values: list[float] = table["score"].to_pylist()
    return sum(values) / len(values)


def _score_table(scope: CohortScope) -> Any:
    """A report's input: one made-up 0-10 score per evaluation of any cohort (derived from its id)."""
    import pyarrow as pa

    ids = sorted({g for c in scope.cohorts() for g in scope.active_stage_gen_ids(c, "evaluation")})
    return pa.table({"gen_id": ids, "score": [int(hashlib.sha256(g.encode()).hexdigest()[:4], 16) % 101 / 10
                                              for g in ids]})

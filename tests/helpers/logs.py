"""Shared by the projection tests: random valid event sequences, ledgers built from them,
and a byte-level snapshot of a projection directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from hypothesis import assume, strategies as st

from ledger import Ledger, LedgerConfig, State
from ledger.domain.events import normalize_batch
from ledger.domain.state import DomainError

COHORTS = ("A", "B", "c.2", "D-x")
RENAMES = (("cohort_id", "origin_cohort_id"), ("template_id", "template"))
PARENT = {"essay": "draft", "evaluation": "essay"}
OPTIONAL = {"combo_id": st.sampled_from(["combo_1", "combo_2"]), "llm_model_id": st.sampled_from(["m1", "sonnet-4"]),
            "mode": st.sampled_from(["llm", "copy"]), "replicate": st.integers(1, 3)}


def _candidate(draw: Any, state: State, n: int) -> dict[str, Any]:
    gens = list(state.generations.values())
    cohort = draw(st.sampled_from(COHORTS))
    kind = draw(st.sampled_from(["open", "create", "create", "create", "reuse", "reuse", "remove",
                                 "materialize", "seal", "rename"]))
    if kind == "open":
        return {"type": "cohort.opened", "data": {"cohort_id": cohort}}
    if kind == "seal":
        return {"type": "cohort.sealed", "data": {"cohort_id": cohort}}
    if kind == "rename":
        old, new = draw(st.sampled_from(RENAMES))
        phase = "alias" if old in state.manifest_columns() and new not in state.manifest_columns() else "final"
        return {"type": "metadata.key_renamed", "data": {"old_key": old, "new_key": new, "phase": phase}}
    if kind == "create" or not gens:
        stage = draw(st.sampled_from(["draft", "essay", "evaluation"]))
        data: dict[str, Any] = {"cohort_id": cohort, "stage": stage, "gen_id": f"{stage[0]}_{n}",
                                "template_id": draw(st.sampled_from(["t1", "t2"]))}
        if stage in PARENT:
            parents = [g.gen_id for g in gens if g.stage == PARENT[stage]]
            if not parents:
                return {"type": "cohort.opened", "data": {"cohort_id": cohort}}
            data["parent_gen_id"] = draw(st.sampled_from(parents))
        for key, values in OPTIONAL.items():
            if draw(st.booleans()):
                data[key] = draw(values)
        return {"type": "generation.created", "data": data}
    gen = draw(st.sampled_from(gens))
    ref = {"cohort_id": cohort, "stage": gen.stage, "gen_id": gen.gen_id}
    if kind == "reuse":
        return {"type": "generation.reused", "data": {**ref, "reason": "skip-existing"}}
    if kind == "remove":
        members = [(c.cohort_id, g) for c in state.cohorts.values() for g in c.members]
        if members:
            cid, gid = draw(st.sampled_from(members))
            ref = {"cohort_id": cid, "stage": state.generations[gid].stage, "gen_id": gid}
        return {"type": "generation.removed", "data": {**ref, "reason": "dropped"}}
    return {"type": "generation.materialized", "data": {**ref, "artifacts": {"out.txt": "ab" * 32}}}


@st.composite
def event_logs(draw: Any, max_events: int = 40) -> list[dict[str, Any]]:
    """A list of events each valid against the ones before it (the real fold is the oracle)."""
    state = State(LedgerConfig.new())
    events: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, max_events))):
        ev = _candidate(draw, state, len(events) + 1)
        seq = len(events) + 1
        try:
            with state.transaction():
                (normalized,) = normalize_batch([ev])
                done_at = state.apply(ev["type"], normalized["data"], seq, f"id{seq}", "")
                if done_at != seq:
                    raise DomainError("no-op")
        except DomainError:
            continue
        events.append({**ev, "id": f"ev-{seq}"})
    assume(events)  # every candidate may have been refused: an empty log is no batch to append
    return events


@st.composite
def batch_sizes(draw: Any, n: int) -> list[int]:
    """Sizes of consecutive batches that together hold n events."""
    sizes: list[int] = []
    while sum(sizes) < n:
        sizes.append(draw(st.integers(1, n - sum(sizes))))
    return sizes


def append_in_batches(path: Path, events: list[dict[str, Any]], sizes: Iterable[int]) -> Ledger:
    ledger = Ledger.init(path)
    start = 0
    for size in sizes:
        ledger.append(events[start:start + size])
        start += size
    assert start == len(events)
    return ledger


def snapshot(out: Path, with_record: bool = True) -> dict[str, bytes]:
    """Every file under `out` (relative path -> bytes); `_projection.json` optionally left out."""
    files = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    if not with_record:
        files.pop("_projection.json", None)
    return files

"""The pipeline-hook API: what a Dagster asset calls to record what it did (docs/operators.md §4).

Hooks are retried (timeouts, re-executed steps) and run in many processes at once. Every
event therefore carries an id derived only from what it records, so the store turns a
retry into a no-op returning the original seq, and the flock in `Ledger.append` serialises
concurrent writers.

Event id scheme (version 1)::

    hook1:<event type>:<hex>

where <hex> is the 32-hex-digit blake2b-128 digest of the canonical JSON array
``[run_id, event type, cohort_id, gen_id]``. The digest keeps the id within `EventId`
(printable ASCII, no spaces, at most 256 characters) whatever the run id contains. One
consequence: within a run, each (event type, cohort, gen) is recorded once. A run that
reuses a gen, removes it and wants it back must do so under another run id.
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING, Any, Mapping

from ..log.codec import canonical
from ..app.service import Ledger

if TYPE_CHECKING:  # a hook process that only records events never loads the planner
    from .reuse import ReusePlan

SOURCE = "pipeline-hook"
ID_SCHEME = "hook1"


def hook_event_id(run_id: str, event_type: str, cohort_id: str, gen_id: str) -> str:
    """The deterministic id of one hook event (module docstring)."""
    digest = hashlib.blake2b(canonical([run_id, event_type, cohort_id, gen_id]), digest_size=16).hexdigest()
    return f"{ID_SCHEME}:{event_type}:{digest}"


class PipelineRecorder:
    """Records one pipeline run's membership events; every method is safe to retry."""

    def __init__(self, ledger_path: str | os.PathLike[str] | Ledger, run_id: str, actor: str | None = None, *,
                 asset_key: str | None = None, partition_key: str | None = None) -> None:
        """`ledger_path` may be an open Ledger (a process's steps then share one fold).
        `asset_key` and `partition_key` (an orchestrator's step) go into every event's `by`."""
        self.ledger = ledger_path if isinstance(ledger_path, Ledger) else Ledger.open(ledger_path)
        self.run_id = run_id
        extra = {"actor": actor, "asset_key": asset_key, "partition_key": partition_key}
        self.by = {"run_id": run_id, "source": SOURCE, **{k: v for k, v in extra.items() if v}}

    def _event(self, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
        event_id = hook_event_id(self.run_id, event_type, data["cohort_id"], data["gen_id"])
        return {"type": event_type, "id": event_id, "by": self.by, "data": data}

    def _record(self, event_type: str, data: dict[str, Any]) -> int:
        """Append one event; return its seq (the original one when this is a retry or a no-op)."""
        return self.ledger.append([self._event(event_type, data)])[0]

    def record_plan(self, plan: ReusePlan, create: Mapping[str, Any] | None = None) -> list[int]:
        """Apply a skip-existing plan: its reuses and the creation of its missing gens, one batch.

        Each `create` item becomes a `generation.created` in the plan's cohort with the item's
        signature and replicate, plus the fields of `create` (e.g. `mode`, an essay's
        `llm_model_id`). The batch is appended only if the ledger is still at `plan.seq`
        (ConflictError otherwise, nothing written): a plan made on a stale state could create
        a gen another writer has just created elsewhere. A plan with nothing to do writes nothing.
        """
        events = [self._event("generation.reused", dict(ev["data"])) for ev in plan.reuse_events()]
        events += [self._event("generation.created", {
            "cohort_id": plan.cohort_id, "stage": plan.stage, "gen_id": item.gen_id,
            **item.signature, "replicate": item.replicate, **(create or {})}) for item in plan.create]
        if not events:
            return []
        return self.ledger.append(events, expected_seq=plan.seq)

    def record_created(self, cohort_id: str, stage: str, gen_id: str, template_id: str, *,
                       combo_id: str | None = None, llm_model_id: str | None = None,
                       parent_gen_id: str | None = None, replicate: int = 1, mode: str | None = None) -> int:
        """A new gen, created in its origin cohort `cohort_id` (which it joins)."""
        data = {"cohort_id": cohort_id, "stage": stage, "gen_id": gen_id, "template_id": template_id,
                "combo_id": combo_id, "llm_model_id": llm_model_id, "parent_gen_id": parent_gen_id,
                "replicate": replicate, "mode": mode}
        return self._record("generation.created", {k: v for k, v in data.items() if v is not None})

    def record_reused(self, cohort_id: str, stage: str, gen_id: str, reason: str = "skip-existing",
                      matched_on: dict[str, str | int] | None = None) -> int:
        """An existing gen joins cohort `cohort_id` without its origin metadata changing."""
        data = {"cohort_id": cohort_id, "stage": stage, "gen_id": gen_id, "reason": reason,
                **({"matched_on": matched_on} if matched_on is not None else {})}
        return self._record("generation.reused", data)

    def record_removed(self, cohort_id: str, stage: str, gen_id: str, reason: str) -> int:
        """A gen leaves cohort `cohort_id` (only that cohort's membership changes)."""
        return self._record("generation.removed",
                            {"cohort_id": cohort_id, "stage": stage, "gen_id": gen_id, "reason": reason})

    def record_materialized(self, cohort_id: str, stage: str, gen_id: str, artifacts: dict[str, str]) -> int:
        """The gen's outputs exist (artifact name -> sha256 hex), written by this run for `cohort_id`."""
        return self._record("generation.materialized",
                            {"cohort_id": cohort_id, "stage": stage, "gen_id": gen_id,
                             "artifacts": dict(artifacts), "run_id": self.run_id})

    def is_materialized(self, gen_id: str) -> bool:
        """True when some run recorded the gen's outputs: a reused gen need not be run again."""
        return materialized_seq(self.ledger, gen_id) is not None


def materialized_seq(ledger: Ledger, gen_id: str) -> int | None:
    """The seq of the gen's latest `generation.materialized`, None if it has none (or is unknown)."""
    gen = ledger.generation(gen_id)
    return None if gen is None else gen.materialized_seq

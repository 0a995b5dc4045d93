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
from typing import Any

from ..log.codec import canonical
from ..app.service import Ledger

SOURCE = "pipeline-hook"
ID_SCHEME = "hook1"


def hook_event_id(run_id: str, event_type: str, cohort_id: str, gen_id: str) -> str:
    """The deterministic id of one hook event (module docstring)."""
    digest = hashlib.blake2b(canonical([run_id, event_type, cohort_id, gen_id]), digest_size=16).hexdigest()
    return f"{ID_SCHEME}:{event_type}:{digest}"


class PipelineRecorder:
    """Records one pipeline run's membership events; every method is safe to retry."""

    def __init__(self, ledger_path: str | os.PathLike[str], run_id: str, actor: str | None = None) -> None:
        self.ledger = Ledger.open(ledger_path)
        self.run_id = run_id
        self.by = {"run_id": run_id, "source": SOURCE, **({"actor": actor} if actor else {})}

    def _record(self, event_type: str, data: dict[str, Any]) -> int:
        """Append one event; return its seq (the original one when this is a retry or a no-op)."""
        event_id = hook_event_id(self.run_id, event_type, data["cohort_id"], data["gen_id"])
        return self.ledger.append([{"type": event_type, "id": event_id, "by": self.by, "data": data}])[0]

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
        gen = self.ledger.state.generations.get(gen_id)
        return gen is not None and gen.materialized_seq is not None

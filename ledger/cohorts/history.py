"""How a cohort's composition changed, event by event (the `history` audit view).

Derived from the log itself rather than from state: state only knows the present, the log
knows who added or removed each gen and when. Running counts per stage follow each event so
an auditor can read off the composition at any seq.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from ..errors import InvalidInputError
from ..app.service import Ledger
from .timeline import MEMBERSHIP_DELTA



@dataclass(frozen=True)
class HistoryEntry:
    seq: int
    at: str
    type: str
    cohort_id: str
    stage: str | None
    gen_id: str | None
    origin_cohort_id: str | None
    reason: str | None
    by: dict[str, str]
    counts: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at, "type": self.type, "cohort_id": self.cohort_id,
                "stage": self.stage, "gen_id": self.gen_id, "origin_cohort_id": self.origin_cohort_id,
                "reason": self.reason, "by": self.by, "counts": self.counts}


def cohort_history(ledger: Ledger, cohort_id: str) -> Iterator[HistoryEntry]:
    """Every committed event naming the cohort, oldest first, with the member count per stage after it.

    Only effective events are ever in the log (a no-op reuse is never written), so each
    created/reused adds one member and each removed takes one away.
    """
    state = ledger.state  # a fixed prefix: events after it are not read, so origins are all known
    if cohort_id not in state.cohorts:
        raise InvalidInputError(f"cohort {cohort_id} is unknown to this ledger")
    counts = {stage: 0 for stage in state.config.stages}
    for ev in ledger.read(1, state.seq):
        if ev.data.get("cohort_id") != cohort_id:
            continue
        gen_id = ev.data.get("gen_id")
        stage = ev.data.get("stage")
        delta = MEMBERSHIP_DELTA.get(ev.type, 0)
        if delta and stage is not None:
            counts[stage] += delta
        gen = state.generations.get(gen_id) if gen_id is not None else None
        yield HistoryEntry(
            seq=ev.seq, at=ev.at, type=ev.type, cohort_id=cohort_id, stage=stage, gen_id=gen_id,
            origin_cohort_id=gen.origin_cohort_id if gen is not None else None,
            reason=ev.data.get("reason"), by=dict(ev.by), counts=dict(counts),
        )

"""`diff`: two cohorts, or one cohort at two points, compared stage by stage.

A side is a cohort at a point of the log: `COHORT` (the head), `COHORT@SEQ` or
`COHORT@TIME` (the last event at or before an RFC 3339 time). Each gen in either side lands in
exactly one of only-in-A, only-in-B or both, with its origin cohort, whether it is reused on
each side, the seq that added it on each side, and -- for a gen missing on one side that was
once a member of that side's cohort -- the seq that removed it there. Cohort ids cannot
contain `@` (docs/FORMAT.md, identifiers), so the first `@` always splits a point.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from ..app.replay import parse_as_of
from ..app.service import Ledger
from ..errors import InvalidInputError
from ..log.perf import paused_gc
from .timeline import AuditScan, scan


@dataclass(frozen=True)
class Point:
    """A cohort at a point of the log, as written on the command line."""

    cohort_id: str
    #: a seq, an instant, or None for the head
    at: int | datetime | None = None

    @classmethod
    def parse(cls, text: str) -> "Point":
        """`COHORT`, `COHORT@SEQ` or `COHORT@TIME` (RFC 3339 with Z or an offset)."""
        cohort_id, sep, where = text.partition("@")
        if not cohort_id or (sep and not where):
            raise InvalidInputError(f"{text!r} is not COHORT, COHORT@SEQ or COHORT@TIME")
        return cls(cohort_id, parse_as_of(where) if sep else None)


@dataclass(frozen=True)
class Side:
    """A resolved side of a diff: the cohort, the seq it is read at, and that seq's hash and time."""

    cohort_id: str
    seq: int
    hash: str
    at: str


@dataclass(frozen=True)
class DiffEntry:
    """One gen of a diff. `*_a` fields are None where the gen is not in A (same for B)."""

    stage: str
    gen_id: str
    origin_cohort_id: str
    reused_in_a: bool | None
    reused_in_b: bool | None
    #: seq of the event that (last) added the gen to the side's cohort, as of the side's seq
    added_seq_a: int | None
    added_seq_b: int | None
    #: for a gen not in a side that was once a member of its cohort: the seq that removed it
    removed_seq_a: int | None
    removed_seq_b: int | None


@dataclass(frozen=True)
class StageDiff:
    only_in_a: list[DiffEntry]
    only_in_b: list[DiffEntry]
    both: list[DiffEntry]

    def counts(self) -> dict[str, int]:
        return {"only_in_a": len(self.only_in_a), "only_in_b": len(self.only_in_b), "both": len(self.both)}


@dataclass(frozen=True)
class CohortDiff:
    a: Side
    b: Side
    #: every stage of the ledger, in stage order (empty lists where nothing differs or is shared)
    stages: dict[str, StageDiff]

    def to_json(self) -> dict[str, Any]:
        return {"a": asdict(self.a), "b": asdict(self.b),
                "counts": {s: d.counts() for s, d in self.stages.items()},
                "stages": {s: {k: [asdict(e) for e in getattr(d, k)] for k in ("only_in_a", "only_in_b", "both")}
                           for s, d in self.stages.items()}}


def diff(ledger: Ledger, a: Point | str, b: Point | str) -> CohortDiff:
    """Compare two cohort points of the committed log (one verified scan of the log)."""
    pa, pb = (p if isinstance(p, Point) else Point.parse(p) for p in (a, b))
    seqs = [p.at for p in (pa, pb) if isinstance(p.at, int)]
    times = [p.at for p in (pa, pb) if isinstance(p.at, datetime)]
    # the whole log, even for two seqs: a cohort is known if any committed event names it
    with paused_gc():  # millions of live objects, none in a cycle: collection passes only cost
        result = scan(ledger, {pa.cohort_id, pb.cohort_id}, points=seqs, times=times)
        return diff_scan(result, _side(result, pa), _side(result, pb))


def _side(result: AuditScan, point: Point) -> Side:
    result.timeline(point.cohort_id)  # an unknown cohort is bad input
    if point.at is None:
        return Side(point.cohort_id, result.seq, result.hash, result.at)
    seq = point.at if isinstance(point.at, int) else result.time_seq[point.at]
    chain, at = result.point_hash[seq]
    return Side(point.cohort_id, seq, chain, at)


def diff_scan(result: AuditScan, a: Side, b: Side) -> CohortDiff:
    """The diff of two resolved sides over one scan (pure)."""
    ta, tb = result.cohorts[a.cohort_id], result.cohorts[b.cohort_id]
    in_a, in_b = ta.members_at(a.seq), tb.members_at(b.seq)
    gone_a, gone_b = ta.removed_at(a.seq), tb.removed_at(b.seq)
    stages: dict[str, StageDiff] = {s: StageDiff([], [], []) for s in result.stages}
    for gen_id in sorted(in_a.keys() | in_b.keys()):
        stage, origin = result.origins[gen_id]
        entry = DiffEntry(
            stage, gen_id, origin,
            reused_in_a=(origin != a.cohort_id) if gen_id in in_a else None,
            reused_in_b=(origin != b.cohort_id) if gen_id in in_b else None,
            added_seq_a=in_a.get(gen_id), added_seq_b=in_b.get(gen_id),
            removed_seq_a=gone_a.get(gen_id), removed_seq_b=gone_b.get(gen_id))
        bucket = stages[stage]
        (bucket.both if gen_id in in_a and gen_id in in_b else bucket.only_in_a if gen_id in in_a
         else bucket.only_in_b).append(entry)
    return CohortDiff(a, b, stages)

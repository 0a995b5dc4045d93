"""What a cohort report says, as numbers: composition over time, reuse flows, coverage, removals.

A pure function of one `AuditScan` (see `timeline`), so the report page and its Markdown
twin show the same figures and a test can compare them with `history --json` and
`diff --json`. Everything is aggregated to a size a page can hold whatever the cohort's
size: at most `MAX_POINTS` points per composition curve, the timeline as runs of alike
events, at most `MAX_ROWS` rows per listing (the rest counted, and `history` has them all).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace
from typing import Iterable

from .diff import Side, diff_scan
from .timeline import AuditScan, CohortTimeline, NamedEvent

MAX_POINTS = 240
MAX_ROWS = 500
#: events that change membership or the cohort itself; materializations form runs of their own
_MEMBERSHIP = frozenset({"generation.created", "generation.reused", "generation.removed", "cohort.opened",
                         "cohort.sealed"})


@dataclass(frozen=True)
class Run:
    """Consecutive alike events naming the cohort (same type, stage, origin, reason and author)."""

    first_seq: int
    last_seq: int
    first_at: str
    last_at: str
    type: str
    stage: str | None
    origin_cohort_id: str | None
    reason: str | None
    by: tuple[tuple[str, str], ...]
    events: int
    #: members per stage after the run's last event
    counts: tuple[int, ...]


@dataclass(frozen=True)
class Removal:
    seq: int
    at: str
    stage: str
    gen_id: str
    origin_cohort_id: str
    reason: str
    by: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class CohortComposition:
    cohort_id: str
    description: str | None
    opened_seq: int | None
    sealed_seq: int | None
    sealed_reason: str | None
    #: events naming the cohort up to the as-of (what `history` lists)
    events: int
    #: active members per stage at the as-of (`history`'s last counts)
    members: dict[str, int]
    #: (seq, at, members per stage after it): the composition curve, at most MAX_POINTS points
    series: list[tuple[int, str, tuple[int, ...]]]
    #: stage -> origin cohort -> active members from it (the cohort itself: created here)
    flows: dict[str, dict[str, int]]
    #: stage -> (active members with recorded outputs, active members)
    coverage: dict[str, tuple[int, int]]
    #: (stage, reason) -> removals, in order of first occurrence
    removal_reasons: dict[tuple[str, str], int]
    removals: list[Removal]
    removals_total: int
    runs: list[Run]
    runs_total: int


@dataclass(frozen=True)
class Overlap:
    """Active members two cohorts share at the as-of, per stage (`diff A@S B@S`'s `both`)."""

    a: str
    b: str
    both: dict[str, int]


@dataclass(frozen=True)
class Composition:
    """A whole report: the point it reads, the chain status, each cohort, pairwise overlaps."""

    stages: tuple[str, ...]
    seq: int
    hash: str
    at: str
    cohorts: list[CohortComposition]
    overlaps: list[Overlap]


def compose(result: AuditScan, cohort_ids: Iterable[str]) -> Composition:
    """The report of the chosen cohorts at the scan's seq (pure)."""
    ids = list(dict.fromkeys(cohort_ids))
    cohorts = [_cohort(result, result.timeline(c)) for c in ids]
    overlaps = []
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            d = diff_scan(result, Side(a, result.seq, result.hash, result.at), Side(b, result.seq, result.hash, result.at))
            overlaps.append(Overlap(a, b, {s: len(sd.both) for s, sd in d.stages.items()}))
    return Composition(result.stages, result.seq, result.hash, result.at, cohorts, overlaps)


def _cohort(result: AuditScan, t: CohortTimeline) -> CohortComposition:
    stages = result.stages
    members = t.members_at(result.seq)
    flows: dict[str, dict[str, int]] = {s: {} for s in stages}
    coverage = {s: [0, 0] for s in stages}
    for gen_id in sorted(members):
        stage, origin = result.origins[gen_id]
        flows[stage][origin] = flows[stage].get(origin, 0) + 1
        coverage[stage][1] += 1
        coverage[stage][0] += gen_id in result.materialized
    flows = {s: dict(sorted(f.items(), key=lambda kv: (kv[0] != t.cohort_id, kv[0]))) for s, f in flows.items()}
    removals: list[Removal] = []
    reasons: dict[tuple[str, str], int] = {}
    total = 0
    for ev in t.events:
        if ev.type == "generation.removed":
            assert ev.stage is not None and ev.gen_id is not None
            reason = ev.reason or ""
            reasons[(ev.stage, reason)] = reasons.get((ev.stage, reason), 0) + 1
            total += 1
            if len(removals) < MAX_ROWS:
                removals.append(Removal(ev.seq, ev.at, ev.stage, ev.gen_id, result.origins[ev.gen_id][1], reason,
                                        tuple(sorted(ev.by.items()))))
    runs = _runs(result, t.events)
    last = t.events[-1].counts if t.events else (0,) * len(stages)
    return CohortComposition(
        t.cohort_id, t.description, t.opened_seq, t.sealed_seq, t.sealed_reason, len(t.events),
        dict(zip(stages, last)), _series(t.events, len(stages), result.seq, result.at), flows,
        {s: (c[0], c[1]) for s, c in coverage.items()}, reasons, removals, total, runs[:MAX_ROWS], len(runs))


def _series(events: list[NamedEvent], n_stages: int, end_seq: int, end_at: str) -> list[tuple[int, str, tuple[int, ...]]]:
    """The member counts after each membership change, thinned to MAX_POINTS evenly spaced
    seqs (each point is the exact count at its seq), from just before the first change to the as-of."""
    changes = [e for e in events if e.type in ("generation.created", "generation.reused", "generation.removed")]
    if not changes:
        return [(end_seq, end_at, (0,) * n_stages)]
    start = (changes[0].seq - 1, changes[0].at, (0,) * n_stages)
    points = [(e.seq, e.at, e.counts) for e in changes]
    if len(points) + 2 > MAX_POINTS:
        seqs = [p[0] for p in points]
        span = end_seq - start[0]
        picked: list[tuple[int, str, tuple[int, ...]]] = []
        for k in range(1, MAX_POINTS - 1):
            i = bisect.bisect_right(seqs, start[0] + span * k // (MAX_POINTS - 2)) - 1
            if i >= 0 and (not picked or picked[-1] is not points[i]):
                picked.append(points[i])
        points = picked
    tail = [] if points[-1][0] == end_seq else [(end_seq, end_at, points[-1][2])]
    return [start, *points, *tail]


def _runs(result: AuditScan, events: list[NamedEvent]) -> list[Run]:
    """Alike consecutive events folded into runs. Materializations are runs of their own, so a
    pipeline that records each gen's outputs right after creating it still gives two runs."""
    runs: list[Run] = []
    open_run: dict[bool, int] = {}  # membership events or not -> index of the run still open
    for ev in events:
        origin = result.origins[ev.gen_id][1] if ev.type == "generation.reused" and ev.gen_id is not None else None
        by = tuple(sorted(ev.by.items()))
        group = ev.type in _MEMBERSHIP
        i = open_run.get(group)
        if i is not None and (runs[i].type, runs[i].stage, runs[i].origin_cohort_id, runs[i].reason, runs[i].by) == (
                ev.type, ev.stage, origin, ev.reason, by):
            runs[i] = replace(runs[i], last_seq=ev.seq, last_at=ev.at, events=runs[i].events + 1, counts=ev.counts)
        else:
            open_run[group] = len(runs)
            runs.append(Run(ev.seq, ev.seq, ev.at, ev.at, ev.type, ev.stage, origin, ev.reason, by, 1, ev.counts))
    return runs

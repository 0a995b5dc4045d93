"""What a cohort report says, as numbers: composition over time, reuse flows, coverage, removals.

A pure function of one `AuditScan` (see `timeline`), so the report page and its Markdown
twin show the same figures and a test can compare them with `history --json` and
`diff --json`. Everything is aggregated to a size a page can hold whatever the cohort's
size: at most `MAX_POINTS` points per composition curve, the timeline as rows of alike
events per author, at most `MAX_ROWS` rows per listing (the rest counted, and `history` has them all).
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable

from .diff import Side, diff_scan
from .timeline import AuditScan, CohortTimeline, NamedEvent

MAX_POINTS = 240
MAX_ROWS = 500


@dataclass(frozen=True)
class Run:
    """Alike events naming the cohort within one stretch of consecutive events by the same
    author (`by`: a pipeline run, an operator): same type, origin and reason, any stage."""

    first_seq: int
    last_seq: int
    first_at: str
    last_at: str
    type: str
    #: events per stage (empty for cohort events)
    stages: dict[str, int]
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
    origins, materialized = result.origins, result.materialized
    by_source: Counter[tuple[str, str]] = Counter()  # (stage, origin cohort) -> active members
    done: Counter[str] = Counter()  # stage -> active members with recorded outputs
    for gen_id in members:
        source = origins[gen_id]
        by_source[source] += 1
        if gen_id in materialized:
            done[source[0]] += 1
    flows: dict[str, dict[str, int]] = {s: {} for s in stages}
    for (stage, origin), n in sorted(by_source.items(), key=lambda kv: (kv[0][1] != t.cohort_id, kv[0][1])):
        flows[stage][origin] = n
    coverage = {s: (done[s], sum(flows[s].values())) for s in stages}
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
    runs, runs_total = _runs(result, t.events)
    last = t.events[-1].counts if t.events else (0,) * len(stages)
    return CohortComposition(
        t.cohort_id, t.description, t.opened_seq, t.sealed_seq, t.sealed_reason, len(t.events),
        dict(zip(stages, last)), _series(t.events, len(stages), result.seq, result.at), flows,
        coverage, reasons, removals, total, runs, runs_total)


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


def _runs(result: AuditScan, events: list[NamedEvent]) -> tuple[list[Run], int]:
    """The timeline's rows (the first MAX_ROWS) and how many there are.

    Events are cut into stretches of consecutive events by the same author; within a stretch,
    events of the same type, origin and reason make one row whatever their stage, so a
    pipeline run that interleaves stages and materializations is a handful of rows, not one
    per event."""
    rows: list[list[Any]] = []  # Run fields, mutable while the stretch is open
    stretch_by: dict[str, str] | None = None
    open_rows: dict[tuple[str, str | None, str | None], list[Any]] = {}
    for ev in events:
        if ev.by != stretch_by:
            stretch_by, open_rows = ev.by, {}
        origin = result.origins[ev.gen_id][1] if ev.type == "generation.reused" and ev.gen_id is not None else None
        key = (ev.type, origin, ev.reason)
        row = open_rows.get(key)
        if row is None:
            row = open_rows[key] = [ev.seq, ev.seq, ev.at, ev.at, ev.type, {}, origin, ev.reason,
                                    tuple(sorted(ev.by.items())), 0, ev.counts]
            rows.append(row)
        row[1], row[3], row[9], row[10] = ev.seq, ev.at, row[9] + 1, ev.counts
        if ev.stage is not None:
            row[5][ev.stage] = row[5].get(ev.stage, 0) + 1
    return [Run(*row) for row in rows[:MAX_ROWS]], len(rows)

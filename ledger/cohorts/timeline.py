"""Membership of chosen cohorts through the whole log, from one verified scan (the audit views).

`diff` and `report` both ask "who was in cohort C at seq s, since when, and who left when",
for a few cohorts at a few points. The fold (`ledger.domain.state`) only knows the present,
so they read the log instead: one pass from seq 1 that checks every line's hash (the scan
*is* a verification of the prefix it reads), keeps each gen's origin and first
materialization, and for each chosen cohort its membership *stints* (added at, removed at)
and the events that named it. Everything after the scan is a pure function of that result.

The pass is per event cheap on purpose (a report of a 1,000,000-event ledger runs in about
the time of a build): raw envelopes from `LogScanner`, no models, no full fold. Only
effective events are ever in a log written through `Ledger.append`, so each `created` or
`reused` naming a cohort adds a member and each `removed` takes one away; an event that
contradicts that is reported as corruption at its seq, as a replay would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

from ..app.replay import parse_as_of
from ..app.service import Ledger
from ..domain.events import CURRENT_VERSION, upcast
from ..errors import CorruptLogError, InvalidInputError
from ..log.codec import genesis_prev
from ..log.perf import paused_gc
from ..log.scan import LogScanner, Position

#: events that add (+1) or remove (-1) a member of the cohort they name
MEMBERSHIP_DELTA = {"generation.created": 1, "generation.reused": 1, "generation.removed": -1}


@dataclass(frozen=True, slots=True)
class NamedEvent:
    """One committed event naming a chosen cohort, with the payload fields an audit shows."""

    seq: int
    at: str
    type: str
    stage: str | None
    gen_id: str | None
    reason: str | None
    by: dict[str, str]
    #: the cohort's member count per stage after this event
    counts: tuple[int, ...]


@dataclass(slots=True)
class CohortTimeline:
    """Everything the log says about one cohort up to the scanned seq."""

    cohort_id: str
    opened_seq: int | None = None
    description: str | None = None
    sealed_seq: int | None = None
    sealed_reason: str | None = None
    #: gen_id -> its membership stints in order: [added_seq, removed_seq or None while a member]
    stints: dict[str, list[list[int | None]]] = field(default_factory=dict)
    #: every event naming the cohort, oldest first (only when the scan keeps events)
    events: list[NamedEvent] = field(default_factory=list)

    def members_at(self, seq: int) -> dict[str, int]:
        """Active members after event `seq`: gen_id -> seq of the event that (last) added it."""
        out: dict[str, int] = {}
        for gen_id, stints in self.stints.items():
            for added, removed in reversed(stints):
                assert added is not None
                if added <= seq:
                    if removed is None or removed > seq:
                        out[gen_id] = added
                    break
        return out

    def removed_at(self, seq: int) -> dict[str, int]:
        """Former members that are not members after event `seq`: gen_id -> seq that removed it."""
        out: dict[str, int] = {}
        for gen_id, stints in self.stints.items():
            for added, removed in reversed(stints):
                assert added is not None
                if added <= seq:
                    if removed is not None and removed <= seq:
                        out[gen_id] = removed
                    break
        return out


@dataclass(slots=True)
class AuditScan:
    """The result of one scan: facts about every gen, and timelines of the chosen cohorts."""

    stages: tuple[str, ...]
    #: the last seq read (the as-of), its chain hash and `at`
    seq: int
    hash: str
    at: str
    #: the end of the committed log when the scan read it all (else None) and the tail after it
    head: Position | None
    tail_bytes: int
    #: gen_id -> (stage, origin cohort); gen_id -> seq of its first generation.materialized
    origins: dict[str, tuple[str, str]]
    materialized: dict[str, int]
    cohorts: dict[str, CohortTimeline]
    #: every cohort any scanned event names
    known: set[str]
    #: hash and `at` after each seq asked for in `scan(points=...)`
    point_hash: dict[int, tuple[str, str]]
    #: each time asked for in `scan(times=...)` -> the last seq with `at` <= it (0: none)
    time_seq: dict[datetime, int]

    def timeline(self, cohort_id: str) -> CohortTimeline:
        """The chosen cohort's timeline; an unknown cohort is bad input (exit 2)."""
        if cohort_id not in self.known:
            raise InvalidInputError(f"cohort {cohort_id} is unknown to this ledger")
        return self.cohorts[cohort_id]


def scan(ledger: Ledger, cohort_ids: Iterable[str] | None, until: int | datetime | None = None,
         points: Iterable[int] = (), times: Iterable[datetime] = (), keep_events: bool = False) -> AuditScan:
    """Read and verify the committed log from seq 1 to `until` (a seq, a time, or the end).

    `cohort_ids` None: every cohort. `points`: seqs whose hash and `at` to remember; `times`: instants to resolve to the last
    seq at or before them (the as-of TIME rule of docs/FORMAT.md: a prefix of the log, and a
    log whose times are not in order around one is refused). `keep_events` keeps each
    chosen cohort's events (with running counts) for a timeline.
    """
    config = ledger.config
    stage_index = {s: i for i, s in enumerate(config.stages)}
    every = cohort_ids is None
    wanted = {c: CohortTimeline(c) for c in cohort_ids or ()}
    max_seq = until if isinstance(until, int) else None
    moment = until if isinstance(until, datetime) else None
    moments = sorted(set(times) | ({moment} if moment is not None else set()))
    time_seq = {t: 0 for t in moments}
    time_hash: dict[datetime, tuple[str, str]] = {}
    passed: dict[datetime, int] = {}  # instants already passed -> the first seq after them
    want_points = set(points)
    point_hash: dict[int, tuple[str, str]] = {}
    origins: dict[str, tuple[str, str]] = {}
    materialized: dict[str, int] = {}
    known: set[str] = set()
    counts = {c: [0] * len(config.stages) for c in wanted}
    zeros = [0] * len(config.stages)
    genesis = Position(0, genesis_prev(config.ledger_id), 0)
    current = CURRENT_VERSION  # the common case, without a call per event; upcast handles the rest
    scanner = LogScanner(ledger.log_path, genesis, stop_after=max_seq)
    seq, chain, at = 0, genesis.hash, ""
    stopped = False
    with paused_gc():
        for ev, _end in scanner.events():
            ev_seq = ev["seq"]
            if max_seq is not None and ev_seq > max_seq:
                stopped = True
                break
            if moments:
                ev_time = _event_time(ev)
                for t in moments:
                    if ev_time <= t:
                        if t in passed:
                            raise InvalidInputError(
                                f"events.jsonl is not in time order around {t.isoformat()}: seq {ev_seq} "
                                f"(at {ev['at']}) follows seq {passed[t]}; use a seq instead")
                        time_seq[t] = ev_seq
                        time_hash[t] = (ev["hash"], ev["at"])
                    elif t not in passed:
                        passed[t] = ev_seq
                if moment is not None and moment in passed:
                    stopped = True
                    continue  # read on only to check the time order; nothing after is folded
            etype = ev["type"]
            data = ev["data"] if ev["v"] == current.get(etype, -1) else upcast(etype, ev["v"], ev["data"], ev_seq)
            seq, chain, at = ev_seq, ev["hash"], ev["at"]
            if ev_seq in want_points:
                point_hash[ev_seq] = (chain, at)
            cohort_id = data.get("cohort_id")
            if etype == "generation.created":
                origins[data["gen_id"]] = (data["stage"], data["cohort_id"])
            elif etype == "generation.materialized":
                materialized.setdefault(data["gen_id"], ev_seq)
            if cohort_id is None:
                continue
            known.add(cohort_id)
            timeline = wanted.get(cohort_id)
            if timeline is None and every:
                timeline = wanted[cohort_id] = CohortTimeline(cohort_id)
                counts[cohort_id] = zeros.copy()
            if timeline is not None:
                _record(timeline, etype, data, ev, counts[cohort_id], stage_index, keep_events)
    if max_seq is not None and seq < max_seq:
        raise InvalidInputError(f"seq {max_seq} is beyond the last committed seq {seq}")
    missing = want_points - set(point_hash) - {0}
    if missing:
        raise InvalidInputError(f"seq {max(missing)} is beyond the last committed seq {seq}")
    point_hash[0] = (genesis.hash, "")
    point_hash.update((time_seq[t], time_hash[t]) for t in time_hash)
    return AuditScan(config.stages, seq, chain, at, None if stopped else scanner.end,
                     0 if stopped else scanner.tail.bytes, origins, materialized, wanted, known,
                     point_hash, time_seq)


def _record(timeline: CohortTimeline, etype: str, data: dict[str, Any], ev: dict[str, Any], counts: list[int],
            stage_index: dict[str, int], keep_events: bool) -> None:
    """Fold one event naming a chosen cohort into its timeline."""
    seq = ev["seq"]
    gen_id = data.get("gen_id")
    stage = data.get("stage")
    delta = MEMBERSHIP_DELTA.get(etype, 0)
    if delta:
        assert gen_id is not None and stage is not None  # membership events always name both (schema)
        stints = timeline.stints.setdefault(gen_id, [])
        active = bool(stints) and stints[-1][1] is None
        if delta > 0:
            if active:
                raise CorruptLogError(seq, f"{etype} of {gen_id}, already a member of {timeline.cohort_id}")
            stints.append([seq, None])
        else:
            if not active:
                raise CorruptLogError(seq, f"{etype} of {gen_id}, not a member of {timeline.cohort_id}")
            stints[-1][1] = seq
        counts[stage_index[stage]] += delta
    elif etype == "cohort.opened":
        timeline.opened_seq, timeline.description = seq, data.get("description")
    elif etype == "cohort.sealed":
        timeline.sealed_seq, timeline.sealed_reason = seq, data.get("reason")
    if keep_events:
        timeline.events.append(NamedEvent(seq, ev["at"], etype, stage, gen_id, data.get("reason"),
                                          ev.get("by") or {}, tuple(counts)))


def _event_time(ev: dict[str, Any]) -> datetime:
    try:
        moment = parse_as_of(ev["at"])
    except (KeyError, InvalidInputError):
        raise CorruptLogError(ev["seq"], f"at {ev.get('at')!r} is not an RFC 3339 time with a UTC offset") from None
    assert isinstance(moment, datetime)
    return moment

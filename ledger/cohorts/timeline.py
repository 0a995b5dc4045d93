"""Membership of chosen cohorts through the whole log, from one verified scan (the audit views).

`diff` and `report` both ask "who was in cohort C at seq s, since when, and who left when",
for a few cohorts at a few points. The fold (`ledger.domain.state`) only knows the present,
so they read the log instead: one pass from seq 1 that checks every line's hash (the scan
*is* a verification of the prefix it reads), keeps each gen's origin and first
materialization, and for each chosen cohort its membership *stints* (added at, removed at)
and the events that named it. Everything after the scan is a pure function of that result.

The pass is per event cheap on purpose (a report of a 1,000,000-event ledger runs in about
the time of a build): raw envelopes from the store's scan, no models, no full fold. Only
effective events are ever in a log written through `Ledger.append`, so each `created` or
`reused` naming a cohort adds a member and each `removed` takes one away; an event that
contradicts that is reported as corruption at its seq, as a replay would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..app.replay import parse_as_of
from ..app.service import Ledger
from ..domain.events import CURRENT_VERSION, upcast
from ..errors import CorruptLogError, InvalidInputError
from ..log.codec import genesis_prev
from ..log.parallel import in_halves
from ..log.perf import paused_gc
from ..log.file_store import FileLogStore
from ..log.scan import LogScan, LogScanner, Position

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


#: below this many log bytes a second process costs more than the second core saves
PARALLEL_MIN_BYTES = 32 << 20

#: one event naming a chosen cohort, as collected: seq, at, type, stage, gen_id, reason, by, description
Raw = tuple[int, str, str, str | None, str | None, str | None, dict[str, str], str | None]


@dataclass(slots=True)
class _Collected:
    """What a stretch of the log contributes to a scan; picklable, so a forked child can send it."""

    seq: int
    hash: str
    at: str
    origins: dict[str, tuple[str, str]]
    materialized: dict[str, int]
    #: chosen cohort (every cohort when none is chosen) -> the events naming it, in order
    named: dict[str, list[Raw]]
    point_hash: dict[int, tuple[str, str]]


def scan(ledger: Ledger, cohort_ids: Iterable[str] | None, until: int | datetime | None = None,
         points: Iterable[int] = (), times: Iterable[datetime] = (), keep_events: bool = False) -> AuditScan:
    """Read and verify the committed log from seq 1 to `until` (a seq, a time, or the end).

    `cohort_ids` None: every cohort. `points`: seqs whose hash and `at` to remember; `times`:
    instants to resolve to the last seq at or before them (the as-of TIME rule of
    docs/FORMAT.md: a prefix of the log, and a log whose times are not in order around one is
    refused). `keep_events` keeps each chosen cohort's events (with running counts) for a
    timeline. A long log without times is read on two cores (see `_two_halves`).
    """
    config = ledger.config
    wanted = None if cohort_ids is None else set(cohort_ids)
    max_seq = until if isinstance(until, int) else None
    moment = until if isinstance(until, datetime) else None
    moments = sorted(set(times) | ({moment} if moment is not None else set()))
    want_points = set(points)
    genesis = Position(0, genesis_prev(config.ledger_id), 0)
    time_seq: dict[datetime, int] = {}
    with paused_gc():
        store = ledger.store
        got = None
        if not moments and isinstance(store, FileLogStore):
            got = _two_halves(store.log_path, genesis, wanted, want_points, max_seq)
        if got is None:
            got = _collect(store.scan(genesis, stop_after=max_seq), genesis, wanted, want_points, max_seq, moments,
                           moment, time_seq)
        if max_seq is not None and got.seq < max_seq:
            raise InvalidInputError(f"seq {max_seq} is beyond the last committed seq {got.seq}")
        missing = want_points - set(got.point_hash) - {0}
        if missing:
            raise InvalidInputError(f"seq {max(missing)} is beyond the last committed seq {got.seq}")
        got.point_hash[0] = (genesis.hash, "")
        cohorts = {c: CohortTimeline(c) for c in (wanted if wanted is not None else got.named)}
        for cohort_id, events in got.named.items():
            _fold(cohorts[cohort_id], events, {s: i for i, s in enumerate(config.stages)}, keep_events)
    return AuditScan(config.stages, got.seq, got.hash, got.at, got.origins, got.materialized, cohorts,
                     set(got.named), got.point_hash, time_seq)


def _collect(scanner: LogScan, start: Position, wanted: set[str] | None, want_points: set[int],
             max_seq: int | None, moments: Sequence[datetime] = (), moment: datetime | None = None,
             time_seq: dict[datetime, int] | None = None) -> _Collected:
    """The hot loop: one pass over the scanner's verified events, a few dict operations each."""
    got = _Collected(start.seq, start.hash, start.at, {}, {}, {}, {})
    origins, materialized, named, point_hash = got.origins, got.materialized, got.named, got.point_hash
    passed: dict[datetime, dict[str, Any]] = {}  # instants already passed -> the first event after them
    last: dict[datetime, tuple[int, str, str]] = {}  # instant -> the last event at or before it
    current = CURRENT_VERSION  # the common case, without a call per event; upcast handles the rest
    for ev, _ in scanner.events():
        seq = ev["seq"]
        if max_seq is not None and seq > max_seq:
            break
        if moments:
            assert time_seq is not None
            ev_time = _event_time(ev)
            for t in moments:
                if ev_time <= t:
                    if t in passed:  # `at` never decreases (docs/FORMAT.md), as the fold reports it too
                        past = passed[t]
                        raise CorruptLogError(seq, f"at {ev['at']} is earlier than seq {past['seq']}'s {past['at']}")
                    last[t] = (seq, ev["hash"], ev["at"])
                elif t not in passed:
                    passed[t] = ev
            if moment is not None and moment in passed:
                continue  # read on only to check the time order; nothing after is folded
        etype = ev["type"]
        data = ev["data"] if ev["v"] == current.get(etype, -1) else upcast(etype, ev["v"], ev["data"], seq)
        got.seq, got.hash, got.at = seq, ev["hash"], ev["at"]
        if seq in want_points:
            point_hash[seq] = (got.hash, got.at)
        if etype == "generation.created":
            origins[data["gen_id"]] = (data["stage"], data["cohort_id"])
        elif etype == "generation.materialized":
            materialized.setdefault(data["gen_id"], seq)
        cohort_id = data.get("cohort_id")
        if cohort_id is not None and (wanted is None or cohort_id in wanted):
            events = named.get(cohort_id)
            if events is None:
                events = named[cohort_id] = []
            events.append((seq, got.at, etype, data.get("stage"), data.get("gen_id"), data.get("reason"),
                           ev.get("by") or {}, data.get("description")))
    if time_seq is not None:
        for t in moments:
            seq, chain, at = last.get(t, (0, start.hash, ""))
            time_seq[t] = seq
            point_hash[seq] = (chain, at)
    return got


def _two_halves(path: Path, genesis: Position, wanted: set[str] | None, want_points: set[int],
                max_seq: int | None) -> _Collected | None:
    """The collection of a long log on two cores, or None (then the caller reads it in one pass).

    The split is `verify`'s (ledger/log/parallel.py: `in_halves`): each half is collected on
    its own core, and the halves must meet exactly; corruption in the first half is raised,
    anything wrong in the second gives None, and the one-pass read then names the first bad seq.
    """
    # each half starts where its scanner does and stops where it does (the boundary, or max_seq)
    halves = in_halves(path, genesis, lambda scanner: _collect(scanner, scanner.end, wanted, want_points,
                                                               scanner.stop_after),
                       stop_after=max_seq, min_bytes=PARALLEL_MIN_BYTES)
    if halves is None:
        return None
    first, second = halves
    first.origins.update(second.origins)  # a gen is created once: the halves never share one
    for gen_id, seq in second.materialized.items():
        first.materialized.setdefault(gen_id, seq)
    for cohort_id, events in second.named.items():
        first.named.setdefault(cohort_id, []).extend(events)
    first.point_hash.update(second.point_hash)
    if second.seq > first.seq:
        first.seq, first.hash, first.at = second.seq, second.hash, second.at
    return first


def _fold(timeline: CohortTimeline, events: list[Raw], stage_index: dict[str, int], keep_events: bool) -> None:
    """A chosen cohort's collected events, in order, into its stints (and running counts)."""
    counts = [0] * len(stage_index)
    cohort_id = timeline.cohort_id
    for seq, at, etype, stage, gen_id, reason, by, description in events:
        delta = MEMBERSHIP_DELTA.get(etype, 0)
        if delta:
            assert gen_id is not None and stage is not None  # membership events always name both (schema)
            stints = timeline.stints.setdefault(gen_id, [])
            active = bool(stints) and stints[-1][1] is None
            if delta > 0:
                if active:
                    raise CorruptLogError(seq, f"{etype} of {gen_id}, already a member of {cohort_id}")
                stints.append([seq, None])
            else:
                if not active:
                    raise CorruptLogError(seq, f"{etype} of {gen_id}, not a member of {cohort_id}")
                stints[-1][1] = seq
            counts[stage_index[stage]] += delta
        elif etype == "cohort.opened":
            timeline.opened_seq, timeline.description = seq, description
        elif etype == "cohort.sealed":
            timeline.sealed_seq, timeline.sealed_reason = seq, reason
        if keep_events:
            timeline.events.append(NamedEvent(seq, at, etype, stage, gen_id, reason, by, tuple(counts)))


def _event_time(ev: dict[str, Any]) -> datetime:
    try:
        moment = parse_as_of(ev["at"])
    except (KeyError, InvalidInputError):
        raise CorruptLogError(ev["seq"], f"at {ev.get('at')!r} is not an RFC 3339 time with a UTC offset") from None
    assert isinstance(moment, datetime)
    return moment

"""Folding committed events into a `State`: the loop every reader shares, and as-of replay.

The store catching up, `build`, and checkpoint-based opening all fold the same way: a
committed event is upcast to its current payload version and applied. An event that then
breaks a domain rule (or repeats an earlier effect) was written by something that skipped
validation, which is corruption of the log, reported at that event's seq. `replay` adds
what `build` needs on top: resuming from a checkpoint and stopping at an as-of.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from ..log.checkpoint import CheckpointAudit, load_latest
from .facts import IndexAudit
from ..log.codec import ENVELOPE_KEYS, genesis_prev
from ..domain.config import LedgerConfig
from ..errors import CheckFailed, CorruptLogError, InvalidInputError
from ..domain.events import upcast
from ..log.perf import paused_gc
from ..log.scan import Position
from ..log.store import LogStore
from ..domain.state import DomainError, State


_ENVELOPE_SIZE = len(ENVELOPE_KEYS)
_ENVELOPE_KEY_SET = frozenset(ENVELOPE_KEYS)


def apply_recorded(state: State, ev: dict[str, Any]) -> None:
    """Fold one committed envelope (as a store's scan yields it) into `state`; also track its hash.

    Besides the domain rules, this enforces what docs/FORMAT.md §4.4 makes readers check:
    exactly the ten envelope keys, `at` non-decreasing and equal within a batch, ids unique,
    a known `v`. Each check is a comparison or a dict lookup on values the fold reads anyway.
    """
    seq = ev["seq"]
    try:
        # the scanner read seq, prev, hash and txn; id, at, type, v and data are read here, so
        # ten keys with `by` among them are exactly the envelope's ten
        if len(ev) != _ENVELOPE_SIZE or "by" not in ev:
            raise _bad_envelope(ev)
        event_id, at = ev["id"], ev["at"]
        if at != state.at:
            if at < state.at:
                raise CorruptLogError(seq, f"at {at} is earlier than the previous event's {state.at}")
            if ev["txn"][0] != seq:
                raise CorruptLogError(seq, f"at {at} differs from its batch's {state.at}")
        if event_id in state.event_ids:
            raise CorruptLogError(seq, f"id {event_id} was already used at seq {state.event_ids[event_id]}")
        data = upcast(ev["type"], ev["v"], ev["data"], seq)
        done_at = state.apply(ev["type"], data, seq, event_id, at)
    except DomainError as exc:
        raise CorruptLogError(seq, f"event breaks a domain rule: {exc}") from None
    except KeyError as exc:
        raise CorruptLogError(seq, f"malformed envelope or payload: no key {exc.args[0]!r}") from None
    except TypeError as exc:
        raise CorruptLogError(seq, f"malformed envelope or payload: {exc}") from None
    if done_at != seq:
        raise CorruptLogError(seq, f"event repeats the effect of seq {done_at} (writers never log a no-op)")
    state.hash = ev["hash"]


def committed_fields(ev: dict[str, Any]) -> dict[str, Any]:
    """A committed envelope (as a store's scan yields it) as `Ledger.read` and `to_arrow` return
    it: the ten keys in docs/FORMAT.md §3.1 order, `txn` a tuple, the payload upcast."""
    check_envelope_keys(ev)
    seq, event_type, v = ev["seq"], ev["type"], ev["v"]
    return {"seq": seq, "id": ev["id"], "type": event_type, "v": v, "at": ev["at"], "by": ev["by"],
            "txn": tuple(ev["txn"]), "data": upcast(event_type, v, ev["data"], seq), "prev": ev["prev"],
            "hash": ev["hash"]}


def check_envelope_keys(ev: dict[str, Any]) -> None:
    """Anything but exactly the ten envelope keys is corruption at the event's seq."""
    if ev.keys() != _ENVELOPE_KEY_SET:
        raise _bad_envelope(ev)


def _bad_envelope(ev: dict[str, Any]) -> CorruptLogError:
    return CorruptLogError(ev["seq"], f"envelope keys {sorted(ev)} are not exactly {', '.join(ENVELOPE_KEYS)}")


def starting_point(store: LogStore, config: LedgerConfig, max_seq: int | None = None,
                   use_checkpoints: bool = True) -> tuple[State, Position]:
    """Where a fold begins: the newest valid checkpoint at or before `max_seq`, else an empty
    state at the genesis position (seq 0, cursor 0). A checkpoint is never at seq 0."""
    found = load_latest(store, config, max_seq=max_seq) if use_checkpoints else None
    return found if found is not None else (State(config), Position(0, genesis_prev(config.ledger_id), 0))


@dataclass(frozen=True)
class Replayed:
    """A state folded from the log, and how it was obtained."""

    state: State
    #: the batch boundary the state is at; None when an as-of cut fell inside a batch
    position: Position | None
    #: seq of the checkpoint the fold resumed from; None for a replay from seq 1
    checkpoint_seq: int | None
    #: events folded on top of the checkpoint (or from seq 1)
    events: int


#: what an as-of names: a seq, a UTC instant, or None for "every committed batch"
AsOf = int | datetime | None
Progress = Callable[[int, int], None]


def parse_as_of(value: int | str | datetime | None) -> AsOf:
    """A seq (int or all digits) or an RFC 3339 time with `Z` or an offset, as a UTC datetime.

    A time without an offset is refused: its meaning would depend on the machine's TZ.
    """
    if value is None or isinstance(value, datetime):
        if isinstance(value, datetime) and value.tzinfo is None:
            raise InvalidInputError("--as-of time needs a UTC offset or Z")
        return value.astimezone(timezone.utc) if isinstance(value, datetime) else None
    if isinstance(value, bool):
        raise InvalidInputError(f"--as-of {value!r} is neither a seq nor an RFC 3339 time")
    if isinstance(value, int):
        if value < 0:
            raise InvalidInputError(f"--as-of seq {value} is negative")
        return value
    text = value.strip()
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(f"--as-of {value!r} is neither a seq nor an RFC 3339 time") from None
    if moment.tzinfo is None or "T" not in text.upper():
        raise InvalidInputError(f"--as-of {value!r} is not an RFC 3339 time with a UTC offset or Z")
    return moment.astimezone(timezone.utc)


def _event_time(ev: dict[str, Any]) -> datetime:
    try:
        moment = datetime.fromisoformat(ev["at"])
    except (KeyError, TypeError, ValueError):
        raise CorruptLogError(ev["seq"], f"at {ev.get('at')!r} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise CorruptLogError(ev["seq"], f"at {ev['at']!r} has no UTC offset")
    return moment


def replay(store: LogStore, config: LedgerConfig, as_of: AsOf = None,
           use_checkpoints: bool = True, progress: Progress | None = None,
           on_boundary: Callable[[State, Position], None] | None = None) -> Replayed:
    """Fold the log (verifying the chain as it reads) up to `as_of`, resuming from the newest
    valid checkpoint at or before it unless `use_checkpoints` is false.

    `as_of` seq: events 1..seq, even inside a batch (each event was valid against its
    predecessors). `as_of` time: the events with `at` <= time, which is a prefix of the log
    because `at` never decreases; a later event that is again <= time after one > time is
    corruption (docs/FORMAT.md §4.4), as the fold would report it.
    A time as-of always replays from seq 1: checkpoints are indexed by seq, not time.
    `on_boundary(state, position)` is called whenever the fold reaches a batch end (a
    `CheckpointAudit` compares checkpoints there).
    """
    max_seq = as_of if isinstance(as_of, int) else None
    moment = as_of if isinstance(as_of, datetime) else None
    state, start = starting_point(store, config, max_seq, use_checkpoints and moment is None)
    resumed = start.seq or None
    scanner = store.scan(start, stop_after=max_seq)
    total = store.extent() if progress is not None else 0
    boundary, folded = start, 0
    past: dict[str, Any] | None = None  # the first event beyond the as-of
    with paused_gc():
        for ev, end in scanner.events():
            if past is None:
                if (max_seq is None or ev["seq"] <= max_seq) and (moment is None or _event_time(ev) <= moment):
                    apply_recorded(state, ev)
                    folded += 1
                else:
                    past = ev
            elif moment is not None and _event_time(ev) <= moment:
                raise CorruptLogError(ev["seq"], f"at {ev['at']} is earlier than seq {past['seq']}'s {past['at']}")
            if end is not None:
                if state.seq == end.seq:
                    boundary = end
                    if on_boundary is not None:
                        on_boundary(state, end)
                if progress is not None:
                    progress(store.extent(end), total)
    if max_seq is not None and state.seq < max_seq:
        raise InvalidInputError(f"--as-of seq {max_seq} is beyond the last committed seq {state.seq}")
    return Replayed(state, boundary if boundary.seq == state.seq else None, resumed, folded)


def check_checkpoints(store: LogStore, config: LedgerConfig, as_of: AsOf = None,
                      progress: Progress | None = None, index: bool = False) -> Replayed:
    """Replay from seq 1 (up to `as_of`), comparing every checkpoint passed on the way -- and,
    with `index`, the writers' index at the boundary it records -- with the replayed state;
    raise CheckFailed naming the first that disagrees (and how many do). Nothing is removed:
    a disagreeing checkpoint or index is evidence, and the operator decides."""
    audit = CheckpointAudit(store, config)
    index_audit = IndexAudit(store.index_path() if index else None, config)

    def on_boundary(state: State, pos: Position) -> None:
        audit(state, pos)
        index_audit(state, pos)

    try:
        folded = replay(store, config, as_of, use_checkpoints=False, progress=progress, on_boundary=on_boundary)
    finally:
        index_audit.close()
    audit.finish(folded.state.seq)
    problems = audit.problems + ([index_audit.problem] if index_audit.problem else [])
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CheckFailed(f"{problems[0]}{more}; nothing was removed: move it away once examined")
    return folded

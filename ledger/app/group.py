"""What a group commit's request and result say (the files are ledger/log/spool.py's).

A request is a follower's batch (its envelopes as given, or for a large batch the events its
writer already validated), with the token its generated ids are made from and its
`expected_seq`: the leader validates it exactly as the follower would have (schema first,
so a writer whose batches leaders commit never builds the validator), and because the
follower fixed its ids, a batch that a leader wrote
but never answered (it was killed) is recognised as committed when the follower retries it,
never written twice. A result is the seqs, or the error the follower raises as its own.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Iterable, NamedTuple

import orjson

from ..domain.events import EventIn, normalize_batch
from ..errors import ConflictError, EventRejected, InvalidInputError


class Pending(NamedTuple):
    """One validated input event (a tuple: built 10,000 times per batch append)."""

    type: str
    data: dict[str, Any]
    id: str | None
    by: dict[str, str]


class Batch:
    """One writer's atomic batch, as the writing section validates it."""

    __slots__ = ("raw", "expected_seq", "token", "spooled", "since", "_events")

    def __init__(self, raw: list[Any], expected_seq: int | None, token: str, spooled: bool = False,
                 events: list[Pending] | None = None, since: int = 0) -> None:
        #: the envelopes as the caller gave them (dicts)
        self.raw = raw
        self.expected_seq = expected_seq
        #: events without an id get `<token>-<index>`
        self.token = token
        #: it went through the spool, so a killed leader may have written it: its generated ids
        #: are looked up like client ids (a retry), which makes replaying it idempotent
        self.spooled = spooled
        #: when its writer first tried to append it (ns; a retry after a conflict keeps the
        #: first try's time): a leader validates the oldest first, so no writer loses forever
        self.since = since or time.time_ns()
        self._events = events

    @classmethod
    def of(cls, events: Iterable[Any], expected_seq: int | None) -> "Batch":
        """A caller's batch: EventIn models dumped, generated ids' token drawn (no uuid4 when
        every event has its id)."""
        raw = [ev.model_dump(exclude_none=True) if isinstance(ev, EventIn) else ev for ev in events]
        if not raw:
            raise InvalidInputError("empty batch: nothing to append")
        token = uuid.uuid4().hex if any(not isinstance(ev, dict) or ev.get("id") is None for ev in raw) else ""
        return cls(raw, expected_seq, token)

    @property
    def events(self) -> list[Pending]:
        """The schema-validated events (docs/FORMAT.md §6.1), made on first use: a writer
        whose batch a leader commits never builds the validator (tens of ms per process)."""
        if self._events is None:
            self._events = normalize(self.raw)
        return self._events

    def respooled(self) -> "Batch":
        """This batch, appended by its own writer after it was spooled (see `spooled`)."""
        return Batch(self.raw, self.expected_seq, self.token, True, self._events, self.since)

    def ids(self) -> list[str | None]:
        """Each event's id as resolution (docs/FORMAT.md §5.3) sees it."""
        events = self.events
        if not self.spooled or not self.token:
            return [ev.id for ev in events]
        return [ev.id or f"{self.token}-{i}" for i, ev in enumerate(events)]


def normalize(raw: list[Any]) -> list[Pending]:
    """`normalize_batch`, plus: an id twice in one batch is refused."""
    batch: list[Pending] = []
    seen: dict[str, int] = {}
    for i, ev in enumerate(normalize_batch(raw)):
        event_id = ev.get("id")
        if event_id is not None:
            if event_id in seen:
                raise EventRejected(i, f"id {event_id} appears twice in the batch (first at event #{seen[event_id] + 1})",
                                    event_id)
            seen[event_id] = i
        batch.append(Pending(ev["type"], ev["data"], event_id, ev.get("by", {})))
    return batch


#: the errors a leader reports to the writer whose batch caused them (anything else fails
#: the whole group, and each writer then appends alone and meets it itself)
BatchError = InvalidInputError | ConflictError


def encode_request(batch: Batch) -> bytes | None:
    """The request's bytes: the validated events if the writer validated them already (a
    large batch), else its envelopes as given. None when they are not JSON orjson can write
    (the writer then appends alone, where the same payload meets its usual rejection)."""
    doc: dict[str, Any] = {"token": batch.token, "expected_seq": batch.expected_seq, "since": batch.since}
    if batch._events is not None:
        doc["events"] = [list(ev) for ev in batch._events]
    else:
        doc["raw"] = batch.raw
    try:
        return orjson.dumps(doc)
    except (orjson.JSONEncodeError, TypeError):
        return None


def decode_request(raw: bytes) -> Batch | None:
    """A request as the leader validates it; None when it is not one (left unanswered: its
    writer appends it alone)."""
    try:
        doc = orjson.loads(raw)
        events = [Pending(t, d, i, b) for t, d, i, b in doc["events"]] if "events" in doc else None
        return Batch(doc.get("raw", []), doc["expected_seq"], doc["token"], True, events, int(doc["since"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def encode_result(outcome: list[int] | BatchError) -> bytes:
    if isinstance(outcome, EventRejected):
        return orjson.dumps({"rejected": [outcome.index, outcome.rule, outcome.event_id]})
    if isinstance(outcome, ConflictError):
        return orjson.dumps({"conflict": [outcome.expected, outcome.actual]})
    if isinstance(outcome, InvalidInputError):
        return orjson.dumps({"invalid": str(outcome)})
    return orjson.dumps({"seqs": outcome})


def decode_result(raw: bytes) -> list[int] | None:
    """The seqs a leader committed for us; raises the error it found; None if unreadable
    (then the follower appends alone: a retry that finds its ids if they were written)."""
    try:
        doc = orjson.loads(raw)
        if "rejected" in doc:
            index, rule, event_id = doc["rejected"]
            error: BatchError = EventRejected(index, rule, event_id)
        elif "conflict" in doc:
            error = ConflictError(*doc["conflict"])
        elif "invalid" in doc:
            error = InvalidInputError(doc["invalid"])
        else:
            return [int(s) for s in doc["seqs"]]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    raise error

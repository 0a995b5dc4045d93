"""What a group commit's request and result say (the files are ledger/log/spool.py's).

A request is a follower's batch after schema validation (`normalize_batch`), with the token
its generated ids are made from and its `expected_seq`: the leader validates it exactly as
the follower would have, and because the follower fixed its ids, a batch that a leader wrote
but never answered (it was killed) is recognised as committed when the follower retries it,
never written twice. A result is the seqs, or the error the follower raises as its own.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from ..errors import ConflictError, EventRejected


class Pending(NamedTuple):
    """One validated input event (a tuple: built 10,000 times per batch append)."""

    type: str
    data: dict[str, Any]
    id: str | None
    by: dict[str, str]


class Batch(NamedTuple):
    """One writer's atomic batch, as the writing section validates it."""

    events: list[Pending]
    expected_seq: int | None
    #: events without an id get `<token>-<index>`
    token: str
    #: it went through the spool, so a killed leader may have written it: its generated ids
    #: are looked up like client ids (a retry), which makes replaying it idempotent
    spooled: bool = False

    def ids(self) -> list[str | None]:
        """Each event's id as resolution (docs/FORMAT.md §5.3) sees it."""
        if not self.spooled or not self.token:
            return [ev.id for ev in self.events]
        return [ev.id or f"{self.token}-{i}" for i, ev in enumerate(self.events)]


#: the errors a leader reports to the follower whose batch caused them (anything else fails
#: the whole group, and each follower then appends alone and meets it itself)
BatchError = EventRejected | ConflictError


def encode_request(batch: Batch) -> bytes | None:
    """The request's bytes; None when the payload is not JSON orjson can write (the writer
    then appends alone, where the same payload meets its usual rejection)."""
    try:
        return orjson.dumps({"token": batch.token, "expected_seq": batch.expected_seq,
                             "events": [list(ev) for ev in batch.events]})
    except orjson.JSONEncodeError:
        return None


def decode_request(raw: bytes) -> Batch | None:
    """A request as the leader validates it; None when it is not one (left unanswered: its
    writer appends it alone)."""
    try:
        doc = orjson.loads(raw)
        events = [Pending(t, d, i, b) for t, d, i, b in doc["events"]]
        return Batch(events, doc["expected_seq"], doc["token"], spooled=True)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def encode_result(outcome: list[int] | BatchError) -> bytes:
    if isinstance(outcome, EventRejected):
        return orjson.dumps({"rejected": [outcome.index, outcome.rule, outcome.event_id]})
    if isinstance(outcome, ConflictError):
        return orjson.dumps({"conflict": [outcome.expected, outcome.actual]})
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
        else:
            return [int(s) for s in doc["seqs"]]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    raise error

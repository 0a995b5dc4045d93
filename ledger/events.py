"""The event catalogue (DESIGN §4): one pydantic model per payload type and version.

Models are strict and closed (`extra="forbid"`): an event is validated once, when it is
appended, and its normalised payload is what gets hashed. Replay never re-validates; it
relies on the chain to prove the bytes are the ones that passed here.
"""

from __future__ import annotations

from typing import Annotated, Any, Callable, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from .errors import EventRejected, NewerFormatError
from .ids import IDENTIFIER_PATTERN

Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN)]
#: Manifest column names that `metadata.key_renamed` may introduce.
KeyName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
#: Client event ids: printable ASCII without spaces, so they are safe in logs and reports.
EventId = Annotated[str, StringConstraints(pattern=r"^[!-~]{1,256}$")]


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class CohortOpened(_Payload):
    cohort_id: Identifier
    description: Text | None = None
    spec: dict[str, Any] | None = None


class CohortSealed(_Payload):
    cohort_id: Identifier
    reason: Text | None = None


class GenerationCreated(_Payload):
    cohort_id: Identifier
    stage: Identifier
    gen_id: Identifier
    template_id: Identifier
    combo_id: Identifier | None = None
    llm_model_id: Identifier | None = None
    parent_gen_id: Identifier | None = None
    replicate: Annotated[int, Field(ge=1, le=2**31 - 1)] = 1
    mode: Literal["llm", "copy"] | None = None


class GenerationReused(_Payload):
    cohort_id: Identifier
    stage: Identifier
    gen_id: Identifier
    reason: Literal["skip-existing", "curated", "manual", "imported"]
    matched_on: dict[str, Union[str, int]] | None = None


class GenerationRemoved(_Payload):
    cohort_id: Identifier
    stage: Identifier
    gen_id: Identifier
    reason: Text


class GenerationMaterialized(_Payload):
    cohort_id: Identifier
    stage: Identifier
    gen_id: Identifier
    artifacts: dict[Annotated[str, StringConstraints(min_length=1, max_length=256)], Sha256Hex]
    run_id: Text | None = None


class MetadataKeyRenamed(_Payload):
    old_key: KeyName
    new_key: KeyName
    phase: Literal["alias", "final"]


class Provenance(BaseModel):
    """`by`: who committed an event. All keys optional, nothing else allowed."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    actor: Text | None = None
    run_id: Text | None = None
    source: Text | None = None


#: (type, v) -> model of the current payload version of each type.
PAYLOADS: dict[str, type[_Payload]] = {
    "cohort.opened": CohortOpened,
    "cohort.sealed": CohortSealed,
    "generation.created": GenerationCreated,
    "generation.reused": GenerationReused,
    "generation.removed": GenerationRemoved,
    "generation.materialized": GenerationMaterialized,
    "metadata.key_renamed": MetadataKeyRenamed,
}
CURRENT_VERSION: dict[str, int] = {name: 1 for name in PAYLOADS}
#: (type, v) -> function turning a payload of version v into version v+1.
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}

EVENT_TYPES = tuple(PAYLOADS)


class EventIn(BaseModel):
    """One event as a client submits it: the CLI's JSON line or a library call."""

    model_config = ConfigDict(extra="forbid", strict=True)
    type: str
    data: dict[str, Any]
    id: EventId | None = None
    by: Provenance | None = None


class RecordedEvent(BaseModel):
    """One committed event, as read back from the log (payload upcast to the current version)."""

    model_config = ConfigDict(frozen=True)
    seq: int
    id: str
    type: str
    v: int
    at: str
    by: dict[str, str]
    txn: tuple[int, int]
    data: dict[str, Any]
    prev: str
    hash: str


def _drop_none(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if v is not None}


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"])
    return f"{loc}: {err['msg']}" if loc else err["msg"]


def normalize_payload(event_type: str, data: Any) -> dict[str, Any]:
    """Validate a payload against its type's current model and return its canonical dict.

    Raises ValueError with a one-line rule; absent optional keys are omitted, defaults filled.
    """
    model = PAYLOADS.get(event_type)
    if model is None:
        raise ValueError(f"unknown event type {event_type!r} (known: {', '.join(EVENT_TYPES)})")
    try:
        return _drop_none(model.model_validate(data).model_dump(mode="json"))
    except ValidationError as exc:
        raise ValueError(f"{event_type} data.{_first_error(exc)}") from None


def normalize_provenance(by: Any) -> dict[str, str]:
    try:
        return _drop_none(Provenance.model_validate(by or {}).model_dump())
    except ValidationError as exc:
        raise ValueError(f"by.{_first_error(exc)}") from None


def parse_event_in(raw: Any, index: int) -> EventIn:
    """Validate the envelope a client sent; EventRejected names the event index."""
    if not isinstance(raw, dict):
        raise EventRejected(index, f"expected a JSON object, got {type(raw).__name__}")
    event_id = raw.get("id") if isinstance(raw.get("id"), str) else None
    try:
        return EventIn.model_validate(raw)
    except ValidationError as exc:
        raise EventRejected(index, _first_error(exc), event_id) from None


def upcast(event_type: str, v: int, data: dict[str, Any], seq: int | None = None) -> dict[str, Any]:
    """Bring a stored payload to the current version of its type; never guess at a newer one."""
    current = CURRENT_VERSION.get(event_type)
    where = f" at seq {seq}" if seq is not None else ""
    if current is None:
        raise NewerFormatError(
            f"unknown event type {event_type!r}{where}: written by a newer cohort-ledger?"
        )
    if v > current:
        raise NewerFormatError(
            f"{event_type} v{v}{where} was written by a newer cohort-ledger (this one reads up to v{current})"
        )
    while v < current:
        data = UPCASTERS[(event_type, v)](data)
        v += 1
    return data

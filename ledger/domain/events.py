"""The event catalogue (docs/FORMAT.md §6): one pydantic model per payload type and version.

Models are strict and closed (`extra="forbid"`): an event is validated once, when it is
appended, and its normalised payload is what gets hashed. Replay never re-validates; it
relies on the chain to prove the bytes are the ones that passed here.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Annotated, Any, Callable, Literal, Union, get_args

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError
from typing_extensions import NotRequired, TypedDict

from ..errors import CorruptLogError, EventRejected, NewerFormatError
from .ids import IDENTIFIER_PATTERN

Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN)]
#: Manifest column names that `metadata.key_renamed` may introduce.
KeyName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
#: Client event ids: printable ASCII without spaces, so they are safe in logs and reports.
EVENT_ID_PATTERN = r"^[!-~]{1,256}$"
EventId = Annotated[str, StringConstraints(pattern=EVENT_ID_PATTERN)]


#: Validators are built on first use, not at import: a pipeline hook runs in a fresh
#: process that validates one event, and building every model's schema up front cost
#: more than the rest of its work (docs/benchmarks.md).
_LAZY = ConfigDict(defer_build=True)


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, **_LAZY)


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
    """`by`: who committed an event. All keys optional, nothing else allowed.

    `asset_key` and `partition_key` name the orchestrator step that recorded the event
    (the Dagster integration sets them), so an audit can go from an event to the step.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, **_LAZY)
    actor: Text | None = None
    run_id: Text | None = None
    source: Text | None = None
    asset_key: Text | None = None
    partition_key: Text | None = None


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

#: Origin metadata of a generation: the `generation.created` payload keys, in payload order.
ORIGIN_FIELDS: tuple[str, ...] = tuple(GenerationCreated.model_fields)
_IDENTIFIER_CONSTRAINT = get_args(Identifier)[1]
#: The origin fields whose values are identifiers (docs/FORMAT.md §6.1).
ORIGIN_IDENTIFIER_FIELDS: tuple[str, ...] = tuple(
    name for name, info in GenerationCreated.model_fields.items()
    if _IDENTIFIER_CONSTRAINT in info.metadata or Identifier in get_args(info.annotation))
#: The optional origin fields (omitted from a payload when absent; null in the manifest).
ORIGIN_OPTIONAL_FIELDS: tuple[str, ...] = tuple(
    name for name, info in GenerationCreated.model_fields.items() if not info.is_required() and info.default is None)


class EventIn(BaseModel):
    """One event as a client submits it: the CLI's JSON line or a library call."""

    model_config = ConfigDict(extra="forbid", strict=True, **_LAZY)
    type: str
    data: dict[str, Any]
    id: EventId | None = None
    by: Provenance | None = None


class RecordedEvent(BaseModel):
    """One committed event, as read back from the log (payload upcast to the current version)."""

    model_config = ConfigDict(frozen=True, **_LAZY)
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

    @classmethod
    def from_log(cls, fields: dict[str, Any]) -> RecordedEvent:
        """The model of a committed envelope (`fields`: exactly the ten keys, in field order,
        `txn` a tuple, payload upcast), without validating it again.

        The chain proves these bytes are the ones validated at append, so reading re-checks
        nothing; this sets what `model_construct` sets, minus its per-field loop over defaults
        (none here), which cost 4.8 of a read's 14 us per event (docs/benchmarks.md).
        tests/test_arrow_log.py pins that the result equals `model_construct`'s.
        """
        event = _new_object(cls)
        _set_attribute(event, "__dict__", fields)
        _set_attribute(event, "__pydantic_fields_set__", set(_RECORDED_FIELDS))
        _set_attribute(event, "__pydantic_extra__", None)
        _set_attribute(event, "__pydantic_private__", None)
        return event


_new_object = object.__new__
_set_attribute = object.__setattr__
_RECORDED_FIELDS = frozenset(RecordedEvent.model_fields)


#: TypedDict's functional form with names and fields computed at run time, which a type
#: checker cannot follow (it wants literals): the classes built here are only given to pydantic
_make_typed_dict: Any = TypedDict


def _list_of(item: Any) -> Any:
    """`list[item]` for an item type built at run time."""
    return list[item]


def _typed_dict(model: type[BaseModel]) -> Any:
    """The payload model as a pydantic-validated TypedDict: same fields, same constraints.

    Derived, never written twice: validating plain dicts skips model construction and
    dumping, which made batch validation three times faster in our measurements.
    """
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        annotation: Any = info.annotation
        for constraint in info.metadata:
            annotation = Annotated[annotation, constraint]
        fields[name] = annotation if info.is_required() else NotRequired[annotation]
    typed = _make_typed_dict(f"{model.__name__}Data", fields)
    typed.__pydantic_config__ = model.model_config
    return typed


@cache
def _data_adapter(kind: str) -> TypeAdapter[list[dict[str, Any]]]:
    """The validator of a list of one type's payloads (used only to name a rejected event's rule)."""
    return TypeAdapter(_list_of(_typed_dict(PAYLOADS[kind])))


#: type -> the defaults to fill in
_DEFAULTS = {
    name: {f: info.default for f, info in model.model_fields.items() if not info.is_required() and info.default is not None}
    for name, model in PAYLOADS.items()
}
_ENVELOPE_KEYS = frozenset(("type", "data", "id", "by"))


@cache
def envelope_schema() -> TypeAdapter[list[Any]]:
    """Whole client envelopes, discriminated by `type`, each with its payload TypedDict.

    Derived from the same models as the checks below and never more permissive than they
    are, so a batch it accepts is exactly a batch they accept: it is the one-call fast path;
    any batch it rejects goes through the per-rule checks, which name the event and the rule.
    """
    by = TypedDict("ProvenanceData", {k: NotRequired[Text | None] for k in Provenance.model_fields})  # type: ignore[misc]
    by.__pydantic_config__ = Provenance.model_config  # type: ignore[attr-defined]
    members = []
    for name, model in PAYLOADS.items():
        envelope = TypedDict(f"{model.__name__}Envelope", {  # type: ignore[misc]
            "type": Literal[name], "data": _typed_dict(model),
            "id": NotRequired[EventId | None], "by": NotRequired[by | None]})
        envelope.__pydantic_config__ = ConfigDict(extra="forbid", strict=True)  # type: ignore[attr-defined]
        members.append(envelope)
    return TypeAdapter(list[Annotated[Union[tuple(members)], Field(discriminator="type")]])  # type: ignore[misc, arg-type]


_EVENT_ID_RE = re.compile(EVENT_ID_PATTERN[1:-1])


def _check_envelope(item: Any) -> str | None:
    """The rule a client envelope breaks, or None. Cheap checks only; payloads come later."""
    if not isinstance(item, dict):
        return f"expected a JSON object, got {type(item).__name__}"
    extra = item.keys() - _ENVELOPE_KEYS
    if extra:
        return f"unknown envelope key(s) {sorted(extra)} (allowed: type, data, id, by)"
    kind = item.get("type")
    if kind not in PAYLOADS:
        return "missing key 'type'" if kind is None else f"unknown event type {kind!r} (known: {', '.join(EVENT_TYPES)})"
    if not isinstance(item.get("data"), dict):
        return "missing key 'data'" if "data" not in item else "data: must be a JSON object"
    event_id = item.get("id")
    if event_id is not None and not (isinstance(event_id, str) and _EVENT_ID_RE.fullmatch(event_id)):
        return "id: must be 1-256 printable ASCII characters without spaces"
    by = item.get("by")
    if by is not None:
        if not isinstance(by, dict):
            return "by: must be a JSON object"
        for key, value in by.items():
            if key not in Provenance.model_fields:
                return f"by.{key}: unknown key (allowed: {', '.join(Provenance.model_fields)})"
            if value is not None and not (isinstance(value, str) and 1 <= len(value) <= 4096):
                return f"by.{key}: must be a string of 1-4096 characters"
    return None


#: Free-form JSON payload fields (docs/FORMAT.md): their nesting depth and canonical size are
#: capped, so every consumer (the canonical encoder, checkpoints, reports) can hold them.
FREE_FORM_FIELDS: dict[str, tuple[str, ...]] = {"cohort.opened": ("spec",), "generation.reused": ("matched_on",)}
MAX_FREE_FORM_DEPTH = 32
MAX_FREE_FORM_BYTES = 64 << 10
#: integers the log holds: signed 64-bit (docs/FORMAT.md), as most JSON readers can
INT_MIN, INT_MAX = -(2**63), 2**63 - 1


def free_form_rule(value: Any) -> str | None:
    """Why a free-form value cannot be committed (too deep, an integer beyond signed 64 bits,
    too large), or None. Iterative, so a hostile depth cannot exhaust the stack."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if type(item) is int and not INT_MIN <= item <= INT_MAX:
            return f"integer {item} is outside the signed 64-bit range"
        if isinstance(item, (dict, list)):
            if depth > MAX_FREE_FORM_DEPTH:
                return f"nested deeper than {MAX_FREE_FORM_DEPTH} levels"
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    try:
        size = len(orjson.dumps(value))
    except orjson.JSONEncodeError as exc:
        return f"not encodable as JSON ({exc})"
    return f"{size} bytes as JSON, more than {MAX_FREE_FORM_BYTES}" if size > MAX_FREE_FORM_BYTES else None


def _check_free_form(raw: list[Any]) -> None:
    for i, item in enumerate(raw):
        for field in FREE_FORM_FIELDS.get(item["type"], ()):
            value = item["data"].get(field)
            rule = None if value is None else free_form_rule(value)
            if rule is not None:
                raise EventRejected(i, f"{item['type']} data.{field}: {rule}", item.get("id"))


def normalize_batch(raw: list[Any]) -> list[dict[str, Any]]:
    """Validate client envelopes {type, data, id?, by?}; return their canonical dicts.

    Absent optional keys are omitted and defaults filled, so equal events have equal bytes.
    The first invalid event (lowest index) raises EventRejected naming it and the rule.
    A valid batch costs one pydantic-core call for all its envelopes and payloads.
    """
    try:
        envelope_schema().validate_python(raw)
    except ValidationError:
        _raise_first_invalid(raw)  # returns only if the rules accept what the schema did not
    _check_free_form(raw)
    out = []
    for item in raw:
        kind, data, by = item["type"], item["data"], item.get("by")
        if None in data.values():
            data = {k: v for k, v in data.items() if v is not None}
        event: dict[str, Any] = {"type": kind, "data": {**_DEFAULTS[kind], **data}}
        if item.get("id") is not None:
            event["id"] = item["id"]
        event["by"] = {k: v for k, v in by.items() if v is not None} if by else {}
        out.append(event)
    return out


def _raise_first_invalid(raw: list[Any]) -> None:
    """Raise EventRejected for the first invalid event (lowest index), naming it and the rule.

    Payloads are validated one list per type, so pydantic-core runs once per type here too.
    """
    failures: list[tuple[int, str]] = []
    groups: dict[str, list[int]] = {}
    for i, item in enumerate(raw):
        rule = _check_envelope(item)
        if rule is not None:
            failures.append((i, rule))
            break
        groups.setdefault(item["type"], []).append(i)
    for kind, indexes in groups.items():
        try:
            _data_adapter(kind).validate_python([raw[i]["data"] for i in indexes])
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            field = ".".join(str(p) for p in err["loc"][1:])
            failures.append((indexes[int(err["loc"][0])], f"{kind} data{'.' + field if field else ''}: {err['msg']}"))
    if failures:
        index, rule = min(failures)
        item = raw[index]
        event_id = item.get("id") if isinstance(item, dict) and isinstance(item.get("id"), str) else None
        raise EventRejected(index, rule, event_id)


def upcast(event_type: str, v: int, data: dict[str, Any], seq: int) -> dict[str, Any]:
    """Bring the payload of committed event `seq` to the current version of its type.

    An unknown type or a `v` newer than this reader knows is refused (NewerFormatError: a
    newer writer's event, never guessed at); a `v` that is no version at all (not an
    integer >= 1) is corruption at `seq` (docs/FORMAT.md §6.3).
    """
    current = CURRENT_VERSION.get(event_type)
    if v == current and type(v) is int:
        return data  # the hot path: every event of a log written by this version
    if current is None:
        raise NewerFormatError(f"unknown event type {event_type!r} at seq {seq}: written by a newer cohort-ledger?")
    if type(v) is not int or v < 1:
        raise CorruptLogError(seq, f"v {v!r} is not a payload version (an integer >= 1)")
    if v > current:
        raise NewerFormatError(
            f"{event_type} v{v} at seq {seq} was written by a newer cohort-ledger (this one reads up to v{current})"
        )
    while v < current:
        data = UPCASTERS[(event_type, v)](data)
        v += 1
    return data

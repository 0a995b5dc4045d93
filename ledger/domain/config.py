"""`ledger.json`: the ledger's identity and its stage graph (docs/FORMAT.md §2)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
import orjson

from ..errors import InvalidInputError, NewerFormatError, NotALedgerError
from .ids import is_identifier

FORMAT_NAME = "cohort-ledger"
FORMAT_VERSION = 1
DEFAULT_STAGES = ("draft", "essay", "evaluation")
DEFAULT_PARENTS = {"essay": "draft", "evaluation": "essay"}


@dataclass(frozen=True)
class LedgerConfig:
    ledger_id: str
    stages: tuple[str, ...] = DEFAULT_STAGES
    parents: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_PARENTS))

    def __post_init__(self) -> None:
        check_stage_graph(self.stages, self.parents)

    @classmethod
    def new(cls, stages: tuple[str, ...] | None = None, parents: dict[str, str] | None = None) -> "LedgerConfig":
        stages = tuple(stages) if stages is not None else DEFAULT_STAGES
        if parents is None:
            parents = {c: p for c, p in DEFAULT_PARENTS.items() if c in stages and p in stages}
        return cls(ledger_id=str(uuid.uuid4()), stages=stages, parents=dict(parents))

    def stage_rank(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.stages)}

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "format": FORMAT_NAME,
                "format_version": FORMAT_VERSION,
                "ledger_id": self.ledger_id,
                "stages": list(self.stages),
                "parents": dict(sorted(self.parents.items())),
            },
            option=orjson.OPT_INDENT_2,
        ) + b"\n"

    @classmethod
    def from_json(cls, raw: bytes, path: str | Path) -> "LedgerConfig":
        """Parse `ledger.json` bytes; `path` names where they came from in messages."""
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise NotALedgerError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
            raise NotALedgerError(f"{path}: not a cohort-ledger ledger.json")
        version = doc.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise NotALedgerError(f"{path}: format_version must be an integer")
        if version > FORMAT_VERSION:
            raise NewerFormatError(
                f"{path}: format_version {version} was written by a newer cohort-ledger "
                f"(this one reads up to {FORMAT_VERSION})"
            )
        ledger_id, stages, parents = doc.get("ledger_id"), doc.get("stages"), doc.get("parents", {})
        if not isinstance(ledger_id, str) or not ledger_id.isascii() or not ledger_id:
            raise NotALedgerError(f"{path}: ledger_id must be a non-empty ASCII string")
        if not isinstance(stages, list) or not isinstance(parents, dict):
            raise NotALedgerError(f"{path}: stages must be a list and parents an object")
        try:
            return cls(ledger_id=ledger_id, stages=tuple(stages), parents=dict(parents))
        except InvalidInputError as exc:
            raise NotALedgerError(f"{path}: {exc}") from None


def check_stage_graph(stages: tuple[str, ...], parents: dict[str, str]) -> None:
    """Stages are unique safe ids; each parent is an *earlier* stage, so the graph is acyclic."""
    if not stages:
        raise InvalidInputError("a ledger needs at least one stage")
    rank: dict[str, int] = {}
    for i, stage in enumerate(stages):
        if not is_identifier(stage):
            raise InvalidInputError(f"stage {stage!r} is not a safe identifier")
        if stage in rank:
            raise InvalidInputError(f"stage {stage!r} is listed twice")
        rank[stage] = i
    for child, parent in parents.items():
        if child not in rank or parent not in rank:
            raise InvalidInputError(f"parent {child}={parent} names an unknown stage")
        if rank[parent] >= rank[child]:
            raise InvalidInputError(f"parent stage {parent!r} must come before {child!r}")


def parse_parents(spec: str) -> dict[str, str]:
    """`b=a,c=b` -> {"b": "a", "c": "b"} (the CLI's --parents)."""
    out: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in spec.split(","))):
        child, sep, parent = item.partition("=")
        if not sep or not child or not parent:
            raise InvalidInputError(f"--parents item {item!r} is not CHILD=PARENT")
        out[child.strip()] = parent.strip()
    return out


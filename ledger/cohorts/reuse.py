"""The skip-existing reuse planner (docs/operators.md §3).

A cohort run wants, per signature (the stage's signature minus `replicate`), some number of
replicates. Gens of that signature already active in the cohort count first; then existing
gens from the allowed origins are reused, lowest replicate first, so two operators planning
the same wanted list reuse the same gens; whatever is still missing is created under the
smallest replicate numbers no existing gen of the signature uses (allowed origin or not), so
a new deterministic id can never collide with an old gen; an id that a gen of another
signature already holds gets the pipeline's collision suffix (`collision_gen_id`, `-k`).

A plan is a pure function of a state and remembers the seq it was made at. Applying it is
one batch appended with `expected_seq` = that seq: if anyone appended in between, the plan
may be stale and the store refuses it (ConflictError); `plan_and_apply` re-plans.
"""

from __future__ import annotations

import csv
from collections import ChainMap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Iterable, Sequence

from ..errors import ConflictError, InvalidInputError
from ..domain.ids import SIGNATURE_FIELDS, free_gen_id, is_identifier, signature_key
from ..domain.state import Generation, State
from ..app.service import Ledger

REASON = "skip-existing"
#: Upper bound on one signature's wanted replicates: a typo must not plan a million gens.
MAX_REPLICATES = 10_000


@dataclass(frozen=True)
class Wanted:
    """One wanted signature (without `replicate`) and how many replicates the cohort needs."""

    signature: dict[str, str]
    replicates: int


@dataclass(frozen=True)
class ReuseItem:
    """An existing gen the plan adds to the target cohort."""

    gen_id: str
    origin_cohort_id: str
    replicate: int
    matched_on: dict[str, str | int]


@dataclass(frozen=True)
class CreateItem:
    """A replicate that does not exist yet: the pipeline must generate it under `gen_id`."""

    gen_id: str
    signature: dict[str, str]
    replicate: int


@dataclass(frozen=True)
class SignaturePlan:
    """The split for one wanted signature; `active` are gens already in the target cohort."""

    wanted: Wanted
    active: tuple[str, ...]
    reuse: tuple[ReuseItem, ...]
    create: tuple[CreateItem, ...]


@dataclass(frozen=True)
class ReusePlan:
    cohort_id: str
    stage: str
    seq: int
    signatures: tuple[SignaturePlan, ...]

    @property
    def reuse(self) -> list[ReuseItem]:
        return [item for sp in self.signatures for item in sp.reuse]

    @property
    def create(self) -> list[CreateItem]:
        return [item for sp in self.signatures for item in sp.create]

    def reuse_events(self, by: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """The `generation.reused` events of this plan, in plan order."""
        return [{"type": "generation.reused", "by": by,
                 "data": {"cohort_id": self.cohort_id, "stage": self.stage, "gen_id": item.gen_id,
                          "reason": REASON, "matched_on": item.matched_on}}
                for item in self.reuse]

    def to_json(self) -> dict[str, Any]:
        """`reuse` rows carry the reused-event payload plus the origin; `create` rows are the
        `generation.created` payloads the pipeline will append (origin = the target cohort)."""
        return {
            "cohort_id": self.cohort_id,
            "stage": self.stage,
            "seq": self.seq,
            "reuse": [{"cohort_id": self.cohort_id, "stage": self.stage, "gen_id": r.gen_id,
                       "origin_cohort_id": r.origin_cohort_id, "replicate": r.replicate,
                       "reason": REASON, "matched_on": r.matched_on} for r in self.reuse],
            "create": [{"cohort_id": self.cohort_id, "stage": self.stage, "gen_id": c.gen_id,
                        **c.signature, "replicate": c.replicate} for c in self.create],
        }


def key_fields(stage: str) -> tuple[str, ...]:
    """The wanted-list columns of a stage: its signature fields except `replicate`."""
    try:
        return tuple(n for n in SIGNATURE_FIELDS[stage] if n != "replicate")
    except KeyError:
        raise InvalidInputError(
            f"stage {stage!r} has no signature scheme (known: {', '.join(SIGNATURE_FIELDS)})") from None


def _gen_signature(gen: Generation, names: Sequence[str]) -> dict[str, Any] | None:
    values = {n: getattr(gen, n) for n in names}
    return None if any(v is None for v in values.values()) else values


def plan_reuse(state: State, cohort_id: str, stage: str, wanted: Iterable[Wanted],
               allowed_origins: Collection[str] | None = None) -> ReusePlan:
    """Split each wanted signature into already-active, reuse and create (module docstring)."""
    names = key_fields(stage)
    if not is_identifier(cohort_id):
        raise InvalidInputError(f"cohort id {cohort_id!r} is not a safe identifier")
    for rule in (state.stage_rule(stage), state.writable_rule(cohort_id)):
        if rule is not None:
            raise InvalidInputError(rule)
    cohort = state.cohorts.get(cohort_id)
    members = cohort.members if cohort is not None else {}
    allowed = None if allowed_origins is None else frozenset(allowed_origins)

    by_key: dict[tuple[str, ...], list[Generation]] = {}
    for gen in state.generations.values():
        if gen.stage == stage:
            sig = _gen_signature(gen, names)
            if sig is not None:
                by_key.setdefault(signature_key(stage, sig), []).append(gen)

    seen: set[tuple[str, ...]] = set()
    planned: dict[str, Any] = {}  # ids this plan creates
    taken: ChainMap[str, Any] = ChainMap(planned, state.generations)
    plans = []
    for w in wanted:
        try:
            key = signature_key(stage, w.signature)
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from None
        if key in seen:
            raise InvalidInputError(f"signature {'|'.join(key)} is wanted twice")
        if not 0 <= w.replicates <= MAX_REPLICATES:
            raise InvalidInputError(f"signature {'|'.join(key)}: wanted replicates must be 0..{MAX_REPLICATES}")
        seen.add(key)
        gens = sorted(by_key.get(key, ()), key=lambda g: (g.replicate, g.gen_id))
        active = [g for g in gens if g.gen_id in members]
        need = max(0, w.replicates - len(active))
        reuse = [g for g in gens if g.gen_id not in members
                 and (allowed is None or g.origin_cohort_id in allowed)][:need]
        used = {g.replicate for g in gens}
        create: list[CreateItem] = []
        replicate = 0
        while len(create) < need - len(reuse):
            replicate += 1
            if replicate in used:
                continue
            # an id held by a gen of another signature gets the pipeline's `-k` suffix
            new_id = free_gen_id(stage, taken, **w.signature, replicate=replicate)
            planned[new_id] = None
            create.append(CreateItem(new_id, dict(w.signature), replicate))
        plans.append(SignaturePlan(
            wanted=w,
            active=tuple(g.gen_id for g in active),
            reuse=tuple(ReuseItem(g.gen_id, g.origin_cohort_id, g.replicate,
                                  {**_gen_signature(g, names), "replicate": g.replicate})  # type: ignore[dict-item]
                        for g in reuse),
            create=tuple(create),
        ))
    return ReusePlan(cohort_id, stage, state.seq, tuple(plans))


def apply_plan(ledger: Ledger, plan: ReusePlan, by: dict[str, str] | None = None) -> list[int]:
    """Append the plan's reuses as one batch, only if the ledger is still at `plan.seq`.

    Raises ConflictError when someone appended since the plan was made; nothing is written.
    A plan with nothing to reuse writes nothing.
    """
    events = plan.reuse_events(by)
    if not events:
        return []
    return ledger.append(events, expected_seq=plan.seq)


def plan_and_apply(ledger: Ledger, cohort_id: str, stage: str, wanted: Sequence[Wanted],
                   allowed_origins: Collection[str] | None = None, by: dict[str, str] | None = None,
                   attempts: int = 5) -> tuple[ReusePlan, list[int]]:
    """Plan on the current state and apply; on a conflict, re-plan (at most `attempts` times)."""
    for attempt in range(attempts):
        plan = plan_reuse(ledger.state, cohort_id, stage, wanted, allowed_origins)
        try:
            return plan, apply_plan(ledger, plan, by)
        except ConflictError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable: attempts must be >= 1")


def read_wanted(path: Path, stage: str) -> list[Wanted]:
    """Parse a wanted-list CSV: the stage's signature columns except `replicate`, plus `replicates`.

    Any defect is an InvalidInputError naming the file, the line and the column.
    """
    names = key_fields(stage)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read ({exc.strerror})") from None
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None:
        raise InvalidInputError(f"{path}: empty file, expected a header {','.join([*names, 'replicates'])}")
    header = [h.strip() for h in header]
    expected = {*names, "replicates"}
    for col in header:
        if col not in expected:
            raise InvalidInputError(f"{path}:1: unknown column {col!r} (a {stage} wanted list has "
                                    f"{', '.join([*names, 'replicates'])})")
    for col in [*names, "replicates"]:
        if header.count(col) != 1:
            what = "missing" if col not in header else "repeated"
            raise InvalidInputError(f"{path}:1: column {col!r} is {what}")
    out: list[Wanted] = []
    first_line: dict[tuple[str, ...], int] = {}
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise InvalidInputError(f"{path}:{line}: {len(row)} cells, the header has {len(header)}")
        cells = {h: c.strip() for h, c in zip(header, row)}
        for col in names:
            if not is_identifier(cells[col]):
                raise InvalidInputError(f"{path}:{line}: column {col!r}: {cells[col]!r} is not a safe identifier")
        raw = cells["replicates"]
        if not raw.isascii() or not raw.isdigit() or int(raw) > MAX_REPLICATES:
            raise InvalidInputError(
                f"{path}:{line}: column 'replicates': {raw!r} is not a whole number from 0 to {MAX_REPLICATES}")
        signature = {col: cells[col] for col in names}
        key = signature_key(stage, signature)
        if key in first_line:
            raise InvalidInputError(f"{path}:{line}: signature repeats line {first_line[key]}")
        first_line[key] = line
        out.append(Wanted(signature, int(raw)))
    return out

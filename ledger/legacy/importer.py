"""import-legacy: turn a pipeline data root into the events that reproduce it (DESIGN §6).

`plan_import` reads the files and compares them with the ledger's state; it returns the
events still missing (the delta), so importing the same root twice appends nothing and a
grown root appends only what is new. Event ids are derived from (kind, cohort, gen), which
makes "already imported" a lookup: a membership this import once added and someone later
removed in the ledger is not added again.

Origin metadata comes from metadata.json. Only the two fields `generation.created` cannot
do without fall back to a wide membership.csv row: the origin (8-column file's
`origin_cohort_id`) and the template (`template_id`). Every other wide cell is only
checked against metadata.json, never copied, so the ledger holds what the files say.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..domain.events import ORIGIN_IDENTIFIER_FIELDS
from ..domain.ids import is_identifier
from ..domain.state import State
from ..app.service import Ledger
from .dataroot import ProgressFn, membership_files, metadata_files, relative, resolve_data_root, tick
from .membership import MembershipFile, MembershipRow, MembershipShapeError, read_membership_csv
from .metadata import Origin, normalize_metadata, parse_json_object, parse_replicate
from .problems import LegacyProblems, Problem, sorted_problems

SOURCE = "import-legacy"
BY = {"source": SOURCE}
#: wide columns checked against metadata.json: (CSV column, Origin field)
_WIDE_TEXT = (("parent_gen_id", "parent_gen_id"), ("combo_id", "combo_id"),
              ("template_id", "template_id"), ("llm_model_id", "llm_model_id"), ("origin_cohort_id", "cohort_id"))
#: origin fields that must be identifiers (stage and gen_id are checked where they are read)
_ID_FIELDS = tuple(f for f in ORIGIN_IDENTIFIER_FIELDS if f not in ("stage", "gen_id"))


def import_event_id(kind: str, cohort_id: str, gen_id: str) -> str:
    """Deterministic id of an import event, short whatever the id lengths."""
    digest = hashlib.blake2b(f"{kind}|{cohort_id}|{gen_id}".encode(), digest_size=12).hexdigest()
    return f"{SOURCE}:{kind}:{digest}"


@dataclass
class ImportPlan:
    """What importing a data root would append, made against the ledger at `seq`."""

    data_root: Path
    seq: int
    stages: tuple[str, ...]
    events: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    gens_read: int = 0
    membership_files_read: int = 0

    def counts(self) -> list[dict[str, Any]]:
        """Events per (cohort, stage): created, reused, removed; by cohort id, then stage order."""
        tally: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        for ev in self.events:
            tally[(ev["data"]["cohort_id"], ev["data"]["stage"])][ev["type"].split(".", 1)[1]] += 1
        return [{"cohort_id": c, "stage": s, "created": n["created"], "reused": n["reused"], "removed": n["removed"]}
                for (c, s), n in sorted(tally.items(), key=lambda item: (item[0][0], self.stages.index(item[0][1])))]

    def raise_for_problems(self) -> None:
        if self.problems:
            raise LegacyProblems(SOURCE, self.problems)


class _Reader:
    """Accumulates what the data root says, and every problem found on the way."""

    def __init__(self, state: State, root: Path, progress: ProgressFn | None) -> None:
        self.state = state
        self.root = root
        self.progress = progress
        self.rank = state.config.stage_rank()
        self.problems: list[Problem] = []
        self.origins: dict[str, Origin] = {}
        self.files: dict[str, str] = {}  # gen_id -> its metadata.json, relative
        self.broken: set[str] = set()  # gens whose metadata.json has problems already reported
        self.members: dict[str, set[str]] = defaultdict(set)
        self.membership_files = 0
        #: required fields metadata.json lacks, as found in wide rows: gen -> field -> {value: file}
        self.fallback: dict[str, dict[str, dict[str, str]]] = defaultdict(lambda: defaultdict(dict))

    def problem(self, file: str, gen_id: str | None, message: str) -> None:
        self.problems.append(Problem(file, gen_id, message))

    # -- metadata.json --------------------------------------------------------------
    def read_metadata(self) -> None:
        found = list(metadata_files(self.root))
        for done, (stage, gen_id, path) in enumerate(found, 1):
            tick(self.progress, "metadata.json", done, len(found))
            self._one_metadata(stage, gen_id, path)

    def _one_metadata(self, stage: str, gen_id: str, path: Path) -> None:
        rel = relative(self.root, path)
        if stage not in self.rank:
            self.problem(rel, gen_id, f"stage {stage!r} is not one of the ledger's stages ({', '.join(self.rank)})")
            return
        if not is_identifier(gen_id):
            self.problem(rel, None, f"gen id {gen_id!r} is not a safe identifier")
            return
        if gen_id in self.files:
            self.problem(rel, gen_id, f"the same gen id also has {self.files[gen_id]}")
            self.broken.add(gen_id)
            return
        self.files[gen_id] = rel
        try:
            origin, issues = normalize_metadata(parse_json_object(path.read_bytes()), stage, gen_id)
        except ValueError as exc:
            self.problem(rel, gen_id, str(exc))
            self.broken.add(gen_id)
            return
        except OSError as exc:
            self.problem(rel, gen_id, f"cannot read: {exc.strerror}")
            self.broken.add(gen_id)
            return
        for issue in issues:
            self.problem(rel, gen_id, issue)
        if issues:
            self.broken.add(gen_id)
        self.origins[gen_id] = origin

    # -- membership.csv -------------------------------------------------------------
    def read_memberships(self) -> None:
        found = list(membership_files(self.root))
        for done, (cohort_id, path) in enumerate(found, 1):
            tick(self.progress, "membership.csv", done, len(found))
            rel = relative(self.root, path)
            if not is_identifier(cohort_id):
                self.problem(rel, None, f"cohort directory {cohort_id!r} is not a safe identifier")
                continue
            self.membership_files += 1
            try:
                table = read_membership_csv(path)
            except MembershipShapeError as exc:
                self.problem(f"{rel}:{exc.line}" if exc.line else rel, None, exc.reason)
                continue
            for row in table.rows:
                self._one_row(cohort_id, table, rel, row)

    def _one_row(self, cohort_id: str, table: MembershipFile, rel: str, row: MembershipRow) -> None:
        where = f"{rel}:{row.line}"
        if row.stage is None or row.gen_id is None:
            self.problem(where, row.gen_id, "row without stage or gen_id")
            return
        gen_id = row.gen_id
        if row.cohort_id is not None and row.cohort_id != cohort_id:
            self.problem(where, gen_id, f"cohort_id {row.cohort_id!r} is not the directory's cohort {cohort_id!r}")
        origin = self.origins.get(gen_id)
        if origin is None:
            if gen_id not in self.broken:
                self.problem(where, gen_id, f"listed, but there is no gens/{row.stage}/{gen_id}/metadata.json")
            return
        if row.stage != origin.stage:
            self.problem(where, gen_id, f"stage {row.stage!r}, but metadata.json is under {origin.stage!r}")
        self.members[gen_id].add(cohort_id)
        if table.shape.startswith("wide"):
            self._check_wide(where, row, origin)

    def _check_wide(self, where: str, row: MembershipRow, origin: Origin) -> None:
        """A wide cell contradicts metadata.json only when both are non-empty and differ."""
        for column, name in _WIDE_TEXT:
            cell, known = getattr(row, column), getattr(origin, name)
            if cell is None:
                continue
            if known is None:
                if name in ("cohort_id", "template_id"):
                    self.fallback[origin.gen_id][name].setdefault(cell, where)
            elif cell != known:
                self.problem(where, origin.gen_id, f"{column} is {cell!r} here but {known!r} in metadata.json")
        if row.replicate is not None:
            replicate = parse_replicate(row.replicate)
            if replicate is None:
                self.problem(where, origin.gen_id, f"replicate {row.replicate!r} is not an integer >= 1")
            elif replicate != origin.replicate:
                self.problem(where, origin.gen_id,
                             f"replicate is {replicate} here but {origin.replicate} in metadata.json")

    # -- the whole picture ----------------------------------------------------------
    def complete(self) -> dict[str, Origin]:
        """Fill required fields from wide rows, then check ids, parents and the ledger's own gens."""
        good: dict[str, Origin] = {}
        for gen_id, origin in self.origins.items():
            if gen_id in self.broken:
                continue
            rel = self.files[gen_id]
            fills: dict[str, Any] = {}
            for name, what in (("cohort_id", "origin cohort"), ("template_id", "template")):
                if getattr(origin, name) is not None:
                    continue
                offered = self.fallback.get(gen_id, {}).get(name, {})
                if len(offered) == 1:
                    fills[name] = next(iter(offered))
                elif offered:
                    self.problem(rel, gen_id, f"no {what} in metadata.json and wide membership rows disagree: "
                                 + ", ".join(f"{v} ({w})" for v, w in sorted(offered.items())))
                else:
                    self.problem(rel, gen_id, f"no {what} anywhere (not in metadata.json, "
                                 "nor in a wide membership.csv row)")
            origin = replace(origin, **fills) if fills else origin
            bad_ids = [f"{n} {getattr(origin, n)!r}" for n in _ID_FIELDS
                       if getattr(origin, n) is not None and not is_identifier(getattr(origin, n))]
            if bad_ids:
                self.problem(rel, gen_id, "not a safe identifier: " + ", ".join(bad_ids))
            if origin.cohort_id is not None and origin.template_id is not None and not bad_ids:
                good[gen_id] = origin
        for gen_id, origin in list(good.items()):
            if not self._parent_ok(origin) or not self._same_as_ledger(origin):
                del good[gen_id]
        return good

    def _parent_ok(self, origin: Origin) -> bool:
        """The fold's parent rule, with the data root's own gens counted as existing."""
        def stage_of(gen_id: str) -> str | None:
            known = self.origins.get(gen_id) or self.state.generations.get(gen_id)
            return None if known is None else known.stage

        rule = self.state.parent_rule(origin.stage, origin.parent_gen_id, stage_of)
        if rule is not None:
            self.problem(self.files[origin.gen_id], origin.gen_id, rule)
        return rule is None

    def _same_as_ledger(self, origin: Origin) -> bool:
        existing = self.state.generations.get(origin.gen_id)
        if existing is None:
            return True
        ours, theirs = origin.as_metadata(), existing.metadata()
        differ = [f"{k} {ours[k]!r} (ledger: {theirs[k]!r})" for k in ours if ours[k] != theirs[k]]
        if differ:
            self.problem(self.files[origin.gen_id], origin.gen_id,
                         "already in the ledger with other origin metadata: " + ", ".join(differ))
            return False
        return True


def _event(kind: str, origin: Origin, cohort_id: str) -> dict[str, Any]:
    if kind == "created":
        data = {k: v for k, v in origin.as_metadata().items() if v is not None}
    else:
        data = {"cohort_id": cohort_id, "stage": origin.stage, "gen_id": origin.gen_id, "reason": "imported"}
    return {"type": f"generation.{kind}", "id": import_event_id(kind, cohort_id, origin.gen_id), "by": BY, "data": data}


def _imported_before(state: State, cohort_id: str, origin: Origin) -> bool:
    """Did an earlier import already put this gen into this cohort (whatever happened since)?"""
    ids, gen_id = state.event_ids, origin.gen_id
    if import_event_id("reused", cohort_id, gen_id) in ids:
        return True
    return (cohort_id == origin.cohort_id and import_event_id("created", cohort_id, gen_id) in ids
            and import_event_id("removed", cohort_id, gen_id) not in ids)


def _delta(state: State, origin: Origin, cohorts: set[str]) -> list[dict[str, Any]]:
    """The events that bring one gen's ledger memberships to the source's, never repeating this import.

    A membership an earlier import added and the ledger later removed stays removed: after
    the import, the ledger (not the data root) owns the history.
    """
    gen_id, home = origin.gen_id, origin.cohort_id
    assert home is not None
    if gen_id not in state.generations:
        events = [_event("created", origin, home)]
        if home not in cohorts:
            events.append(_event("removed", origin, home))
        return events + [_event("reused", origin, c) for c in sorted(cohorts - {home})]
    return [_event("reused", origin, c) for c in sorted(cohorts)
            if not state.is_member(c, gen_id) and not _imported_before(state, c, origin)]


def plan_import(state: State, data_root: str | Path, progress: ProgressFn | None = None) -> ImportPlan:
    """Read a data root and return the events still missing from the ledger, or the problems.

    Reads files, writes nothing. Events come parents first (stage order), then by gen id;
    each gen's `generation.created` is followed by its `generation.removed` (when the
    source does not list it in its origin cohort) and its `generation.reused` events.
    """
    root = resolve_data_root(data_root)
    reader = _Reader(state, root, progress)
    reader.read_metadata()
    reader.read_memberships()
    good = reader.complete()
    plan = ImportPlan(root, state.seq, state.config.stages, gens_read=len(reader.files),
                      membership_files_read=reader.membership_files)
    if not reader.problems:
        for gen_id in sorted(good, key=lambda g: (reader.rank[good[g].stage], g)):
            plan.events.extend(_delta(state, good[gen_id], reader.members.get(gen_id, set())))
        for ev in plan.events:
            rule = state.writable_rule(ev["data"]["cohort_id"])
            if rule is not None:
                reader.problem("", ev["data"]["gen_id"], rule)
    plan.problems = sorted_problems(reader.problems)
    if plan.problems:
        plan.events = []
    return plan


def apply_import(ledger: Ledger, plan: ImportPlan) -> list[int]:
    """Append the plan as one atomic batch, only if the ledger has not moved since it was made."""
    plan.raise_for_problems()
    if not plan.events:
        return []
    return ledger.append(plan.events, expected_seq=plan.seq)

"""import-legacy: turn a pipeline data root into the events that reproduce it (docs/migration.md).

`plan_import` reads the files and compares them with the ledger's state; it returns the
events still missing (the delta), so importing the same root twice appends nothing and a
grown root appends only what is new. Event ids are derived from (kind, cohort, gen), which
makes "already imported" a lookup: a membership this import once added and someone later
removed in the ledger is not added again.

Origin metadata comes from metadata.json. A field the file lacks is taken from the wide
membership.csv rows that list the gen, when they all agree; every other wide cell is only
checked against metadata.json. A wide file's cohort column (`cohort_id`, or `origin_cohort_id`
in curated files) is the file's own cohort as the pipeline writes it: only a cell naming
another cohort says something about the gen's origin.

Beyond the gens, a plan records what else the files say: the origin key the files use (as
`metadata.key_renamed` events, `keystate`), cohorts that exist with no member (a header-only
file: `cohort.opened`), and gens the ledger has in a cohort whose file no longer lists them
(`stale`; recorded as `generation.removed` only when the caller asks to sync).
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..domain.events import ORIGIN_IDENTIFIER_FIELDS
from ..domain.ids import coerce_replicate, is_identifier
from ..domain.state import DomainError, State
from ..app.service import Ledger
from ..errors import CheckFailed
from . import keystate
from .dataroot import ProgressFn, membership_files, metadata_files, read_regular, relative, resolve_data_root, tick
from .membership import MembershipFile, MembershipRow, MembershipShapeError, read_membership_csv
from .metadata import Origin, normalize_metadata, origin_keys_for, parse_json_object
from .problems import LegacyProblems, Problem, sorted_problems

SOURCE = "import-legacy"
BY = {"source": SOURCE}
#: wide columns that describe the gen itself: checked against metadata.json, and taken from
#: the rows when metadata.json lacks them (all rows agreeing)
_WIDE_FIELDS = ("parent_gen_id", "combo_id", "template_id", "llm_model_id", "replicate")
#: fields a stage holds only when it has no parent stage (combo_id: the draft's), or only when it has one
_ROOT_ONLY, _CHILD_ONLY = ("combo_id",), ("parent_gen_id",)
_LABEL = {"cohort_id": "origin cohort", "template_id": "template"}
#: origin fields that must be identifiers (stage and gen_id are checked where they are read)
_ID_FIELDS = tuple(f for f in ORIGIN_IDENTIFIER_FIELDS if f not in ("stage", "gen_id"))
#: how many stale gens a message names before "…"
FIRST = 5


def import_event_id(kind: str, cohort_id: str, gen_id: str) -> str:
    """Deterministic id of an import event, short whatever the id lengths."""
    digest = hashlib.blake2b(f"{kind}|{cohort_id}|{gen_id}".encode(), digest_size=12).hexdigest()
    return f"{SOURCE}:{kind}:{digest}"


@dataclass(frozen=True)
class Stale:
    """A gen the ledger has active in a cohort whose membership.csv no longer lists it."""

    cohort_id: str
    stage: str
    gen_id: str
    added_seq: int

    def to_json(self) -> dict[str, Any]:
        return {"cohort_id": self.cohort_id, "stage": self.stage, "gen_id": self.gen_id}


class SourceDisagrees(CheckFailed):
    """The ledger has gens the source's membership files dropped; nothing appended (exit 1)."""

    def __init__(self, stale: list[Stale]) -> None:
        self.stale = stale
        first = ", ".join(f"{s.cohort_id}/{s.gen_id}" for s in stale[:FIRST]) + (", …" if len(stale) > FIRST else "")
        super().__init__(f"source and ledger disagree: {len(stale)} gen{'s' if len(stale) != 1 else ''} the ledger "
                         f"has in a cohort are not in its membership.csv ({first}); "
                         "rerun with --sync to record the removals")


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
    #: metadata.json files per origin-key state (`keystate.STATES`), and the state they add up to
    key_files: dict[str, int] = field(default_factory=dict)
    key_state: str | None = None
    #: empty cohorts this plan opens
    opened: list[str] = field(default_factory=list)
    #: memberships the source dropped; in `events` (as removals) only when `sync`
    stale: list[Stale] = field(default_factory=list)
    sync: bool = False

    def counts(self) -> list[dict[str, Any]]:
        """Generation events per (cohort, stage): created, reused, removed; by cohort id, then stage order."""
        tally: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        for ev in self.events:
            if ev["type"].startswith("generation."):
                tally[(ev["data"]["cohort_id"], ev["data"]["stage"])][ev["type"].split(".", 1)[1]] += 1
        return [{"cohort_id": c, "stage": s, "created": n["created"], "reused": n["reused"], "removed": n["removed"]}
                for (c, s), n in sorted(tally.items(), key=lambda item: (item[0][0], self.stages.index(item[0][1])))]

    def renames(self) -> list[dict[str, Any]]:
        """The `metadata.key_renamed` payloads this plan records."""
        return [ev["data"] for ev in self.events if ev["type"] == "metadata.key_renamed"]

    def summary(self) -> dict[str, Any]:
        """Everything but the events, for --json and --report."""
        return {"data_root": str(self.data_root), "gens_read": self.gens_read,
                "membership_files_read": self.membership_files_read, "events": len(self.events),
                "counts": self.counts(), "key_files": self.key_files, "key_state": self.key_state,
                "renames": self.renames(), "opened": self.opened, "sync": self.sync,
                "stale": [s.to_json() for s in self.stale]}

    def raise_for_problems(self) -> None:
        if self.problems:
            raise LegacyProblems(SOURCE, self.problems)

    def raise_if_disagrees(self) -> None:
        """Without `sync`, dropped memberships stop the import: a silent revert is what it prevents."""
        if self.stale and not self.sync:
            raise SourceDisagrees(self.stale)


class _Reader:
    """Accumulates what the data root says, and every problem found on the way."""

    def __init__(self, state: State, root: Path, progress: ProgressFn | None) -> None:
        self.state = state
        self.root = root
        self.progress = progress
        self.rank = state.config.stage_rank()
        self.origin_keys = origin_keys_for(state.key_names["cohort_id"])
        self.problems: list[Problem] = []
        self.origins: dict[str, Origin] = {}
        self.files: dict[str, str] = {}  # gen_id -> its metadata.json, relative
        self.broken: set[str] = set()  # gens whose metadata.json has problems already reported
        self.members: dict[str, set[str]] = defaultdict(set)  # gen_id -> cohorts whose file lists it
        #: every cohort with a readable membership.csv -> the gens it lists (maybe none)
        self.listed: dict[str, set[str]] = {}
        self.membership_files = 0
        self.key_files: dict[str, list[str]] = defaultdict(list)  # origin-key state -> files
        #: fields metadata.json lacks, as found in wide rows: gen -> field -> {value: first row}
        self.fallback: dict[str, dict[str, dict[Any, str]]] = defaultdict(lambda: defaultdict(dict))

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
            doc = parse_json_object(read_regular(path))
        except ValueError as exc:
            self.problem(rel, gen_id, str(exc))
            self.broken.add(gen_id)
            return
        if (shown := keystate.file_state(doc)) is not None:
            self.key_files[shown].append(rel)
        origin, issues = normalize_metadata(doc, stage, gen_id, self.origin_keys)
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
            self.listed[cohort_id] = set()
            for row in table.rows:
                self._one_row(cohort_id, table, rel, row)

    def _one_row(self, cohort_id: str, table: MembershipFile, rel: str, row: MembershipRow) -> None:
        where = f"{rel}:{row.line}"
        if row.stage is None or row.gen_id is None:
            self.problem(where, row.gen_id, "row without stage or gen_id")
            return
        gen_id = row.gen_id
        self.listed[cohort_id].add(gen_id)
        wide = table.shape.startswith("wide")
        if not wide and row.cohort_id is not None and row.cohort_id != cohort_id:
            self.problem(where, gen_id, f"cohort_id {row.cohort_id!r} is not the directory's cohort {cohort_id!r}")
        origin = self.origins.get(gen_id)
        if origin is None:
            if gen_id not in self.broken:
                self.problem(where, gen_id, f"listed, but there is no gens/{row.stage}/{gen_id}/metadata.json")
            return
        if row.stage != origin.stage:
            self.problem(where, gen_id, f"stage {row.stage!r}, but metadata.json is under {origin.stage!r}")
        self.members[gen_id].add(cohort_id)
        if wide:
            self._check_wide(where, cohort_id, row, origin)

    def _offer(self, where: str, origin: Origin, name: str, cell: Any) -> None:
        """A wide cell for `name`: a contradiction when metadata.json has another value, else a candidate."""
        known = getattr(origin, name)
        if known is None:
            self.fallback[origin.gen_id][name].setdefault(cell, where)
        elif cell != known:
            self.problem(where, origin.gen_id, f"{name} is {cell!r} here but {known!r} in metadata.json")

    def _check_wide(self, where: str, cohort_id: str, row: MembershipRow, origin: Origin) -> None:
        """Wide cells against metadata.json: a contradiction only when both are non-empty and differ.

        The cohort column holds the file's own cohort (the member cohort) as the pipeline
        writes it, whatever its header calls it; only a cell naming another cohort is read
        as the gen's origin.
        """
        for column in ("cohort_id", "origin_cohort_id"):
            cell = getattr(row, column)
            if cell is not None and cell != cohort_id:
                known = origin.cohort_id
                if known is not None and cell != known:
                    self.problem(where, origin.gen_id, f"{column} is {cell!r} here: neither this file's cohort "
                                 f"{cohort_id!r} nor the origin {known!r} in metadata.json")
                elif known is None:
                    self.fallback[origin.gen_id]["cohort_id"].setdefault(cell, where)
        has_parent = self.state.parents.get(origin.stage) is not None
        for name in _WIDE_FIELDS:
            cell = getattr(row, name)
            not_its_own = (name in _ROOT_ONLY and has_parent) or (name in _CHILD_ONLY and not has_parent)
            if cell is None or (not_its_own and getattr(origin, name) is None):
                continue  # e.g. the draft's combo_id, repeated on every stage of old wide files: never filled in
            if name == "replicate":
                replicate = coerce_replicate(cell)
                if replicate is None:
                    self.problem(where, origin.gen_id, f"replicate {cell!r} is not an integer >= 1")
                    continue
                cell = replicate
            self._offer(where, origin, name, cell)

    # -- the whole picture ----------------------------------------------------------
    def _filled(self, origin: Origin) -> Origin | None:
        """`origin` with every field metadata.json lacks taken from agreeing wide rows; None on a problem."""
        rel, gen_id, fills, ok = self.files[origin.gen_id], origin.gen_id, {}, True
        for name, offered in self.fallback.get(gen_id, {}).items():
            if len(offered) == 1:
                fills[name] = next(iter(offered))
            else:
                ok = False
                self.problem(rel, gen_id, f"no {_LABEL.get(name, name)} in metadata.json and wide membership rows disagree: "
                             + ", ".join(f"{v} ({w})" for v, w in sorted(offered.items(), key=lambda i: str(i[0]))))
        origin = replace(origin, **fills) if fills else origin
        for name in ("cohort_id", "template_id"):
            if getattr(origin, name) is None and name not in self.fallback.get(gen_id, {}):
                ok = False
                self.problem(rel, gen_id, f"no {_LABEL[name]} anywhere (not in metadata.json, nor in a wide "
                             "membership.csv row" + ("; a wide row's own cohort is its member cohort, not the origin)"
                                                     if name == "cohort_id" else ")"))
        return replace(origin, replicate=origin.replicate or 1) if ok else None

    def complete(self) -> dict[str, Origin]:
        """Fill fields from wide rows, then check ids, parents and the ledger's own gens."""
        good: dict[str, Origin] = {}
        for gen_id, origin in self.origins.items():
            if gen_id in self.broken or (filled := self._filled(origin)) is None:
                continue
            bad_ids = [f"{n} {getattr(filled, n)!r}" for n in _ID_FIELDS
                       if getattr(filled, n) is not None and not is_identifier(getattr(filled, n))]
            if bad_ids:
                self.problem(self.files[gen_id], gen_id, "not a safe identifier: " + ", ".join(bad_ids))
                continue
            good[gen_id] = filled
        for gen_id, origin in list(good.items()):
            if not self._parent_ok(origin) or not self._same_as_ledger(origin):
                del good[gen_id]
        return good

    def _parent_ok(self, origin: Origin) -> bool:
        """The fold's parent rule, with the data root's own gens counted as existing.

        A parent whose metadata.json has problems already has them reported: its children
        are left out without a second, misleading "does not exist".
        """
        if origin.parent_gen_id in self.broken:
            return False
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

    def stale(self) -> list[Stale]:
        """Gens the ledger has active in a cohort whose membership.csv does not list them.

        Only cohorts the source has a file for are compared: a cohort without one is one
        the source says nothing about.
        """
        found = []
        for cohort_id in sorted(self.listed):
            cohort = self.state.cohorts.get(cohort_id)
            for gen_id, added in (cohort.members.items() if cohort is not None else ()):
                if gen_id not in self.listed[cohort_id]:
                    gen = self.state.generations[gen_id]
                    found.append(Stale(cohort_id, gen.stage, gen_id, added))
        return sorted(found, key=lambda s: (s.cohort_id, self.rank[s.stage], s.gen_id))


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


def _rename_events(state: State, target: str | None) -> list[dict[str, Any]]:
    return [{"type": "metadata.key_renamed", "id": import_event_id(f"renamed-{phase}", keystate.OLD, keystate.NEW),
             "by": BY, "data": {"old_key": keystate.OLD, "new_key": keystate.NEW, "phase": phase}}
            for phase in keystate.rename_steps(state.key_names["cohort_id"], target)]


def _sync_event(stale: Stale) -> dict[str, Any]:
    """The removal of one dropped membership; its id names the membership (cohort, gen, seq it was added)."""
    return {"type": "generation.removed", "by": BY,
            "id": import_event_id("synced", stale.cohort_id, f"{stale.gen_id}@{stale.added_seq}"),
            "data": {"cohort_id": stale.cohort_id, "stage": stale.stage, "gen_id": stale.gen_id, "reason": "imported"}}


def _breach(state: State, events: list[dict[str, Any]]) -> str | None:
    """The domain rule `events` would break on `state`, tried through the fold and undone; None if none."""

    class _Undo(Exception):
        pass

    try:
        with state.transaction():
            for i, ev in enumerate(events, 1):
                state.apply(ev["type"], ev["data"], state.seq + i, ev["id"], state.at)
            raise _Undo
    except _Undo:
        return None
    except DomainError as exc:
        return str(exc)


def plan_import(state: State, data_root: str | Path, progress: ProgressFn | None = None, *,
                sync: bool = False) -> ImportPlan:
    """Read a data root and return the events still missing from the ledger, or the problems.

    Reads files, writes nothing. Events: the origin-key renames the files call for, the
    empty cohorts to open, then the gens parents first (stage order) and by gen id -- each
    gen's `generation.created` followed by its `generation.removed` (when the source does not
    list it in its origin cohort) and its `generation.reused` events -- and, with `sync`, the
    removals of memberships the source dropped (`ImportPlan.stale`).
    """
    root = resolve_data_root(data_root)
    reader = _Reader(state, root, progress)
    reader.read_metadata()
    reader.read_memberships()
    good = reader.complete()
    plan = ImportPlan(root, state.seq, state.config.stages, gens_read=len(reader.files),
                      membership_files_read=reader.membership_files, key_files=keystate.summary(reader.key_files),
                      key_state=keystate.root_state(reader.key_files), sync=sync)
    if not reader.problems:
        renames = _rename_events(state, plan.key_state)
        breach = _breach(state, renames) if renames else None
        if breach is not None:
            reader.problem("", None, f"the metadata.json files use {keystate.NEW} ({plan.key_state}), "
                           f"but the ledger cannot record that rename: {breach}")
        gens: list[dict[str, Any]] = []
        for gen_id in sorted(good, key=lambda g: (reader.rank[good[g].stage], g)):
            gens.extend(_delta(state, good[gen_id], reader.members.get(gen_id, set())))
        named = {ev["data"]["cohort_id"] for ev in gens}
        plan.opened = [c for c in sorted(reader.listed) if c not in state.cohorts and c not in named]
        opens = [{"type": "cohort.opened", "id": import_event_id("opened", c, ""), "by": BY, "data": {"cohort_id": c}}
                 for c in plan.opened]
        plan.stale = reader.stale()
        syncs = [_sync_event(s) for s in plan.stale] if sync else []
        plan.events = renames + opens + gens + syncs
        sealed_hits: dict[str, list[str]] = defaultdict(list)
        for ev in gens + [_sync_event(s) for s in plan.stale]:
            if state.writable_rule(ev["data"]["cohort_id"]) is not None:
                sealed_hits[ev["data"]["cohort_id"]].append(ev["data"]["gen_id"])
        for cohort_id, gen_ids in sealed_hits.items():
            for gen_id in gen_ids:
                reader.problem("", gen_id, f"{state.writable_rule(cohort_id)}; the source differs from the ledger there")
    plan.problems = sorted_problems(reader.problems)
    if plan.problems:
        plan.events = []
    return plan


def apply_import(ledger: Ledger, plan: ImportPlan) -> list[int]:
    """Append the plan as one atomic batch, only if the ledger has not moved since it was made.

    Raises LegacyProblems (exit 2) for problems and SourceDisagrees (exit 1) for memberships
    the source dropped when the plan was made without `sync`; nothing is appended then.
    """
    plan.raise_for_problems()
    plan.raise_if_disagrees()
    if not plan.events:
        return []
    return ledger.append(plan.events, expected_seq=plan.seq)

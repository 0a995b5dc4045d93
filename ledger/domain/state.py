"""The fold: events -> state, with the domain rules of docs/FORMAT.md §6.2.

One function serves both uses. At append time each event of a batch is applied inside a
`transaction()`, so a rule broken by the fifth event undoes the first four; on replay the
same `apply` runs without a journal. A replayed event that breaks a rule means the log was
written by something that skipped validation, and the store reports it as corruption.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from .config import LedgerConfig
from .events import ORIGIN_FIELDS
from .ids import is_identifier

#: Manifest columns that come from origin metadata, in manifest order: the origin fields of
#: `generation.created` but the row's identity (stage, gen_id). `cohort_id` is the logical
#: name of the origin cohort key; `metadata.key_renamed` changes its physical names.
METADATA_KEYS: tuple[str, ...] = tuple(f for f in ORIGIN_FIELDS if f not in ("stage", "gen_id"))
#: The `Generation` attribute holding each origin field (the origin cohort is explicit there).
GENERATION_ATTR: dict[str, str] = {f: ("origin_cohort_id" if f == "cohort_id" else f) for f in ORIGIN_FIELDS}
#: Manifest columns no rename may touch or collide with.
FIXED_KEYS = ("stage", "gen_id", "created_seq", "materialized")


#: names Windows reserves for devices, with or without an extension (`nul.txt` too)
_DEVICE_NAMES = frozenset({"CON", "PRN", "AUX", "NUL", *(f"{p}{n}" for p in ("COM", "LPT") for n in "123456789")})


def folder_key(cohort_id: str) -> str:
    """What a case-insensitive file system that drops trailing dots sees of a folder name."""
    return cohort_id.lower().rstrip(".")


class DomainError(ValueError):
    """An event breaks a domain rule; the message is the rule, one line."""


@dataclass(slots=True)
class Generation:
    """Origin metadata of a gen: written once by `generation.created`, never changed."""

    stage: str
    gen_id: str
    origin_cohort_id: str
    template_id: str
    combo_id: str | None
    llm_model_id: str | None
    parent_gen_id: str | None
    replicate: int
    mode: str | None
    created_seq: int
    materialized_seq: int | None = None

    def metadata(self) -> dict[str, Any]:
        """Origin metadata under logical key names (origin as `cohort_id`), in payload order."""
        return {f: getattr(self, attr) for f, attr in GENERATION_ATTR.items()}


@dataclass(slots=True)
class Cohort:
    cohort_id: str
    opened_seq: int | None = None
    description: str | None = None
    spec: dict[str, Any] | None = None
    sealed_seq: int | None = None
    #: active members: gen_id -> seq of the event that (last) added it. A cohort exists once
    #: opened or given a member, and keeps existing (with a header-only CSV) when emptied.
    members: dict[str, int] = field(default_factory=dict)


_MISSING = object()


class State:
    """Everything the log implies: generations, cohorts and their members, renames, ids."""

    def __init__(self, config: LedgerConfig) -> None:
        self.config = config
        self.parents = config.parents
        self.stages = frozenset(config.stages)
        self.seq = 0
        self.hash = ""  # chain hash at `seq`; kept by the store, "" before the first event
        self.at = ""  # `at` of the event at `seq`
        self.generations: dict[str, Generation] = {}
        self.cohorts: dict[str, Cohort] = {}
        #: logical metadata key -> its physical names in projections (1 name, or 2 during alias)
        self.key_names: dict[str, tuple[str, ...]] = {k: (k,) for k in METADATA_KEYS}
        #: client or generated event id -> seq it was committed at
        self.event_ids: dict[str, int] = {}
        self._journal: list[tuple[Any, Any, Any]] | None = None
        #: one object per distinct low-cardinality value (stage, cohort, template, model, mode):
        #: a replay parses a fresh string for each event, and a million copies cost ~150 MB
        self._shared: dict[Any, Any] = {}

    # -- undo journal ---------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Apply events tentatively: on any exception every change made inside is undone.

        Nested, it is a savepoint: an inner failure undoes only the inner changes, and what
        an inner transaction kept is still undone if the outer one fails (a group commit
        validates each writer's batch inside one outer transaction around the shared write)."""
        outer = (self.seq, self.hash, self.at)
        nested = self._journal is not None
        journal: list[tuple[Any, Any, Any]] = self._journal if self._journal is not None else []
        self._journal = journal
        mark = len(journal)
        try:
            yield
        except BaseException:
            for target, key, old in reversed(journal[mark:]):
                if isinstance(target, MutableMapping):  # a dict, or an index's lazy map
                    if old is _MISSING:
                        del target[key]
                    else:
                        target[key] = old
                else:
                    setattr(target, key, old)
            del journal[mark:]
            self.seq, self.hash, self.at = outer
            raise
        finally:
            if not nested:
                self._journal = None

    def _set(self, target: dict[Any, Any], key: Any, value: Any) -> None:
        if self._journal is not None:
            self._journal.append((target, key, target.get(key, _MISSING)))
        target[key] = value

    def _del(self, target: dict[Any, Any], key: Any) -> None:
        if self._journal is not None:
            self._journal.append((target, key, target[key]))
        del target[key]

    def _set_attr(self, obj: Any, name: str, value: Any) -> None:
        if self._journal is not None:
            self._journal.append((obj, name, getattr(obj, name)))
        setattr(obj, name, value)

    # -- queries ----------------------------------------------------------------------
    def cohort(self, cohort_id: str) -> Cohort:
        """The cohort, created on first mention. Its id becomes a directory name in the
        projections, so a replayed foreign event must not smuggle in `..` or a `/`: the syntax
        is checked here, once per cohort, instead of once per event."""
        found = self.cohorts.get(cohort_id)
        if found is None:
            if not is_identifier(cohort_id):
                raise DomainError(f"cohort id {cohort_id!r} is not an identifier")
            found = Cohort(cohort_id)
            self._set(self.cohorts, cohort_id, found)
        return found

    def is_member(self, cohort_id: str, gen_id: str) -> bool:
        c = self.cohorts.get(cohort_id)
        return c is not None and gen_id in c.members

    def manifest_columns(self) -> list[str]:
        """Physical manifest column names in order, per the rename state."""
        cols = ["stage", "gen_id"]
        for key in METADATA_KEYS:
            cols.extend(self.key_names[key])
        return cols + ["created_seq", "materialized"]

    # -- the fold ---------------------------------------------------------------------
    def apply(self, event_type: str, data: dict[str, Any], seq: int, event_id: str, at: str) -> int:
        """Fold one event at `seq`; return the seq that holds its effect.

        That is `seq` itself, or for a no-op (an identical re-create, a reuse of an active
        member) the earlier seq that already did it, and then nothing is to be written.
        Raises DomainError naming the rule. `data` is a normalised current-version payload.
        """
        done_at = _HANDLERS[event_type](self, data, seq)
        if done_at is not None:
            return done_at
        self._set(self.event_ids, event_id, seq)
        self.seq = seq
        self.at = at
        return seq

    # -- the rules, one home each: None when the rule holds, else its one-line message ----------
    # The fold raises these messages; the reuse planner, the legacy importer and the CLI call
    # the same checks to refuse early, so a rule is never worded (or decided) twice.
    def stage_rule(self, stage: str) -> str | None:
        """Rule "stage known": `stage` is one of the ledger's stages."""
        if stage in self.stages:
            return None
        return f"stage {stage!r} is not one of this ledger's stages"

    def new_cohort_rule(self, cohort_id: str) -> str | None:
        """Rule "cohort folder portable", checked when an append names a cohort for the first
        time: its folder (`cohorts/<id>/`) must exist on every file system as a folder of its
        own -- not a Windows device name, no trailing `.` (Windows drops it), and not another
        cohort's folder where names are compared without case. Logs from before the rule
        replay as they are (the fold does not check it)."""
        if cohort_id in self.cohorts:
            return None
        other = self.cohort_sharing_folder(cohort_id)
        if other is not None:
            return (f"cohort id {cohort_id} differs from the existing cohort {other} only by case or a trailing '.': "
                    "one folder on case-insensitive or Windows file systems")
        if cohort_id.endswith("."):
            return f"cohort id {cohort_id} ends with '.', which Windows drops from folder names"
        if cohort_id.split(".", 1)[0].upper() in _DEVICE_NAMES:
            return f"cohort id {cohort_id} is a Windows device name: no folder can be called that"
        return None

    def cohort_sharing_folder(self, cohort_id: str) -> str | None:
        """An existing cohort whose id is `cohort_id` up to case and trailing dots, if any."""
        key = folder_key(cohort_id)
        return next((c for c in self.cohorts if folder_key(c) == key), None)

    def writable_rule(self, cohort_id: str) -> str | None:
        """Rule "cohort writable": no membership change after the cohort is sealed."""
        c = self.cohorts.get(cohort_id)
        if c is None or c.sealed_seq is None:
            return None
        return f"cohort {cohort_id} is sealed (seq {c.sealed_seq}): its membership cannot change"

    def parent_rule(self, stage: str, parent_gen_id: str | None,
                    stage_of: Callable[[str], str | None] | None = None) -> str | None:
        """Rule "parent valid": a stage with a parent stage names an existing gen of that stage
        as `parent_gen_id`; a stage without one has none.

        `stage_of(gen_id)` gives an existing gen's stage (None: no such gen); by default the
        ledger's own generations. The legacy importer passes one that also knows the gens of
        the data root it is importing.
        """
        parent_stage = self.parents.get(stage)
        if parent_stage is None:
            if parent_gen_id is None:
                return None
            return f"a {stage} has no parent stage, but parent_gen_id is set ({parent_gen_id})"
        if parent_gen_id is None:
            return f"a {stage} needs parent_gen_id (a {parent_stage})"
        found = self._stage_of(parent_gen_id) if stage_of is None else stage_of(parent_gen_id)
        if found is None:
            return f"parent {parent_gen_id} does not exist"
        if found != parent_stage:
            return f"parent {parent_gen_id} is a {found}, not a {parent_stage}"
        return None

    def existing_rule(self, gen_id: str, stage: str) -> str | None:
        """Rule "generation exists": `gen_id` was created, with this `stage`."""
        gen = self.generations.get(gen_id)
        if gen is None:
            return f"generation {gen_id} does not exist"
        if gen.stage != stage:
            return f"generation {gen_id} is a {gen.stage}, not a {stage}"
        return None

    def _stage_of(self, gen_id: str) -> str | None:
        gen = self.generations.get(gen_id)
        return None if gen is None else gen.stage

    def _writable_cohort(self, cohort_id: str) -> Cohort:
        rule = self.writable_rule(cohort_id)
        if rule is not None:
            raise DomainError(rule)
        return self.cohort(cohort_id)

    def _existing(self, data: dict[str, Any]) -> Generation:
        gen = self.generations.get(data["gen_id"])
        if gen is None or gen.stage != data["stage"]:
            raise DomainError(self.existing_rule(data["gen_id"], data["stage"]))
        return gen

    def _on_opened(self, d: dict[str, Any], seq: int) -> int | None:
        c = self.cohort(d["cohort_id"])
        if c.opened_seq is not None:
            raise DomainError(f"cohort {c.cohort_id} was already opened at seq {c.opened_seq}")
        self._set_attr(c, "opened_seq", seq)
        self._set_attr(c, "description", d.get("description"))
        self._set_attr(c, "spec", d.get("spec"))
        return None

    def _on_sealed(self, d: dict[str, Any], seq: int) -> int | None:
        c = self.cohorts.get(d["cohort_id"])
        if c is None:
            raise DomainError(f"cohort {d['cohort_id']} is unknown: nothing to seal")
        if c.sealed_seq is not None:
            raise DomainError(f"cohort {c.cohort_id} is already sealed (seq {c.sealed_seq})")
        self._set_attr(c, "sealed_seq", seq)
        return None

    def _on_created(self, d: dict[str, Any], seq: int) -> int | None:
        stage, gen_id = d["stage"], d["gen_id"]
        if stage not in self.stages:
            raise DomainError(self.stage_rule(stage))
        old = self.generations.get(gen_id)
        share = self._shared.setdefault
        cohort_id, template_id, llm_model_id, mode = d["cohort_id"], d["template_id"], d.get("llm_model_id"), d.get("mode")
        replicate = d.get("replicate", 1)
        if type(replicate) is not int or replicate < 1:
            raise DomainError(f"replicate {replicate!r} is not an integer >= 1")
        # positional: half the cost of keywords, and this runs once per generation on every replay
        gen = Generation(share(stage, stage), gen_id, share(cohort_id, cohort_id), share(template_id, template_id),
                         d.get("combo_id"), share(llm_model_id, llm_model_id), d.get("parent_gen_id"),
                         replicate, share(mode, mode), seq)
        if old is not None:
            if old.metadata() == gen.metadata():
                return old.created_seq
            raise DomainError(f"generation {gen_id} already exists with other origin metadata (immutable)")
        rule = self.parent_rule(stage, gen.parent_gen_id)
        if rule is not None:
            raise DomainError(rule)
        if gen.parent_gen_id is not None:
            gen.parent_gen_id = self.generations[gen.parent_gen_id].gen_id  # the same string, held once
        c = self._writable_cohort(gen.origin_cohort_id)
        self._set(self.generations, gen_id, gen)
        self._set(c.members, gen_id, seq)
        return None

    def _on_reused(self, d: dict[str, Any], seq: int) -> int | None:
        gen = self._existing(d)
        c = self.cohorts.get(d["cohort_id"])
        if c is not None and gen.gen_id in c.members:
            return c.members[gen.gen_id]
        self._set(self._writable_cohort(d["cohort_id"]).members, gen.gen_id, seq)
        return None

    def _on_removed(self, d: dict[str, Any], seq: int) -> int | None:
        gen = self._existing(d)
        if not self.is_member(d["cohort_id"], gen.gen_id):
            raise DomainError(f"generation {gen.gen_id} is not a member of cohort {d['cohort_id']}")
        self._del(self._writable_cohort(d["cohort_id"]).members, gen.gen_id)
        return None

    def _on_materialized(self, d: dict[str, Any], seq: int) -> int | None:
        self._set_attr(self._existing(d), "materialized_seq", seq)
        return None

    def _on_key_renamed(self, d: dict[str, Any], seq: int) -> int | None:
        old, new, phase = d["old_key"], d["new_key"], d["phase"]
        current = {name: key for key, names in self.key_names.items() for name in names}
        logical = current.get(old)
        if logical is None:
            raise DomainError(f"{old!r} is not a current manifest key that can be renamed")
        names = self.key_names[logical]
        if phase == "alias":
            if len(names) != 1:
                raise DomainError(f"{old!r} is already being renamed to {names[1]!r}")
            if new in current or new in FIXED_KEYS:
                raise DomainError(f"{new!r} would collide with an existing manifest key")
            self._set(self.key_names, logical, (old, new))
        else:
            if names != (old, new):
                raise DomainError(f"final rename {old!r} -> {new!r} needs the alias phase first")
            self._set(self.key_names, logical, (new,))
        return None


_HANDLERS = {
    "cohort.opened": State._on_opened,
    "cohort.sealed": State._on_sealed,
    "generation.created": State._on_created,
    "generation.reused": State._on_reused,
    "generation.removed": State._on_removed,
    "generation.materialized": State._on_materialized,
    "metadata.key_renamed": State._on_key_renamed,
}

"""export-metadata: write each gen's origin key(s) into its metadata.json (docs/migration.md, "Writing metadata.json back").

Which keys a file carries follows the ledger's rename state of the logical `cohort_id` key:
`("cohort_id",)` before any rename, `("cohort_id", "origin_cohort_id")` during `alias`,
`("origin_cohort_id",)` after `final`. The rewrite touches origin keys only: no other key
loses its value or position, no key is removed except the old `cohort_id` after `final`
(replaced in place when the new key is not there yet), an added key goes right after
`gen_id`, and a file whose content would not change is not rewritten.

Formatting: a file keeps the `json.dumps` style it was written with (indent=2 or 4, the
compact one-line legacy shape, ASCII escaping, a trailing newline or not) when one of those
reproduces it byte for byte; otherwise it is rewritten in the current shape (indent=2).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..log.fsio import atomic_write_many, environment_error
from ..domain.state import Generation, State
from .dataroot import ProgressFn, metadata_path, read_regular, relative, resolve_data_root, tick
from .metadata import ORIGIN_KEYS, null_if_missing, parse_json_object
from .problems import LegacyProblems, Problem, sorted_problems

COMMAND = "export-metadata"
#: the key the rollout renames away from; removed from files once the rename is final
OLD_ORIGIN_KEY = "cohort_id"
_STYLES: tuple[dict[str, Any], ...] = tuple(
    {**layout, "ensure_ascii": ascii_only}
    for layout in ({"indent": 2}, {"separators": (",", ":")}, {"indent": 4}, {})
    for ascii_only in (True, False)
)
CURRENT_STYLE: dict[str, Any] = {"indent": 2, "ensure_ascii": False}


@dataclass(frozen=True)
class FileChange:
    path: Path
    file: str  #: relative to the data root
    gen_id: str
    action: str  #: "create" or "update"
    keys: str  #: e.g. "+origin_cohort_id -cohort_id"
    after: bytes

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "gen_id": self.gen_id, "action": self.action, "keys": self.keys}


@dataclass
class ExportPlan:
    data_root: Path
    key_names: tuple[str, ...]
    changes: list[FileChange] = field(default_factory=list)
    unchanged: int = 0
    problems: list[Problem] = field(default_factory=list)

    def summary(self, sample: int = 5) -> dict[str, Any]:
        return {"data_root": str(self.data_root), "origin_keys": list(self.key_names),
                "create": sum(c.action == "create" for c in self.changes),
                "update": sum(c.action == "update" for c in self.changes),
                "unchanged": self.unchanged, "sample": [c.to_json() for c in self.changes[:sample]]}

    def raise_for_problems(self) -> None:
        if self.problems:
            raise LegacyProblems(COMMAND, self.problems)


def _detect_style(raw: bytes, doc: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """(json.dumps keywords, trailing newline) that reproduce `raw`, else the current shape."""
    text = raw.decode("utf-8")
    newline = text.endswith("\n")
    body = text[:-1] if newline else text
    for style in _STYLES:
        if json.dumps(doc, **style) == body:
            return style, newline
    return CURRENT_STYLE, newline


def _dump(doc: dict[str, Any], style: dict[str, Any], newline: bool) -> bytes:
    return (json.dumps(doc, **style) + ("\n" if newline else "")).encode("utf-8")


def with_origin_keys(doc: dict[str, Any], origin: str, names: tuple[str, ...]) -> tuple[dict[str, Any], list[str]]:
    """`doc` with its origin keys set per the rename state `names`; (new doc, disagreements).

    A key that holds another non-null origin than the ledger's is a disagreement: the
    file is left alone and the caller reports it.
    """
    present = [k for k in dict.fromkeys((*ORIGIN_KEYS, *names)) if k in doc]
    disagree = [f"{k} is {doc[k]!r} but the ledger's origin is {origin!r}"
                for k in present if (v := null_if_missing(doc[k])) is not None and v != origin]
    if disagree:
        return doc, disagree
    drop_old = OLD_ORIGIN_KEY not in names
    items: list[tuple[str, Any]] = []
    for key, value in doc.items():
        if key == OLD_ORIGIN_KEY and drop_old:
            if names[0] not in doc:
                items.append((names[0], origin))  # a replaced key keeps its position
        elif key in names:
            items.append((key, origin))
        else:
            items.append((key, value))
    have = {k for k, _ in items}
    missing = [(n, origin) for n in names if n not in have]
    if missing:
        keys = [k for k, _ in items]
        at = keys.index("gen_id") + 1 if "gen_id" in keys else 0
        items[at:at] = missing
    return dict(items), []


def new_metadata(gen: Generation, names: tuple[str, ...]) -> dict[str, Any]:
    """A metadata.json in the current shape (reference README key order, absent keys omitted)."""
    doc: dict[str, Any] = {"stage": gen.stage, "gen_id": gen.gen_id}
    doc.update((n, gen.origin_cohort_id) for n in names)
    for key in ("mode", "template_id", "combo_id", "parent_gen_id", "llm_model_id"):
        if getattr(gen, key) is not None:
            doc[key] = getattr(gen, key)
    doc["replicate"] = gen.replicate
    return doc


def _key_diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    added = [f"+{k}" for k in new if k not in old]
    removed = [f"-{k}" for k in old if k not in new]
    changed = [f"~{k}" for k in new if k in old and new[k] is not old[k] and new[k] != old[k]]
    return " ".join(added + removed + changed)


def plan_export(state: State, data_root: str | Path, progress: ProgressFn | None = None) -> ExportPlan:
    """Compute every metadata.json write the ledger implies; reads files, writes nothing."""
    root = resolve_data_root(data_root)
    names = state.key_names["cohort_id"]
    plan = ExportPlan(root, names)
    rank = state.config.stage_rank()
    gens = sorted(state.generations.values(), key=lambda g: (rank[g.stage], g.gen_id))
    for done, gen in enumerate(gens, 1):
        tick(progress, "metadata.json", done, len(gens))
        path = metadata_path(root, gen.stage, gen.gen_id)
        rel = relative(root, path)
        if not os.path.lexists(path):  # a dangling symlink is not a missing file: read_regular reports it
            doc = new_metadata(gen, names)
            plan.changes.append(FileChange(path, rel, gen.gen_id, "create", "new file",
                                           _dump(doc, CURRENT_STYLE, newline=False)))
            continue
        try:
            raw = read_regular(path)
            old = parse_json_object(raw)
        except ValueError as exc:
            plan.problems.append(Problem(rel, gen.gen_id, str(exc)))
            continue
        new, disagree = with_origin_keys(old, gen.origin_cohort_id, names)
        plan.problems.extend(Problem(rel, gen.gen_id, d) for d in disagree)
        diff = _key_diff(old, new)
        if disagree or not diff:
            plan.unchanged += not disagree
            continue
        style, newline = _detect_style(raw, old)
        plan.changes.append(FileChange(path, rel, gen.gen_id, "update", diff, _dump(new, style, newline)))
    plan.problems = sorted_problems(plan.problems)
    return plan


def apply_export(plan: ExportPlan, progress: ProgressFn | None = None) -> int:
    """Write every planned file; return how many were written. All or nothing: every new file
    is staged (temp + fsync) before any is renamed, so a full disk or a read-only directory
    leaves every original byte-identical and no temp file behind."""
    plan.raise_for_problems()
    for parent in sorted({change.path.parent for change in plan.changes}):
        if not parent.is_dir():
            try:
                parent.mkdir(parents=True)
            except OSError as exc:
                raise environment_error(exc, f"creating {parent}") from exc
    atomic_write_many({change.path: change.after for change in plan.changes},
                      lambda done, total: tick(progress, "writing", done, total))
    return len(plan.changes)

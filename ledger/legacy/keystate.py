"""Which origin key a data root's metadata.json files use, as a rename state the ledger records.

The pipeline renamed `cohort_id` to `origin_cohort_id` in two steps (docs/operators.md):
files written before carry `cohort_id` only, the rollout's backfill writes both, the
current pipeline `origin_cohort_id` only. `export-metadata` writes the keys of the ledger's
rename state, so an import that left the ledger at "no rename" would make export add back
a key the pipeline dropped. The import therefore records the rename events that bring the
ledger to the state the files show.

A data root often holds files of several eras (old gens are never rewritten). Its state is
the newest one any file shows: that is the state of the writer that runs today, and export
then brings the older files forward (`alias` adds the new key to them, `final` replaces the
old key in place). A file's shape is the presence of the keys, whatever their values.
"""

from __future__ import annotations

from typing import Any

OLD, NEW = "cohort_id", "origin_cohort_id"
#: the rollout's states in order, as `State.key_names["cohort_id"]` names them
STATES: dict[str, tuple[str, ...]] = {"before": (OLD,), "alias": (OLD, NEW), "final": (NEW,)}


def file_state(doc: dict[str, Any]) -> str | None:
    """The rollout state one metadata.json shows; None when it has neither key."""
    has_old, has_new = OLD in doc, NEW in doc
    if has_old and has_new:
        return "alias"
    return "before" if has_old else "final" if has_new else None


def root_state(seen: dict[str, list[str]]) -> str | None:
    """The newest state among the files' (`seen`: state -> files showing it); None without evidence."""
    return next((s for s in reversed(STATES) if seen.get(s)), None)


def rename_steps(current: tuple[str, ...], target: str | None) -> list[str]:
    """The phases (`alias`, `final`) that take the ledger from `current` key names to `target`.

    Nothing when the ledger is already there or further on, or when its origin key was
    renamed some other way (then the files are read through the ledger's own names).
    """
    order = list(STATES.values())
    if target is None or current not in order:
        return []
    return [phase for phase in ("alias", "final") if order.index(current) < order.index(STATES[phase])
            <= order.index(STATES[target])]


def summary(seen: dict[str, list[str]]) -> dict[str, int]:
    """Files per state, for the import's report."""
    return {s: len(seen.get(s, ())) for s in STATES}

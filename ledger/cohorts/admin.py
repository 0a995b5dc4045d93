"""Operator actions that are one event each: seal a cohort, rename a manifest key.

They are plain appends; the rules (seal once, `final` only after `alias`, no collision)
live in the fold, so a hook, a script and the CLI are held to exactly the same ones.
"""

from __future__ import annotations

from typing import Literal

from ..app.service import Ledger


def seal_cohort(ledger: Ledger, cohort_id: str, reason: str | None = None,
                by: dict[str, str] | None = None) -> int:
    """Freeze a cohort's membership; later created/reused/removed events for it are rejected."""
    data = {"cohort_id": cohort_id, **({"reason": reason} if reason else {})}
    return ledger.append([{"type": "cohort.sealed", "data": data, "by": by}])[0]


def rename_key(ledger: Ledger, old_key: str, new_key: str, phase: Literal["alias", "final"],
               by: dict[str, str] | None = None) -> int:
    """One phase of a manifest key rename (docs/FORMAT.md §6.2, docs/operators.md §7): `alias` carries both names, `final` the new one."""
    data = {"old_key": old_key, "new_key": new_key, "phase": phase}
    return ledger.append([{"type": "metadata.key_renamed", "data": data, "by": by}])[0]

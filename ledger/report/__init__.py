"""The audit report: one self-contained HTML page (and its Markdown twin) about some cohorts.

`write_report` reads the log once (`ledger.cohorts.timeline.scan`, which verifies every line
it reads), aggregates (`ledger.cohorts.composition`), draws the charts and writes the files.
The bytes depend only on the log prefix up to the as-of: no generation time, no paths, no
host or version-dependent ids beyond the pinned chart settings (`charts`). This package
needs the `report` extra (matplotlib); the CLI imports it only when `report` runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..app.out_file import check_out_file
from ..app.replay import parse_as_of
from ..app.service import Ledger
from ..cohorts.composition import Composition, compose
from ..cohorts.timeline import scan
from ..errors import InvalidInputError
from ..log.fsio import atomic_write_many
from ..log.perf import paused_gc
from . import content, html, markdown


@dataclass(frozen=True)
class ReportFiles:
    """What a report reflects and where it went."""

    seq: int
    hash: str
    cohorts: list[str]
    html: str | None
    markdown: str | None


def composition(ledger: Ledger, cohort_ids: Iterable[str] = (), as_of: int | str | None = None) -> Composition:
    """The numbers of the report (every cohort of the prefix when none is named)."""
    ids = list(dict.fromkeys(cohort_ids))
    with paused_gc():  # millions of live objects, none in a cycle: collection passes only cost
        result = scan(ledger, ids or None, until=parse_as_of(as_of), keep_events=True)
        return compose(result, ids or sorted(result.known))


def render(comp: Composition) -> tuple[bytes, bytes]:
    """The page and the Markdown of a composition."""
    if not comp.cohorts:
        raise InvalidInputError(f"no cohort to report on at seq {comp.seq}")
    title, sections = content.build(comp)
    return html.render(title, sections), markdown.render(title, sections)


def write_report(ledger: Ledger, cohort_ids: Iterable[str] = (), html_path: str | Path | None = None,
                 md_path: str | Path | None = None, as_of: int | str | None = None) -> ReportFiles:
    """Write the report page and/or Markdown; nothing is written unless both rendered."""
    if html_path is None and md_path is None:
        raise InvalidInputError("report needs --html FILE and/or --md FILE")
    targets = [Path(p) for p in (html_path, md_path) if p is not None]
    for target in targets:
        check_out_file(ledger, target)
    if len(targets) == 2 and targets[0].resolve() == targets[1].resolve():
        raise InvalidInputError(f"--html and --md name the same file {targets[0]}")
    comp = composition(ledger, cohort_ids, as_of)
    page, md = render(comp)
    atomic_write_many({Path(p): data for p, data in ((html_path, page), (md_path, md)) if p is not None})
    return ReportFiles(comp.seq, comp.hash, [c.cohort_id for c in comp.cohorts],
                       None if html_path is None else str(html_path), None if md_path is None else str(md_path))


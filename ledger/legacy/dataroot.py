"""Where a pipeline data root keeps its files: `gens/<stage>/<gen_id>/metadata.json` and
`cohorts/<cohort_id>/membership.csv`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator

from ..errors import InvalidInputError

GENS = "gens"
COHORTS = "cohorts"
METADATA = "metadata.json"
MEMBERSHIP = "membership.csv"
#: progress(phase, done, total), for a progress bar over a walk of the data root
ProgressFn = Callable[[str, int, int], None]
PROGRESS_EVERY = 2000


def tick(progress: ProgressFn | None, phase: str, done: int, total: int) -> None:
    """Report every PROGRESS_EVERY items and at the end: a bar, not a callback per file."""
    if progress is not None and (done % PROGRESS_EVERY == 0 or done == total):
        progress(phase, done, total)


def resolve_data_root(path: str | os.PathLike[str]) -> Path:
    """The directory holding `gens/` and/or `cohorts/`: DIR itself, or DIR/data (a repo checkout)."""
    root = Path(path)
    if not root.is_dir():
        raise InvalidInputError(f"data root {root} is not a directory")
    for candidate in (root, root / "data"):
        if (candidate / GENS).is_dir() or (candidate / COHORTS).is_dir():
            return candidate
    raise InvalidInputError(f"data root {root} has neither {GENS}/ nor {COHORTS}/ (nor data/{GENS}/, data/{COHORTS}/)")


def _subdirs(path: Path) -> list[str]:
    try:
        with os.scandir(path) as it:
            return sorted(e.name for e in it if e.is_dir())
    except FileNotFoundError:
        return []


def metadata_files(root: Path) -> Iterator[tuple[str, str, Path]]:
    """(stage, gen_id, path) of every gens/<stage>/<gen_id>/metadata.json, sorted."""
    for stage in _subdirs(root / GENS):
        for gen_id in _subdirs(root / GENS / stage):
            path = root / GENS / stage / gen_id / METADATA
            if path.is_file():
                yield stage, gen_id, path


def membership_files(root: Path) -> Iterator[tuple[str, Path]]:
    """(cohort_id, path) of every cohorts/<cohort_id>/membership.csv, sorted."""
    for cohort_id in _subdirs(root / COHORTS):
        path = root / COHORTS / cohort_id / MEMBERSHIP
        if path.is_file():
            yield cohort_id, path


def metadata_path(root: Path, stage: str, gen_id: str) -> Path:
    return root / GENS / stage / gen_id / METADATA


def relative(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()

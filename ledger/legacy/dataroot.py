"""Where a pipeline data root keeps its files: `gens/<stage>/<gen_id>/metadata.json` and
`cohorts/<cohort_id>/membership.csv`.
"""

from __future__ import annotations

import os
import stat
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
    """(stage, gen_id, path) of every gens/<stage>/<gen_id>/metadata.json, sorted.

    Every *name* counts, whatever it is (a dangling symlink, a FIFO, a directory): skipping
    one would silently drop a gen, so the reader (`read_regular`) reports it instead.
    """
    for stage in _subdirs(root / GENS):
        for gen_id in _subdirs(root / GENS / stage):
            path = root / GENS / stage / gen_id / METADATA
            if os.path.lexists(path):
                yield stage, gen_id, path


def membership_files(root: Path) -> Iterator[tuple[str, Path]]:
    """(cohort_id, path) of every cohorts/<cohort_id>/membership.csv (any kind of file), sorted."""
    for cohort_id in _subdirs(root / COHORTS):
        path = root / COHORTS / cohort_id / MEMBERSHIP
        if os.path.lexists(path):
            yield cohort_id, path


_KINDS = ((stat.S_ISLNK, "symlink"), (stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO"),
          (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"))


def _not_regular(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "special file")
    return f"is a {kind}, not a regular file"


def read_regular(path: Path) -> bytes:
    """The bytes of `path` if it is a readable regular file; else ValueError with a one-line reason.

    A symlink is not followed (`O_NOFOLLOW`) and a FIFO never blocks the import
    (`O_NONBLOCK`; the kind is checked before and, on the open descriptor, after opening).
    """
    try:
        reason = _not_regular(os.lstat(path).st_mode)
        if reason is None:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as f:
                reason = _not_regular(os.fstat(fd).st_mode)
                if reason is None:
                    return f.read()
    except OSError as exc:
        raise ValueError(f"cannot read: {exc.strerror or exc}") from None
    raise ValueError(reason)


def metadata_path(root: Path, stage: str, gen_id: str) -> Path:
    return root / GENS / stage / gen_id / METADATA


def relative(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()

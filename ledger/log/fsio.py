"""Durable file primitives shared by the store, checkpoints and projections.

A file that readers may look at is only ever replaced whole: write a temp file beside it,
fsync it, rename it over the target, fsync the directory. Then a crash leaves the old file
or the new one, never half of either.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from ..errors import LedgerEnvironmentError

#: errnos that mean "the machine refused", which the CLI reports with exit 3
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EROFS, errno.EDQUOT, errno.EIO}


def environment_error(exc: OSError, doing: str) -> LedgerEnvironmentError:
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    return LedgerEnvironmentError(f"{doing}: {reason}")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is out; a short write followed by an error raises that error."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically and durably (temp, fsync, rename, fsync dir)."""
    atomic_write_many({Path(path): data})


def atomic_write_many(files: dict[Path, bytes]) -> None:
    """Replace several files, staging all of them before renaming any.

    Every new file is written and fsynced beside its target first; only when all are on disk
    are they renamed into place, then their directories fsynced. A failure while staging (disk
    full, file-size limit) therefore leaves every old file as it was and no temp file behind;
    readers see each file old or new, never half of one.
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for path, data in files.items():
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
            staged.append((tmp, path))
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
    except OSError as exc:
        for tmp, _ in staged:
            try:
                tmp.unlink()
            except OSError:
                pass
        raise environment_error(exc, f"writing {staged[-1][1]}") from exc
    try:
        for tmp, path in staged:
            os.replace(tmp, path)
        for parent in sorted({path.parent for path in files}):
            fsync_dir(parent)
    except OSError as exc:
        raise environment_error(exc, f"replacing {path}") from exc

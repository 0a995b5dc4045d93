"""Durable file primitives shared by the store, checkpoints and projections.

A file that readers may look at is only ever replaced whole: write a temp file beside it,
fsync it, rename it over the target, fsync the directory. Then a crash leaves the old file
or the new one, never half of either.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from .errors import LedgerEnvironmentError

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
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise environment_error(exc, f"writing {path}") from exc

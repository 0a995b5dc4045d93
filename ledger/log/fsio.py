"""Durable file primitives shared by every writer: the store, checkpoints, projections,
torn files, `export-metadata` and `--report`.

A file that readers may look at is only ever replaced whole: write a temp file beside it,
fsync it, rename it over the target, fsync the directory. Then a crash leaves the old file
or the new one, never half of either.

Temp files are created with `O_CREAT|O_EXCL|O_NOFOLLOW` under a random name
(`.<name>.tmp-<16 hex>`): a name nobody can predict, and a path a planted symlink cannot
redirect -- `O_EXCL` refuses any existing entry, symlinks included. The rename replaces the
directory entry itself, so a symlink standing where the target belongs is replaced, never
written through. Callers that must not follow symlinks in the *directories* either (the
projection writer, whose out dir is shared) pass directory file descriptors they opened
with `O_NOFOLLOW` themselves (`Target.dir_fd`).
"""

from __future__ import annotations

import errno
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..errors import LedgerEnvironmentError

#: errnos that mean "the machine refused", which the CLI reports with exit 3
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EROFS, errno.EDQUOT, errno.EIO}
#: flags of every temp file: new (never an existing file or symlink), never through a symlink
TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_TEMP_NAME = re.compile(r"\.(?P<name>.+)\.tmp-[0-9a-f]{16}")


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


def temp_name_for(name: str) -> str:
    """A fresh random temp name beside `name` (what `temp_target` of it is)."""
    return f".{name}.tmp-{secrets.token_hex(8)}"


def temp_target(name: str) -> str | None:
    """The file name a temp file of ours was staging (`.<name>.tmp-<hex>` -> name), else None."""
    found = _TEMP_NAME.fullmatch(name)
    return found["name"] if found else None


def create_temp(dir_fd: int, name: str) -> tuple[int, str]:
    """Create a new temp file beside `name` in `dir_fd`: (open fd, its name). Never follows
    or reuses an existing entry."""
    while True:
        tmp = temp_name_for(name)
        try:
            return os.open(tmp, TEMP_FLAGS, 0o644, dir_fd=dir_fd), tmp
        except FileExistsError:
            continue  # 64 random bits collided with a leftover: draw again


def stage(dir_fd: int, name: str, data: bytes, label: str) -> str:
    """Write `data` to a new temp file beside `name` in `dir_fd` and fsync it; return the temp
    name. On failure the temp file is removed and the error raised as an environment error."""
    fd, tmp = create_temp(dir_fd, name)
    try:
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        discard(dir_fd, tmp)
        raise environment_error(exc, f"writing {label}") from exc
    return tmp


def discard(dir_fd: int, tmp: str) -> None:
    """Remove a temp file of ours, if it is still there."""
    try:
        os.unlink(tmp, dir_fd=dir_fd)
    except OSError:
        pass


def commit(dir_fd: int, tmp: str, name: str, label: str) -> None:
    """Rename a staged temp file over `name` (the entry itself: a symlink there is replaced)."""
    try:
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError as exc:
        discard(dir_fd, tmp)
        raise environment_error(exc, f"replacing {label}") from exc


@dataclass(frozen=True)
class Target:
    """One file to replace: `name` in the directory open as `dir_fd`; `label` names it in errors."""

    dir_fd: int
    name: str
    data: bytes
    label: str


def replace_all(targets: Sequence[Target]) -> None:
    """Replace several files, staging all of them before renaming any.

    Every new file is written and fsynced as a temp file beside its target first; only when
    all are on disk are they renamed into place, then their directories fsynced. A failure
    while staging (disk full, file-size limit) therefore leaves every old file as it was and
    no temp file behind; readers see each file old or new, never half of one.
    """
    staged: list[tuple[Target, str]] = []
    try:
        for target in targets:
            staged.append((target, stage(target.dir_fd, target.name, target.data, target.label)))
    except BaseException:
        for target, tmp in staged:
            discard(target.dir_fd, tmp)
        raise
    for i, (target, tmp) in enumerate(staged):
        try:
            commit(target.dir_fd, tmp, target.name, target.label)
        except BaseException:
            for later, later_tmp in staged[i + 1:]:
                discard(later.dir_fd, later_tmp)
            raise
    try:
        for dir_fd in dict.fromkeys(t.dir_fd for t in targets):
            os.fsync(dir_fd)
    except OSError as exc:
        raise environment_error(exc, f"syncing the directory of {targets[0].label}") from exc


def atomic_write_many(files: dict[Path, bytes]) -> None:
    """`replace_all` for plain paths (the ledger's own files, reports, metadata.json)."""
    fds: dict[Path, int] = {}
    try:
        for parent in dict.fromkeys(Path(p).parent for p in files):
            try:
                fds[parent] = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as exc:
                raise environment_error(exc, f"opening {parent}") from exc
        replace_all([Target(fds[Path(p).parent], Path(p).name, data, str(p)) for p, data in files.items()])
    finally:
        for fd in fds.values():
            os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically and durably (temp, fsync, rename, fsync dir)."""
    atomic_write_many({Path(path): data})

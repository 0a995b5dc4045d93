"""Durable file primitives shared by every writer: the store, checkpoints, projections,
torn files, `export-metadata` and `--report`.

A file that readers may look at is only ever replaced whole: write a temp file beside it,
fsync it, rename it over the target, fsync the directory. Then a crash leaves the old file
or the new one, never half of either.

Temp files are created with `O_CREAT|O_EXCL|O_NOFOLLOW` under a random name
(`.<name>.tmp-<16 hex>`): a name nobody can predict, and a path a planted symlink cannot
redirect -- `O_EXCL` refuses any existing entry, symlinks included. The rename replaces the
directory entry itself, so a symlink standing where the target belongs is replaced, never
written through. `stage` and `commit` take a directory descriptor, so a caller that must not
follow symlinks in the *directories* either (the projection writer, whose out dir is shared)
passes descriptors it opened with `O_NOFOLLOW` itself.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

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
    try:
        fd, tmp = create_temp(dir_fd, name)
    except OSError as exc:
        raise environment_error(exc, f"writing {label}") from exc
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


def atomic_write_many(files: dict[Path, bytes], progress: Callable[[int, int], None] | None = None) -> None:
    """Replace several files (the ledger's own files, reports, every metadata.json of a data
    root), staging all of them before renaming any: space and size limits strike while
    writing, not renaming, so they leave every old file whole; on failure every temp file is removed and
    every original left as it was. One directory is open at a time, so thousands of files in
    thousands of directories need no more descriptors than one. `progress(staged, total)`."""
    by_dir: dict[Path, list[Path]] = {}
    for path in map(Path, files):
        by_dir.setdefault(path.parent, []).append(path)
    staged: list[tuple[Path, Path, str]] = []  # (directory, target, temp name)
    try:
        for parent, paths in by_dir.items():
            with _directory(parent) as fd:
                for path in paths:
                    staged.append((parent, path, stage(fd, path.name, files[path], str(path))))
                    if progress is not None:
                        progress(len(staged), len(files))
    except BaseException:
        _discard_staged(staged)
        raise
    committed = 0
    try:
        for parent, paths in by_dir.items():
            with _directory(parent) as fd:
                for _, path, tmp in staged[committed:committed + len(paths)]:
                    commit(fd, tmp, path.name, str(path))
                    committed += 1
                os.fsync(fd)
    except BaseException:
        _discard_staged(staged[committed:])
        raise


@contextmanager
def _directory(path: Path) -> Iterator[int]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise environment_error(exc, f"opening {path}") from exc
    try:
        yield fd
    finally:
        os.close(fd)


def _discard_staged(staged: Sequence[tuple[Path, Path, str]]) -> None:
    for parent, _, tmp in staged:
        try:
            with _directory(parent) as fd:
                discard(fd, tmp)
        except LedgerEnvironmentError:
            pass


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically and durably (temp, fsync, rename, fsync dir)."""
    atomic_write_many({Path(path): data})

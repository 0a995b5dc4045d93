"""Where a build's files go: a local directory or an object-store prefix (`--out DIR|URL`).

`files.replace_files` decides what to write and what it may remove (the ownership rules of
docs/FORMAT.md §8); a target only stores bytes under relative names. Both kinds replace a
file whole: a directory by temp file + fsync + rename (staging every changed file before
renaming any), an object store by one PUT per file (a put is atomic). Removal happens only
when the bytes there still hash to what the last build recorded, so a file someone else
replaced since is left alone.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable, Protocol

from ledger import InvalidInputError
from ledger.log.file_store import RESERVED, FileLogStore
from ledger.log.fsio import atomic_write_many, environment_error, fsync_dir
from ledger.log.location import is_url
from ledger.log.object_store import RESERVED as OBJECT_RESERVED, ObjectLogStore
from ledger.log.objects import Objects, connect, split_url
from ledger.log.store import LogStore


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Target(Protocol):
    """A place holding projection files by relative name (`cohorts/<id>/membership.csv`)."""

    #: the directory or URL, as reported by `build`
    location: str

    def read(self, rel: str) -> bytes | None:
        """The file's bytes, or None when there is none."""
        ...

    def holds(self, rel: str, data: bytes) -> bool:
        """Does `rel` hold exactly `data` already? (Unchanged files are not rewritten.)"""
        ...

    def write(self, files: dict[str, bytes]) -> None:
        """Replace each file whole; readers see every file old or new, never half of one."""
        ...

    def remove(self, rel: str, digest: str) -> bool:
        """Remove `rel` if its bytes still hash to `digest`; True if it was removed."""
        ...


class DirectoryTarget:
    """An output directory on the local file system."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.location = str(out)

    def read(self, rel: str) -> bytes | None:
        try:
            return (self.out / rel).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise environment_error(exc, f"reading {self.out / rel}") from exc

    def holds(self, rel: str, data: bytes) -> bool:
        """Compares sizes first, so a changed file of another size costs no read.

        Skipping identical files keeps an incremental build from rewriting (and fsyncing)
        every cohort's CSV, and leaves their mtimes alone for tools that watch them.
        """
        path = self.out / rel
        try:
            return path.stat().st_size == len(data) and path.read_bytes() == data
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise environment_error(exc, f"reading {path}") from exc

    def write(self, files: dict[str, bytes]) -> None:
        paths = {self.out / rel: data for rel, data in files.items()}
        _make_parents([self.out, *paths])
        atomic_write_many(paths)

    def remove(self, rel: str, digest: str) -> bool:
        path = self.out / rel
        try:
            if sha256(path.read_bytes()) != digest:
                return False
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise environment_error(exc, f"removing {path}") from exc
        fsync_dir(path.parent)
        if rel.startswith("cohorts/"):
            try:
                path.parent.rmdir()  # only when empty: another tool's files in it stay
                fsync_dir(path.parent.parent)
            except OSError:
                pass
        return True


def _make_parents(paths: Iterable[Path]) -> None:
    for parent in sorted({p.parent for p in paths}):
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise environment_error(exc, f"creating {parent}") from exc


class ObjectTarget:
    """An output prefix in an object store (`s3://bucket/prefix/data`)."""

    def __init__(self, objects: Objects) -> None:
        self.objects = objects
        self.location = objects.location

    def read(self, rel: str) -> bytes | None:
        return self.objects.get(rel)

    def holds(self, rel: str, data: bytes) -> bool:
        meta = self.objects.head(rel)
        return meta is not None and meta.get("size") == len(data) and self.objects.get(rel) == data

    def write(self, files: dict[str, bytes]) -> None:
        for rel, data in files.items():
            self.objects.put(rel, data)

    def remove(self, rel: str, digest: str) -> bool:
        data = self.objects.get(rel)
        if data is None or sha256(data) != digest:
            return False
        self.objects.delete(rel)
        return True


def open_target(out: str | os.PathLike[str], ledger: LogStore) -> Target:
    """The target `out` names, refused where our files could clobber the ledger's own."""
    if isinstance(out, str) and is_url(out):
        scheme, bucket, prefix = split_url(out)
        location = f"{scheme}://{bucket}" + (f"/{prefix}" if prefix else "")
        if isinstance(ledger, ObjectLogStore):
            _check_nested(location, ledger.location, OBJECT_RESERVED, "prefix")
        return ObjectTarget(Objects(connect(location), location))
    path = Path(out)
    if isinstance(ledger, FileLogStore):
        own = ledger.path.resolve()
        target = path.resolve()
        _check_nested(str(target), str(own), RESERVED, "directory", shown=str(path))
    if path.exists() and not path.is_dir():
        raise InvalidInputError(f"--out {path} exists and is not a directory")
    return DirectoryTarget(path)


def _check_nested(target: str, ledger: str, reserved: Iterable[str], kind: str, shown: str | None = None) -> None:
    """Refuse an output location that is the ledger's own, or inside one of its reserved names."""
    shown = shown or target
    if target == ledger:
        raise InvalidInputError(f"--out {shown} is the ledger {kind} itself; use another {kind}")
    for name in reserved:
        own = f"{ledger}/{name}"
        if target == own or target.startswith(own + "/"):
            raise InvalidInputError(f"--out {shown} is (inside) the ledger's {name}; use another {kind}")

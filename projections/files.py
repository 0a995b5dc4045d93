"""Writing projection files: fixed encodings, atomic replacement, and file ownership.

The out dir may be shared (`--out data/` puts our CSVs beside the pipeline's `spec/` and
`reports/`), so a build removes only files that `_projection.json` says it wrote -- by
name and sha256 -- and that still hold those bytes: it writes the files of the new state,
then removes files an earlier build wrote that the new state no longer has. A file someone
else has since replaced, or a name outside our own patterns, is never removed. Before
writing a file it did not own yet, a build first records the union of old and new, so a
crash mid-build never leaves a file of ours that the next build would take for someone
else's. Changed files are all staged (written and fsynced as temp files) before any is
renamed into place, so a build that runs out of space leaves the previous set whole.

Nothing outside the out dir is ever written, replaced or removed: every path below it is
reached through directory descriptors opened with `O_NOFOLLOW` (`OutDir`), files are read
with `O_NOFOLLOW` and staged with `O_EXCL` (ledger/log/fsio.py). Before anything is written,
every path the build would write or remove is checked: a symlink, or anything but a
directory or a regular file where ours belong, is refused (exit 2, naming it). Builds into
one out dir are serialised by an flock on `_projection.lock`, taken before
`_projection.json` is read and held until it is rewritten, so concurrent builds each leave
a consistent set. A build that fails leaves the old files and the old `_projection.json`;
one that was killed leaves temp files and folders that the next build removes (each is
named in `_projection.json` before it is made).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import stat
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Protocol, Sequence

import orjson

from ledger import InvalidInputError, LedgerError
from ledger.domain.projection_files import COHORTS_DIR, PROJECTION_INFO_FILE, PROJECTION_PATH_PATTERN
from ledger.domain.state import METADATA_KEYS
from ledger.log.file_store import RESERVED
from ledger.log.fsio import commit, discard, environment_error, stage, temp_target

OWNERSHIP_FILE = PROJECTION_INFO_FILE
#: what `_projection.json` records beside seq, hash and files (docs/FORMAT.md §8): the rename
#: state (logical manifest key -> its column names) and every cohort, empty ones included
ABOUT_KEYS = ("key_names", "cohorts")
LOCK_NAME = "_projection.lock"
#: how long a build waits for another build into the same out dir before giving up (seconds)
LOCK_TIMEOUT = 600.0
FORMAT = "cohort-ledger-projection"
VERSION = 1
#: the only paths a build ever writes or removes (a tampered ownership file can name no other)
_OURS = re.compile(PROJECTION_PATH_PATTERN)

def projection_about(key_names: Mapping[str, Sequence[str]], cohorts: Iterable[str]) -> dict[str, Any]:
    """What readers of the files need and the files cannot say (`_projection.json`'s ABOUT_KEYS).

    `key_names`: each logical manifest key's column name(s) (the rename state), so a reader
    finds the origin column whatever it is called; `cohorts`: every cohort the ledger knows,
    including empty ones, which `membership.parquet` has no row for.
    """
    return {"key_names": {k: list(key_names[k]) for k in METADATA_KEYS}, "cohorts": sorted(cohorts)}


@dataclass(frozen=True)
class Changes:
    """What a build did to the out dir (paths relative to it)."""

    written: list[str]
    unchanged: list[str]
    removed: list[str]


class BuildBusyError(LedgerError):
    """Another build held the out dir's lock for longer than the caller would wait."""

    exit_code = 1


def check_out_dir(ledger_dir: Path, out: Path) -> None:
    """Refuse an out dir where our files could clobber the ledger's own: the ledger, any of
    its ancestors (the file system root included), or anything inside its own files."""
    ledger = ledger_dir.resolve()
    target = out.resolve()
    if target == ledger:
        raise InvalidInputError(f"--out {out} is the ledger directory itself; use another directory")
    if target == Path(target.anchor):
        raise InvalidInputError(f"--out {out} is the file system root; use another directory")
    if ledger.is_relative_to(target):
        raise InvalidInputError(f"--out {out} contains the ledger; use another directory")
    for name in RESERVED:
        if target.is_relative_to(ledger / name):
            raise InvalidInputError(f"--out {out} is (inside) the ledger's {name}; use another directory")
    if target.exists() and not target.is_dir():
        raise InvalidInputError(f"--out {out} exists and is not a directory")


class OutDir:
    """The out dir, opened once; every path below it is reached without following a symlink.

    Directories are opened one component at a time with `O_DIRECTORY|O_NOFOLLOW` relative to
    their parent's descriptor, files with `O_NOFOLLOW`: a symlink planted anywhere below the
    out dir makes the open fail (reported as bad input naming it), never redirects it. Only
    `cohorts/` stays open; a cohort's folder is opened when used, so thousands of cohorts
    never need thousands of descriptors.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except (NotADirectoryError, FileExistsError):
            raise InvalidInputError(f"--out {path} exists and is not a directory") from None
        except OSError as exc:
            raise environment_error(exc, f"creating {path}") from exc
        self._cohorts: int | None = None

    def close(self) -> None:
        for fd in (self._cohorts, self.fd):
            if fd is not None:
                os.close(fd)
        self._cohorts = None

    def refuse(self, rel: str, what: str) -> InvalidInputError:
        return InvalidInputError(f"{self.path / rel} is {what} where a build keeps its own files; "
                                 "a build never follows or replaces it (move it away)")

    def _open_dir(self, parent: int, name: str, rel: str, create: bool) -> int | None:
        if create:
            try:
                os.mkdir(name, 0o755, dir_fd=parent)
            except FileExistsError:
                pass
            except OSError as exc:
                raise environment_error(exc, f"creating {self.path / rel}") from exc
        try:
            return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise self.refuse(rel, "a symlink or not a directory") from None
            raise environment_error(exc, f"opening {self.path / rel}") from exc

    @contextmanager
    def folder(self, rel: str, create: bool = False) -> Iterator[int | None]:
        """The descriptor of directory `rel` ("", "cohorts" or "cohorts/<id>"); None if missing."""
        if rel == "":
            yield self.fd
            return
        top, _, sub = rel.partition("/")
        if self._cohorts is None:
            self._cohorts = self._open_dir(self.fd, top, top, create)
        if not sub or self._cohorts is None:
            yield self._cohorts
            return
        fd = self._open_dir(self._cohorts, sub, rel, create)
        try:
            yield fd
        finally:
            if fd is not None:
                os.close(fd)

    def check(self, rel: str) -> None:
        """Refuse `rel` unless each component is absent or a real directory / regular file."""
        folder, _, name = rel.rpartition("/")
        with self.folder(folder) as fd:
            if fd is None:
                return
            try:
                mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
            except FileNotFoundError:
                return
            except OSError as exc:
                raise environment_error(exc, f"reading {self.path / rel}") from exc
        if stat.S_ISLNK(mode):
            raise self.refuse(rel, "a symlink")
        if not stat.S_ISREG(mode):
            raise self.refuse(rel, "not a regular file")

    @contextmanager
    def _opened(self, rel: str) -> Iterator[int | None]:
        """A read-only descriptor of regular file `rel` (never through a symlink), or None
        when it does not exist; closed on exit."""
        folder, _, name = rel.rpartition("/")
        with self.folder(folder) as dir_fd:
            if dir_fd is None:
                yield None
                return
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
            except FileNotFoundError:
                yield None
                return
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise self.refuse(rel, "a symlink") from None
                raise environment_error(exc, f"reading {self.path / rel}") from exc
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise self.refuse(rel, "not a regular file")
                yield fd
            finally:
                os.close(fd)

    def read(self, rel: str) -> bytes | None:
        """The bytes of regular file `rel`, or None when it does not exist."""
        with self._opened(rel) as fd:
            if fd is None:
                return None
            try:
                with open(fd, "rb", closefd=False) as f:
                    return f.read()
            except OSError as exc:
                raise environment_error(exc, f"reading {self.path / rel}") from exc

    def digests(self, rels: Iterable[str]) -> dict[str, str | None]:
        """sha256 hex of each regular file of `rels` (None: missing), read in chunks, never
        whole into memory, two files at a time: hashlib releases the GIL, and the two Parquet
        files are most of the bytes (docs/benchmarks.md, no-op build)."""
        from concurrent.futures import ThreadPoolExecutor

        def digest(fd: int, rel: str) -> str:
            try:
                with open(fd, "rb", closefd=False) as f:
                    return hashlib.file_digest(f, "sha256").hexdigest()
            except OSError as exc:
                raise environment_error(exc, f"reading {self.path / rel}") from exc

        out: dict[str, str | None] = {}
        with ExitStack() as stack, ThreadPoolExecutor(max_workers=2) as pool:
            pending = {}
            for rel in rels:
                fd = stack.enter_context(self._opened(rel))
                if fd is None:
                    out[rel] = None
                else:
                    pending[rel] = pool.submit(digest, fd, rel)
            out.update((rel, future.result()) for rel, future in pending.items())
        return out

    def holds(self, rel: str, data: bytes) -> bool:
        """True if `rel` already holds exactly `data`.

        Skipping identical files keeps an incremental build from rewriting (and fsyncing)
        every cohort's CSV, and leaves their mtimes alone for tools that watch them.
        """
        folder, _, name = rel.rpartition("/")
        with self.folder(folder) as fd:
            if fd is None:
                return False
            try:
                if os.stat(name, dir_fd=fd, follow_symlinks=False).st_size != len(data):
                    return False
            except FileNotFoundError:
                return False
            except OSError as exc:
                raise environment_error(exc, f"reading {self.path / rel}") from exc
        return self.read(rel) == data

    @contextmanager
    def locked(self, timeout: float) -> Iterator[None]:
        """Hold the out dir's build lock; wait at most `timeout` seconds for another build."""
        try:
            fd = os.open(LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise self.refuse(LOCK_NAME, "a symlink") from None
            raise environment_error(exc, f"opening {self.path / LOCK_NAME}") from exc
        try:
            deadline = time.monotonic() + timeout
            delay = 0.01
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise BuildBusyError(f"another build into {self.path} holds {LOCK_NAME}; gave up after "
                                             f"{timeout:g} s (retry when it has finished)") from None
                    time.sleep(delay)
                    delay = min(delay * 2, 0.5)
            yield
        finally:
            os.close(fd)  # releases the flock


class Readable(Protocol):
    """Where a build's files are: the out dir, or an object-store prefix (object_out.py)."""

    @property
    def path(self) -> Path | str: ...

    def read(self, rel: str) -> bytes | None: ...


def owned(out: Readable) -> dict[str, Any] | None:
    """The ownership record of the last build into `out`, or None (none, or not in our format).

    Its `files` maps each file the build wrote (relative path) to the sha256 of its bytes. A
    record in our format without a valid `seq` and `hash` is refused, naming the file:
    rewriting it would have to guess which seq the files hold.
    """
    raw = out.read(OWNERSHIP_FILE)
    if raw is None:
        return None
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("files"), dict):
        return None
    seq, chain_hash = doc.get("seq", ""), doc.get("hash", "")
    if not ((seq is None and chain_hash is None)
            or (type(seq) is int and seq >= 0 and isinstance(chain_hash, str))):
        raise InvalidInputError(f"{out.path}/{OWNERSHIP_FILE} has no valid seq and hash; "
                                "remove it and build again")
    doc["files"] = {f: h for f, h in doc["files"].items() if _OURS.fullmatch(f) and isinstance(h, str)}
    return doc


def ownership_record(seq: int | None, chain_hash: str | None, about: dict[str, Any], files: dict[str, str]) -> bytes:
    doc = {"format": FORMAT, "format_version": VERSION, "seq": seq, "hash": chain_hash, **about,
           "files": dict(sorted(files.items()))}
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _split(rel: str) -> tuple[str, str]:
    folder, _, name = rel.rpartition("/")
    return folder, name


def _by_folder(rels: Iterable[str]) -> dict[str, list[str]]:
    folders: dict[str, list[str]] = {}
    for rel in sorted(rels):
        folders.setdefault(_split(rel)[0], []).append(rel)
    return folders


def _put(out: OutDir, rel: str, data: bytes) -> None:
    """Atomically replace `rel` (a file of the out dir itself) with `data`, unless it holds that."""
    if out.holds(rel, data):
        return
    tmp = stage(out.fd, rel, data, str(out.path / rel))
    commit(out.fd, tmp, rel, str(out.path / rel))
    os.fsync(out.fd)


def _clean_leftovers(out: OutDir, folders: Iterable[str]) -> None:
    """Remove temp files a killed build left (in the folders of files it owned). Under the
    lock no other build is running, so a temp file of ours can only be a dead build's."""
    for folder in folders:
        with out.folder(folder) as fd:
            if fd is None:
                continue
            for entry in os.scandir(fd):
                target = temp_target(entry.name)
                ours = target == OWNERSHIP_FILE or (target is not None and _OURS.fullmatch(f"{folder}/{target}".lstrip("/")))
                if ours and entry.is_file(follow_symlinks=False):
                    discard(fd, entry.name)


def _stage_all(out: OutDir, files: dict[str, bytes]) -> list[tuple[str, str]]:
    """Stage every file (temp + fsync), creating its folder; on failure remove the temps."""
    staged: list[tuple[str, str]] = []
    try:
        for folder, rels in _by_folder(files).items():
            with out.folder(folder, create=True) as fd:
                assert fd is not None
                for rel in rels:
                    staged.append((rel, stage(fd, _split(rel)[1], files[rel], str(out.path / rel))))
    except BaseException:
        _discard_all(out, staged)
        raise
    return staged


def _discard_all(out: OutDir, staged: list[tuple[str, str]]) -> None:
    for folder, rels in _by_folder(dict(staged)).items():
        temps = dict(staged)
        with out.folder(folder) as fd:
            if fd is not None:
                for rel in rels:
                    discard(fd, temps[rel])


def _commit_all(out: OutDir, staged: list[tuple[str, str]]) -> None:
    temps = dict(staged)
    for folder, rels in _by_folder(temps).items():
        with out.folder(folder) as fd:
            assert fd is not None
            for rel in rels:
                commit(fd, temps[rel], _split(rel)[1], str(out.path / rel))
            os.fsync(fd)


def _remove(out: OutDir, rel: str, digest: str) -> bool:
    """Remove a file we wrote, unless its bytes are no longer the ones we wrote; then its
    cohort folder if that is left empty (also when the file was already gone: a killed build
    may have made the folder and nothing in it)."""
    folder, name = _split(rel)
    data = out.read(rel)
    removed = False
    if data is not None and sha256_hex(data) == digest:
        with out.folder(folder) as fd:
            assert fd is not None
            try:
                os.unlink(name, dir_fd=fd)
                os.fsync(fd)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise environment_error(exc, f"removing {out.path / rel}") from exc
        removed = True
    _prune(out, folder)
    return removed


def _prune(out: OutDir, folder: str) -> None:
    """Remove a cohort folder if it is empty (another tool's files in it stay)."""
    if folder.startswith(COHORTS_DIR + "/"):
        with out.folder(COHORTS_DIR) as fd:
            if fd is not None:
                try:
                    os.rmdir(_split(folder)[1], dir_fd=fd)
                    os.fsync(fd)
                except OSError:
                    pass


def check_names(files: Iterable[str]) -> None:
    """Every name a build writes is one of the projection patterns (a programming error otherwise)."""
    for rel in files:
        if not _OURS.fullmatch(rel):
            raise ValueError(f"{rel} is not a projection file name")


def previous_about(previous: dict[str, Any] | None) -> dict[str, Any]:
    """The ABOUT_KEYS of the last record, kept while a build is under way (the union record)."""
    return {k: previous[k] for k in ABOUT_KEYS if k in previous} if previous else {}


def replace_files(out_path: Path, files: dict[str, bytes], seq: int, chain_hash: str,
                  about: dict[str, Any], lock_timeout: float = LOCK_TIMEOUT) -> Changes:
    """Make `out_path` hold `files` (relative path -> bytes) and nothing else of ours.

    `about` (keys ABOUT_KEYS) is what the files cannot say themselves; `_projection.json` records it.
    """
    check_names(files)
    with locked_out(out_path, lock_timeout) as out:
        return replace_locked(out, files, seq, chain_hash, about)


@contextmanager
def locked_out(out_path: Path, lock_timeout: float = LOCK_TIMEOUT) -> Iterator[OutDir]:
    """The out dir, opened and holding its build lock (waiting at most `lock_timeout` s)."""
    out = OutDir(out_path)
    try:
        with out.locked(lock_timeout):
            yield out
    finally:
        out.close()


def intact(out: OutDir, record: dict[str, Any]) -> bool:
    """Every file `record` (from `owned`) lists still holds the bytes it recorded."""
    recorded: dict[str, str] = record["files"]
    return out.digests(recorded) == recorded


def holding(out_path: Path, seq: int, chain_hash: str, lock_timeout: float = LOCK_TIMEOUT) -> list[str] | None:
    """The files of ours in `out_path`, when its last build reflects exactly (`seq`, `chain_hash`)
    and every file it recorded still holds the bytes it wrote; else None (there is work to do).

    What makes a build with nothing new cost a few file reads instead of a replay and a render.
    """
    if not out_path.is_dir():
        return None
    with locked_out(out_path, lock_timeout) as out:
        record = owned(out)
        if record is None or record["seq"] != seq or record["hash"] != chain_hash or not intact(out, record):
            return None
        return sorted(record["files"])


def replace_locked(out: OutDir, files: dict[str, bytes], seq: int, chain_hash: str,
                   about: dict[str, Any], kept: dict[str, str] | None = None) -> Changes:
    """`replace_files` in an out dir whose lock the caller holds (`locked_out`). `kept`: files
    of the last build that stay as they are (relative path -> the sha256 it recorded), which
    are neither read nor written (an incremental build passes only the files it rendered)."""
    old_record = out.read(OWNERSHIP_FILE)
    previous = owned(out)
    before: dict[str, str] = previous["files"] if previous else {}
    digests = {**(kept or {}), **{rel: sha256_hex(data) for rel, data in files.items()}}
    for rel in sorted({OWNERSHIP_FILE, *before, *digests}):
        out.check(rel)
    _clean_leftovers(out, sorted({"", *(_split(rel)[0] for rel in {*before, *digests})}))
    written = [rel for rel in sorted(files) if not out.holds(rel, files[rel])]
    unchanged = sorted({*files, *(kept or {})} - set(written))
    union_recorded = not digests.keys() <= before.keys()
    if union_recorded:  # name every file (and so its folder) before making it: a kill leaves nothing unowned
        _put(out, OWNERSHIP_FILE, ownership_record(previous["seq"] if previous else None,
                                                   previous["hash"] if previous else None,
                                                   previous_about(previous), {**digests, **before}))
    try:
        staged = _stage_all(out, {rel: files[rel] for rel in written})
    except BaseException:
        if union_recorded:  # nothing was renamed: put the old record back and the new folders away
            for rel in sorted(digests.keys() - before.keys()):
                _prune(out, _split(rel)[0])
            if old_record is None:
                os.unlink(OWNERSHIP_FILE, dir_fd=out.fd)
            else:
                _put(out, OWNERSHIP_FILE, old_record)
        raise
    _commit_all(out, staged)
    removed = [rel for rel in sorted(before.keys() - digests.keys()) if _remove(out, rel, before[rel])]
    _put(out, OWNERSHIP_FILE, ownership_record(seq, chain_hash, about, digests))
    return Changes(written, unchanged, removed)

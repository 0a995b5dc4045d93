"""The local directory backend: the on-disk layout of docs/FORMAT.md §2-§5, §7.

`events.jsonl` is one append-only file; a cursor is the byte offset just after a batch.
Writers serialise on an flock of `events.lock` (`writing()`), so the conditional append
cannot lose a race to another writer of this format: the size check in `append` only
guards against a writer that ignores the lock. Appends are one write plus fdatasync; a
failed write truncates the file back to where the batch began. Under the lock, a tail left
by a crashed writer is moved to `events.jsonl.torn-<n>` before anything is appended.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import tempfile
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Callable, TypeVar

import orjson

from ..errors import CorruptLogError, InvalidInputError, LedgerEnvironmentError, NotALedgerError
from .flock import ProcessLock
from .fsio import atomic_write, create_temp, environment_error, fsync_dir, write_all
from .scan import LogScan, LogScanner, NothingNew, Position, Tail, closes_batch
from .spool import SPOOL_DIR, Spool
from .store import COPY_MARKER, CutTail, LogStore

T = TypeVar("T")

CONFIG_FILE = "ledger.json"
LOG_FILE = "events.jsonl"
LOCK_FILE = "events.lock"
CHECKPOINT_DIR = "checkpoints"
#: the writers' index (ledger/app/facts.py, docs/FORMAT.md §7.1)
INDEX_DIR = "index"
#: the checkpoint mac key (32 random bytes): beside ledger.json, outside checkpoints/
KEY_FILE = "checkpoint.key"
#: names inside a ledger directory that belong to the ledger (never a build's output)
RESERVED = (LOG_FILE, CONFIG_FILE, LOCK_FILE, CHECKPOINT_DIR, KEY_FILE, COPY_MARKER, INDEX_DIR, SPOOL_DIR)
_CKPT_PREFIX, _CKPT_SUFFIX = "state-", ".ckpt"
#: the <n> of events.jsonl.torn-<n>: ASCII digits only (a stray `torn-²` is someone else's file)
_TORN_NUMBER = re.compile(r"([0-9]{1,18})")
#: how far back from a boundary's offset we first look for the start of its last line (a
#: line is usually well under 1 KiB; every writer checks the index's boundary on each turn)
_LINE_PROBE = 1 << 12


class FileLogStore(LogStore):
    """A ledger directory on a local file system; shared by any number of processes."""

    multi_process = True

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self.log_path = self.path / LOG_FILE
        self._lock = ProcessLock(self.path / LOCK_FILE)  # threads sharing this store share its descriptor
        self._spool: Spool | None = None

    def __repr__(self) -> str:
        return f"FileLogStore({self.location!r})"

    def close(self) -> None:
        self._lock.close()

    # -- identity -------------------------------------------------------------------------
    def create(self, config: bytes) -> None:
        """Built whole in a temp directory beside `path`, then renamed onto it (over an empty
        directory too): a failed init leaves no half-made ledger that init would refuse."""
        path = self.path
        if path.exists() and (not path.is_dir() or any(p.name != COPY_MARKER for p in path.iterdir())):
            raise InvalidInputError(f"{path} already exists and is not an empty directory")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.init-", dir=path.parent))
        except OSError as exc:
            raise environment_error(exc, f"creating ledger {path}") from exc
        try:
            os.chmod(staging, 0o755)
            (staging / CHECKPOINT_DIR).mkdir()
            for name in (LOG_FILE, LOCK_FILE):
                os.close(os.open(staging / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            atomic_write(staging / CONFIG_FILE, config)
            marker = self.copy_marker()
            if marker is not None:  # an unfinished copy marked the directory: the ledger keeps the mark
                atomic_write(staging / COPY_MARKER, marker)
                (path / COPY_MARKER).unlink()
            os.rename(staging, path)
            fsync_dir(path.parent.resolve())
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                raise InvalidInputError(f"{path} already exists and is not an empty directory") from None
            raise environment_error(exc, f"creating ledger {path}") from exc

    def read_config(self) -> bytes:
        try:
            raw = (self.path / CONFIG_FILE).read_bytes()
        except FileNotFoundError:
            raise NotALedgerError(f"{self.path} is not a ledger (no {CONFIG_FILE}; run `cohort-ledger init`)") from None
        except OSError as exc:
            raise environment_error(exc, f"reading {self.path / CONFIG_FILE}") from exc
        if not self.log_path.is_file():
            raise NotALedgerError(f"{self.path} has {CONFIG_FILE} but no {LOG_FILE}")
        return raw

    # -- the log ----------------------------------------------------------------------------
    def _size(self) -> int:
        try:
            return os.stat(self.log_path).st_size
        except OSError as exc:
            raise environment_error(exc, f"reading {self.log_path}") from exc

    def scan(self, start: Position, stop_after: int | None = None) -> LogScan:
        if start.cursor:
            size = self._size()
            if size < start.cursor:
                raise CorruptLogError(start.seq, f"log shrank below committed offset {start.cursor}")
            if size == start.cursor:  # nothing new: skip opening the file (every append asks this)
                return NothingNew(start)
        return LogScanner(self.log_path, start, stop_after)

    def writing(self) -> AbstractContextManager[None]:
        """flock(events.lock), exclusive across processes; threads of this store queue on a mutex."""
        return self._lock

    def try_writing(self) -> AbstractContextManager[None] | None:
        """The writing section, entered, if no other process holds it now; else None at once."""
        return self._lock.acquire_now()

    def sync(self) -> None:
        """fdatasync events.jsonl: bytes a killed writer wrote become durable before anyone
        reports them committed (a group commit's follower whose leader died before its sync)."""
        try:
            fd = os.open(self.log_path, os.O_WRONLY)
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise environment_error(exc, f"syncing {self.log_path}") from exc

    def spool(self) -> Spool:
        if self._spool is None:
            self._spool = Spool(self.path / SPOOL_DIR, self)
        return self._spool

    def append(self, end: Position, lines: bytes, last: Position) -> Position | None:
        """One write + fdatasync; on failure cut our own partial bytes so nothing half-written stays."""
        try:
            fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND)
        except OSError as exc:
            raise environment_error(exc, f"opening {self.log_path} for append") from exc
        try:
            if os.fstat(fd).st_size != end.cursor:
                return None
            write_all(fd, lines)
            os.fdatasync(fd)
        except OSError as exc:
            try:
                os.ftruncate(fd, end.cursor)
                os.fsync(fd)
            except OSError:
                pass  # the next writer's recovery cuts it: it is an incomplete trailing batch
            raise environment_error(exc, f"appending to {self.log_path}") from exc
        finally:
            os.close(fd)
        return Position(last.seq, last.hash, end.cursor + len(lines), last.at)

    def cut_tail(self, end: Position) -> CutTail | None:
        """Copy what follows `end` to events.jsonl.torn-<n> (durably), then truncate to `end`."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(end.cursor)
                cut = f.read()
            if not cut:
                return None
            n = 1 + max((int(found[1]) for p in self.path.glob(LOG_FILE + ".torn-*")
                         if (found := _TORN_NUMBER.fullmatch(p.name[len(LOG_FILE) + 6:]))), default=0)
            torn = self.path / f"{LOG_FILE}.torn-{n}"
            atomic_write(torn, cut)
            fd = os.open(self.log_path, os.O_WRONLY)
            try:
                os.ftruncate(fd, end.cursor)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise environment_error(exc, f"cutting the torn tail of {self.log_path}") from exc
        return CutTail(len(cut), torn.name)

    def is_boundary(self, pos: Position) -> bool:
        """The line ending at byte `pos.cursor` is event `pos.seq`, hashing to `pos.hash`,
        closing its batch, committed at `pos.at`."""
        offset = pos.cursor
        if pos.seq < 1 or type(offset) is not int or offset < 1:
            return False
        line = self._line_ending_at(offset)
        return line is not None and closes_batch(line, pos)

    def end(self) -> Position | None:
        """The boundary at the end of events.jsonl: only its last line is read and checked."""
        try:
            size = self._size()
        except LedgerEnvironmentError:
            return None
        line = self._line_ending_at(size) if size else None
        if line is None:
            return None
        try:
            obj = orjson.loads(line)
            pos = Position(obj["seq"], obj["hash"], size, obj["at"])
        except (orjson.JSONDecodeError, TypeError, KeyError):
            return None
        return pos if type(pos.seq) is int and pos.seq >= 1 and closes_batch(line, pos) else None

    def _line_ending_at(self, offset: int) -> bytes | None:
        """The complete line (without its `\n`) that ends at byte `offset`, if one does."""
        try:
            with open(self.log_path, "rb") as f:
                if os.fstat(f.fileno()).st_size < offset:
                    return None
                start = max(0, offset - _LINE_PROBE)
                while True:
                    f.seek(start)
                    chunk = f.read(offset - start)
                    if not chunk.endswith(b"\n"):
                        return None
                    cut = chunk.rfind(b"\n", 0, len(chunk) - 1)
                    if cut >= 0 or start == 0:
                        break
                    start = max(0, start - (offset - start) * 16)
        except OSError:
            return None
        return chunk[cut + 1 : -1]

    def index_path(self) -> Path:
        return self.path / INDEX_DIR / "facts.sqlite"

    def extent(self, pos: Position | None = None) -> int:
        """Bytes of events.jsonl (before `pos`)."""
        return self._size() if pos is None else int(pos.cursor)

    def verify(self, start: Position) -> tuple[Position, int, Tail]:
        """On two cores when the log is long (ledger.log.parallel), else the plain scan."""
        from .parallel import verify_split  # verify only: it loads pickle and signal, which appends never need

        split = verify_split(self.log_path, start)
        return split if split is not None else LogStore.verify(self, start)

    def scan_in_halves(self, start: Position, work: Callable[[LogScan], T],
                       stop_after: int | None = None) -> tuple[T, T] | None:
        """On two cores when the log is long (ledger.log.parallel `in_halves`)."""
        from .parallel import in_halves  # loaded on use, as for verify

        return in_halves(self.log_path, start, work, stop_after)

    # -- an unfinished copy -------------------------------------------------------------------
    def copy_marker(self) -> bytes | None:
        try:
            return (self.path / COPY_MARKER).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise environment_error(exc, f"reading {self.path / COPY_MARKER}") from exc

    def set_copy_marker(self, data: bytes | None) -> None:
        try:
            if data is None:
                (self.path / COPY_MARKER).unlink(missing_ok=True)
                fsync_dir(self.path)
            else:
                self.path.mkdir(parents=True, exist_ok=True)
                atomic_write(self.path / COPY_MARKER, data)
        except OSError as exc:
            raise environment_error(exc, f"writing {self.path / COPY_MARKER}") from exc

    # -- checkpoints ------------------------------------------------------------------------
    def checkpoint_path(self, seq: int) -> Path:
        return self.path / CHECKPOINT_DIR / f"{_CKPT_PREFIX}{seq:012d}{_CKPT_SUFFIX}"

    def checkpoint_name(self, seq: int) -> str:
        return f"{CHECKPOINT_DIR}/{self.checkpoint_path(seq).name}"

    def write_checkpoint(self, seq: int, data: bytes) -> None:
        try:
            (self.path / CHECKPOINT_DIR).mkdir(exist_ok=True)
        except OSError as exc:
            raise environment_error(exc, f"creating {self.path / CHECKPOINT_DIR}") from exc
        atomic_write(self.checkpoint_path(seq), data)

    def checkpoint_key(self, create: bool) -> bytes | None:
        """`checkpoint.key`, made on first use when `create`: written as a temp file (mode
        0600), then published with link(2), so two builds making it at once agree on one key."""
        path = self.path / KEY_FILE
        try:
            return path.read_bytes()
        except FileNotFoundError:
            if not create:
                return None
        except OSError as exc:
            if not create:
                return None
            raise environment_error(exc, f"reading {path}") from exc
        try:
            dir_fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                fd, tmp = create_temp(dir_fd, KEY_FILE)
                try:
                    os.fchmod(fd, 0o600)
                    write_all(fd, secrets.token_bytes(32))
                    os.fsync(fd)
                    os.close(fd)
                    try:
                        os.link(tmp, KEY_FILE, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                    except FileExistsError:
                        pass  # another writer made it first: use theirs
                    os.fsync(dir_fd)
                finally:
                    os.unlink(tmp, dir_fd=dir_fd)
            finally:
                os.close(dir_fd)
            return path.read_bytes()
        except OSError as exc:
            raise environment_error(exc, f"creating {path}") from exc

    def checkpoints(self) -> list[int]:
        try:
            names = os.listdir(self.path / CHECKPOINT_DIR)
        except FileNotFoundError:
            return []
        digits = (n[len(_CKPT_PREFIX):-len(_CKPT_SUFFIX)] for n in names
                  if n.startswith(_CKPT_PREFIX) and n.endswith(_CKPT_SUFFIX))
        return sorted((int(d) for d in digits if d.isdigit()), reverse=True)

    def read_checkpoint(self, seq: int) -> bytes | None:
        try:
            return self.checkpoint_path(seq).read_bytes()
        except OSError:
            return None

    def delete_checkpoint(self, seq: int) -> None:
        try:
            self.checkpoint_path(seq).unlink()
        except FileNotFoundError:
            pass  # a concurrent build pruned it first

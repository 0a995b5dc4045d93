"""State checkpoints: a folded `State` saved at a batch boundary, so readers resume there.

A checkpoint is only a cache of the log, never its source of truth. Its header names the
batch boundary it was taken at (seq, chain hash, byte offset, `at`); it is used only when
the log line ending at that offset is event `seq` with that hash, closing a batch, in a
ledger with the same id, and when its `mac` -- an HMAC-SHA256 of header and body under the
ledger's own key, `checkpoint.key` beside `ledger.json` (not in `checkpoints/`) -- holds.
Anything else -- another ledger's file, a log that was cut or rewritten, a body edited or
forged without the key, an unreadable body -- makes it silently ignored, and the reader
replays. So write access to `checkpoints/` alone can slow readers down (delete a
checkpoint), never change what they see. `CheckpointAudit` is the other half: a replay from
seq 1 compares every checkpoint it passes with the state it folded (`verify --checkpoints`,
`build --full`), which also catches a checkpoint forged by someone holding the key.

File layout (`checkpoints/state-<seq, 12 digits>.ckpt`): one JSON header line, then one
orjson document with the state. Generations are stored column-wise, low-cardinality
columns as (values, codes), because rebuilding a million `Generation` objects from flat
lists is what dominates load time; `event_ids` and member maps are plain JSON objects,
which orjson turns back into dicts at C speed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any, Iterable, Sequence

import orjson

from ..domain.config import LedgerConfig
from ..errors import CorruptLogError
from .fsio import atomic_write, create_temp, environment_error, write_all
from .perf import paused_gc
from .scan import Position, check_line
from ..domain.state import Cohort, Generation, State

FORMAT = "cohort-ledger-checkpoint"
VERSION = 2
CHECKPOINT_DIR = "checkpoints"
#: the ledger's checkpoint key (32 random bytes), beside ledger.json: outside checkpoints/
KEY_FILE = "checkpoint.key"
PREFIX, SUFFIX = "state-", ".ckpt"
#: checkpoints kept after writing a new one (the newest ones)
KEEP = 3
#: how far back from a checkpoint's offset we look for the start of its last line
_LINE_PROBE = 1 << 16

#: Generation fields stored as (distinct values, per-row codes)
_CODED = ("stage", "origin_cohort_id", "template_id", "combo_id", "llm_model_id", "mode")
#: Generation fields stored as plain lists
_PLAIN = ("gen_id", "parent_gen_id", "replicate", "created_seq", "materialized_seq")
_FIELDS = tuple(f for f in Generation.__dataclass_fields__)


def checkpoint_dir(ledger_dir: Path) -> Path:
    return ledger_dir / CHECKPOINT_DIR


# -- state <-> bytes ------------------------------------------------------------------
def _encode_coded(values: Iterable[Any]) -> dict[str, list[Any]]:
    index: dict[Any, int] = {}
    codes = [index.setdefault(v, len(index)) for v in values]
    return {"values": list(index), "codes": codes}


def _decode_coded(values: list[Any], codes: list[int]) -> Sequence[Any]:
    if len(codes) < 2:  # itemgetter returns a bare value for one index and needs at least one
        return [values[c] for c in codes]
    return itemgetter(*codes)(values)  # type: ignore[no-any-return]


def state_to_bytes(state: State) -> bytes:
    """The state (without config and position, which the header and ledger.json hold)."""
    gens = list(state.generations.values())
    columns: dict[str, Any] = {f: _encode_coded(map(attrgetter(f), gens)) for f in _CODED}
    columns.update({f: list(map(attrgetter(f), gens)) for f in _PLAIN})
    cohorts = [
        {"cohort_id": c.cohort_id, "opened_seq": c.opened_seq, "description": c.description, "spec": c.spec,
         "sealed_seq": c.sealed_seq, "had_members": c.had_members, "members": c.members}
        for c in state.cohorts.values()
    ]
    return orjson.dumps({
        "key_names": state.key_names,
        "generations": columns,
        "cohorts": cohorts,
        "event_ids": state.event_ids,
    })


def state_from_bytes(config: LedgerConfig, body: bytes, position: Position) -> State:
    """Rebuild the State that `state_to_bytes` saved at `position`."""
    doc = orjson.loads(body)
    state = State(config)
    state.seq, state.hash, state.at = position.seq, position.hash, position.at
    state.key_names = {k: tuple(v) for k, v in doc["key_names"].items()}
    cols = doc["generations"]
    decoded: dict[str, Any] = {f: _decode_coded(cols[f]["values"], cols[f]["codes"]) for f in _CODED}
    decoded.update({f: cols[f] for f in _PLAIN})
    state.generations = {g.gen_id: g for g in map(Generation, *(decoded[f] for f in _FIELDS))}
    state.cohorts = {c["cohort_id"]: Cohort(**c) for c in doc["cohorts"]}
    state.event_ids = doc["event_ids"]
    return state


# -- files ------------------------------------------------------------------------------
def _key(ledger_dir: Path, create: bool) -> bytes | None:
    """The ledger's checkpoint key; made on first use when `create` (published with link(2),
    so two builds creating it at once agree on one key)."""
    path = ledger_dir / KEY_FILE
    try:
        return path.read_bytes()
    except FileNotFoundError:
        if not create:
            return None
    except OSError:
        return None
    dir_fd = os.open(ledger_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
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


def _mac(key: bytes, header: dict[str, Any], body: bytes) -> str:
    """HMAC-SHA256 over the header's fields (without `mac`) and the body: the one digest
    check of a checkpoint, whatever encoding the body uses."""
    fields = orjson.dumps({k: v for k, v in header.items() if k != "mac"}, option=orjson.OPT_SORT_KEYS)
    return hmac.new(key, fields + b"\n" + body, hashlib.sha256).hexdigest()


def _header(key: bytes, config: LedgerConfig, pos: Position, body: bytes) -> bytes:
    doc: dict[str, Any] = {"format": FORMAT, "version": VERSION, "ledger_id": config.ledger_id,
                           "seq": pos.seq, "hash": pos.hash, "offset": pos.offset, "at": pos.at}
    return orjson.dumps({**doc, "mac": _mac(key, doc, body)}) + b"\n"


def write_checkpoint(ledger_dir: Path, config: LedgerConfig, state: State, pos: Position, keep: int = KEEP) -> Path:
    """Save `state`, folded exactly up to the batch boundary `pos`; prune all but the newest `keep`."""
    if (state.seq, state.hash) != (pos.seq, pos.hash):
        raise ValueError(f"state at seq {state.seq} is not at the checkpoint position seq {pos.seq}")
    folder = checkpoint_dir(ledger_dir)
    try:
        folder.mkdir(exist_ok=True)
        key = _key(ledger_dir, create=True)
    except OSError as exc:
        raise environment_error(exc, f"writing a checkpoint in {folder}") from exc
    assert key is not None
    path = folder / f"{PREFIX}{pos.seq:012d}{SUFFIX}"
    with paused_gc():
        body = state_to_bytes(state)
    atomic_write(path, _header(key, config, pos, body) + body)
    for old in list_checkpoints(ledger_dir)[keep:]:
        try:
            old.unlink()
        except FileNotFoundError:
            pass  # a concurrent build pruned it first
    return path


def list_checkpoints(ledger_dir: Path) -> list[Path]:
    """Checkpoint files, newest (highest seq) first."""
    try:
        names = os.listdir(checkpoint_dir(ledger_dir))
    except FileNotFoundError:
        return []
    found = [n for n in names if n.startswith(PREFIX) and n.endswith(SUFFIX) and n[len(PREFIX):-len(SUFFIX)].isdigit()]
    return [checkpoint_dir(ledger_dir) / n for n in sorted(found, reverse=True)]


def _read_header(path: Path, config: LedgerConfig) -> tuple[Position, dict[str, Any]] | None:
    """The position a checkpoint file claims and its header, if the header is ours and for
    this ledger (the `mac` is checked with the body, by `_sealed_body`)."""
    try:
        with open(path, "rb") as f:
            doc = orjson.loads(f.readline(1 << 12))
    except (OSError, orjson.JSONDecodeError):
        return None
    if not (isinstance(doc, dict) and doc.get("format") == FORMAT and doc.get("version") == VERSION
            and doc.get("ledger_id") == config.ledger_id and isinstance(doc.get("mac"), str)):
        return None
    try:
        return Position(int(doc["seq"]), str(doc["hash"]), int(doc["offset"]), str(doc["at"])), doc
    except (KeyError, TypeError, ValueError):
        return None


def _sealed_body(path: Path, header: dict[str, Any], key: bytes | None) -> bytes | None:
    """The body of a checkpoint file, if its `mac` holds under the ledger's key; else None."""
    if key is None:
        return None
    try:
        body = path.read_bytes().partition(b"\n")[2]
    except OSError:
        return None
    return body if hmac.compare_digest(_mac(key, header, body), header["mac"]) else None


def position_matches(log_path: Path, pos: Position) -> bool:
    """Is `pos` a batch boundary of this log: the line ending at `pos.offset` is event
    `pos.seq`, hashing to `pos.hash`, closing its batch, committed at `pos.at`?"""
    if pos.seq < 1 or pos.offset < 1:
        return False
    try:
        with open(log_path, "rb") as f:
            if os.fstat(f.fileno()).st_size < pos.offset:
                return False
            start = max(0, pos.offset - _LINE_PROBE)
            while True:
                f.seek(start)
                chunk = f.read(pos.offset - start)
                if not chunk.endswith(b"\n"):
                    return False
                cut = chunk.rfind(b"\n", 0, len(chunk) - 1)
                if cut >= 0 or start == 0:
                    break
                start = max(0, start - _LINE_PROBE * 16)
    except OSError:
        return False
    line = chunk[cut + 1 : -1]
    try:
        obj = orjson.loads(line)
        if not isinstance(obj, dict) or not isinstance(obj.get("prev"), str):
            return False
        check_line(line, pos.seq, obj["prev"])
    except (orjson.JSONDecodeError, CorruptLogError):
        return False
    txn = obj.get("txn")
    return (obj["hash"] == pos.hash and obj.get("at") == pos.at and isinstance(txn, list) and len(txn) == 2
            and isinstance(txn[0], int) and isinstance(txn[1], int) and txn[0] + txn[1] - 1 == pos.seq)


def load_latest(ledger_dir: Path, config: LedgerConfig, log_path: Path,
                max_seq: int | None = None) -> tuple[State, Position] | None:
    """The newest checkpoint (at or before `max_seq`) that matches the log and its mac, loaded; else None."""
    key = _key(ledger_dir, create=False)
    for path in list_checkpoints(ledger_dir):
        if max_seq is not None and _file_seq(path) > max_seq:
            continue
        found = _read_header(path, config)
        if found is None or found[0].seq != _file_seq(path) or not position_matches(log_path, found[0]):
            continue
        body = _sealed_body(path, found[1], key)
        if body is None:
            continue
        try:
            with paused_gc():
                return state_from_bytes(config, body, found[0]), found[0]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, IndexError, AttributeError):
            continue
    return None


class CheckpointAudit:
    """Compares each checkpoint with the state a replay from seq 1 folded at its seq.

    Call it at every batch boundary of the replay (`replay(..., on_boundary=audit)`), then
    `finish(last_seq)`; `problems` then names every checkpoint file that is not exactly the
    replayed state (forged, damaged, or not at a batch boundary of this log). It only reads.
    """

    def __init__(self, ledger_dir: Path, config: LedgerConfig) -> None:
        self.config = config
        self.key = _key(ledger_dir, create=False)
        self.pending = {_file_seq(p): p for p in list_checkpoints(ledger_dir)}
        self.problems: list[str] = []

    def __call__(self, state: State, pos: Position) -> None:
        path = self.pending.pop(pos.seq, None)
        if path is None:
            return
        problem = self._compare(path, state, pos)
        if problem is not None:
            self.problems.append(f"{CHECKPOINT_DIR}/{path.name} {problem}")

    def _compare(self, path: Path, state: State, pos: Position) -> str | None:
        if not path.exists():
            return None  # pruned by a concurrent build meanwhile
        found = _read_header(path, self.config)
        if found is None:
            return "has no valid header for this ledger"
        if found[0] != pos:
            return f"names a position the log does not have at seq {pos.seq}"
        body = _sealed_body(path, found[1], self.key)
        if body is None:
            return "fails its mac (edited, forged, or made with another key)"
        with paused_gc():
            if body != state_to_bytes(state):
                return f"disagrees with the state replayed from seq 1 at seq {pos.seq}"
        return None

    def finish(self, last_seq: int) -> None:
        """Checkpoints at or before `last_seq` that the replay never reached as a batch end."""
        for seq, path in sorted(self.pending.items()):
            if seq <= last_seq and path.exists():
                self.problems.append(f"{CHECKPOINT_DIR}/{path.name} is not at a batch boundary of the log")


def _file_seq(path: Path) -> int:
    return int(path.name[len(PREFIX):-len(SUFFIX)])


def latest_seq(ledger_dir: Path) -> int:
    """Seq of the newest checkpoint file (valid or not); 0 when there is none."""
    paths = list_checkpoints(ledger_dir)
    return _file_seq(paths[0]) if paths else 0

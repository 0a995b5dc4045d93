"""State checkpoints: a folded `State` saved at a batch boundary, so readers resume there.

A checkpoint is only a cache of the log, never its source of truth. Its header names the
batch boundary it was taken at (seq, chain hash, byte offset, `at`); it is used only when
the log line ending at that offset is event `seq` with that hash, closing a batch, in a
ledger with the same id. Anything else -- another ledger's file, a log that was cut or
rewritten, an unreadable body -- makes it silently ignored, and the reader replays.

File layout (`checkpoints/state-<seq, 12 digits>.ckpt`): one JSON header line, then one
orjson document with the state. Generations are stored column-wise, low-cardinality
columns as (values, codes), because rebuilding a million `Generation` objects from flat
lists is what dominates load time; `event_ids` and member maps are plain JSON objects,
which orjson turns back into dicts at C speed.
"""

from __future__ import annotations

import os
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any, Iterable, Sequence

import orjson

from ..domain.config import LedgerConfig
from ..errors import CorruptLogError
from .fsio import atomic_write
from .perf import paused_gc
from .scan import Position, check_line
from ..domain.state import Cohort, Generation, State

FORMAT = "cohort-ledger-checkpoint"
VERSION = 1
CHECKPOINT_DIR = "checkpoints"
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
def _header(config: LedgerConfig, pos: Position) -> bytes:
    return orjson.dumps({"format": FORMAT, "version": VERSION, "ledger_id": config.ledger_id,
                         "seq": pos.seq, "hash": pos.hash, "offset": pos.offset, "at": pos.at}) + b"\n"


def write_checkpoint(ledger_dir: Path, config: LedgerConfig, state: State, pos: Position, keep: int = KEEP) -> Path:
    """Save `state`, folded exactly up to the batch boundary `pos`; prune all but the newest `keep`."""
    if (state.seq, state.hash) != (pos.seq, pos.hash):
        raise ValueError(f"state at seq {state.seq} is not at the checkpoint position seq {pos.seq}")
    folder = checkpoint_dir(ledger_dir)
    folder.mkdir(exist_ok=True)
    path = folder / f"{PREFIX}{pos.seq:012d}{SUFFIX}"
    with paused_gc():
        body = state_to_bytes(state)
    atomic_write(path, _header(config, pos) + body)
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


def _read_header(path: Path, config: LedgerConfig) -> Position | None:
    """The position a checkpoint file claims, if its header is ours and for this ledger."""
    try:
        with open(path, "rb") as f:
            doc = orjson.loads(f.readline(1 << 12))
    except (OSError, orjson.JSONDecodeError):
        return None
    if not (isinstance(doc, dict) and doc.get("format") == FORMAT and doc.get("version") == VERSION
            and doc.get("ledger_id") == config.ledger_id):
        return None
    try:
        return Position(int(doc["seq"]), str(doc["hash"]), int(doc["offset"]), str(doc["at"]))
    except (KeyError, TypeError, ValueError):
        return None


def _line_ending_at(log_path: Path, offset: int, seq: int | None) -> dict[str, Any] | None:
    """The event on the line that ends at byte `offset`, verified as event `seq` (any seq when
    None) against its own `prev`, and closing its batch; None when there is no such line."""
    if offset < 1:
        return None
    try:
        with open(log_path, "rb") as f:
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
                start = max(0, start - _LINE_PROBE * 16)
    except OSError:
        return None
    line = chunk[cut + 1 : -1]
    try:
        obj = orjson.loads(line)
        if not isinstance(obj, dict) or not isinstance(obj.get("prev"), str) or type(obj.get("seq")) is not int:
            return None
        check_line(line, obj["seq"] if seq is None else seq, obj["prev"])
    except (orjson.JSONDecodeError, CorruptLogError):
        return None
    txn = obj.get("txn")
    closes = (isinstance(txn, list) and len(txn) == 2 and isinstance(txn[0], int) and isinstance(txn[1], int)
              and txn[0] + txn[1] - 1 == obj["seq"])
    return obj if closes else None


def position_matches(log_path: Path, pos: Position) -> bool:
    """Is `pos` a batch boundary of this log: the line ending at `pos.offset` is event
    `pos.seq`, hashing to `pos.hash`, closing its batch, committed at `pos.at`?"""
    if pos.seq < 1:
        return False
    obj = _line_ending_at(log_path, pos.offset, pos.seq)
    return obj is not None and obj["hash"] == pos.hash and obj.get("at") == pos.at


def log_end(log_path: Path) -> Position | None:
    """The batch boundary at the very end of the log, when the log ends with a complete batch
    (no tail): what a build compares with its out dir before deciding there is work to do.
    Only that last line is checked, as for a checkpoint's position."""
    try:
        size = os.stat(log_path).st_size
    except OSError:
        return None
    obj = _line_ending_at(log_path, size, None)
    if obj is None:
        return None
    return Position(obj["seq"], obj["hash"], size, str(obj.get("at", "")))


def load_latest(ledger_dir: Path, config: LedgerConfig, log_path: Path,
                max_seq: int | None = None) -> tuple[State, Position] | None:
    """The newest checkpoint (at or before `max_seq`) that matches the log, loaded; else None."""
    for path in list_checkpoints(ledger_dir):
        if max_seq is not None and _file_seq(path) > max_seq:
            continue
        pos = _read_header(path, config)
        if pos is None or pos.seq != _file_seq(path) or not position_matches(log_path, pos):
            continue
        try:
            body = path.read_bytes().partition(b"\n")[2]
            with paused_gc():
                return state_from_bytes(config, body, pos), pos
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError, IndexError, AttributeError):
            continue
    return None


def _file_seq(path: Path) -> int:
    return int(path.name[len(PREFIX):-len(SUFFIX)])


def latest_seq(ledger_dir: Path) -> int:
    """Seq of the newest checkpoint file (valid or not); 0 when there is none."""
    paths = list_checkpoints(ledger_dir)
    return _file_seq(paths[0]) if paths else 0

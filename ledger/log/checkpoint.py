"""State checkpoints: a folded `State` saved at a batch boundary, so readers resume there.

A checkpoint is only a cache of the log, never its source of truth. Its header names the
batch boundary it was taken at (seq, chain hash, the store's cursor, `at`); it is used only
when the store confirms that boundary (`LogStore.is_boundary`: event `seq` with that hash,
closing a batch) in a ledger with the same id, and when its `mac` -- an HMAC-SHA256 of the
header fields and the body under the store's checkpoint key (`LogStore.checkpoint_key`: for
a directory `checkpoint.key` beside `ledger.json`, not in `checkpoints/`) -- holds. Anything
else -- another ledger's file, a log that was cut or rewritten, a body edited or forged
without the key, an unreadable body -- makes it silently ignored, and the reader replays.
So write access to `checkpoints/` alone can slow readers down, never change what they see.
`CheckpointAudit` is the other half: a replay from seq 1 compares every checkpoint it
passes with the state it folded (`verify --checkpoints`, `build --full`), which also
catches a checkpoint forged by someone holding the key. Both checks live here, apart from
how the body encodes the state.

Layout (the local directory stores it as `checkpoints/state-<seq, 12 digits>.ckpt`,
docs/FORMAT.md §7; other stores keep the same bytes under their own key): one JSON header
line, then one orjson document with the state. Generations are stored column-wise, low-cardinality
columns as (values, codes), because rebuilding a million `Generation` objects from flat
lists is what dominates load time; `event_ids` and member maps are plain JSON objects,
which orjson turns back into dicts at C speed.
"""

from __future__ import annotations

import hashlib
import hmac
from operator import attrgetter, itemgetter
from typing import Any, Iterable, Sequence

import orjson

from ..domain.config import LedgerConfig
from .perf import paused_gc
from .scan import Position
from .store import LogStore
from ..domain.state import Cohort, Generation, State

FORMAT = "cohort-ledger-checkpoint"
VERSION = 2
#: checkpoints kept after writing a new one (the newest ones)
KEEP = 3

#: Generation fields stored as (distinct values, per-row codes)
_CODED = ("stage", "origin_cohort_id", "template_id", "combo_id", "llm_model_id", "mode")
_FIELDS = tuple(f for f in Generation.__dataclass_fields__)
#: Generation fields stored as plain lists: all the others
_PLAIN = tuple(f for f in _FIELDS if f not in _CODED)


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
         "sealed_seq": c.sealed_seq, "members": c.members}
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


# -- stored checkpoints -------------------------------------------------------------------
def _mac(key: bytes, header: dict[str, Any], body: bytes) -> str:
    """HMAC-SHA256 over the header's fields (without `mac`) and the body. A store without a
    key gets the same construction under the empty key: a digest that catches damage only."""
    fields = orjson.dumps({k: v for k, v in header.items() if k != "mac"}, option=orjson.OPT_SORT_KEYS)
    return hmac.new(key, fields + b"\n" + body, hashlib.sha256).hexdigest()


def _header(key: bytes, config: LedgerConfig, pos: Position, body: bytes) -> bytes:
    doc: dict[str, Any] = {"format": FORMAT, "version": VERSION, "ledger_id": config.ledger_id,
                           "seq": pos.seq, "hash": pos.hash, "offset": pos.cursor, "at": pos.at}
    return orjson.dumps({**doc, "mac": _mac(key, doc, body)}) + b"\n"


def write_checkpoint(store: LogStore, config: LedgerConfig, state: State, pos: Position, keep: int = KEEP) -> None:
    """Save `state`, folded exactly up to the batch boundary `pos`; prune all but the newest `keep`."""
    if (state.seq, state.hash) != (pos.seq, pos.hash):
        raise ValueError(f"state at seq {state.seq} is not at the checkpoint position seq {pos.seq}")
    key = store.checkpoint_key(create=True) or b""
    with paused_gc():
        body = state_to_bytes(state)
    store.write_checkpoint(pos.seq, _header(key, config, pos, body) + body)
    for old in store.checkpoints()[keep:]:
        store.delete_checkpoint(old)


def _read_header(line: bytes, config: LedgerConfig) -> tuple[Position, dict[str, Any]] | None:
    """The position a checkpoint claims and its header, if the header is ours and for this ledger."""
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not (isinstance(doc, dict) and doc.get("format") == FORMAT and doc.get("version") == VERSION
            and doc.get("ledger_id") == config.ledger_id and isinstance(doc.get("mac"), str)):
        return None
    try:
        cursor = doc["offset"]  # the store's cursor; the key keeps the v1 header byte-for-byte
        if not isinstance(cursor, (int, str)) or isinstance(cursor, bool):
            return None
        return Position(int(doc["seq"]), str(doc["hash"]), cursor, str(doc["at"])), doc
    except (KeyError, TypeError, ValueError):
        return None


def _open(data: bytes, config: LedgerConfig, key: bytes) -> tuple[Position, bytes] | None:
    """(position, body) of a stored checkpoint whose header is ours and whose mac holds; else None."""
    line, _, body = data.partition(b"\n")
    found = _read_header(line, config)
    if found is None or not hmac.compare_digest(_mac(key, found[1], body), found[1]["mac"]):
        return None
    return found[0], body


def load_latest(store: LogStore, config: LedgerConfig, max_seq: int | None = None) -> tuple[State, Position] | None:
    """The newest checkpoint (at or before `max_seq`) that matches the log and its mac, loaded; else None."""
    key = store.checkpoint_key(create=False) or b""
    for seq in store.checkpoints():
        if max_seq is not None and seq > max_seq:
            continue
        data = store.read_checkpoint(seq)
        opened = None if data is None else _open(data, config, key)
        if opened is None:
            continue
        pos, body = opened
        if pos.seq != seq or not store.is_boundary(pos):
            continue
        try:
            with paused_gc():
                return state_from_bytes(config, body, pos), pos
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, IndexError, AttributeError):
            continue
    return None


class CheckpointAudit:
    """Compares each checkpoint with the state a replay from seq 1 folded at its seq.

    Call it at every batch boundary of the replay (`replay(..., on_boundary=audit)`), then
    `finish(last_seq)`; `problems` then names every checkpoint that is not exactly the
    replayed state (forged, damaged, or not at a batch boundary of this log). It only reads.
    """

    def __init__(self, store: LogStore, config: LedgerConfig) -> None:
        self.store = store
        self.config = config
        self.key = store.checkpoint_key(create=False) or b""
        self.pending = set(store.checkpoints())
        self.problems: list[str] = []

    def _name(self, seq: int) -> str:
        return f"the checkpoint at seq {seq} ({self.store.checkpoint_name(seq)})"

    def __call__(self, state: State, pos: Position) -> None:
        if pos.seq not in self.pending:
            return
        self.pending.discard(pos.seq)
        data = self.store.read_checkpoint(pos.seq)
        if data is None:
            return  # pruned by a concurrent build meanwhile
        problem = self._compare(data, state, pos)
        if problem is not None:
            self.problems.append(f"{self._name(pos.seq)} {problem}")

    def _compare(self, data: bytes, state: State, pos: Position) -> str | None:
        line = data.partition(b"\n")[0]
        if _read_header(line, self.config) is None:
            return "has no valid header for this ledger"
        opened = _open(data, self.config, self.key)
        if opened is None:
            return "fails its mac (edited, forged, or made with another key)"
        if opened[0] != pos:
            return f"names a position the log does not have at seq {pos.seq}"
        with paused_gc():
            if opened[1] != state_to_bytes(state):
                return f"disagrees with the state replayed from seq 1 at seq {pos.seq}"
        return None

    def finish(self, last_seq: int) -> None:
        """Name checkpoints at or before `last_seq` that the replay never reached as a batch end."""
        for seq in sorted(self.pending):
            if seq <= last_seq and self.store.read_checkpoint(seq) is not None:
                self.problems.append(f"{self._name(seq)} is not at a batch boundary of the log")


def latest_seq(store: LogStore) -> int:
    """Seq of the newest checkpoint (valid or not); 0 when there is none."""
    seqs = store.checkpoints()
    return seqs[0] if seqs else 0

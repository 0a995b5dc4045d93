"""`copy SRC DST`: the same ledger in another backend (directory <-> s3://, s3:// <-> s3://).

The destination gets the source's `ledger.json` bytes and the same batches, line for line, so
its chain and head are the source's: a copy is verified by comparing heads, not trusted.
Lines are re-encoded from the scanned events and each re-encoding must hash to the stored
hash -- equal sha256 means equal bytes -- so a copy can never alter an event silently.

Interruption: before anything else the destination is marked (`LogStore.set_copy_marker`);
while the marker is there `Ledger.open` refuses the destination, naming the source, so a
copy cut short never passes for a shorter, valid ledger. Running the copy again resumes: it
reads how far the destination got, checks that this is a prefix of the source (same hash at
that seq, at a batch boundary), appends the rest, verifies the whole destination, and only
then removes the marker. Checkpoints are not copied (they are derived; the destination's
first build makes its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator

import orjson

from ..errors import CheckFailed, CorruptLogError, InvalidInputError, NotALedgerError
from ..log.codec import encode_line, genesis_prev
from ..log.location import Where, open_store
from ..log.scan import Position
from ..log.store import LogStore
from .service import Ledger

#: progress(events copied so far, events to copy)
CopyProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class CopyReport:
    source: str
    destination: str
    seq: int
    hash: str
    #: events the destination already held (a resumed copy), and events this run appended
    already: int
    copied: int
    batches: int


def copy_ledger(src: Where, dst: Where, progress: CopyProgress | None = None) -> CopyReport:
    """Copy the ledger at `src` into `dst` (new, or an unfinished copy of it), verified."""
    source = Ledger.open(src)
    target_head = source.head  # the copy goes this far: later appends are left for another run
    config = source.store.read_config()
    genesis = Position(0, genesis_prev(source.config.ledger_id), 0)
    dest = open_store(dst)
    if dest.location == source.store.location:
        raise InvalidInputError(f"copy: {dest.location} is the source itself")
    marker = orjson.dumps({"source": source.store.location, "seq": target_head.seq, "hash": target_head.hash})
    have = _destination(dest, config, marker, genesis)
    end, already = (genesis, 0) if have is None else (have, have.seq)
    batches = 0
    for lines, last in _batches_after(source.store, genesis, end, target_head.seq):
        with dest.writing():
            appended = dest.append(end, lines, last)
        if appended is None:
            raise CheckFailed(f"copy: {dest.location} changed while copying (another writer?); "
                              "it stays marked unfinished")
        end = appended
        batches += 1
        if progress is not None:
            progress(end.seq - already, target_head.seq - already)
    copied = end.seq - already
    verified, events, _ = dest.verify(genesis)
    if (verified.seq, verified.hash) != tuple(target_head) or events != target_head.seq:
        raise CheckFailed(f"copy: {dest.location} verifies to seq {verified.seq} hash {verified.hash}, "
                          f"not the source's seq {target_head.seq} hash {target_head.hash}; the copy stays marked "
                          "unfinished")
    dest.set_copy_marker(None)
    return CopyReport(source.store.location, dest.location, target_head.seq, target_head.hash, already, copied, batches)


def _destination(dest: LogStore, config: bytes, marker: bytes, genesis: Position) -> Position | None:
    """Mark `dest` and make sure it holds this ledger (creating it); return how far an earlier
    copy got (None: nothing copied yet). Refuses a destination holding anything else."""
    existing = dest.copy_marker()
    try:
        theirs: bytes | None = dest.read_config()
    except NotALedgerError:
        theirs = None
    if theirs is not None and existing is None:
        raise InvalidInputError(f"copy: {dest.location} already holds a ledger; copy into a new location "
                                "(a finished copy is never overwritten)")
    if theirs is not None and theirs != config:
        raise InvalidInputError(f"copy: {dest.location} is an unfinished copy of another ledger")
    dest.set_copy_marker(marker)
    if theirs is None:
        try:
            dest.create(config)
        except InvalidInputError:
            if existing is None:
                dest.set_copy_marker(None)  # not ours to mark: something else is there
            raise
        return None
    scan = dest.scan(genesis)
    for _ in scan.events():
        pass  # verifies the part already copied
    return scan.end if scan.end.seq else None


def _batches_after(store: LogStore, genesis: Position, have: Position, upto: int) -> Iterator[tuple[bytes, Position]]:
    """The source's batches after `have` up to seq `upto`, as encoded lines and their end.

    The source's batch ending at `have.seq` must carry `have.hash`: otherwise the destination
    is not a prefix of the source and nothing is appended.
    """
    scan = store.scan(genesis, stop_after=upto)
    batch: list[dict[str, Any]] = []
    for ev, end in scan.events():
        if ev["seq"] <= have.seq:
            if end is not None and end.seq == have.seq and end.hash != have.hash:
                raise CheckFailed(f"copy: the destination has diverged from the source at or before seq {have.seq}")
            if ev["seq"] == have.seq and end is None:
                raise CheckFailed(f"copy: the destination has diverged from the source: it ends at seq {have.seq}, "
                                  "inside one of the source's batches")
            continue
        batch.append(ev)
        if end is None:
            continue
        yield _encode(batch), end
        batch = []


def _encode(batch: list[dict[str, Any]]) -> bytes:
    lines = []
    for ev in batch:
        line, digest = encode_line({k: v for k, v in ev.items() if k != "hash"})
        if digest != ev["hash"]:
            raise CorruptLogError(ev["seq"], "its stored bytes are not canonical; copy would change them")
        lines.append(line)
    return b"".join(lines)

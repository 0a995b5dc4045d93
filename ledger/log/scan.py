"""Reading the log: the one place that decides what is committed, torn or corrupt.

Every reader (read, verify, build, a writer catching up, repair) goes through a scan, so
the rules of docs/FORMAT.md §4 live here once: `check_line` verifies one line and
`check_batch_start` / `check_batch_line` its place in a batch. `LogScanner` applies them to
a byte stream (the local `events.jsonl`): a complete batch is committed; after the last one,
complete lines of a batch still short of its `txn` size, plus any bytes after the last
`\n`, are the tail (possibly a writer's batch in flight); anything else that fails is
corruption at a named seq. `BatchScanner` applies them to stores that keep each batch as
one blob (memory, object storage), where a short batch cannot be in flight: it is corrupt.
"""

from __future__ import annotations

from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any, Iterable, Iterator, NamedTuple, Protocol

from orjson import JSONDecodeError, loads

from .codec import HASH_KEY, HASH_SUFFIX_LEN
from ..errors import CorruptLogError

CHUNK = 8 << 20


class Position(NamedTuple):
    """A batch boundary in the log: last seq, its hash and `at`, and where the log continues.

    `cursor` is opaque outside the store that made it (a byte offset in `events.jsonl`, a batch
    count, an object key): a JSON scalar that only that store interprets. A named tuple, not a
    dataclass: an append builds two, and a frozen dataclass costs 1.4 us each.
    """

    seq: int
    hash: str
    cursor: Any
    at: str = ""


@dataclass(frozen=True)
class Tail:
    """What lies after the last complete batch: not (yet) committed."""

    bytes: int = 0
    lines: int = 0  # complete lines of an incomplete batch


NO_TAIL = Tail()


def check_line(line: bytes, seq: int, prev: str) -> dict[str, Any]:
    """Verify one complete line (without `\n`) as event `seq` after `prev`; return the object.

    This is the hot loop of every replay: one slice, one sha256, one orjson.loads. The
    stored hash is compared as bytes, and the object's own `hash` key must agree with it.
    """
    n = len(line)
    cut = n - HASH_SUFFIX_LEN
    if cut < 1 or not line.startswith(HASH_KEY, cut) or not line.endswith(b'"}'):
        raise CorruptLogError(seq, 'line does not end with the ,"hash":"<hex>"} layout')
    stored = line[n - 66 : n - 2]
    try:
        obj = loads(line)
    except JSONDecodeError:
        raise CorruptLogError(seq, "line is not valid JSON") from None
    if type(obj) is not dict:
        raise CorruptLogError(seq, "line is not a JSON object")
    if obj.get("seq") != seq:
        raise CorruptLogError(seq, f"expected seq {seq}, found {obj.get('seq')!r}")
    if obj.get("prev") != prev:
        raise CorruptLogError(seq, "prev does not match the previous event's hash")
    if sha256(b"%b%b}" % (prev.encode(), line[:cut])).hexdigest().encode() != stored or obj["hash"].encode() != stored:
        raise CorruptLogError(seq, "hash does not match the event's bytes")
    return obj


def closes_batch(line: bytes, pos: Position) -> bool:
    """Is this complete line event `pos.seq` with `pos.hash` and `pos.at`, the last of its batch?

    What "a checkpoint matches the log" means, for every store.
    """
    try:
        obj = loads(line)
        if not isinstance(obj, dict) or not isinstance(obj.get("prev"), str):
            return False
        check_line(line, pos.seq, obj["prev"])
    except (JSONDecodeError, CorruptLogError):
        return False
    txn = obj.get("txn")
    return (obj["hash"] == pos.hash and obj.get("at") == pos.at and isinstance(txn, list) and len(txn) == 2
            and isinstance(txn[0], int) and isinstance(txn[1], int) and txn[0] + txn[1] - 1 == pos.seq)


def check_batch_start(obj: dict[str, Any], seq: int) -> tuple[int, int]:
    """The `txn` of the first line of a batch, event `seq`: (first, size), first == seq."""
    txn = obj.get("txn")
    if not (isinstance(txn, list) and len(txn) == 2 and txn[0] == seq
            and isinstance(txn[1], int) and txn[1] >= 1):
        raise CorruptLogError(seq, f"txn {txn!r} does not start a batch at seq {seq}")
    return txn[0], txn[1]


def check_batch_line(obj: dict[str, Any], seq: int, first: int, size: int) -> None:
    """A later line of batch [first, size] carries that same `txn`."""
    txn = obj.get("txn")
    if type(txn) is not list or len(txn) != 2 or txn[0] != first or txn[1] != size:
        raise CorruptLogError(seq, f"txn {txn!r} breaks batch [{first}, {size}]")


class LogScan(Protocol):
    """One pass over the committed events after a batch boundary (what `LogStore.scan` returns).

    After the pass, `end` is the position after the last complete batch and `tail` what
    follows it (never yielded).
    """

    end: Position
    tail: Tail

    def events(self) -> Iterator[tuple[dict[str, Any], Position | None]]:
        """Committed events one by one, each once its own line is verified; the event that
        closes a batch comes with the batch's end (also in `end` by then), others with None.

        A batch is streamed only when all of its lines are present, so a consumer never sees
        the tail; but a later line of the same batch may still turn out corrupt and raise,
        and then whatever the consumer did with the batch's earlier events must be discarded.
        """
        ...

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        """Whole batches, each yielded only once every line of it is verified."""
        ...


class _Batches:
    """`__iter__` of a scan, from its `events()`."""

    def events(self) -> Iterator[tuple[dict[str, Any], Position | None]]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        batch: list[dict[str, Any]] = []
        for obj, end in self.events():
            batch.append(obj)
            if end is not None:
                yield batch
                batch = []


class NothingNew:
    """The scan of a log that has nothing after `start` (a store knows this from one stat)."""

    def __init__(self, start: Position) -> None:
        self.end = start
        self.tail = NO_TAIL

    def events(self) -> Iterator[tuple[dict[str, Any], Position | None]]:
        return iter(())

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        return iter(())


class LogScanner(_Batches):
    """Iterate the committed batches of a log from a known batch boundary.

    After iteration, `end` is the position after the last complete batch and `tail` what
    follows it. `stop_after` ends the scan once the batch holding that seq is complete.
    """

    def __init__(self, path: Path, start: Position, stop_after: int | None = None) -> None:
        self.path = path
        self.end = start
        self.tail = Tail()
        self.stop_after = stop_after

    def events(self) -> Iterator[tuple[dict[str, Any], Position | None]]:
        """See `LogScan.events`. The cursor is the byte offset after the batch. Streaming
        instead of collecting the batch is what keeps a replay from holding 10,000 decoded
        events at a time (that cost 1.6 us/event in cache misses).

        Bytes past the last complete batch may change between two reads: a writer recovering
        from a crash cuts a torn tail and appends a new batch where it was, so the next read,
        which continues at the old end, lands inside the new batch. A line joined from two
        reads (a *seam*) is therefore checked before any event of its batch is yielded; if it
        fails, the scan starts again from the last complete batch (at most `_RESCANS` times
        in a row) instead of reporting bytes that were never one line as corruption. If it
        keeps failing, a last scan without the seam check reports the first bad seq in order.
        """
        with open(self.path, "rb") as f:
            rescans = 0
            while True:
                try:
                    for item in self._scan(f, check_seams=rescans < _RESCANS):
                        if item[1] is not None:
                            rescans = 0
                        yield item
                    return
                except _SeamFailed:
                    rescans += 1

    def _scan(self, f: Any, check_seams: bool) -> Iterator[tuple[dict[str, Any], Position | None]]:
        f.seek(self.end.cursor)
        seq, prev, offset = self.end.seq, self.end.hash, self.end.cursor
        lines: list[bytes] = []
        seams: list[int] = []  # indexes in `lines` of lines joined from two reads
        i = 0
        rest = b""
        eof = False
        while True:
            if i == len(lines):
                chunk = b"" if eof else f.read(CHUNK)
                if not chunk:
                    self.tail = Tail(bytes=len(rest))
                    return
                seams = [0] if rest else []
                lines = (rest + chunk).split(b"\n")
                rest = lines.pop()
                i = 0
                continue
            if check_seams and seams and seams[0] == i:
                _check_seam(lines, i, seq, prev)
            obj = check_line(lines[i], seq + 1, prev)
            first, size = check_batch_start(obj, seq + 1)
            while len(lines) - i < size and not eof:
                chunk = f.read(CHUNK)
                eof = not chunk
                more = (rest + chunk).split(b"\n")
                seams = [j - i for j in seams if j >= i] + ([len(lines) - i] if chunk else [])
                rest = more.pop()
                lines = lines[i:] + more
                i = 0
            complete = len(lines) - i >= size
            stop = i + size if complete else len(lines)
            for j in seams if check_seams else ():
                if i < j < stop:
                    _check_seam(lines, j, seq + j - i, lines[j - 1][-66:-2].decode("ascii", "replace"))
            batch_bytes = 0
            for k in range(i, stop):
                line = lines[k]
                seq += 1
                if k != i:
                    obj = check_line(line, seq, prev)
                    check_batch_line(obj, seq, first, size)
                prev = obj["hash"]
                batch_bytes += len(line) + 1
                if not complete:
                    continue
                if seq == first + size - 1:
                    offset += batch_bytes
                    self.end = Position(seq, prev, offset, obj.get("at", ""))
                    yield obj, self.end
                else:
                    yield obj, None
            if not complete:
                self.tail = Tail(bytes=batch_bytes + len(rest), lines=len(lines) - i)
                return
            i += size
            seams = [j for j in seams if j >= i]
            if self.stop_after is not None and seq >= self.stop_after:
                return


#: how many times in a row a scan starts again from the last complete batch when a line
#: joined from two reads fails (each time means the file changed under it once more)
_RESCANS = 3


class _SeamFailed(Exception):
    """A line joined from two reads failed its check: the bytes may never have been one line."""


def _check_seam(lines: list[bytes], j: int, seq: int, prev: str) -> None:
    """Check line `j`, which should be event `seq + 1` after `prev`, joined from two reads."""
    try:
        check_line(lines[j], seq + 1, prev)
    except CorruptLogError:
        raise _SeamFailed() from None


class BatchScanner(_Batches):
    """Iterate the committed batches of a store that keeps each batch as one blob.

    `blobs` yields (cursor after the batch, the batch's lines) in log order, starting just
    after `start`. Such a store writes a batch whole or not at all, so it has no tail: a blob
    that is not exactly one complete batch is corruption at its first bad seq.
    """

    def __init__(self, blobs: Iterable[tuple[Any, bytes]], start: Position, stop_after: int | None = None) -> None:
        self.blobs = blobs
        self.end = start
        self.tail = Tail()
        self.stop_after = stop_after

    def events(self) -> Iterator[tuple[dict[str, Any], Position | None]]:
        seq, prev = self.end.seq, self.end.hash
        for cursor, blob in self.blobs:
            lines = blob.split(b"\n")
            if lines.pop() != b"":
                raise CorruptLogError(seq + 1 + len(lines), "batch does not end with a complete line")
            if not lines:
                raise CorruptLogError(seq + 1, "empty batch")
            first = size = 0
            for k, line in enumerate(lines):
                seq += 1
                obj = check_line(line, seq, prev)
                if k == 0:
                    first, size = check_batch_start(obj, seq)
                else:
                    check_batch_line(obj, seq, first, size)
                prev = obj["hash"]
                if k == len(lines) - 1:
                    if seq != first + size - 1:
                        raise CorruptLogError(seq + 1, f"batch [{first}, {size}] holds only {len(lines)} events")
                    self.end = Position(seq, prev, cursor, obj.get("at", ""))
                    yield obj, self.end
                elif seq == first + size - 1:
                    raise CorruptLogError(seq + 1, f"batch [{first}, {size}] holds more than {size} events")
                else:
                    yield obj, None
            if self.stop_after is not None and seq >= self.stop_after:
                return

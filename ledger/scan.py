"""Reading the log: the one place that decides what is committed, torn or corrupt.

Every reader (read, verify, build, a writer catching up, repair) goes through `LogScanner`,
so the rules of docs/FORMAT.md §4 live in one function: a complete batch is committed;
after the last one, complete lines of a batch still short of its `txn` size, plus any bytes
after the last `\n`, are the tail (possibly a writer's batch in flight); anything else that
fails is corruption at a named seq.
"""

from __future__ import annotations

from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from orjson import JSONDecodeError, loads

from .codec import HASH_SUFFIX_LEN
from .errors import CorruptLogError

CHUNK = 8 << 20


@dataclass(frozen=True)
class Position:
    """A batch boundary in the log: last seq, its hash and `at`, and the byte offset after it."""

    seq: int
    hash: str
    offset: int
    at: str = ""


@dataclass(frozen=True)
class Tail:
    """What lies after the last complete batch: not (yet) committed."""

    bytes: int = 0
    lines: int = 0  # complete lines of an incomplete batch


def check_line(line: bytes, seq: int, prev: str) -> dict[str, Any]:
    """Verify one complete line (without `\n`) as event `seq` after `prev`; return the object.

    This is the hot loop of every replay: one slice, one sha256, one orjson.loads. The
    stored hash is compared as bytes, and the object's own `hash` key must agree with it.
    """
    n = len(line)
    cut = n - HASH_SUFFIX_LEN
    if cut < 1 or line[cut : cut + 9] != b',"hash":"' or line[n - 2 :] != b'"}':
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
    if sha256(prev.encode() + line[:cut] + b"}").hexdigest().encode() != stored or obj["hash"].encode() != stored:
        raise CorruptLogError(seq, "hash does not match the event's bytes")
    return obj


class LogScanner:
    """Iterate the committed batches of a log from a known batch boundary.

    After iteration, `end` is the position after the last complete batch and `tail` what
    follows it. `stop_after` ends the scan once the batch holding that seq is complete.
    """

    def __init__(self, path: Path, start: Position, stop_after: int | None = None) -> None:
        self.path = path
        self.end = start
        self.tail = Tail()
        self.stop_after = stop_after

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        with open(self.path, "rb") as f:
            yield from self._batches(f)

    def _batches(self, f: BinaryIO) -> Iterator[list[dict[str, Any]]]:
        f.seek(self.end.offset)
        seq, prev, offset = self.end.seq, self.end.hash, self.end.offset
        batch: list[dict[str, Any]] = []
        first = size = 0
        batch_bytes = 0
        rest = b""
        while True:
            chunk = f.read(CHUNK)
            if not chunk:
                break
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                seq += 1
                obj = check_line(line, seq, prev)
                txn = obj.get("txn")
                if not batch:
                    if not (isinstance(txn, list) and len(txn) == 2 and txn[0] == seq
                            and isinstance(txn[1], int) and txn[1] >= 1):
                        raise CorruptLogError(seq, f"txn {txn!r} does not start a batch at seq {seq}")
                    first, size = txn
                elif type(txn) is not list or len(txn) != 2 or txn[0] != first or txn[1] != size:
                    raise CorruptLogError(seq, f"txn {txn!r} breaks batch [{first}, {size}]")
                batch.append(obj)
                batch_bytes += len(line) + 1
                prev = obj["hash"]
                if seq == first + size - 1:
                    offset += batch_bytes
                    self.end = Position(seq, prev, offset, obj.get("at", ""))
                    done, batch, batch_bytes = batch, [], 0
                    yield done
                    if self.stop_after is not None and seq >= self.stop_after:
                        return
        self.tail = Tail(bytes=batch_bytes + len(rest), lines=len(batch))

"""The log as an Arrow table: `Ledger.to_arrow` and `cohort-ledger log --format parquet`.

One row per committed event, for analysis in pandas, polars or DuckDB without going through
the projections. The rows are what `Ledger.read` yields, field for field, and they come from
the same verified scan (ledger/log/scan.py): a corrupt line raises `CorruptLogError` naming
its seq, and the tail is never returned. On a long local log the scan runs on two cores
(`LogStore.scan_in_halves`); the table is the one-pass scan's either way.

Columns (docs/FORMAT.md §3.1 for the envelope):

- `seq` int64, `id` string, `type` string, `v` int64 (as stored; `data` is upcast, as `read`
  returns it), `at` timestamp[us, UTC], `txn` fixed_size_list<int64>[2] (first seq, size),
  `prev` and `hash` string (64 hex);
- `by` and `data`: JSON text, canonical (orjson, sorted keys, no whitespace: the encoding the
  chain hashes), so they are lossless whatever keys a payload version adds; query them with
  DuckDB's `data->>'$.template_id'` or polars' `str.json_path_match`;
- `cohort_id`, `stage`, `gen_id`: the payload fields most queries group or filter on, copied
  out of `data` (null where the payload has no such key).

pyarrow is imported here, and this module only when used (`Ledger.to_arrow`, `log --format
parquet`): `import ledger` stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from ..domain.events import upcast
from ..errors import CorruptLogError
from ..log.codec import canonical
from ..log.fsio import atomic_write
from ..log.parquet import parquet_bytes
from ..log.perf import paused_gc
from ..log.scan import LogScan
from .out_file import check_out_file
from .replay import check_envelope_keys

if TYPE_CHECKING:
    from .service import Ledger

#: events converted to Arrow at a time (see `scan_table`)
CHUNK_ROWS = 8192
#: payload keys copied into columns of their own (each a string wherever it is present)
FLATTENED = ("cohort_id", "stage", "gen_id")

SCHEMA = pa.schema([
    ("seq", pa.int64()), ("id", pa.string()), ("type", pa.string()), ("v", pa.int64()),
    ("at", pa.timestamp("us", tz="UTC")), ("by", pa.string()), ("txn", pa.list_(pa.int64(), 2)),
    ("data", pa.string()), ("prev", pa.string()), ("hash", pa.string()),
    *((name, pa.string()) for name in FLATTENED),
])


def log_table(ledger: Ledger, from_seq: int = 1, to_seq: int | None = None) -> pa.Table:
    """`Ledger.to_arrow`: the committed events from_seq..to_seq (inclusive) as one table."""
    start = ledger.read_start(from_seq)
    with paused_gc():  # a million rows of Python values, no cycles among them
        halves = ledger.store.scan_in_halves(start, scan_table, stop_after=to_seq)
        if halves is None:
            table = scan_table(ledger.store.scan(start, stop_after=to_seq))
        else:
            table = pa.concat_tables(halves)
    # the scan starts at a batch boundary at or before from_seq and ends with the batch
    # holding to_seq; its rows are consecutive seqs, so the range is a slice
    first = max(from_seq, start.seq + 1)
    return table.slice(first - start.seq - 1, None if to_seq is None else max(0, to_seq - first + 1))


def scan_table(scan: LogScan) -> pa.Table:
    """Every event a scan commits, as rows of `SCHEMA` (what one core does with one half).

    Converted CHUNK_ROWS events at a time: the Python values of a chunk are dropped once
    Arrow holds them, so the next chunk reuses their memory instead of growing the heap by
    millions of strings (holding them all took 3 GiB of RSS instead of 0.45 for 300,000
    events, and 10% more time, in our measurements).
    """
    envelopes = (ev for ev, _ in scan.events())
    chunks = []
    while chunk := list(islice(envelopes, CHUNK_ROWS)):
        chunks.append(rows_batch(chunk))
    return pa.Table.from_batches(chunks, SCHEMA)


#: the envelope keys Arrow converts straight from the decoded dicts (the `at` text cast after)
_ENVELOPE = pa.struct([("seq", pa.int64()), ("id", pa.string()), ("type", pa.string()), ("v", pa.int64()),
                       ("at", pa.string()), ("txn", pa.list_(pa.int64(), 2)), ("prev", pa.string()),
                       ("hash", pa.string())])
#: the payload keys copied out, converted the same way
_PAYLOAD = pa.struct([(name, pa.string()) for name in FLATTENED])
_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError)


def rows_batch(envelopes: list[dict[str, Any]]) -> pa.RecordBatch:
    """Committed envelopes (as a scan yields them, in seq order) as rows of `SCHEMA`.

    Arrow reads the envelope's scalar keys and the flattened payload keys out of the
    decoded dicts itself (one struct conversion each, in C); Python only checks the keys,
    upcasts the payload and encodes `by` and `data` as canonical JSON. Against appending to
    a list per column in Python, that saved about 2 of 11 us per event, scan included.
    """
    for ev in envelopes:
        check_envelope_keys(ev)
    datas = [upcast(ev["type"], ev["v"], ev["data"], ev["seq"]) for ev in envelopes]
    try:
        head = pa.array(envelopes, _ENVELOPE)
        payload = pa.array([data if type(data) is dict else {} for data in datas], _PAYLOAD)
    except _ARROW_ERRORS:
        raise _first_bad_value(envelopes, datas) from None
    seqs = head.field("seq")
    columns = [seqs, head.field("id"), head.field("type"), head.field("v"), _times(head.field("at"), seqs),
               pa.array([canonical(ev["by"]) for ev in envelopes], pa.string()), head.field("txn"),
               pa.array([canonical(data) for data in datas], pa.string()), head.field("prev"),
               head.field("hash"), *(payload.field(name) for name in FLATTENED)]
    return pa.RecordBatch.from_arrays(columns, schema=SCHEMA)


def _first_bad_value(envelopes: list[dict[str, Any]], datas: list[Any]) -> CorruptLogError:
    """The corruption behind a failed conversion: the first value (in seq order, then column
    order) Arrow cannot hold as its column's type. A foreign writer's line can carry any JSON;
    the scan checked seq, txn, prev and hash, and `upcast` checked v."""
    for ev, data in zip(envelopes, datas):
        row = [(name, ev[name]) for name in ("id", "type", "at")]
        row += [(name, data.get(name)) for name in FLATTENED] if type(data) is dict else []
        for name, value in row:
            try:
                pa.array([value], pa.string())
            except _ARROW_ERRORS:
                return CorruptLogError(ev["seq"], f"{name} {value!r} is not a string")
    return CorruptLogError(envelopes[0]["seq"], "the batch does not convert to Arrow")


def _times(text: pa.Array, seqs: pa.Array) -> pa.Array:
    """`at` as UTC timestamps. Arrow parses the RFC 3339 text in C; an `at` it cannot parse is
    corruption at its seq (the fold refuses it too, as not an RFC 3339 time)."""
    try:
        return text.cast(pa.timestamp("us", tz="UTC"))
    except pa.ArrowInvalid:
        for seq, value in zip(seqs.to_pylist(), text.to_pylist()):
            try:
                pa.array([value]).cast(pa.timestamp("us", tz="UTC"))
            except pa.ArrowInvalid:
                raise CorruptLogError(seq, f"at {value!r} is not an RFC 3339 time") from None
        raise


@dataclass(frozen=True)
class ParquetExport:
    """What `write_parquet` wrote: the rows, the last seq among them (0 when none), the file."""

    events: int
    last_seq: int
    out: str
    bytes: int


def filtered(table: pa.Table, types: Sequence[str] = (), cohort: str | None = None) -> pa.Table:
    """The rows of some event types and/or naming one cohort in their payload (`log --type`,
    `--cohort`: the `cohort_id` column is the payload's `cohort_id`, null where it has none)."""
    if types:
        table = table.filter(pc.is_in(table["type"], pa.array(list(types), pa.string())))
    if cohort is not None:
        table = table.filter(pc.equal(table["cohort_id"], pa.scalar(cohort, pa.string())))
    return table


def write_parquet(ledger: Ledger, out: Path, from_seq: int = 1, to_seq: int | None = None,
                  types: Sequence[str] = (), cohort: str | None = None) -> ParquetExport:
    """The (filtered) log as one Parquet file at `out`, replaced atomically; nothing else is written.

    The bytes depend only on the log prefix and the pyarrow version (ledger.log.parquet): the
    same prefix exports to the same file.
    """
    check_out_file(ledger, out)
    table = filtered(ledger.to_arrow(from_seq, to_seq), types, cohort)
    data = parquet_bytes(table)
    atomic_write(out, data)
    last = table["seq"][-1].as_py() if table.num_rows else 0
    return ParquetExport(table.num_rows, last, str(out), len(data))

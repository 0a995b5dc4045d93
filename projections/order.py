"""The one row order every projection uses: (leading keys,) configured stage order, gen_id.

Sorting happens in Arrow on code points of UTF-8 bytes, so it depends on nothing of the
machine (no locale collation, no hash seed); gen_id is unique per stage, so there are no
ties whose order could vary. `merged` puts a few new rows into a table already in that
order without sorting it again (what an incremental build patches with, projections/patch.py).
"""

from __future__ import annotations

import bisect
from typing import Any, Iterable, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from .arrays import array


def _ranks(table: pa.Table, stages: Sequence[str]) -> pa.Array | pa.ChunkedArray:
    return pc.index_in(table.column("stage"), value_set=array(list(stages), pa.string()))


def sorted_by_stage(table: pa.Table, stages: Sequence[str], leading: tuple[str, ...]) -> pa.Table:
    """`table` sorted by `leading` columns, then the stage's rank in `stages` (the ledger
    config's order), then gen_id."""
    keyed = table.append_column("__rank", _ranks(table, stages))
    order = pc.sort_indices(keyed, sort_keys=[*((c, "ascending") for c in leading),
                                              ("__rank", "ascending"), ("gen_id", "ascending")])
    return table.take(order)


def _span(table: pa.Table, stages: Sequence[str], leading: tuple[str, ...], key: tuple[Any, ...]) -> tuple[int, int]:
    """The rows [start, stop) of a sorted table whose (leading..., stage rank) is `key`: two
    binary searches reading a few dozen values, not a pass over the table."""
    rank = {stage: i for i, stage in enumerate(stages)}
    columns = [table.column(c) for c in leading]
    stage = table.column("stage")

    def at(row: int) -> tuple[Any, ...]:
        return (*(col[row].as_py() for col in columns), rank[stage[row].as_py()])

    rows = range(table.num_rows)
    return bisect.bisect_left(rows, key, key=at), bisect.bisect_right(rows, key, key=at)


def leading_span(table: pa.Table, column: str, value: str) -> tuple[int, int]:
    """The rows [start, stop) of a table sorted by `column` first whose `column` is `value`."""
    values = table.column(column)

    def at(row: int) -> str:
        found: str = values[row].as_py()
        return found

    rows = range(table.num_rows)
    return bisect.bisect_left(rows, value, key=at), bisect.bisect_right(rows, value, key=at)


def merged(base: pa.Table, extra: pa.Table, stages: Sequence[str], leading: tuple[str, ...],
           dropped: Iterable[int] = ()) -> pa.Table:
    """`base` (already `sorted_by_stage`) without its rows `dropped`, with the rows of `extra`
    (same schema, no key in common with the rows kept) put where `sorted_by_stage` would put
    them: the table it gives for both together, at the cost of sorting `extra`, binary searches
    in the groups of `base` that receive rows and one `take`, instead of sorting everything."""
    extra = sorted_by_stage(extra, stages, leading)
    columns = [extra.column(c).to_pylist() for c in leading]
    ranks = _ranks(extra, stages).to_pylist()
    gen_ids = extra.column("gen_id").to_pylist()
    gen_column = base.column("gen_id")
    groups: dict[tuple[Any, ...], tuple[int, list[str]]] = {}  # key -> (start, its gen ids)
    n = base.num_rows
    # (row of base, 0 = insert extra row i before it | 1 = leave it out, i)
    cuts: list[tuple[int, int, int]] = [(row, 1, 0) for row in dropped]
    for i, gen_id in enumerate(gen_ids):
        key = (*(col[i] for col in columns), ranks[i])
        if key not in groups:
            start, stop = _span(base, stages, leading, key)
            groups[key] = (start, gen_column.slice(start, stop - start).to_pylist())
        start, group = groups[key]
        cuts.append((start + bisect.bisect_left(group, gen_id), 0, i))
    if not cuts:
        return base
    cuts.sort()
    order: list[int] = []
    done = 0
    for row, leave_out, i in cuts:
        order.extend(range(done, row))
        if leave_out:
            done = row + 1
        else:
            order.append(n + i)
            done = row
    order.extend(range(done, n))
    indices = array(order, pa.int64())
    # column by column, from one contiguous array each: a take across the two chunks of
    # concat_tables locates every index's chunk, which costs more than concatenating first
    both = pa.concat_tables([base, extra])
    return pa.Table.from_arrays([pa.concat_arrays(column.chunks).take(indices) for column in both.columns],
                                schema=base.schema)

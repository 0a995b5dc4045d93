"""The one row order every projection uses: (leading keys,) configured stage order, gen_id.

Sorting happens in Arrow on code points of UTF-8 bytes, so it depends on nothing of the
machine (no locale collation, no hash seed); gen_id is unique per stage, so there are no
ties whose order could vary.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from ledger.domain.state import State


def sorted_by_stage(table: pa.Table, state: State, leading: tuple[str, ...]) -> pa.Table:
    """`table` sorted by `leading` columns, then the stage's rank in the ledger config, then gen_id."""
    stages = pa.array(state.config.stages, pa.string())
    rank = pc.index_in(table.column("stage"), value_set=stages)
    keyed = table.append_column("__rank", rank)
    order = pc.sort_indices(keyed, sort_keys=[*((c, "ascending") for c in leading),
                                              ("__rank", "ascending"), ("gen_id", "ascending")])
    return table.take(order)

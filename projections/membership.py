"""`membership.parquet` and the slim `cohorts/<cohort_id>/membership.csv` files.

Both come from one table of active memberships sorted by cohort, stage order, gen_id, so
each cohort's CSV is a contiguous slice of it.
"""

from __future__ import annotations

from operator import attrgetter

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ledger.domain.projection_files import cohort_csv_path
from ledger.domain.state import State

from .order import sorted_by_stage

MEMBERSHIP_SCHEMA = pa.schema([
    pa.field("cohort_id", pa.string(), nullable=False),
    pa.field("stage", pa.string(), nullable=False),
    pa.field("gen_id", pa.string(), nullable=False),
    pa.field("origin_cohort_id", pa.string(), nullable=False),
    pa.field("reused", pa.bool_(), nullable=False),
    pa.field("added_seq", pa.int64(), nullable=False),
])
CSV_COLUMNS = ("stage", "gen_id", "cohort_id")
#: written by us, not pyarrow, which would quote the names; the pipeline's files have none
CSV_HEADER = (",".join(CSV_COLUMNS) + "\n").encode("ascii")
_CSV_OPTIONS = pacsv.WriteOptions(include_header=False, quoting_style="none")


def membership_table(state: State) -> pa.Table:
    """One row per active (cohort, gen)."""
    gens = state.generations
    cohort_ids: list[str] = []
    gen_ids: list[str] = []
    added: list[int] = []
    for cohort in state.cohorts.values():
        cohort_ids.extend([cohort.cohort_id] * len(cohort.members))
        gen_ids.extend(cohort.members)
        added.extend(cohort.members.values())
    members = list(map(gens.__getitem__, gen_ids))
    cohorts = pa.array(cohort_ids, pa.string())
    origins = pa.array(list(map(attrgetter("origin_cohort_id"), members)), pa.string())
    table = pa.Table.from_arrays([
        cohorts,
        pa.array(list(map(attrgetter("stage"), members)), pa.string()),
        pa.array(gen_ids, pa.string()),
        origins,
        pc.not_equal(origins, cohorts),
        pa.array(added, pa.int64()),
    ], schema=MEMBERSHIP_SCHEMA)
    return sorted_by_stage(table, state, ("cohort_id",))


def cohort_csvs(state: State, membership: pa.Table) -> dict[str, bytes]:
    """`cohorts/<id>/membership.csv` -> bytes, for every cohort the ledger knows: opened, or
    given a member at some point. One with no active member gets the header only, which the
    pipeline's readers take for an empty cohort (no file would be "data missing").

    `membership` must be `membership_table(state)`: sorted by cohort_id first.
    """
    sizes = {c.cohort_id: len(c.members) for c in state.cohorts.values()}
    slim = membership.select(list(CSV_COLUMNS))
    out: dict[str, bytes] = {}
    offset = 0
    for cohort_id in sorted(sizes):
        n = sizes[cohort_id]
        body = b""
        if n:
            sink = pa.BufferOutputStream()
            pacsv.write_csv(slim.slice(offset, n), sink, _CSV_OPTIONS)
            body = sink.getvalue().to_pybytes()
        out[cohort_csv_path(cohort_id)] = CSV_HEADER + body
        offset += n
    return out

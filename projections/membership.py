"""`membership.parquet` and the slim `cohorts/<cohort_id>/membership.csv` files.

Both come from one table of active memberships sorted by cohort, stage order, gen_id, so
each cohort's CSV is a contiguous slice of it.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ledger.domain.projection_files import cohort_csv_path
from ledger.domain.state import Generation, State

from .arrays import array
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


def membership_rows(cohort_ids: Sequence[str], members: Sequence[Generation], added: Sequence[int]) -> pa.Table:
    """One row per (cohort_ids[i], members[i]) added at added[i], in that order (unsorted)."""
    cohorts = array(cohort_ids, pa.string())
    origins = array(list(map(attrgetter("origin_cohort_id"), members)), pa.string())
    return pa.Table.from_arrays([
        cohorts,
        array(list(map(attrgetter("stage"), members)), pa.string()),
        array(list(map(attrgetter("gen_id"), members)), pa.string()),
        origins,
        pc.not_equal(origins, cohorts),
        array(added, pa.int64()),
    ], schema=MEMBERSHIP_SCHEMA)


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
    table = membership_rows(cohort_ids, list(map(gens.__getitem__, gen_ids)), added)
    return sorted_by_stage(table, state.config.stages, ("cohort_id",))


def active_counts(state: State) -> dict[str, int]:
    """Every cohort the ledger knows (opened, or given a member at some point) -> its active members."""
    return {c.cohort_id: len(c.members) for c in state.cohorts.values()}


def cohort_csvs(sizes: Mapping[str, int], membership: pa.Table) -> dict[str, bytes]:
    """`cohorts/<id>/membership.csv` -> bytes, for every cohort of `sizes` (cohort -> its
    number of rows). One with no active member gets the header only, which the pipeline's
    readers take for an empty cohort (no file would be "data missing").

    `membership` must hold exactly the rows of those cohorts, sorted by cohort_id first
    (`membership_table`, or a slice of it).
    """
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

"""Parquet bytes with every writer option pinned: the one Parquet encoder of the project.

The projections (manifest, membership) and the Arrow export of the log (`log --format
parquet`) both promise byte-identical files for the same log prefix, so both write through
here. The same pyarrow install gives the same bytes: the footer's `created_by` is
"parquet-cpp-arrow version <pyarrow version>", and the only key-value metadata is
ARROW:schema (the caller's explicit schema); neither holds a time or a host. pyarrow is
imported when a file is written, not with this module: a build with nothing to do never
loads it.
"""

from __future__ import annotations

from typing import Any

PARQUET_OPTIONS: dict[str, Any] = {
    "version": "2.6",
    "data_page_version": "1.0",
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "write_page_index": False,
    # row groups of 64k rows: a reader asking for one cohort or one gen (CohortScope) skips the
    # groups whose min/max statistics exclude it (projection rows are sorted by cohort, stage,
    # gen_id; the log's rows by seq)
    "row_group_size": 1 << 16,
    "data_page_size": 1 << 20,
    "store_schema": True,
}


def parquet_bytes(table: Any) -> bytes:
    """`table` (a pyarrow.Table) as one Parquet file, in memory (the caller writes it atomically).

    The table's chunking does not reach the file (pages and row groups are cut by size and
    row count): a table assembled from two halves of the log, in chunks, gives the bytes of
    the same rows built in one pass (tests/test_arrow_log.py checks it).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **PARQUET_OPTIONS)
    data: bytes = sink.getvalue().to_pybytes()
    return data

"""Writing projection files: fixed encodings, atomic replacement, and file ownership.

The out dir may be shared (`--out data/` puts our CSVs beside the pipeline's `spec/` and
`reports/`), so a build removes only files that `_projection.json` says it wrote -- by
name and sha256 -- and that still hold those bytes: it writes the files of the new state,
then removes files an earlier build wrote that the new state no longer has. A file someone
else has since replaced, or a name outside our own patterns, is never removed. Before
writing a file it did not own yet, a build first records the union of old and new, so a
crash mid-build never leaves a file of ours that the next build would take for someone
else's. Where the files go -- a directory or an object-store prefix -- and how each is
replaced whole is `targets.py`'s business.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from ledger.domain.ids import IDENTIFIER_PATTERN

from .targets import Target, sha256

OWNERSHIP_FILE = "_projection.json"
FORMAT = "cohort-ledger-projection"
VERSION = 1
#: the only paths a build ever writes or removes (a tampered ownership file can name no other)
_OURS = re.compile(r"manifest\.parquet|membership\.parquet|cohorts/" + IDENTIFIER_PATTERN[1:-1] + r"/membership\.csv")

#: Parquet writer options, all pinned: the same pyarrow install gives the same bytes. The
#: footer's `created_by` is "parquet-cpp-arrow version <pyarrow version>", and the only
#: key-value metadata is ARROW:schema (our explicit schema); neither holds a time or a host.
_PARQUET_OPTIONS: dict[str, Any] = {
    "version": "2.6",
    "data_page_version": "1.0",
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "write_page_index": False,
    "row_group_size": 1 << 20,
    "data_page_size": 1 << 20,
    "store_schema": True,
}


def parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **_PARQUET_OPTIONS)
    return sink.getvalue().to_pybytes()


@dataclass(frozen=True)
class Changes:
    """What a build did to the out dir (paths relative to it)."""

    written: list[str]
    unchanged: list[str]
    removed: list[str]


def owned(target: Target) -> dict[str, Any] | None:
    """The ownership record of the last build into `target`, or None (none, or unreadable).

    Its `files` maps each file the build wrote (relative path) to the sha256 of its bytes.
    """
    raw = target.read(OWNERSHIP_FILE)
    try:
        doc = orjson.loads(raw) if raw is not None else None
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("files"), dict):
        return None
    doc["files"] = {f: h for f, h in doc["files"].items() if _OURS.fullmatch(f) and isinstance(h, str)}
    return doc


def _record(seq: int | None, chain_hash: str | None, files: dict[str, str]) -> bytes:
    doc = {"format": FORMAT, "format_version": VERSION, "seq": seq, "hash": chain_hash, "files": dict(sorted(files.items()))}
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n"


def _put(target: Target, rel: str, data: bytes) -> None:
    """Replace `rel` with `data` unless it already holds exactly that."""
    if not target.holds(rel, data):
        target.write({rel: data})


def replace_files(target: Target, files: dict[str, bytes], seq: int, chain_hash: str) -> Changes:
    """Make `target` hold `files` (relative path -> bytes) and nothing else of ours."""
    for rel in files:
        if not _OURS.fullmatch(rel):
            raise ValueError(f"{rel} is not a projection file name")
    previous = owned(target)
    before: dict[str, str] = previous["files"] if previous else {}
    digests = {rel: sha256(data) for rel, data in files.items()}
    if not digests.keys() <= before.keys():
        _put(target, OWNERSHIP_FILE, _record(previous["seq"] if previous else None,
                                             previous["hash"] if previous else None, {**digests, **before}))
    written = [rel for rel in sorted(files) if not target.holds(rel, files[rel])]
    unchanged = [rel for rel in sorted(files) if rel not in written]
    target.write({rel: files[rel] for rel in written})
    removed = [rel for rel in sorted(before.keys() - digests.keys()) if target.remove(rel, before[rel])]
    _put(target, OWNERSHIP_FILE, _record(seq, chain_hash, digests))
    return Changes(written, unchanged, removed)

"""Writing projection files: fixed encodings, atomic replacement, and file ownership.

The out dir may be shared (`--out data/` puts our CSVs beside the pipeline's `spec/` and
`reports/`), so a build removes only files that `_projection.json` says it wrote -- by
name and sha256 -- and that still hold those bytes: it writes the files of the new state,
then removes files an earlier build wrote that the new state no longer has. A file someone
else has since replaced, or a name outside our own patterns, is never removed. Before
writing a file it did not own yet, a build first records the union of old and new, so a
crash mid-build never leaves a file of ours that the next build would take for someone
else's. Changed files are all staged (written and fsynced as temp files) before any is
renamed into place, so a build that runs out of space leaves the previous set whole.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from ledger import InvalidInputError
from ledger.domain.ids import IDENTIFIER_PATTERN
from ledger.log.file_store import RESERVED
from ledger.log.fsio import atomic_write, atomic_write_many, environment_error, fsync_dir

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


def check_out_dir(ledger_dir: Path, out: Path) -> None:
    """Refuse an out dir where our files could clobber the ledger's own."""
    ledger = ledger_dir.resolve()
    target = out.resolve()
    if target == ledger:
        raise InvalidInputError(f"--out {out} is the ledger directory itself; use another directory")
    for name in RESERVED:
        if target.is_relative_to(ledger / name):
            raise InvalidInputError(f"--out {out} is (inside) the ledger's {name}; use another directory")
    if target.exists() and not target.is_dir():
        raise InvalidInputError(f"--out {out} exists and is not a directory")


def owned(out: Path) -> dict[str, Any] | None:
    """The ownership record of the last build into `out`, or None (none, or unreadable).

    Its `files` maps each file the build wrote (relative path) to the sha256 of its bytes.
    """
    try:
        doc = orjson.loads((out / OWNERSHIP_FILE).read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return None
    except OSError as exc:
        raise environment_error(exc, f"reading {out / OWNERSHIP_FILE}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("files"), dict):
        return None
    doc["files"] = {f: h for f, h in doc["files"].items() if _OURS.fullmatch(f) and isinstance(h, str)}
    return doc


def _record(seq: int | None, chain_hash: str | None, files: dict[str, str]) -> bytes:
    doc = {"format": FORMAT, "format_version": VERSION, "seq": seq, "hash": chain_hash, "files": dict(sorted(files.items()))}
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _holds(path: Path, data: bytes) -> bool:
    """True if `path` already holds exactly `data`.

    Skipping identical files keeps an incremental build from rewriting (and fsyncing) every
    cohort's CSV, and leaves their mtimes alone for tools that watch them.
    """
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise environment_error(exc, f"reading {path}") from exc


def _make_parents(paths: Iterable[Path]) -> None:
    for parent in sorted({p.parent for p in paths}):
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise environment_error(exc, f"creating {parent}") from exc


def _put(path: Path, data: bytes) -> None:
    """Atomically replace `path` with `data` unless it already holds exactly that."""
    if not _holds(path, data):
        _make_parents([path])
        atomic_write(path, data)


def _remove(out: Path, rel: str, digest: str) -> bool:
    """Remove a file we wrote, unless its bytes are no longer the ones we wrote."""
    path = out / rel
    try:
        if _digest(path.read_bytes()) != digest:
            return False
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise environment_error(exc, f"removing {path}") from exc
    fsync_dir(path.parent)
    if rel.startswith("cohorts/"):
        try:
            path.parent.rmdir()  # only when empty: another tool's files in it stay
            fsync_dir(path.parent.parent)
        except OSError:
            pass
    return True


def replace_files(out: Path, files: dict[str, bytes], seq: int, chain_hash: str) -> Changes:
    """Make `out` hold `files` (relative path -> bytes) and nothing else of ours."""
    for rel in files:
        if not _OURS.fullmatch(rel):
            raise ValueError(f"{rel} is not a projection file name")
    previous = owned(out)
    before: dict[str, str] = previous["files"] if previous else {}
    digests = {rel: _digest(data) for rel, data in files.items()}
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise environment_error(exc, f"creating {out}") from exc
    if not digests.keys() <= before.keys():
        _put(out / OWNERSHIP_FILE, _record(previous["seq"] if previous else None,
                                           previous["hash"] if previous else None, {**digests, **before}))
    written = [rel for rel in sorted(files) if not _holds(out / rel, files[rel])]
    unchanged = [rel for rel in sorted(files) if rel not in written]
    _make_parents(out / rel for rel in written)
    atomic_write_many({out / rel: files[rel] for rel in written})
    removed = [rel for rel in sorted(before.keys() - digests.keys()) if _remove(out, rel, before[rel])]
    _put(out / OWNERSHIP_FILE, _record(seq, chain_hash, digests))
    return Changes(written, unchanged, removed)

"""An incremental build that patches the previous projection instead of folding the state.

Folding a million events into a `State` costs seconds even from a checkpoint (loading it
materialises every generation, membership and event id as Python objects). But the files of
the log at H differ from those at S, the seq the out dir's `_projection.json` reflects, only
in the rows the events S+1..H name: an event changes the manifest row of the gen it names,
the membership row of the (cohort, gen) it names, and besides those only the rename state
and the list of known cohorts. So this build

1. takes the out dir's lock, reads `_projection.json` and the two Parquet files it lists,
   checking their sha256 (else: a full render, `projections/build.py`);
2. catches the writers' index up to the log's end H in memory (`Ledger.index_at_end`, a
   read-only connection in the store's writing section; nothing is written to the index):
   that folds every event the index has not absorbed yet through the reference rules
   (`State.apply` over the index, ledger/app/facts.py), so a rule-breaking event is reported
   exactly as the fold reports it, and nothing is written;
3. scans the log from a batch boundary at or before S (`Ledger.read_start`: one the index
   recorded, else seq 1) to H, every line's chain verified, checks that (S, hash) closes a
   batch there, and collects the gen ids and (cohort, gen) pairs the events S+1..H name,
   then looks their rows as of H up in the caught-up index (the same facts as the reference
   state, tests/test_facts.py) before leaving the writing section;
4. checks the sha256 of the CSVs that stay, drops the rows of the named keys from the
   previous tables, adds their rows as of H, puts them in place without sorting again
   (`order.merged`), and renders again only the CSVs of the cohorts whose rows were named
   and of new cohorts; only files whose bytes changed are written.

The result is byte-identical to a full build of the same log (tests/test_patch.py checks it
against `build --full` on random logs and split points). Events S+1..index position were
checked by the writers that appended them (an index is never ahead of the rules it
applied), so the trust this adds is in `index/` and in the out dir: see docs/reliability.md.
Whenever something is not as expected, `patch` returns None and the caller renders in full.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ledger import Ledger
from ledger.app.facts import IndexedState
from ledger.domain.events import upcast
from ledger.domain.projection_files import MANIFEST_FILE, MEMBERSHIP_FILE, cohort_csv_path
from ledger.domain.state import METADATA_KEYS, Generation
from ledger.log.file_store import FileLogStore
from ledger.log.parquet import parquet_bytes
from ledger.log.scan import Position

from .arrays import array
from .files import Changes, OutDir, intact, locked_out, owned, projection_about, replace_locked, sha256_hex
from .manifest import manifest_rows, manifest_schema, renamed
from .membership import MEMBERSHIP_SCHEMA, cohort_csvs, membership_rows
from .order import leading_span, merged


@dataclass(frozen=True)
class Patched:
    """What a patched build reflects and did."""

    position: Position
    changes: Changes
    #: the seq of the projection it patched
    base_seq: int
    events: int


@dataclass
class _Named:
    """What the events S+1..H name."""

    gen_ids: set[str]
    #: cohort_id -> the gen ids named with it
    pairs: dict[str, set[str]]
    cohort_ids: set[str]
    #: (type, payload, None) of each, for `IndexedState.preload`
    events: list[tuple[str, dict[str, Any], str | None]]


@dataclass(frozen=True)
class _Base:
    """The previous projection, intact."""

    seq: int
    hash: str
    key_names: dict[str, tuple[str, ...]]
    cohorts: list[str]
    files: dict[str, str]
    manifest: pa.Table
    membership: pa.Table


def patch(ledger: Ledger, out_path: Path, lock_timeout: float) -> Patched | None:
    """Bring the projection in `out_path` to the log's end by patching it; None when it
    cannot be patched (no intact previous projection of this log, no writers' index, a store
    other than a directory: an object store's writers do not wait for the index's reader).
    Raises like a replay when an event past the projection breaks a rule or the chain."""
    if not isinstance(ledger.store, FileLogStore):  # whose writing section excludes every writer while it reads
        return None
    index = ledger.store.index_path()
    if index is None or not index.exists() or not out_path.is_dir():
        return None
    with locked_out(out_path, lock_timeout) as out:
        base = _base(out)
        if base is None:
            return None
        with ledger.index_at_end() as state:  # writers wait meanwhile: the index does not move
            if state is None:
                return None
            end = state.position
            named = _named(ledger, end, base)
            if named is None:
                return None
            rows = _rows(state, named)
        known = set(base.cohorts) | rows.cohorts
        redo = sorted((set(named.pairs) & known) | (known - set(base.cohorts)))
        kept = {rel: digest for rel, digest in base.files.items()
                if rel not in (MANIFEST_FILE, MEMBERSHIP_FILE, *map(cohort_csv_path, redo))}
        if not intact(out, {"files": kept}):  # a CSV someone changed: a full render puts it right
            return None
        files = _render(base, named, rows, redo, ledger.config.stages)
        changes = replace_locked(out, files, end.seq, end.hash, projection_about(rows.key_names, known), kept)
    return Patched(end, changes, base.seq, end.seq - base.seq)


def _base(out: OutDir) -> _Base | None:
    """The previous build's record and tables, if its Parquet files still hold the bytes it
    recorded (its CSVs are checked once it is known which of them stay)."""
    record = owned(out)
    if record is None or record["seq"] is None:
        return None
    names, cohorts, files = record.get("key_names"), record.get("cohorts"), record["files"]
    if (not isinstance(names, dict) or set(names) != set(METADATA_KEYS) or not isinstance(cohorts, list)
            or not all(isinstance(v, list) and v and all(isinstance(n, str) for n in v) for v in names.values())
            or not all(isinstance(c, str) for c in cohorts)):
        return None
    if set(files) != {MANIFEST_FILE, MEMBERSHIP_FILE, *map(cohort_csv_path, cohorts)}:
        return None

    def table(rel: str) -> pa.Table | None:
        data = out.read(rel)
        if data is None or sha256_hex(data) != files[rel]:
            return None
        return pq.ParquetFile(pa.BufferReader(data)).read(use_threads=False).replace_schema_metadata(None)

    with ThreadPoolExecutor(1) as other:  # the two files decode on two cores
        later = other.submit(table, MANIFEST_FILE)
        membership = table(MEMBERSHIP_FILE)
        manifest = later.result()
    if manifest is None or membership is None:
        return None
    key_names = {k: tuple(names[k]) for k in METADATA_KEYS}
    if manifest.schema != manifest_schema(key_names) or membership.schema != MEMBERSHIP_SCHEMA:
        return None
    return _Base(record["seq"], record["hash"], key_names, cohorts, files, manifest, membership)


def _named(ledger: Ledger, end: Position, base: _Base) -> _Named | None:
    """Scan the events after the base's seq up to `end` (verifying the chain); None unless the
    base's (seq, hash) closes a batch of this log at or before `end`."""
    if base.seq > end.seq:
        return None
    start = ledger.read_start(base.seq + 1)
    reached = start.seq == base.seq and start.hash == base.hash
    named = _Named(set(), {}, set(), [])
    if base.seq == end.seq:
        return named if reached else None
    scan = ledger.store.scan(start, stop_after=end.seq)
    for ev, closed in scan.events():
        seq = ev["seq"]
        if seq <= base.seq:
            if closed is not None and closed.seq == base.seq:
                reached = closed.hash == base.hash
            continue
        if not reached:
            return None  # the base reflects no batch boundary of this log (an as-of build, another log)
        data = upcast(ev["type"], ev["v"], ev["data"], seq)
        named.events.append((ev["type"], data, None))
        gen_id, cohort_id = data.get("gen_id"), data.get("cohort_id")
        if gen_id is not None:
            named.gen_ids.add(gen_id)
        if cohort_id is not None:
            named.cohort_ids.add(cohort_id)
            if gen_id is not None:
                named.pairs.setdefault(cohort_id, set()).add(gen_id)
    return named if reached and scan.end == end else None


@dataclass(frozen=True)
class _Rows:
    """The facts of the named keys as of the log's end."""

    key_names: dict[str, tuple[str, ...]]
    gens: dict[str, Generation]
    #: cohort_id -> {gen_id: the seq that added it} for the named gens that are active members
    members: dict[str, dict[str, int]]
    #: the named cohorts the ledger knows
    cohorts: set[str]


def _rows(state: IndexedState, named: _Named) -> _Rows:
    """Look the named keys up in the caught-up index (rows in bulk, `IndexedState.preload`)."""
    state.preload(named.events)
    gens = {g: gen for g in named.gen_ids if (gen := state.generations.get(g)) is not None}
    cohorts = {c: cohort for c in named.cohort_ids if (cohort := state.cohorts.get(c)) is not None}
    members = {c: {g: seq for g in gen_ids if (seq := cohorts[c].members.get(g)) is not None}
               for c, gen_ids in named.pairs.items() if c in cohorts}
    return _Rows(dict(state.key_names), gens, members, set(cohorts))


def _rows_of(table: pa.Table, gen_ids: set[str], pairs: Mapping[str, set[str]] | None = None) -> list[int]:
    """The rows of `table` for `gen_ids` (or, given `pairs`, for those (cohort_id, gen_id))."""
    if not gen_ids:
        return []
    hit = pc.indices_nonzero(pc.is_in(table.column("gen_id"), value_set=array(sorted(gen_ids), pa.string())))
    rows: list[int] = hit.to_pylist()
    if pairs is None:
        return rows
    cohorts = table.column("cohort_id").take(hit).to_pylist()
    gens = table.column("gen_id").take(hit).to_pylist()
    return [row for row, cohort_id, gen_id in zip(rows, cohorts, gens) if gen_id in pairs.get(cohort_id, ())]


def _render(base: _Base, named: _Named, rows: _Rows, redo: list[str], stages: tuple[str, ...]) -> dict[str, bytes]:
    """The files that may change, path -> bytes: both Parquet files and the CSVs of `redo`."""
    gens = rows.gens

    def manifest() -> bytes:
        table = merged(base.manifest, manifest_rows((gens[g] for g in sorted(gens)), base.key_names), stages, (),
                       _rows_of(base.manifest, named.gen_ids))
        return parquet_bytes(renamed(table, base.key_names, rows.key_names))

    with ThreadPoolExecutor(1) as other:  # the manifest on another core meanwhile
        manifest_bytes = other.submit(manifest)
        files = _membership_files(base, named, gens, rows.members, redo, stages)
        files[MANIFEST_FILE] = manifest_bytes.result()
    return files


def _membership_files(base: _Base, named: _Named, gens: Mapping[str, Generation], active: Mapping[str, dict[str, int]],
                      redo: list[str], stages: tuple[str, ...]) -> dict[str, bytes]:
    """`membership.parquet` and the CSVs of the cohorts of `redo` (those whose rows were
    named, and the new ones)."""
    cohort_ids: list[str] = []
    members: list[Generation] = []
    added: list[int] = []
    for cohort_id in sorted(active):
        for gen_id, seq in sorted(active[cohort_id].items()):
            cohort_ids.append(cohort_id)
            members.append(gens[gen_id])
            added.append(seq)
    pair_gens = set().union(*named.pairs.values()) if named.pairs else set()
    membership = merged(base.membership, membership_rows(cohort_ids, members, added), stages, ("cohort_id",),
                        _rows_of(base.membership, pair_gens, named.pairs))
    files = {MEMBERSHIP_FILE: parquet_bytes(membership)}
    for cohort_id in redo:
        start, stop = leading_span(membership, "cohort_id", cohort_id)
        files.update(cohort_csvs({cohort_id: stop - start}, membership.slice(start, stop - start)))
    return files

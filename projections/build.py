"""`build`: fold the log (from a checkpoint when one is valid), render, replace files.

The three steps are separate functions on purpose -- `replay` (log -> State), `render`
(State -> Arrow tables -> bytes) and `replace_files` (bytes -> out dir) -- so each can be
measured and optimised alone. Nothing is written until the fold has verified every event
it read and every file is rendered: a corrupt log or a bad argument leaves the out dir
and the checkpoints as they were.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ledger import InvalidInputError, Ledger, LedgerEnvironmentError, LogStore, ObjectLogStore, State
from ledger.app.replay import Progress, check_checkpoints, parse_as_of, replay
from ledger.log.checkpoint import latest_seq, write_checkpoint
from ledger.log.codec import genesis_prev
from ledger.log.file_store import FileLogStore
from ledger.log.location import Where, is_url
from ledger.log.parquet import parquet_bytes
from ledger.log.perf import paused_gc
from ledger.domain.projection_files import MANIFEST_FILE, MEMBERSHIP_FILE

from .files import LOCK_TIMEOUT, check_out_dir, holding, projection_about, replace_files
from .object_out import out_location, replace_objects

DEFAULT_OUT = "projections"
#: a build that folds writes a checkpoint when it is this many events past the newest one
CHECKPOINT_EVERY = 5000
#: a build patches the previous projection (projections/patch.py), which saves no checkpoint,
#: only while the newest checkpoint is at most this many events behind the log's end; further
#: behind, it folds from that checkpoint and saves one, so the checkpoints that opening a
#: ledger and as-of builds resume from never fall further behind than this
PATCH_LIMIT = 100_000


@dataclass(frozen=True)
class BuildReport:
    """What a build reflects and did. Paths are relative to `out_dir`."""

    seq: int
    hash: str
    out_dir: str
    written: list[str]
    unchanged: list[str]
    removed: list[str]
    #: seq of the checkpoint the fold resumed from (None: replayed from seq 1)
    checkpoint_seq: int | None
    events_folded: int
    #: seq of the checkpoint this build wrote (None: none written)
    checkpoint_written: int | None
    #: what went wrong without failing the build (a checkpoint that could not be saved)
    warnings: list[str]
    #: the out dir already held the projection of the log's end: nothing was folded or written
    up_to_date: bool = False
    #: seq of the previous projection this build patched (projections/patch.py); None: rendered from a fold
    patched_from: int | None = None

    @property
    def checkpoint_used(self) -> bool:
        return self.checkpoint_seq is not None


def about(state: State) -> dict[str, Any]:
    """`_projection.json`'s facts of `state` (`files.projection_about`)."""
    return projection_about(state.key_names, state.cohorts)


def render(state: State) -> dict[str, bytes]:
    """Every projection file of `state`: relative path -> bytes."""
    # pyarrow comes in with these, only when there is something to render: a build with
    # nothing new answers from `_projection.json` without it (docs/benchmarks.md, no-op build)
    from .manifest import manifest_table
    from .membership import active_counts, cohort_csvs, membership_table

    membership = membership_table(state)
    files = {MANIFEST_FILE: parquet_bytes(manifest_table(state)),
             MEMBERSHIP_FILE: parquet_bytes(membership)}
    files.update(cohort_csvs(active_counts(state), membership))
    return files


def _default_out(store: LogStore) -> str | Path:
    """`<ledger>/projections`: beside the log in a directory, under the prefix in an object store."""
    if isinstance(store, FileLogStore):
        return store.path / DEFAULT_OUT
    if isinstance(store, ObjectLogStore):
        return f"{store.location}/{DEFAULT_OUT}"
    raise InvalidInputError(f"{store.location} keeps no files: give --out")


def build(ledger_path: Where, out_dir: str | os.PathLike[str] | None = None,
          as_of: int | str | datetime | None = None, full: bool = False, *,
          checkpoint_every: int = CHECKPOINT_EVERY, progress: Progress | None = None,
          lock_timeout: float = LOCK_TIMEOUT) -> BuildReport:
    """Write the projections of the committed log (or of its prefix `as_of`: a seq or an
    RFC 3339 time) into `out_dir`, a directory or an object-store URL (default
    `<ledger>/projections`, in the ledger's directory or under its prefix).
    `ledger_path` is anything `Ledger.open` takes: a directory, a backend's URL, a LogStore.

    Into an out dir that holds an earlier build of this log, the build patches that projection
    with the events appended since (projections/patch.py) instead of folding the log, while
    the newest checkpoint is at most PATCH_LIMIT events behind the log's end.

    `full` replays from seq 1 instead of the newest valid checkpoint, and refuses (CheckFailed,
    nothing written) when a checkpoint it passes disagrees with the replayed state. After a build
    that folded the whole log and is `checkpoint_every` events past the newest checkpoint, a new
    one is saved. `progress(done, total)` is called after each folded batch, in the store's unit
    (bytes of events.jsonl for a directory). Builds into one out dir take turns; one waits
    at most `lock_timeout` seconds for another to finish.
    """
    ledger = Ledger.open(ledger_path)
    local = ledger.store.path if isinstance(ledger.store, FileLogStore) else None
    if out_dir is None:
        out_dir = _default_out(ledger.store)
    remote = out_location(out_dir, ledger.store) if isinstance(out_dir, str) and is_url(out_dir) else None
    out = Path(out_dir)
    if local is not None and remote is None:
        check_out_dir(local, out)
    target = parse_as_of(as_of)
    if target is None and not full and remote is None:  # nothing appended since the last build into `out`
        end = ledger.store.end()
        held = holding(out, end.seq, end.hash, lock_timeout) if end is not None else None
        if end is not None and held is not None:
            return BuildReport(end.seq, end.hash, str(out), [], held, [], None, 0, None, [], up_to_date=True)
        patched = None
        if end is not None and end.seq - latest_seq(ledger.store) <= PATCH_LIMIT:
            from .patch import patch  # pyarrow, only once the no-op check found work to do

            with paused_gc():
                patched = patch(ledger, out, lock_timeout)
        if patched is not None:
            pos, changes = patched.position, patched.changes
            return BuildReport(pos.seq, pos.hash, str(out), changes.written, changes.unchanged, changes.removed,
                               None, patched.events, None, [], patched_from=patched.base_seq)
    with paused_gc():  # the whole build: one state of millions of objects, built once, no cycles
        if full:  # from seq 1, so every checkpoint passed is compared with what it should hold
            folded = check_checkpoints(ledger.store, ledger.config, target, progress)
        else:
            folded = replay(ledger.store, ledger.config, target, progress=progress)
        state = folded.state
        chain_hash = state.hash or genesis_prev(ledger.config.ledger_id)
        files, facts = render(state), about(state)
        changes = (replace_objects(remote, files, state.seq, chain_hash, facts) if remote is not None
                   else replace_files(out, files, state.seq, chain_hash, facts, lock_timeout))
        saved, warnings = None, []
        if (target is None and folded.position is not None and state.seq > 0
                and state.seq - latest_seq(ledger.store) >= checkpoint_every):
            try:  # the projection is the product; a checkpoint only speeds up the next build
                write_checkpoint(ledger.store, ledger.config, state, folded.position)
                saved = state.seq
            except LedgerEnvironmentError as exc:
                warnings.append(f"no checkpoint saved ({exc}); the next build replays more")
    return BuildReport(state.seq, chain_hash, remote or str(out), changes.written, changes.unchanged, changes.removed,
                       folded.checkpoint_seq, folded.events, saved, warnings)

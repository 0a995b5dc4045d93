"""The writers' index: the few facts validation needs, kept in SQLite instead of folding the log.

A fresh process that appends one event (a pipeline hook) must not fold a million events
first. Validating an event asks only a few questions: does gen X exist, with which stage and
origin metadata; is it a member of cohort C; is C opened or sealed; is event id Y committed
(and at which seq); what is the rename state. This module keeps exactly those facts in an
SQLite database (WAL mode, standard library), derived from the log like a checkpoint and
never its source of truth:

- it records the batch boundary (seq, hash, cursor) it reflects, and is used only when the
  store confirms that boundary is in the log (`is_boundary`), else it is rebuilt;
- a writer catches it up from there, inside the store's writing section, folding the
  batches other writers committed since, and commits its own batch's facts after the batch
  is durable; a crash in between leaves it behind, never ahead, of the log.

Validation through it *is* the reference fold: `IndexedState` is a `State` whose maps load
rows on demand and remember what changed, so `State.apply` runs unchanged and makes the same
decisions with the same messages (tests/test_facts.py checks that against the plain fold).
"""

from __future__ import annotations

import dataclasses
from functools import partial
from itertools import zip_longest
import operator
import os
import sqlite3
from pathlib import Path
from typing import Any, Callable, Generic, Iterable, Iterator, MutableMapping, TypeVar, cast

import orjson

from ..domain.config import LedgerConfig
from ..domain.state import Cohort, Generation, State, folder_key
from ..log.scan import Position

FORMAT = "cohort-ledger-facts"
VERSION = 2
#: the in-memory rows a long-lived writer keeps before starting over from the database
CACHE_LIMIT = 200_000
#: keys per `IN (...)` query when a batch's rows are loaded together
_CHUNK = 500
#: a batch boundary is recorded once at least this many events follow the previous one,
#: so `Ledger.read(from_seq)` never scans more than about this many events to its start
BOUNDARY_EVERY = 4096

K = TypeVar("K")
V = TypeVar("V")
_ABSENT: Any = object()

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE gens (stage TEXT NOT NULL, gen_id TEXT PRIMARY KEY, origin_cohort_id TEXT NOT NULL,
    template_id TEXT NOT NULL, combo_id TEXT, llm_model_id TEXT, parent_gen_id TEXT, replicate INTEGER NOT NULL,
    mode TEXT, created_seq INTEGER NOT NULL, materialized_seq INTEGER) WITHOUT ROWID;
CREATE TABLE cohorts (cohort_id TEXT PRIMARY KEY, opened_seq INTEGER, description TEXT, spec TEXT,
    sealed_seq INTEGER) WITHOUT ROWID;
CREATE TABLE members (cohort_id TEXT NOT NULL, gen_id TEXT NOT NULL, stage TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (cohort_id, gen_id)) WITHOUT ROWID;
CREATE TABLE event_ids (id TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE boundaries (seq INTEGER PRIMARY KEY, position TEXT NOT NULL);
"""
#: created after a rebuild's bulk insert (one sort instead of a million random inserts)
_INDEXES = "CREATE INDEX members_by_stage ON members (cohort_id, stage, gen_id);"
#: the gens table's columns are `Generation`'s fields in order, so a row is its constructor's arguments
_GEN_FIELDS = [f.name for f in dataclasses.fields(Generation)]
_GEN_KEY = _GEN_FIELDS.index("gen_id")
#: a Generation as its row (dataclasses.astuple deep-copies every field: 4x slower)
_gen_row = operator.attrgetter(*_GEN_FIELDS)


class _LazyMap(MutableMapping[K, V], Generic[K, V]):
    """A dict over database rows: each key is looked up once (found or not); writes and
    deletes are kept in memory, and `changes()` lists them for the commit."""

    def __init__(self, load: Callable[[K], V | None]) -> None:
        self._load = load
        self._cache: dict[K, Any] = {}
        self.dirty: set[K] = set()

    def _lookup(self, key: K) -> Any:
        try:
            return self._cache[key]
        except KeyError:
            found = self._load(key)
            value = self._cache[key] = _ABSENT if found is None else found
            return value

    def preload(self, rows: dict[K, V | None]) -> None:
        """Rows looked up in bulk (None: known to be absent); keys already held are kept."""
        for key, value in rows.items():
            self._cache.setdefault(key, _ABSENT if value is None else value)

    def missing(self, keys: Iterable[K]) -> list[K]:
        return [k for k in set(keys) if k not in self._cache]

    def __getitem__(self, key: K) -> V:
        value = self._lookup(key)
        if value is _ABSENT:
            raise KeyError(key)
        return value  # type: ignore[no-any-return]

    def get(self, key: K, default: Any = None) -> Any:
        value = self._lookup(key)
        return default if value is _ABSENT else value

    def __contains__(self, key: object) -> bool:
        return self._lookup(key) is not _ABSENT  # type: ignore[arg-type]

    def __setitem__(self, key: K, value: V) -> None:
        self._cache[key] = value
        self.dirty.add(key)

    def __delitem__(self, key: K) -> None:
        if self._lookup(key) is _ABSENT:
            raise KeyError(key)
        self._cache[key] = _ABSENT
        self.dirty.add(key)

    def __iter__(self) -> Iterator[K]:
        raise TypeError("the index answers lookups; it does not enumerate (use Ledger.state)")

    def __len__(self) -> int:
        raise TypeError("the index answers lookups; it does not count (use Ledger.state)")

    def changes(self) -> Iterator[tuple[K, V | None]]:
        """(key, value) for every key written since the last commit; None for a deleted one."""
        for key in self.dirty:
            value = self._cache[key]
            yield key, None if value is _ABSENT else value

    @property
    def held(self) -> int:
        return len(self._cache)


class IndexedState(State):
    """The reference `State`, with generations, cohorts, members and event ids read from
    the index on demand. `State.apply` runs unchanged on it."""

    def __init__(self, config: LedgerConfig, db: sqlite3.Connection, pos: Position,
                 key_names: dict[str, tuple[str, ...]]) -> None:
        super().__init__(config)
        self._db = db
        self.seq, self.hash, self.at = pos.seq, pos.hash, pos.at
        self.key_names = dict(key_names)
        self.generations = _LazyMap(self._load_gen)  # type: ignore[assignment]
        self.cohorts = _LazyMap(self._load_cohort)  # type: ignore[assignment]
        self.event_ids = _LazyMap(self._load_event_id)  # type: ignore[assignment]
        self.position = pos
        #: batch boundaries folded since the last commit (recorded sparsely)
        self.boundaries: list[Position] = []
        self.last_boundary = pos.seq

    # -- loading rows -------------------------------------------------------------------
    def _load_gen(self, gen_id: str) -> Generation | None:
        row = self._db.execute("SELECT * FROM gens WHERE gen_id = ?", (gen_id,)).fetchone()
        return self._gen(row) if row is not None else None

    def _gen(self, row: tuple[Any, ...]) -> Generation:
        share = self._shared.setdefault
        gen = Generation(*row)
        for attr in ("stage", "origin_cohort_id", "template_id", "llm_model_id", "mode"):
            value = getattr(gen, attr)
            setattr(gen, attr, share(value, value))
        return gen

    def _load_cohort(self, cohort_id: str) -> Cohort | None:
        row = self._db.execute("SELECT opened_seq, description, spec, sealed_seq FROM cohorts "
                               "WHERE cohort_id = ?", (cohort_id,)).fetchone()
        if row is None:
            return None
        opened, description, spec, sealed = row
        members: _LazyMap[str, int] = _LazyMap(lambda gid: self._load_member(cohort_id, gid))
        return Cohort(cohort_id, opened, description, orjson.loads(spec) if spec is not None else None, sealed,
                      members)  # type: ignore[arg-type]

    def cohort_sharing_folder(self, cohort_id: str) -> str | None:
        """`State.cohort_sharing_folder` over the index: this batch's new cohorts, then the table."""
        key = folder_key(cohort_id)
        cohorts = cast("_LazyMap[str, Cohort]", self.cohorts)  # the index's cohorts are a lazy map (__init__)
        pending = next((c for c, v in cohorts.changes() if v is not None and folder_key(c) == key), None)
        if pending is not None:
            return pending
        row = self._db.execute("SELECT cohort_id FROM cohorts WHERE lower(rtrim(cohort_id, '.')) = ? LIMIT 1",
                               (key,)).fetchone()
        found: str | None = row[0] if row is not None else None
        return found

    def _load_member(self, cohort_id: str, gen_id: str) -> int | None:
        row = self._db.execute("SELECT seq FROM members WHERE cohort_id = ? AND gen_id = ?",
                               (cohort_id, gen_id)).fetchone()
        return row[0] if row is not None else None

    def _load_event_id(self, event_id: str) -> int | None:
        row = self._db.execute("SELECT seq FROM event_ids WHERE id = ?", (event_id,)).fetchone()
        return row[0] if row is not None else None

    def preload(self, events: Iterable[tuple[str, dict[str, Any], str | None]]) -> None:
        """Look up every row a batch of (type, data, id) can touch in a few queries, instead
        of one query per row as `apply` asks (what makes a 10,000-event append affordable)."""
        gen_ids: set[str] = set()
        event_ids: set[str] = set()
        cohort_gens: dict[str, set[str]] = {}
        for _, data, event_id in events:
            if event_id is not None:
                event_ids.add(event_id)
            gen_id = data.get("gen_id")
            if gen_id is not None:
                gen_ids.add(gen_id)
                if data.get("parent_gen_id") is not None:
                    gen_ids.add(data["parent_gen_id"])
                cohort_gens.setdefault(data["cohort_id"], set()).add(gen_id)
            elif "cohort_id" in data:
                cohort_gens.setdefault(data["cohort_id"], set())
        gens: _LazyMap[str, Generation] = self.generations  # type: ignore[assignment]
        gens.preload(self._many("SELECT * FROM gens WHERE gen_id IN ({})", gens.missing(gen_ids),
                                lambda row: (row[_GEN_KEY], self._gen(row))))
        ids: _LazyMap[str, int] = self.event_ids  # type: ignore[assignment]
        ids.preload(self._many("SELECT id, seq FROM event_ids WHERE id IN ({})", ids.missing(event_ids), tuple))
        for cohort_id, members in cohort_gens.items():
            cohort = self.cohorts.get(cohort_id)
            if cohort is not None and isinstance(cohort.members, _LazyMap):
                cohort.members.preload(self._many(
                    "SELECT gen_id, seq FROM members WHERE cohort_id = ? AND gen_id IN ({})",
                    cohort.members.missing(members), tuple, (cohort_id,)))

    def _many(self, sql: str, keys: list[str], row: Callable[[Any], tuple[Any, Any]],
              lead: tuple[Any, ...] = ()) -> dict[Any, Any]:
        found: dict[Any, Any] = dict.fromkeys(keys)
        for start in range(0, len(keys), _CHUNK):
            part = keys[start : start + _CHUNK]
            query = sql.format(",".join("?" * len(part)))
            found.update(map(row, self._db.execute(query, (*lead, *part))))
        return found

    # -- remembering what changed ---------------------------------------------------------
    def _set_attr(self, obj: Any, name: str, value: Any) -> None:
        super()._set_attr(obj, name, value)
        if isinstance(obj, Generation):
            self.generations[obj.gen_id] = obj
        elif isinstance(obj, Cohort):
            self.cohorts[obj.cohort_id] = obj

    def passed(self, end: Position) -> None:
        """The fold reached the batch boundary `end` (committed in the log)."""
        self.position = end
        if end.seq - self.last_boundary >= BOUNDARY_EVERY:
            self.boundaries.append(end)
            self.last_boundary = end.seq

    @property
    def held(self) -> int:
        """Rows held in memory (a long-lived writer starts over past CACHE_LIMIT)."""
        maps: list[Any] = [self.generations, self.cohorts, self.event_ids]
        return sum(m.held for m in maps)


class FactsSnapshot:
    """A read-only view of the index at one boundary: an SQLite read transaction, so writers
    committing meanwhile are not seen (what a `CohortScope` over a ledger answers from)."""

    def __init__(self, db: sqlite3.Connection, position: Position) -> None:
        self._db = db
        self.position = position

    def generation(self, gen_id: str) -> Generation | None:
        row = self._db.execute("SELECT * FROM gens WHERE gen_id = ?", (gen_id,)).fetchone()
        return Generation(*row) if row is not None else None

    def active_gen_ids(self, cohort_id: str, stage: str) -> list[str]:
        """The cohort's active members of one stage, sorted by code point (SQLite's BINARY order)."""
        rows = self._db.execute("SELECT gen_id FROM members WHERE cohort_id = ? AND stage = ? ORDER BY gen_id",
                                (cohort_id, stage))
        return [gid for (gid,) in rows]

    def meta(self) -> dict[str, str]:
        """Which ledger and index format it belongs to."""
        rows = self._db.execute("SELECT key, value FROM meta WHERE key IN ('format', 'version', 'ledger_id')")
        return dict(rows.fetchall())

    def disagreement(self, state: State) -> str | None:
        """The first fact in which this index differs from `state` (folded to its position), or None."""
        for table, expected in state_rows(state).items():
            found = self._db.execute(f"SELECT * FROM {table} ORDER BY {_KEY_ORDER[table]}")
            for want, got in zip_longest(expected, found):
                if want != got:
                    key = (want or got)[:2] if table == "members" else (want or got)[_GEN_KEY if table == "gens" else 0]
                    what = "lacks" if got is None else "has an extra" if want is None else "differs in"
                    return f"{what} the {table} row of {key!r}"
        row = self._db.execute("SELECT value FROM meta WHERE key = 'key_names'").fetchone()
        if row is None or orjson.loads(row[0]) != orjson.loads(orjson.dumps(state.key_names)):
            return "differs in the rename state"
        return None

    def close(self) -> None:
        self._db.close()


def _position_json(pos: Position) -> str:
    return orjson.dumps(pos._asdict()).decode()


def _position(text: str) -> Position | None:
    try:
        doc = orjson.loads(text)
        return Position(**doc) if isinstance(doc, dict) else None
    except (orjson.JSONDecodeError, TypeError):
        return None


class FactIndex:
    """One index database for one ledger; see the module docstring for the protocol."""

    def __init__(self, path: Path, config: LedgerConfig, read_only: bool = False) -> None:
        self.path = path
        self.config = config
        #: open the database read-only: a reader that must leave the ledger's files as they are
        #: (a read-only connection never checkpoints the WAL into the database, even the last one)
        self.read_only = read_only
        self._db: sqlite3.Connection | None = None
        self._inode: tuple[int, int] | None = None

    # -- the connection -------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection | None:
        """The open database, reopened when a rebuild replaced the file; None when there is none."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self.close()
            return None
        if self._db is None or self._inode != (st.st_dev, st.st_ino):
            self.close()
            if self.read_only:
                db = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True, isolation_level=None,
                                     check_same_thread=False)
                self._db, self._inode = db, (st.st_dev, st.st_ino)
                return db
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL: atomic, and a lost commit only leaves it behind
            # a batch append touches pages all over the B-trees (gen ids are hashes): keep them in
            # memory and checkpoint the WAL less often, so a page changed by many commits is written once
            db.execute("PRAGMA cache_size=-131072")
            db.execute("PRAGMA wal_autocheckpoint=16384")
            self._db, self._inode = db, (st.st_dev, st.st_ino)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _meta(self, db: sqlite3.Connection) -> dict[str, str] | None:
        try:
            return dict(db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError:
            return None

    # -- reading --------------------------------------------------------------------------
    def open_state(self, is_boundary: Callable[[Position], bool]) -> IndexedState | None:
        """The indexed state at the boundary the index reflects, if the index is ours and that
        boundary is in the log; None when it must be rebuilt."""
        try:
            db = self._connect()
        except sqlite3.DatabaseError:
            return None
        if db is None:
            return None
        meta = self._meta(db)
        if (meta is None or meta.get("format") != FORMAT or meta.get("version") != str(VERSION)
                or meta.get("ledger_id") != self.config.ledger_id):
            return None
        pos = _position(meta.get("position", ""))
        if pos is None or (pos.seq and not is_boundary(pos)):
            return None
        try:
            key_names = {k: tuple(v) for k, v in orjson.loads(meta["key_names"]).items()}
        except (KeyError, orjson.JSONDecodeError, AttributeError, TypeError):
            return None
        return IndexedState(self.config, db, pos, key_names)

    def position(self) -> Position | None:
        """The boundary the index reflects now (another writer may have moved it), if readable."""
        try:
            db = self._connect()
            row = db.execute("SELECT value FROM meta WHERE key = 'position'").fetchone() if db else None
        except sqlite3.DatabaseError:
            return None
        return _position(row[0]) if row is not None else None

    def snapshot(self) -> FactsSnapshot | None:
        """A read transaction on the index as it is now (call it where no writer commits, i.e.
        in the store's writing section, right after catching the index up)."""
        if not self.path.exists():
            return None
        # read-only when this handle is: a read-write connection may checkpoint the WAL when it
        # closes, which rewrites the file (an audit writes nothing into the ledger)
        where = f"{self.path.as_uri()}?mode=ro" if self.read_only else str(self.path)
        try:
            db = sqlite3.connect(where, uri=self.read_only, isolation_level=None, check_same_thread=False)
        except sqlite3.DatabaseError:
            return None
        try:
            db.execute("BEGIN")
            row = db.execute("SELECT value FROM meta WHERE key = 'position'").fetchone()  # pins the snapshot
        except sqlite3.DatabaseError:
            db.close()
            return None
        if row is None:
            db.close()
            return None
        pos = _position(row[0])
        if pos is None:
            db.close()
            return None
        return FactsSnapshot(db, pos)

    def boundary_before(self, seq: int) -> Position | None:
        """The latest recorded batch boundary before event `seq`, if any (for seeking reads)."""
        db = self._connect()
        if db is None:
            return None
        try:
            row = db.execute("SELECT position FROM boundaries WHERE seq < ? ORDER BY seq DESC LIMIT 1",
                             (seq,)).fetchone()
        except sqlite3.DatabaseError:
            return None
        return _position(row[0]) if row is not None else None

    # -- writing --------------------------------------------------------------------------
    def commit(self, state: IndexedState) -> None:
        """Write every fact `state` changed, and the boundary it is at, in one transaction.

        Called only by a writer in the store's writing section, after the log holds the
        events folded into `state` (the index is never ahead of the log).
        """
        db = self._connect()
        if db is None:
            raise sqlite3.OperationalError(f"{self.path} is gone")
        db.execute("BEGIN IMMEDIATE")
        try:
            _write_changes(db, state)
            db.executemany("INSERT OR REPLACE INTO boundaries VALUES (?, ?)",
                           [(b.seq, _position_json(b)) for b in state.boundaries])
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [
                ("position", _position_json(state.position)),
                ("key_names", orjson.dumps(state.key_names).decode())])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        state.boundaries.clear()

    def rebuild(self, state: State, pos: Position, boundaries: list[Position]) -> None:
        """Replace the index with the facts of a fully folded `state` at boundary `pos`
        (written to a temporary file, then renamed over the old one)."""
        self.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + f".tmp-{os.getpid()}")
        for stale in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            stale.unlink(missing_ok=True)
        db = sqlite3.connect(tmp, isolation_level=None)
        try:
            db.execute("PRAGMA cache_size=-65536")  # 64 MiB while building
            db.execute("PRAGMA journal_mode=OFF")
            db.execute("PRAGMA synchronous=OFF")  # durability comes from the fsync and rename below
            db.executescript(_SCHEMA)
            db.execute("BEGIN")
            # rows in key order: appending to each B-tree is several times faster than random inserts
            for table, rows in state_rows(state).items():
                db.executemany(f"INSERT INTO {table} VALUES ({','.join('?' * _COLUMNS[table])})", rows)
            db.execute(_INDEXES)
            db.executemany("INSERT INTO boundaries VALUES (?,?)", [(b.seq, _position_json(b)) for b in boundaries])
            db.executemany("INSERT INTO meta VALUES (?,?)", [
                ("format", FORMAT), ("version", str(VERSION)), ("ledger_id", self.config.ledger_id),
                ("position", _position_json(pos)), ("key_names", orjson.dumps(state.key_names).decode())])
            db.execute("COMMIT")
        finally:
            db.close()
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        for stale in (Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
            stale.unlink(missing_ok=True)
        os.replace(tmp, self.path)


#: the fact tables: their column counts, and the order of their keys
_COLUMNS = {"gens": len(_GEN_FIELDS), "cohorts": 5, "members": 4, "event_ids": 2}
_KEY_ORDER = {"gens": "gen_id", "cohorts": "cohort_id", "members": "cohort_id, gen_id", "event_ids": "id"}


def state_rows(state: State) -> dict[str, Iterator[tuple[Any, ...]]]:
    """Each fact table's rows for a fully folded `state`, in key order: what `rebuild` inserts
    and what `IndexAudit` expects to read back."""
    gens = state.generations
    cohorts = sorted(state.cohorts.values(), key=operator.attrgetter("cohort_id"))
    return {
        "gens": (_gen_row(gens[g]) for g in sorted(gens)),
        "cohorts": map(_cohort_row, cohorts),
        "members": ((c.cohort_id, gid, gens[gid].stage, c.members[gid]) for c in cohorts for gid in sorted(c.members)),
        "event_ids": iter(sorted(state.event_ids.items())),
    }


class IndexAudit:
    """`verify --checkpoints` for the writers' index: is it the fold, where writers would trust it?

    The index is pinned (a read transaction) when the audit starts, so writers may go on. Call
    it at every batch boundary of a replay from seq 1 (`replay(..., on_boundary=)`); when the
    replay reaches the boundary the index records, every row of every fact table and the rename
    state are compared with the replayed state, and `problem` names the first difference. An
    index that writers would not use (another ledger's, another format, a boundary the log does
    not have: they rebuild it) is no problem. It only reads.
    """

    def __init__(self, path: Path | None, config: LedgerConfig) -> None:
        self.path = path
        self.problem: str | None = None
        self._snapshot: FactsSnapshot | None = None
        if path is not None:
            snapshot = FactIndex(path, config, read_only=True).snapshot()
            if snapshot is not None and snapshot.meta() == {"format": FORMAT, "version": str(VERSION),
                                                            "ledger_id": config.ledger_id}:
                self._snapshot = snapshot
            elif snapshot is not None:
                snapshot.close()

    def __call__(self, state: State, pos: Position) -> None:
        snapshot = self._snapshot
        if snapshot is None or pos.seq != snapshot.position.seq:
            return
        self._snapshot = None
        try:
            if pos.hash == snapshot.position.hash:
                self.problem = snapshot.disagreement(state)
        finally:
            snapshot.close()
        if self.problem is not None:
            self.problem = f"the writers' index ({self.path}) {self.problem} at seq {pos.seq}"

    def close(self) -> None:
        if self._snapshot is not None:
            self._snapshot.close()
            self._snapshot = None


def _cohort_row(c: Cohort) -> tuple[Any, ...]:
    spec = orjson.dumps(c.spec).decode() if c.spec is not None else None
    return (c.cohort_id, c.opened_seq, c.description, spec, c.sealed_seq)


def _write_changes(db: sqlite3.Connection, state: IndexedState) -> None:
    gens: _LazyMap[str, Generation] = state.generations  # type: ignore[assignment]
    cohorts: _LazyMap[str, Cohort] = state.cohorts  # type: ignore[assignment]
    ids: _LazyMap[str, int] = state.event_ids  # type: ignore[assignment]
    put, drop = [], []
    for key, gen in gens.changes():
        (put.append(_gen_row(gen)) if gen is not None else drop.append((key,)))
    # each table's rows in key order: one pass down its B-tree instead of a random walk
    put.sort(key=operator.itemgetter(_GEN_KEY))
    db.executemany("INSERT OR REPLACE INTO gens VALUES (?,?,?,?,?,?,?,?,?,?,?)", put)
    db.executemany("DELETE FROM gens WHERE gen_id = ?", drop)
    put_c, drop_c, put_m, drop_m = [], [], [], []
    for key, cohort in cohorts.changes():
        (put_c.append(_cohort_row(cohort)) if cohort is not None else drop_c.append((key,)))
    for cohort in list(cohorts._cache.values()):
        if cohort is _ABSENT:
            continue
        members = cohort.members
        changed: Iterable[tuple[str, int | None]] = (
            members.changes() if isinstance(members, _LazyMap) else members.items())
        for gen_id, seq in changed:
            if seq is None:
                drop_m.append((cohort.cohort_id, gen_id))
            else:
                put_m.append((cohort.cohort_id, gen_id, state.generations[gen_id].stage, seq))
        if isinstance(members, _LazyMap):
            members.dirty.clear()
        else:  # a cohort new to the index: from now on its rows are there
            loaded: _LazyMap[str, int] = _LazyMap(partial(state._load_member, cohort.cohort_id))
            loaded.preload(dict(members))
            cohort.members = loaded
    db.executemany("INSERT OR REPLACE INTO cohorts VALUES (?,?,?,?,?)", put_c)
    db.executemany("DELETE FROM cohorts WHERE cohort_id = ?", drop_c)
    put_m.sort()
    db.executemany("INSERT OR REPLACE INTO members VALUES (?,?,?,?)", put_m)
    db.executemany("DELETE FROM members WHERE cohort_id = ? AND gen_id = ?", drop_m)
    put_i = sorted((k, v) for k, v in ids.changes() if v is not None)
    db.executemany("INSERT OR REPLACE INTO event_ids VALUES (?,?)", put_i)
    db.executemany("DELETE FROM event_ids WHERE id = ?", [(k,) for k, v in ids.changes() if v is None])
    for m in (gens, cohorts, ids):
        m.dirty.clear()

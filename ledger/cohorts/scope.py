"""CohortScope: the one answer to "which gens is cohort C made of" (docs/operators.md §1, §5).

Pipeline code, report scripts and the CLI's `show` all ask through this class, over either
a ledger (the fold, always current) or a projection directory (`manifest.parquet` +
`membership.parquet`, the fast path that needs no replay). Both sources are loaded into the
same index and every query runs on that index, so the two cannot give different answers
for the same log prefix.

A scope is a snapshot: it reflects the ledger's state (or the projection) at the moment it
was built, reported as `seq`. Build a new one to see later events.

pyarrow is imported where a Parquet file or an Arrow table is touched, not at module load:
the CLI's `show` uses this class too, and a command line should not pay for numpy.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, TypeVar, cast

import orjson

from ..errors import InvalidInputError
from ..domain.projection_files import MANIFEST_FILE, MEMBERSHIP_FILE, PROJECTION_INFO_FILE
from ..domain.state import GENERATION_ATTR, METADATA_KEYS, Generation, State
from ..app.facts import FactsSnapshot
from ..app.service import Ledger
from ..log.location import is_url

if TYPE_CHECKING:
    import pyarrow as pa

MANIFEST = MANIFEST_FILE
MEMBERSHIP = MEMBERSHIP_FILE
PROJECTION_INFO = PROJECTION_INFO_FILE
#: Origin metadata fields, in manifest order, then the two derived columns; the origin is
#: always `origin_cohort_id` here, whatever the rename state calls the manifest column.
METADATA_FIELDS = ("stage", "gen_id", *(GENERATION_ATTR[k] for k in METADATA_KEYS), "created_seq", "materialized")

#: the scope's name for a logical manifest key where it differs (the origin is `cohort_id` in the log)
_FIELD = {"cohort_id": "origin_cohort_id"}

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Member:
    """One active (cohort, gen) membership."""

    cohort_id: str
    stage: str
    gen_id: str
    origin_cohort_id: str
    reused: bool
    added_seq: int


class CohortScope:
    """Active membership and origin metadata, queried the same way from either source."""

    def __init__(self, stages: Iterable[str], generations: Iterable[dict[str, Any]],
                 members: Iterable[Member], seq: int | None, cohorts: Iterable[str] = ()) -> None:
        self.seq = seq
        self._rank = {s: i for i, s in enumerate(stages)}
        self._gens = {g["gen_id"]: g for g in generations}
        self._members: dict[str, dict[str, Member]] = {c: {} for c in cohorts}
        for m in members:
            self._members.setdefault(m.cohort_id, {})[m.gen_id] = m

    # -- sources ------------------------------------------------------------------------
    @classmethod
    def from_state(cls, state: State) -> "CohortScope":
        scope = cls.__new__(cls)
        scope._init_from_state(state)
        return scope

    def _init_from_state(self, state: State) -> None:
        gens = list(map(_generation_fields, state.generations.values()))
        members = []
        for cohort in state.cohorts.values():
            for gid, added in cohort.members.items():
                gen = state.generations[gid]
                members.append(Member(cohort.cohort_id, gen.stage, gid, gen.origin_cohort_id,
                                      gen.origin_cohort_id != cohort.cohort_id, added))
        CohortScope.__init__(self, state.config.stages, gens, members, state.seq, state.cohorts)

    @classmethod
    def from_ledger(cls, ledger: Ledger | str | os.PathLike[str]) -> "CohortScope":
        """The ledger's scope as of now. Where the ledger keeps the writers' index (a local
        directory), `active_stage_gen_ids` and `origin_metadata` are answered from it without
        loading the state; any other query folds the state as of the same seq, once."""
        led = ledger if isinstance(ledger, Ledger) else Ledger.open(ledger)
        if led._state is None:
            snapshot = led.facts_snapshot()
            if snapshot is not None:
                return _IndexScope(led, snapshot)
        return cls.from_state(led.state)

    @classmethod
    def from_projection(cls, out_dir: str | os.PathLike[str]) -> "CohortScope":
        """Read `manifest.parquet`, `membership.parquet` and `_projection.json` as `build` wrote them.

        `_projection.json` says which manifest column holds each metadata key (the rename
        state: the origin may be `cohort_id`, `origin_cohort_id` or any other name) and lists
        every cohort, the empty ones included. The Parquet files are read when a query needs
        them: `active_stage_gen_ids` and `origin_metadata` read only the rows and columns
        they answer from (what every pipeline asset asks, in a process of its own); any other
        query loads both files once.
        """
        return _ProjectionScope(Path(out_dir))

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> "CohortScope":
        """A ledger directory (has ledger.json), a ledger URL (`s3://bucket/prefix`), or a
        projection directory (has membership.parquet)."""
        if isinstance(path, str) and is_url(path):
            return cls.from_ledger(path)
        p = Path(path)
        if (p / MEMBERSHIP).is_file() and not (p / "ledger.json").is_file():
            return cls.from_projection(p)
        return cls.from_ledger(p)

    # -- queries ------------------------------------------------------------------------
    def cohorts(self) -> list[str]:
        """Every cohort the ledger knows (opened, or given a member at some point), sorted.

        A cohort with no active member is listed too: it has a header-only membership.csv,
        and the pipeline reads it as an empty cohort.
        """
        return sorted(self._members)

    def active_stage_gen_ids(self, cohort_id: str, stage: str) -> list[str]:
        """The cohort's active gens of one stage, sorted; empty for an unknown cohort."""
        return sorted(g for g, m in self._members.get(cohort_id, {}).items() if m.stage == stage)

    def origin_metadata(self, gen_id: str) -> dict[str, Any]:
        """A gen's origin metadata (METADATA_FIELDS), never changed by reuse or removal."""
        try:
            return dict(self._gens[gen_id])
        except KeyError:
            raise InvalidInputError(f"generation {gen_id} is unknown") from None

    def is_reused(self, cohort_id: str, gen_id: str) -> bool:
        """True iff the gen is an active member of the cohort and originates elsewhere."""
        m = self._members.get(cohort_id, {}).get(gen_id)
        return m is not None and m.reused

    def members(self, cohort_id: str, stage: str | None = None) -> list[dict[str, Any]]:
        """The "cohort manifest": each active member with its origin metadata, in stage then gen order."""
        rows = [m for m in self._members.get(cohort_id, {}).values() if stage is None or m.stage == stage]
        rows.sort(key=lambda m: (self._rank.get(m.stage, len(self._rank)), m.stage, m.gen_id))
        return [{**self._gens[m.gen_id], "cohort_id": m.cohort_id, "reused": m.reused, "added_seq": m.added_seq}
                for m in rows]

    def filter(self, table: T, cohort_id: str, stage: str | None = None, gen_id_column: str = "gen_id") -> T:
        """Keep only the rows of `table` whose gen is an active member of the cohort (of `stage`).

        `table` is a pyarrow Table, or a pandas DataFrame when pandas is installed; rows keep
        their order. Scores and pivots computed on the result agree with the membership.
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        members = self._members.get(cohort_id, {})
        keep = sorted(g for g, m in members.items() if stage is None or m.stage == stage)
        if isinstance(table, pa.Table):
            if gen_id_column not in table.column_names:
                raise InvalidInputError(f"table has no column {gen_id_column!r}")
            column = table[gen_id_column]
            kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
            mask = pc.fill_null(pc.is_in(column, value_set=pa.array(keep, type=pa.string()).cast(kind)), False)
            return cast(T, table.filter(mask))
        pandas = sys.modules.get("pandas")
        if pandas is not None and isinstance(table, pandas.DataFrame):
            if gen_id_column not in table.columns:
                raise InvalidInputError(f"table has no column {gen_id_column!r}")
            return table[table[gen_id_column].isin(keep)]  # type: ignore[no-any-return]
        raise TypeError(f"filter takes a pyarrow Table or a pandas DataFrame, not {type(table).__name__}")


class _ProjectionScope(CohortScope):
    """A scope over a projection directory that reads its Parquet files as late as it can."""

    _LOADED = ("_gens", "_members", "_rank")

    def __init__(self, out: Path) -> None:  # noqa: the base state is set by _load, on demand
        self._out = out
        info = _projection_info(out)
        self.seq = info["seq"]
        self._info = info
        #: manifest column of each logical metadata key (during an alias both hold the same values)
        self._columns = {key: names[-1] for key, names in info["key_names"].items()}
        for name in (MANIFEST, MEMBERSHIP):
            if not (out / name).is_file():
                raise InvalidInputError(f"{out / name} is missing: run `cohort-ledger build` first")

    def __getattr__(self, name: str) -> Any:
        if name in self._LOADED:  # the first query that needs everything: load both files
            self._load()
            return self.__dict__[name]
        raise AttributeError(name)

    def _load(self) -> None:
        manifest = _read_parquet(self._out / MANIFEST)
        membership = _read_parquet(self._out / MEMBERSHIP)
        self._check_columns(manifest.column_names)
        gens = []
        stages: dict[str, None] = {}  # manifest rows are in stage order: first sightings give it
        for row in manifest.to_pylist():
            stages.setdefault(row["stage"], None)
            gens.append(self._logical(row))
        members = [Member(r["cohort_id"], r["stage"], r["gen_id"], r["origin_cohort_id"], r["reused"], r["added_seq"])
                   for r in membership.to_pylist()]
        CohortScope.__init__(self, stages, gens, members, self._info["seq"], self._info["cohorts"])

    def _check_columns(self, names: list[str]) -> None:
        missing = sorted(set(self._columns.values()) - set(names))
        if missing:
            raise InvalidInputError(f"{self._out / MANIFEST} has no column {', '.join(missing)} that "
                                    f"{PROJECTION_INFO} names: rebuild it with `cohort-ledger build`")

    def _logical(self, row: dict[str, Any]) -> dict[str, Any]:
        """A manifest row under the scope's field names (METADATA_FIELDS)."""
        logical = {**row, **{_FIELD.get(key, key): row[name] for key, name in self._columns.items()}}
        return {k: logical.get(k) for k in METADATA_FIELDS}

    def active_stage_gen_ids(self, cohort_id: str, stage: str) -> list[str]:
        if "_members" in self.__dict__:
            return super().active_stage_gen_ids(cohort_id, stage)
        import pyarrow.compute as pc

        rows = _read_parquet(self._out / MEMBERSHIP, ["cohort_id", "stage", "gen_id"],
                             {"cohort_id": cohort_id, "stage": stage})
        mask = pc.and_(pc.equal(rows.column("cohort_id"), cohort_id), pc.equal(rows.column("stage"), stage))
        return sorted(rows.column("gen_id").filter(mask).to_pylist())

    def origin_metadata(self, gen_id: str) -> dict[str, Any]:
        if "_gens" in self.__dict__:
            return super().origin_metadata(gen_id)
        import pyarrow.compute as pc

        manifest = _read_parquet(self._out / MANIFEST, None, {"gen_id": gen_id})
        self._check_columns(manifest.column_names)
        at = pc.index(manifest.column("gen_id"), gen_id).as_py()
        if at < 0:
            raise InvalidInputError(f"generation {gen_id} is unknown")
        return self._logical(manifest.slice(at, 1).to_pylist()[0])


class _IndexScope(CohortScope):
    """A scope over a ledger's writers' index, pinned at one seq (ledger/app/facts.py)."""

    _LOADED = ("_gens", "_members", "_rank")

    def __init__(self, ledger: Ledger, snapshot: FactsSnapshot) -> None:  # noqa: base state set by _load
        self._ledger = ledger
        self._snapshot = snapshot
        self.seq = snapshot.position.seq

    def __getattr__(self, name: str) -> Any:
        if name in self._LOADED:  # the first query that needs everything: fold as of our seq
            from ..app.replay import replay

            self._init_from_state(replay(self._ledger.store, self._ledger.config, self.seq).state)
            return self.__dict__[name]
        raise AttributeError(name)

    def active_stage_gen_ids(self, cohort_id: str, stage: str) -> list[str]:
        if "_members" in self.__dict__:
            return super().active_stage_gen_ids(cohort_id, stage)
        return self._snapshot.active_gen_ids(cohort_id, stage)

    def origin_metadata(self, gen_id: str) -> dict[str, Any]:
        if "_gens" in self.__dict__:
            return super().origin_metadata(gen_id)
        gen = self._snapshot.generation(gen_id)
        if gen is None:
            raise InvalidInputError(f"generation {gen_id} is unknown")
        return _generation_fields(gen)


def _generation_fields(gen: Generation) -> dict[str, Any]:
    """A generation's METADATA_FIELDS (every one but `materialized` is an attribute)."""
    return {**dict(zip(_STORED, _get_stored(gen))), "materialized": gen.materialized_seq is not None}


_STORED = METADATA_FIELDS[:-1]
_get_stored = attrgetter(*_STORED)


def _read_parquet(path: Path, columns: list[str] | None = None, where: dict[str, str] | None = None) -> "pa.Table":
    """The file's table (only `columns`, when given); with `where` (column -> value), only the
    row groups whose min/max statistics admit every value (the caller still filters rows)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if where is None:
            return pq.ParquetFile(path).read(columns=columns)
        file = pq.ParquetFile(path)
        groups = [i for i in range(file.num_row_groups) if _may_hold(file.metadata.row_group(i), where)]
        return file.read_row_groups(groups, columns=columns)
    except FileNotFoundError:
        raise InvalidInputError(f"{path} is missing: run `cohort-ledger build` first") from None
    except (OSError, pa.ArrowInvalid) as exc:
        raise InvalidInputError(f"{path}: not a readable Parquet file ({exc})") from None


def _may_hold(group: Any, where: dict[str, str]) -> bool:
    """False only when a row group's statistics prove no row has every `where` value."""
    for i in range(group.num_columns):
        column = group.column(i)
        value = where.get(column.path_in_schema)
        stats = column.statistics
        if value is not None and stats is not None and stats.has_min_max and not stats.min <= value <= stats.max:
            return False
    return True


def _projection_info(out: Path) -> dict[str, Any]:
    """seq, key_names and cohorts from `_projection.json`; InvalidInputError naming the file otherwise."""
    path = out / PROJECTION_INFO
    try:
        info = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise InvalidInputError(f"{path} is missing: run `cohort-ledger build` first") from None
    except (OSError, orjson.JSONDecodeError) as exc:
        raise InvalidInputError(f"{path}: not readable as JSON ({exc})") from None
    ok = (isinstance(info, dict) and isinstance(info.get("key_names"), dict) and isinstance(info.get("cohorts"), list)
          and all(isinstance(n, list) and n and all(isinstance(x, str) for x in n) for n in info["key_names"].values())
          and all(isinstance(c, str) for c in info["cohorts"]))
    if not ok:
        raise InvalidInputError(f"{path} does not record the rename state and cohorts (written by an older "
                                "cohort-ledger?): rebuild it with `cohort-ledger build`")
    seq = info.get("seq")
    return {"seq": seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
            "key_names": info["key_names"], "cohorts": info["cohorts"]}

"""`manifest.parquet` (the StageManifest): one row per generation, origin metadata as columns.

The column names follow the rename state (`State.manifest_columns()`): during an `alias`
phase a renamed key appears twice, under its old and its new name, with the same values.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Iterable, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from ledger.domain.events import ORIGIN_OPTIONAL_FIELDS
from ledger.domain.state import GENERATION_ATTR, METADATA_KEYS, Generation, State

from .arrays import array
from .order import sorted_by_stage

#: the rename state: logical metadata key -> its manifest column name(s)
KeyNames = Mapping[str, Sequence[str]]

#: Arrow type and nullability of each logical manifest key: `replicate` is the one integer;
#: a column is nullable exactly when its payload key is optional.
_KEY_TYPES: dict[str, tuple[pa.DataType, bool]] = {
    key: (pa.int64() if key == "replicate" else pa.string(), key in ORIGIN_OPTIONAL_FIELDS) for key in METADATA_KEYS
}


def manifest_schema(key_names: KeyNames) -> pa.Schema:
    """The explicit schema, in `State.manifest_columns()` order."""
    fields = [pa.field("stage", pa.string(), nullable=False), pa.field("gen_id", pa.string(), nullable=False)]
    for key in METADATA_KEYS:
        arrow_type, nullable = _KEY_TYPES[key]
        fields.extend(pa.field(name, arrow_type, nullable=nullable) for name in key_names[key])
    fields += [pa.field("created_seq", pa.int64(), nullable=False), pa.field("materialized", pa.bool_(), nullable=False)]
    return pa.schema(fields)


def manifest_rows(gens: Iterable[Generation], key_names: KeyNames) -> pa.Table:
    """One row per generation of `gens`, in their order (unsorted)."""
    listed = list(gens)

    def column(attr: str, arrow_type: pa.DataType) -> pa.Array:
        return array(list(map(attrgetter(attr), listed)), arrow_type)

    columns = [column("stage", pa.string()), column("gen_id", pa.string())]
    for key in METADATA_KEYS:
        values = column(GENERATION_ATTR[key], _KEY_TYPES[key][0])
        columns.extend(values for _ in key_names[key])
    columns.append(column("created_seq", pa.int64()))
    columns.append(pc.is_valid(column("materialized_seq", pa.int64())))
    return pa.Table.from_arrays(columns, schema=manifest_schema(key_names))


def renamed(table: pa.Table, old: KeyNames, new: KeyNames) -> pa.Table:
    """A manifest table written under the rename state `old`, with the columns of `new`
    (a key's values are those of its first column under `old`)."""
    if all(tuple(old[k]) == tuple(new[k]) for k in METADATA_KEYS):
        return table
    columns = [table.column("stage"), table.column("gen_id")]
    for key in METADATA_KEYS:
        values = table.column(old[key][0])
        columns.extend(values for _ in new[key])
    columns += [table.column("created_seq"), table.column("materialized")]
    return pa.Table.from_arrays(columns, schema=manifest_schema(new))


def manifest_table(state: State) -> pa.Table:
    """All generations, sorted by configured stage order then gen_id."""
    assert manifest_schema(state.key_names).names == state.manifest_columns()
    return sorted_by_stage(manifest_rows(state.generations.values(), state.key_names), state.config.stages, ())

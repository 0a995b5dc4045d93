"""`manifest.parquet` (the StageManifest): one row per generation, origin metadata as columns.

The column names follow the rename state (`State.manifest_columns()`): during an `alias`
phase a renamed key appears twice, under its old and its new name, with the same values.
"""

from __future__ import annotations

from operator import attrgetter

import pyarrow as pa
import pyarrow.compute as pc

from ledger.domain.events import ORIGIN_OPTIONAL_FIELDS
from ledger.domain.state import GENERATION_ATTR, METADATA_KEYS, Generation, State

from .order import sorted_by_stage

#: Arrow type and nullability of each logical manifest key: `replicate` is the one integer;
#: a column is nullable exactly when its payload key is optional.
_KEY_TYPES: dict[str, tuple[pa.DataType, bool]] = {
    key: (pa.int64() if key == "replicate" else pa.string(), key in ORIGIN_OPTIONAL_FIELDS) for key in METADATA_KEYS
}


def manifest_schema(state: State) -> pa.Schema:
    """The explicit schema, in `State.manifest_columns()` order."""
    fields = [pa.field("stage", pa.string(), nullable=False), pa.field("gen_id", pa.string(), nullable=False)]
    for key in METADATA_KEYS:
        arrow_type, nullable = _KEY_TYPES[key]
        fields.extend(pa.field(name, arrow_type, nullable=nullable) for name in state.key_names[key])
    fields += [pa.field("created_seq", pa.int64(), nullable=False), pa.field("materialized", pa.bool_(), nullable=False)]
    schema = pa.schema(fields)
    assert schema.names == state.manifest_columns()
    return schema


def manifest_table(state: State) -> pa.Table:
    """All generations, sorted by configured stage order then gen_id."""
    schema = manifest_schema(state)
    gens: list[Generation] = list(state.generations.values())

    def column(attr: str, arrow_type: pa.DataType) -> pa.Array:
        return pa.array(list(map(attrgetter(attr), gens)), arrow_type)

    columns = [column("stage", pa.string()), column("gen_id", pa.string())]
    for key in METADATA_KEYS:
        values = column(GENERATION_ATTR[key], _KEY_TYPES[key][0])
        columns.extend(values for _ in state.key_names[key])
    columns.append(column("created_seq", pa.int64()))
    columns.append(pc.is_valid(column("materialized_seq", pa.int64())))
    return sorted_by_stage(pa.Table.from_arrays(columns, schema=schema), state, ())

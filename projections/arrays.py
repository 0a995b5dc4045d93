"""Arrow arrays from Python lists: `pa.array` for long ones, the buffers directly for short ones.

`pa.array` asks on its first call whether its argument is a pandas object, which imports
pandas when it is installed: 0.3-0.5 s, a third of what an incremental build may take in all
(projections/patch.py makes arrays of a few thousand strings, and masks and orders of a
million rows). Assembling the buffers (values, offsets, validity bitmap) and calling
`Array.from_buffers` never looks for pandas. For integers and booleans that is as fast as
`pa.array` (the standard library's `array` and `bytes` convert a list in C); for strings,
encoding each in Python is about 5x slower per value, so a list of `SHORT` strings or more
(a full build's columns, where the import is a few per cent) goes to `pa.array`.
"""

from __future__ import annotations

from array import array as typed
from itertools import accumulate
from typing import Any, Sequence

import pyarrow as pa

SHORT = 50_000


def _bools(flags: Sequence[Any]) -> pa.Array:
    as_bytes = pa.Array.from_buffers(pa.uint8(), len(flags), [None, pa.py_buffer(bytes(flags))])
    return as_bytes.cast(pa.bool_())


def _validity(values: Sequence[Any]) -> tuple[pa.Buffer | None, int]:
    """The validity bitmap of `values` (None where none is null) and the null count."""
    nulls = values.count(None)
    if not nulls:
        return None, 0
    return _bools([v is not None for v in values]).buffers()[1], nulls


def array(values: Sequence[Any], arrow_type: pa.DataType) -> pa.Array:
    """`pa.array(values, arrow_type)` for string, int64 and bool arrays (booleans: no nulls, and
    `values` may be a bytes-like of 0s and 1s); None is null."""
    if arrow_type == pa.string() and len(values) >= SHORT:
        return pa.array(values, arrow_type)
    if arrow_type == pa.bool_():
        return _bools(values)
    validity, nulls = _validity(values)
    if arrow_type == pa.int64():
        data = typed("q", [0 if v is None else v for v in values] if nulls else values)
        return pa.Array.from_buffers(arrow_type, len(values), [validity, pa.py_buffer(data)], nulls)
    if arrow_type == pa.string():
        encoded = [b"" if v is None else v.encode() for v in values] if nulls else [v.encode() for v in values]
        offsets = typed("i", [0])
        offsets.extend(accumulate(map(len, encoded)))
        return pa.Array.from_buffers(arrow_type, len(values),
                                     [validity, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))], nulls)
    raise TypeError(f"no short path for {arrow_type}")

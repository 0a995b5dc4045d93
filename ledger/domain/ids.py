"""Identifiers: the safe charset every id must satisfy, and the pipeline's deterministic gen ids.

Ids become file names (`cohorts/<cohort_id>/membership.csv`), so the charset is the
whole defence against path traversal and spreadsheet formula injection: a first character
that is a letter or digit rules out `..`, `-x`, `=cmd`, `+1`, `@x`.
"""

from __future__ import annotations

import hashlib
import re
from typing import Container, Mapping

#: The identifier syntax (docs/FORMAT.md §6.1), anchored for pydantic and JSON Schema;
#: `IDENTIFIER_RE` (for `fullmatch`) and the projection file-name pattern derive from it.
IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
IDENTIFIER_RE = re.compile(IDENTIFIER_PATTERN[1:-1])

#: Signature fields per stage, in the order they are joined for the gen id (docs/operators.md §3).
SIGNATURE_FIELDS: dict[str, tuple[str, ...]] = {
    "draft": ("combo_id", "template_id", "llm_model_id", "replicate"),
    "essay": ("parent_gen_id", "template_id", "replicate"),
    "evaluation": ("parent_gen_id", "template_id", "llm_model_id", "replicate"),
}
GEN_ID_PREFIX = {"draft": "d_", "essay": "e_", "evaluation": "v_"}

_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def is_identifier(value: object) -> bool:
    return isinstance(value, str) and IDENTIFIER_RE.fullmatch(value) is not None


def _base36(n: int) -> str:
    digits = []
    while n:
        n, r = divmod(n, 36)
        digits.append(_B36[r])
    return "".join(reversed(digits)) or "0"


def _signature_fields(stage: str) -> tuple[str, ...]:
    try:
        return SIGNATURE_FIELDS[stage]
    except KeyError:
        raise ValueError(f"no gen id scheme for stage {stage!r}") from None


_DIGITS = re.compile(r"[0-9]+")


def coerce_replicate(value: object) -> int | None:
    """A replicate as the pipeline reads one: an int, an integral float or a string of ASCII
    digits (CSV cells, surrounding blanks allowed) that is >= 1; None for anything else.

    The pipeline runs `int(value)`; this is stricter where `int` would guess: a bool, a
    fraction (`int(2.7)` is 2), a sign, `"²"` or other non-ASCII digits are not replicates.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        value = int(value.strip())
    return value if isinstance(value, int) and value >= 1 else None


def _normalized(stage: str, name: str, signature: Mapping[str, object]) -> str:
    """One signature field as the pipeline hashes it; missing or blank fields are refused."""
    if name not in signature or signature[name] is None:
        raise ValueError(f"{stage} signature needs {name!r}")
    value = signature[name]
    if name == "replicate":
        replicate = coerce_replicate(value)
        if replicate is None:
            raise ValueError(f"replicate must be an integer >= 1, got {value!r}")
        return str(replicate)
    text = str(value).strip().lower()
    if not text:
        raise ValueError(f"{stage} signature field {name!r} is empty")
    return text


def signature_key(stage: str, signature: Mapping[str, object]) -> tuple[str, ...]:
    """The signature without `replicate`, normalised as the gen id hashes it.

    Two signatures with the same key differ only by replicate, so their gen ids can only
    differ by replicate: the reuse planner groups on this key for exactly that reason.
    """
    return tuple(_normalized(stage, n, signature) for n in _signature_fields(stage) if n != "replicate")


def signature_text(stage: str, signature: Mapping[str, object]) -> str:
    """The `|`-joined signature the pipeline hashes: text stripped and lower-cased."""
    return "|".join(_normalized(stage, name, signature) for name in _signature_fields(stage))


def gen_id(stage: str, **signature: object) -> str:
    """Deterministic gen id, byte-compatible with the pipeline's own ids.

    prefix + base36 of the big-endian integer of a 10-byte blake2b digest of the signature.
    Text fields are stripped and lower-cased and must not be blank; `replicate` may be an
    int-like string such as `"2"` (`coerce_replicate`). An id already taken by a gen of
    another signature is resolved by `collision_gen_id`.

    >>> gen_id("essay", parent_gen_id="d_5ezrffv9uf3lr37d", template_id="creative-synthesis-v10", replicate="1")
    'e_sq5klak2lljyyom'
    """
    return collision_gen_id(stage, 0, **signature)


def collision_gen_id(stage: str, collision: int, /, **signature: object) -> str:
    """The id the pipeline gives a signature on its `collision`-th retry (0: `gen_id` itself).

    The hashed text gets `|collision:<k>` appended and the id the suffix `-<k>`, so `d_…-1`
    is a gen id like any other.
    """
    if isinstance(collision, bool) or not isinstance(collision, int) or collision < 0:
        raise ValueError(f"collision must be an int >= 0, got {collision!r}")
    text = signature_text(stage, signature)
    if collision:
        text += f"|collision:{collision}"
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=10).digest()
    base = GEN_ID_PREFIX[stage] + _base36(int.from_bytes(digest, "big"))
    return f"{base}-{collision}" if collision else base


def free_gen_id(stage: str, taken: Container[str], **signature: object) -> str:
    """The pipeline's collision resolution: the first of `collision_gen_id(stage, 0, 1, 2, ...)` not in `taken`.

    `taken` holds ids of gens with *other* signatures (a gen of this very signature and
    replicate is that gen, not a collision), so the result never names an existing gen.
    """
    collision = 0
    while (candidate := collision_gen_id(stage, collision, **signature)) in taken:
        collision += 1
    return candidate

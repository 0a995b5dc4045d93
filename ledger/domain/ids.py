"""Identifiers: the safe charset every id must satisfy, and the pipeline's deterministic gen ids.

Ids become file names (`cohorts/<cohort_id>/membership.csv`), so the charset is the
whole defence against path traversal and spreadsheet formula injection: a first character
that is a letter or digit rules out `..`, `-x`, `=cmd`, `+1`, `@x`.
"""

from __future__ import annotations

import hashlib
import re
from typing import Mapping

#: The identifier syntax (docs/FORMAT.md §6.1), anchored for pydantic and JSON Schema;
#: `IDENTIFIER_RE` (for `fullmatch`) and the projection file-name pattern derive from it.
IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
IDENTIFIER_RE = re.compile(IDENTIFIER_PATTERN[1:-1])

#: Signature fields per stage, in the order they are joined for the gen id (DESIGN §6).
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


def _normalized(stage: str, name: str, signature: Mapping[str, object]) -> str:
    if name not in signature or signature[name] is None:
        raise ValueError(f"{stage} signature needs {name!r}")
    value = signature[name]
    if name == "replicate":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"replicate must be an int >= 1, got {value!r}")
        return str(value)
    return str(value).strip().lower()


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
    """
    text = signature_text(stage, signature)
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=10).digest()
    return GEN_ID_PREFIX[stage] + _base36(int.from_bytes(digest, "big"))

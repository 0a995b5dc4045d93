"""`metadata.json` in every historical shape, normalised to the ledger's origin metadata.

What a file means is decided here once, for import (which reads it) and export (which
writes its origin keys back). Normalisation never invents a value: a field the file does
not give stays None, and a required field that is missing (template, origin) is a problem
for the caller to report, not a default.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from ..domain.events import ORIGIN_FIELDS
from ..domain.ids import coerce_replicate

#: keys that name the origin cohort, old and new (both present: they must agree)
ORIGIN_KEYS = ("origin_cohort_id", "cohort_id")
#: legacy template keys that name a gen's *own* template, by stage. Other stages' keys on
#: a file describe an ancestor (an evaluation's `draft_template` or `generation_template`
#: is its draft's or essay's template), so they are never read as the gen's own.
LEGACY_TEMPLATE_KEYS: dict[str, tuple[str, ...]] = {
    "draft": ("draft_template",),
    "essay": ("essay_template", "essay_template_id", "generation_template"),
    "evaluation": ("evaluation_template",),
}
MODES = ("llm", "copy")
#: deepest nesting a metadata.json may have: the pipeline's files are 3 deep (`usage`, `files`);
#: the limit keeps every reader and export's rewrite far from Python's recursion limit
MAX_DEPTH = 32


@dataclass(frozen=True, slots=True)
class Origin:
    """Origin metadata under the ledger's logical names; None where the source has nothing."""

    stage: str
    gen_id: str
    cohort_id: str | None
    template_id: str | None
    combo_id: str | None
    llm_model_id: str | None
    parent_gen_id: str | None
    replicate: int | None  #: None: not given (1 unless a wide row says otherwise)
    mode: str | None

    def as_metadata(self) -> dict[str, Any]:
        """The same dict `Generation.metadata()` gives, so the two compare directly."""
        return {f: getattr(self, f) for f in ORIGIN_FIELDS}


def origin_keys_for(key_names: tuple[str, ...]) -> tuple[str, ...]:
    """The keys an origin may sit under, given the ledger's names for it (`State.key_names["cohort_id"]`).

    The pipeline's own two always count; a rename to another key (`cohort_id -> origin`)
    adds the names export writes, so a re-import reads what export wrote.
    """
    return tuple(dict.fromkeys((*ORIGIN_KEYS, *key_names)))


def null_if_missing(value: Any) -> Any:
    """`"nan"`, `""`, NaN and None all mean "no value" in pipeline files."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str) and (not value.strip() or value.strip().lower() == "nan"):
        return None
    return value


def template_keys(stage: str) -> tuple[str, ...]:
    return ("template_id",) + LEGACY_TEMPLATE_KEYS.get(stage, (f"{stage}_template", f"{stage}_template_id"))


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """object_pairs_hook: a key given twice is refused, not resolved (last wins would lose one)."""
    doc = dict(pairs)
    if len(doc) != len(pairs):
        seen: set[str] = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise _DuplicateKey(twice)
    return doc


class _DuplicateKey(Exception):
    pass


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """Parse a metadata.json (stdlib json: it reads the bare `NaN` pandas-era files contain).

    The pipeline writes UTF-8; any other encoding (UTF-16 would otherwise be auto-detected by
    `json.loads`) is refused here, so import and export accept exactly the same files. A key
    repeated in any object, and nesting deeper than MAX_DEPTH, are refused too. Raises ValueError
    with a one-line reason.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        doc = json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except _DuplicateKey as exc:
        raise ValueError(f"duplicate key {exc.args[0]!r} (which one counts would be a guess)") from None
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    if not isinstance(doc, dict):
        raise ValueError(f"expected a JSON object, got {type(doc).__name__}")
    if _depth(doc) > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    return doc


def _depth(doc: Any) -> int:
    """Nesting depth of a parsed JSON value, without recursion (a scalar is 0)."""
    deepest, todo = 0, [(doc, 1)]
    while todo:
        value, level = todo.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is not None:
            deepest = max(deepest, level)
            todo.extend((child, level + 1) for child in children)
    return deepest


def _text(doc: dict[str, Any], key: str, problems: list[str]) -> str | None:
    value = null_if_missing(doc.get(key))
    if value is not None and not isinstance(value, str):
        problems.append(f"{key} is {value!r}, not a string")
        return None
    return value.strip() if value is not None else None


def _agreeing(doc: dict[str, Any], keys: tuple[str, ...], what: str, problems: list[str]) -> str | None:
    """The one value the given keys agree on (keys without a value don't count)."""
    found = {k: v for k in keys if (v := _text(doc, k, problems)) is not None}
    if len(set(found.values())) > 1:
        problems.append(f"{what} keys disagree: " + ", ".join(f"{k}={v}" for k, v in found.items()))
        return None
    return next(iter(found.values()), None)


def normalize_metadata(doc: dict[str, Any], stage: str, gen_id: str,
                       origin_keys: tuple[str, ...] = ORIGIN_KEYS) -> tuple[Origin, list[str]]:
    """Read a metadata.json object found at gens/<stage>/<gen_id>/; return (origin, problems).

    The directory names are the fallback for `stage` and `gen_id` and must match them when
    the file has them. `origin_keys` are the keys that may hold the origin cohort: the
    pipeline's two, plus whatever a ledger rename made `export-metadata` write
    (`origin_keys_for`). Run-time keys (`files`, `usage`, `run_id`, ...) are not read.
    """
    problems: list[str] = []
    for key, where in (("stage", stage), ("gen_id", gen_id)):
        value = _text(doc, key, problems)
        if value is not None and value != where:
            problems.append(f"{key} is {value!r} but the file sits in directory {where!r}")
    raw_replicate = null_if_missing(doc.get("replicate"))
    replicate = None if raw_replicate is None else coerce_replicate(raw_replicate)
    if raw_replicate is not None and replicate is None:
        problems.append(f"replicate is {raw_replicate!r}, not an integer >= 1")
    mode = _text(doc, "mode", problems)
    if mode is not None and mode not in MODES:
        problems.append(f"mode is {mode!r}, not one of {', '.join(MODES)}")
        mode = None
    origin = Origin(
        stage=stage,
        gen_id=gen_id,
        cohort_id=_agreeing(doc, origin_keys, "origin cohort", problems),
        template_id=_agreeing(doc, template_keys(stage), "template", problems),
        combo_id=_text(doc, "combo_id", problems),
        llm_model_id=_text(doc, "llm_model_id", problems),
        parent_gen_id=_text(doc, "parent_gen_id", problems),
        replicate=replicate,
        mode=mode,
    )
    return origin, problems

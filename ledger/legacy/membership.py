"""`membership.csv` in every shape a pipeline data root has held (docs/migration.md, shapes).

The shapes are told apart by their exact header; anything else is refused with the columns
found and the shapes accepted, because a column read under the wrong meaning would silently
move gens between cohorts. What each column means (the wide files' cohort column is the
file's own cohort, even where the curated script calls it `origin_cohort_id`) is the
importer's business; this module only reads cells.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidInputError
from .dataroot import read_regular

#: shape name -> its exact header
SHAPES: dict[str, tuple[str, ...]] = {
    "slim": ("stage", "gen_id"),
    "slim-cohort": ("stage", "gen_id", "cohort_id"),
    "wide-7": ("stage", "gen_id", "cohort_id", "parent_gen_id", "combo_id", "template_id", "llm_model_id"),
    "wide-8": ("stage", "gen_id", "cohort_id", "parent_gen_id", "combo_id", "template_id",
               "llm_model_id", "replicate"),
    "wide-8-curated": ("stage", "gen_id", "origin_cohort_id", "parent_gen_id", "combo_id", "template_id",
                       "llm_model_id", "replicate"),
}
_BY_HEADER = {header: name for name, header in SHAPES.items()}


class MembershipShapeError(InvalidInputError):
    """A membership.csv this loader refuses; `reason` is the message without the path."""

    def __init__(self, path: Path, reason: str, line: int | None = None) -> None:
        self.path = path
        self.reason = reason
        self.line = line
        super().__init__(f"{path}{f':{line}' if line else ''}: {reason}")


@dataclass(frozen=True, slots=True)
class MembershipRow:
    """One row; a column the file's shape lacks, and an empty cell, are both None."""

    line: int
    stage: str | None
    gen_id: str | None
    cohort_id: str | None = None
    origin_cohort_id: str | None = None
    parent_gen_id: str | None = None
    combo_id: str | None = None
    template_id: str | None = None
    llm_model_id: str | None = None
    replicate: str | None = None


@dataclass(frozen=True)
class MembershipFile:
    path: Path
    shape: str
    rows: list[MembershipRow]


def _accepted() -> str:
    return "; ".join(",".join(h) for h in SHAPES.values())


def read_membership_csv(path: str | Path) -> MembershipFile:
    """Read one membership.csv of any accepted shape; empty cells become None.

    Raises MembershipShapeError (an InvalidInputError) naming the file (and line) for an unknown header, a row
    with the wrong number of cells, or a path that is not a readable regular file (a symlink, a FIFO, a
    directory). A UTF-8 byte order mark and CRLF line ends are fine.
    """
    path = Path(path)
    try:
        text = read_regular(path).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MembershipShapeError(path, f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except ValueError as exc:
        raise MembershipShapeError(path, str(exc)) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = tuple(c.strip() for c in next(reader, ()))
        shape = _BY_HEADER.get(header)
        if shape is None:
            raise MembershipShapeError(
                path, f"unknown membership.csv columns {','.join(header) or '(none)'}; accepted: {_accepted()}")
        names = header[2:]
        width = len(header)
        rows = []
        for cells in reader:
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue  # blank line
            if len(cells) != width:
                raise MembershipShapeError(
                    path, f"{len(cells)} cells, the {shape} header has {width}", reader.line_num)
            values = [c.strip() or None for c in cells]
            rows.append(MembershipRow(reader.line_num, values[0], values[1], **dict(zip(names, values[2:]))))
    except csv.Error as exc:
        raise MembershipShapeError(path, f"malformed CSV ({exc})") from None
    return MembershipFile(path, shape, rows)

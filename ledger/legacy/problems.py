"""The problem list legacy commands fail with: every problem at once, never just the first.

A data root is fixed by hand between attempts, so one run must name everything that is
wrong (gen id, file, what disagrees); stopping at the first problem would turn a migration
into dozens of round trips.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..errors import InvalidInputError


@dataclass(frozen=True)
class Problem:
    """One thing in the data root the ledger refuses to guess about."""

    file: str  #: path relative to the data root ("" when no single file is to blame)
    gen_id: str | None
    message: str

    def line(self) -> str:
        where = self.file or "<data root>"
        return f"{self.gen_id or '-'}: {where}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def sort_key(self) -> tuple[str, str, str]:
        return (self.file, self.gen_id or "", self.message)


def sorted_problems(problems: list[Problem]) -> list[Problem]:
    """By file, then gen id: the order a person fixing the data root works in."""
    return sorted(problems, key=Problem.sort_key)


class LegacyProblems(InvalidInputError):
    """A legacy command found problems; nothing was written. Carries the whole sorted list."""

    exit_code = 2

    def __init__(self, command: str, problems: list[Problem]) -> None:
        self.command = command
        self.problems = sorted_problems(problems)
        n = len(self.problems)
        super().__init__(f"{command}: {n} problem{'s' if n != 1 else ''}; first: {self.problems[0].line()}")

    def report(self, data_root: str) -> dict[str, Any]:
        return {"command": self.command, "data_root": data_root, "ok": False,
                "problems": [p.to_json() for p in self.problems]}

"""The suite's own rules, and the README's command table against the real command tree.

Tests import builders from tests/helpers/ (never from conftest, whose names pytest injects
as fixtures), import the project's packages plainly (an `importorskip` would turn a broken
import into a silent skip), and leave a missing real mechanism to `helpers.env.unavailable`,
which fails under CI=true instead of skipping.
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from ledger.cli import cli

TESTS = Path(__file__).resolve().parent
README = TESTS.parent / "README.md"
SOURCES = sorted(p for p in TESTS.rglob("*.py") if p.name != "test_hygiene.py")
#: flags every command has, documented once below the table rather than in each row
COMMON_FLAGS = {"--json", "--help"}


@pytest.mark.parametrize("rule, pattern", [
    ("import builders from tests/helpers/, not conftest", r"^\s*(from conftest import|import conftest)"),
    ("import the project's packages, never importorskip them",
     r"importorskip\(\s*['\"](ledger|projections)(\.|['\"])"),
    ("a missing mechanism goes through helpers.env.unavailable (fails under CI=true)", r"\bpytest\.skip\("),
])
def test_suite_rules(rule: str, pattern: str) -> None:
    found = re.compile(pattern, re.M)
    offenders = [f"{p.relative_to(TESTS)}:{text[:m.start()].count(chr(10)) + 1}"
                 for p in SOURCES if p.name != "env.py" for text in [p.read_text()] for m in found.finditer(text)]
    assert offenders == [], f"{rule}: {offenders}"


def readme_table() -> dict[str, set[str]]:
    """command -> flags, from the first cell of each row of README's command table."""
    table: dict[str, set[str]] = {}
    for line in README.read_text().splitlines():
        if not line.startswith("| `"):
            continue
        first_cell = re.split(r"(?<!\\)\|", line)[1]
        for form in re.findall(r"`([^`]+)`", first_cell):
            name = form.split()[0]
            table.setdefault(name, set()).update(re.findall(r"--[a-z][a-z0-9-]*", form))
    return table


def cli_commands() -> dict[str, set[str]]:
    """command -> long option names, walking click's command tree."""
    out: dict[str, set[str]] = {}

    def walk(group: click.Group, prefix: str) -> None:
        for name, command in group.commands.items():
            if command.hidden:
                continue
            full = f"{prefix}{name}"
            if isinstance(command, click.Group):
                walk(command, full + " ")
            out[full] = {o for p in command.params if isinstance(p, click.Option)
                         for o in p.opts + p.secondary_opts if o.startswith("--")} - COMMON_FLAGS
    walk(cli, "")
    return out


def test_readme_command_table_matches_the_cli() -> None:
    assert readme_table() == cli_commands()
    assert "Every listing command takes `--json`" in README.read_text()

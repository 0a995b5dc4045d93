"""The root command group and the helpers every command module shares."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterable

import click
import orjson

from ..store import Ledger


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--ledger",
    "ledger_path",
    envvar="COHORT_LEDGER",
    default="./ledger",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Ledger directory (env COHORT_LEDGER).",
)
@click.version_option(package_name="cohort-ledger")
@click.pass_context
def cli(ctx: click.Context, ledger_path: Path) -> None:
    """An append-only, hash-chained ledger of cohort membership."""
    ctx.obj = ledger_path


def ledger_path() -> Path:
    return click.get_current_context().find_root().obj  # type: ignore[no-any-return]


def open_ledger() -> Ledger:
    return Ledger.open(ledger_path())


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")


def emit_json(obj: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2) + b"\n")


def emit_json_list(items: Iterable[Any]) -> None:
    """Stream a JSON array item by item, so a million-event listing never sits in memory."""
    out = sys.stdout.buffer
    out.write(b"[")
    sep = b"\n"
    for item in items:
        out.write(sep + orjson.dumps(item))
        sep = b",\n"
    out.write(b"\n]\n" if sep != b"\n" else b"]\n")

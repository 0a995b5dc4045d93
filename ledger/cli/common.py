"""The root command group and the helpers every command module shares."""

from __future__ import annotations

import re
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Sequence

import click
import orjson

from ..app.service import Ledger


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--ledger",
    "ledger_path",
    envvar="COHORT_LEDGER",
    default="./ledger",
    show_default=True,
    help="Ledger directory, or s3://bucket/prefix (env COHORT_LEDGER; S3 endpoint and credentials "
         "from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ALLOW_HTTP).",
)
@click.version_option(package_name="cohort-ledger")
@click.pass_context
def cli(ctx: click.Context, ledger_path: str) -> None:
    """An append-only, hash-chained ledger of cohort membership."""
    ctx.obj = ledger_path


def ledger_path() -> str:
    """What --ledger names: a directory or a URL (a string: a Path would fold `s3://` to `s3:/`)."""
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


@contextmanager
def progress_bar(*, in_bytes: bool = False, min_total: int = 0) -> Iterator[Callable[[str, int, int], None] | None]:
    """A rich bar per phase on stderr when it is a terminal; nothing otherwise (logs, pipes, CI).

    Phases smaller than `min_total` are not shown (their bar would only flicker), and updates
    are thinned to about one per 1/500 of the total, so per-batch callbacks stay cheap.
    """
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    count = DownloadColumn() if in_bytes else MofNCompleteColumn()
    with Progress(TextColumn("{task.description}"), BarColumn(), count, TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        tasks: dict[str, Any] = {}
        shown: dict[str, int] = {}

        def update(phase: str, done: int, total: int) -> None:
            if total < min_total or (done - shown.get(phase, -total) < total // 500 and done != total):
                return
            shown[phase] = done
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done, total=total)

        yield update


#: C0 and C1 control characters and DEL: a recorded reason must not move the cursor or recolour
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def terminal_safe(text: str) -> str:
    """`text` with every control character written as its JSON escape (as events.jsonl records it)."""
    return _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A plain aligned table; wide when piped, so long gen ids are never folded. Cells are shown
    as text: recorded markup and control characters are never interpreted."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(width=None if sys.stdout.isatty() else 1000, highlight=False, soft_wrap=False)
    table = Table(*columns, box=None, pad_edge=False)
    for row in rows:  # Text, not str: rich would read "[bold]" in a recorded reason as markup
        table.add_row(*(Text(terminal_safe("" if v is None else str(v))) for v in row))
    if title:
        click.echo(terminal_safe(title))
    if table.row_count:
        console.print(table)

"""`build`: write the projections (a thin layer over `projections.build`)."""

from __future__ import annotations

import dataclasses
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, ContextManager

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

from .common import cli, emit_json, json_option, ledger_path

#: below this many log bytes to fold, a progress bar would only flicker
_PROGRESS_MIN_BYTES = 32 << 20


def _progress_bar() -> tuple[ContextManager[object], Callable[[int, int], None] | None]:
    """A rich bar on stderr when it is a terminal; updates throttled to ~1 per MiB read."""
    if not sys.stderr.isatty():
        return nullcontext(), None
    bar = Progress("folding", BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                   console=Console(stderr=True), transient=True)
    task = bar.add_task("fold", total=None, visible=False)
    last = [0]

    def update(done: int, total: int) -> None:
        if total >= _PROGRESS_MIN_BYTES and done - last[0] >= 1 << 20 or done == total:
            last[0] = done
            bar.update(task, completed=done, total=total, visible=total >= _PROGRESS_MIN_BYTES)

    return bar, update


@cli.command()
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Output directory (default <ledger>/projections).")
@click.option("--as-of", "as_of", default=None, metavar="SEQ|TIME",
              help="Build as of a seq, or an RFC 3339 time with Z or an offset.")
@click.option("--full", is_flag=True, help="Replay from seq 1, ignoring checkpoints.")
@json_option
def build(out_dir: Path | None, as_of: str | None, full: bool, as_json: bool) -> None:
    """Write manifest.parquet, membership.parquet and cohorts/<id>/membership.csv."""
    from projections import build as build_projections  # here: other commands need not load pyarrow

    bar, progress = _progress_bar()
    with bar:
        report = build_projections(ledger_path(), out_dir, as_of=as_of, full=full, progress=progress)
    if as_json:
        emit_json({**dataclasses.asdict(report), "checkpoint_used": report.checkpoint_used})
        return
    source = f"checkpoint seq {report.checkpoint_seq} + " if report.checkpoint_used else ""
    click.echo(f"built {report.out_dir} at seq {report.seq} hash {report.hash}: {source}{report.events_folded} "
               f"event(s) folded; {len(report.written)} file(s) written, {len(report.unchanged)} unchanged, "
               f"{len(report.removed)} removed")

"""`demo`: the end-to-end example on built-in sample data (the story lives in `ledger.cli.demo_story`)."""

from __future__ import annotations

from pathlib import Path

import click

from .common import cli


@cli.command()
@click.argument("directory", default="ledger-demo", type=click.Path(path_type=Path))
def demo(directory: Path) -> None:
    """Run the end-to-end example in DIRECTORY (its ledger/ subdirectory must not exist yet)."""
    from .demo_story import run_demo  # imports pyarrow and projections: only when the demo runs

    result = run_demo(directory, say=click.echo)
    click.echo(f"\nDone. Report: {result.report_html}\nTry: cohort-ledger --ledger {result.ledger_path} show cohort-b")

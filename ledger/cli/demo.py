"""`demo`: the end-to-end example on built-in sample data."""

from __future__ import annotations

from pathlib import Path

import click

from ..store import Ledger
from .common import cli


@cli.command()
@click.argument("directory", default="ledger-demo", type=click.Path(path_type=Path))
def demo(directory: Path) -> None:
    """Run the end-to-end example in DIRECTORY (created; must not exist or be empty)."""
    ledger = Ledger.init(directory / "ledger")
    click.echo(f"1. created a ledger in {ledger.path}")
    seqs = ledger.append([
        {"type": "cohort.opened", "data": {"cohort_id": "cohort-a", "description": "demo cohort"}},
        {"type": "generation.created", "data": {"cohort_id": "cohort-a", "stage": "draft", "gen_id": "d_demo1",
                                                "template_id": "creative-synthesis-v10", "combo_id": "combo_v1_demo",
                                                "llm_model_id": "gemini_25_pro"}},
        {"type": "generation.created", "data": {"cohort_id": "cohort-a", "stage": "essay", "gen_id": "e_demo1",
                                                "template_id": "creative-synthesis-v10", "parent_gen_id": "d_demo1",
                                                "llm_model_id": "gemini_25_pro"}},
    ])
    click.echo(f"2. appended one atomic batch: seqs {seqs}")
    report = ledger.verify()
    click.echo(f"3. verified the chain: {report.events} events, head seq {report.head.seq} hash {report.head.hash}")

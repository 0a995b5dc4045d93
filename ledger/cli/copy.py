"""`copy SRC DST`: a ledger into another backend, verified (a thin layer over ledger.app.copy)."""

from __future__ import annotations

import dataclasses

import click

from ..app.copy import copy_ledger
from .common import cli, emit_json, json_option, progress_bar


@cli.command()
@click.argument("source")
@click.argument("destination")
@json_option
def copy(source: str, destination: str, as_json: bool) -> None:
    """Copy the ledger SOURCE into DESTINATION (a directory or s3://bucket/prefix), verified.

    DESTINATION must be new, or an unfinished copy of SOURCE (this resumes it). It gets the
    same ledger.json and the same batches, and is checked to have SOURCE's head before it is
    marked finished; until then it refuses to open. The --ledger option is not used.

    Example: cohort-ledger copy ./ledger s3://team-bucket/ledgers/main
    """
    with progress_bar(min_total=10_000) as update:
        progress = None if update is None else lambda done, total: update("copying", done, total)
        report = copy_ledger(source, destination, progress=progress)
    if as_json:
        emit_json(dataclasses.asdict(report))
        return
    resumed = f" (resumed after {report.already} event(s) already there)" if report.already else ""
    click.echo(f"copied {report.source} -> {report.destination}: {report.copied} event(s) in {report.batches} "
               f"batch(es){resumed}; verified head seq {report.seq} hash {report.hash}")

"""`build`: write the projections (a thin layer over `projections.build`)."""

from __future__ import annotations

import dataclasses

import click

from .common import cli, emit_json, json_option, ledger_path, progress_bar

#: below this many log bytes to fold, a progress bar would only flicker
_PROGRESS_MIN_BYTES = 32 << 20


@cli.command()
@click.option("--out", "out_dir", default=None,
              help="Output directory or s3://bucket/prefix (default <ledger>/projections).")
@click.option("--as-of", "as_of", default=None, metavar="SEQ|TIME",
              help="Build as of a seq, or an RFC 3339 time with Z or an offset.")
@click.option("--full", is_flag=True, help="Replay from seq 1, ignoring checkpoints.")
@click.option("--lock-timeout", type=click.FloatRange(min=0), default=600, show_default=True, metavar="SECONDS",
              help="How long to wait for another build into the same --out.")
@json_option
def build(out_dir: str | None, as_of: str | None, full: bool, lock_timeout: float, as_json: bool) -> None:
    """Write manifest.parquet, membership.parquet and cohorts/<id>/membership.csv.

    Example: cohort-ledger --ledger ledger build --out data/projections --as-of 1200
    """
    from projections import build as build_projections  # here: other commands need not load pyarrow

    with progress_bar(in_bytes=True, min_total=_PROGRESS_MIN_BYTES) as update:
        progress = None if update is None else lambda done, total: update("folding", done, total)
        report = build_projections(ledger_path(), out_dir, as_of=as_of, full=full, progress=progress,
                                   lock_timeout=lock_timeout)
    for warning in report.warnings:
        click.echo(f"cohort-ledger: warning: {warning}", err=True)
    if as_json:
        emit_json({**dataclasses.asdict(report), "checkpoint_used": report.checkpoint_used})
        return
    if report.up_to_date:
        click.echo(f"{report.out_dir} is up to date at seq {report.seq} hash {report.hash}: nothing appended since "
                   f"its last build; {len(report.unchanged)} file(s) unchanged")
        return
    source = f"checkpoint seq {report.checkpoint_seq} + " if report.checkpoint_used else ""
    done = "folded"
    if report.patched_from is not None:
        source, done = f"the projection at seq {report.patched_from} + ", "patched in"
    click.echo(f"built {report.out_dir} at seq {report.seq} hash {report.hash}: {source}{report.events_folded} "
               f"event(s) {done}; {len(report.written)} file(s) written, {len(report.unchanged)} unchanged, "
               f"{len(report.removed)} removed")

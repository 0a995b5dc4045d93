"""Audit commands: `diff` (two cohort points compared) and `report` (the page with plots)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from ..cohorts.diff import DiffEntry, Point, diff as diff_points
from ..errors import InvalidInputError, LedgerEnvironmentError
from .common import cli, emit_json, json_option, open_ledger, print_table, terminal_safe


def _seq(value: int | None) -> str:
    return "" if value is None else str(value)


@cli.command()
@click.argument("a")
@click.argument("b", required=False)
@click.option("--from", "from_", default=None, metavar="SEQ|TIME", help="With one COHORT: the earlier point.")
@click.option("--to", default=None, metavar="SEQ|TIME", help="With one COHORT: the later point (default: head).")
@json_option
def diff(a: str, b: str | None, from_: str | None, to: str | None, as_json: bool) -> None:
    """Compare two cohorts, or one cohort at two points: per stage, gens only in A, only in B, in both.

    A side is COHORT (the head), COHORT@SEQ or COHORT@TIME. Example:
    `cohort-ledger diff cohort-a cohort-b@120`, or `cohort-ledger diff cohort-b --from 120 --to 2026-05-01T00:00:00Z`.
    """
    if b is None:
        if from_ is None:
            raise InvalidInputError("diff needs two sides (A B) or one COHORT with --from [--to]")
        if "@" in a:
            raise InvalidInputError("with --from/--to, give the cohort without @")
        pa, pb = f"{a}@{from_}", a if to is None else f"{a}@{to}"
    else:
        if from_ is not None or to is not None:
            raise InvalidInputError("--from/--to go with one COHORT, not with two sides")
        pa, pb = a, b
    result = diff_points(open_ledger(), Point.parse(pa), Point.parse(pb))
    if as_json:
        emit_json(result.to_json())
        return
    click.echo(f"A = {result.a.cohort_id} at seq {result.a.seq}; B = {result.b.cohort_id} at seq {result.b.seq}")
    for stage, d in result.stages.items():
        counts = d.counts()
        click.echo(f"\n{stage}: {counts['only_in_a']} only in A, {counts['only_in_b']} only in B, "
                   f"{counts['both']} in both")
        for label, entries in (("only in A", d.only_in_a), ("only in B", d.only_in_b)):
            if entries:
                print_table(f"  {label}", ["gen_id", "origin", "reused", "added", "removed"],
                            [_row(e, label == "only in A") for e in entries])


def _row(e: DiffEntry, in_a: bool) -> tuple[str, str, str, str, str]:
    """One only-in-A or only-in-B gen: reused and added on its side; removed from the other side's cohort."""
    reused = e.reused_in_a if in_a else e.reused_in_b
    return (e.gen_id, e.origin_cohort_id, "yes" if reused else "", _seq(e.added_seq_a if in_a else e.added_seq_b),
            _seq(e.removed_seq_b if in_a else e.removed_seq_a))


@cli.command()
@click.argument("cohort_ids", nargs=-1, metavar="[COHORT ...]")
@click.option("--html", "html_path", type=click.Path(path_type=Path), default=None,
              help="Write the self-contained report page here.")
@click.option("--md", "md_path", type=click.Path(path_type=Path), default=None,
              help="Write the same content as Markdown here.")
@click.option("--as-of", "as_of", default=None, metavar="SEQ|TIME",
              help="Report as of a seq, or an RFC 3339 time with Z or an offset.")
@json_option
def report(cohort_ids: tuple[str, ...], html_path: Path | None, md_path: Path | None, as_of: str | None,
           as_json: bool) -> None:
    """Write a report page (and/or Markdown) on the cohorts (default: every cohort), with plots.

    Example: `cohort-ledger report cohort-a cohort-b --html report.html --md report.md --as-of 120`.
    """
    try:
        from ..report import write_report  # matplotlib: loaded only for this command
    except ImportError as exc:
        raise LedgerEnvironmentError(f"report needs the report extra ({exc.name} is missing): "
                                     "pip install 'cohort-ledger[report]'") from None
    done = write_report(open_ledger(), cohort_ids, html_path, md_path, as_of)
    if as_json:
        emit_json(dataclasses.asdict(done))
        return
    for path in (done.html, done.markdown):
        if path is not None:
            click.echo(f"wrote {terminal_safe(path)}")
    click.echo(f"report on {', '.join(done.cohorts)} as of seq {done.seq}; pin {done.seq}:{done.hash}")

"""import-legacy, export-metadata: taking over an existing pipeline data root."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import orjson

from ..log.fsio import atomic_write
from ..legacy import ImportPlan, LegacyProblems, apply_export, apply_import, plan_export, plan_import
from ..legacy.importer import FIRST
from .common import cli, emit_json, json_option, open_ledger, progress_bar

data_root_option = click.option("--data-root", required=True, type=click.Path(path_type=Path),
                                help="The pipeline's data directory (holding gens/ and cohorts/).")


def _fail(exc: LegacyProblems, data_root: Path, as_json: bool, report: Path | None = None) -> None:
    """The whole list on stderr (the one-line summary follows from `main`), in --report and --json."""
    if report is not None:
        _write_report(report, exc.report(str(data_root)))
    if as_json:
        emit_json(exc.report(str(data_root)))
    for problem in exc.problems:
        click.echo(f"problem: {problem.line()}", err=True)
    raise exc


def _write_report(path: Path, report: dict[str, Any]) -> None:
    atomic_write(path, orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")


@cli.command("import-legacy")
@data_root_option
@click.option("--apply", "do_apply", is_flag=True, help="Append the events (one atomic batch); else only show them.")
@click.option("--sync", is_flag=True,
              help="Record gens the ledger has in a cohort whose membership.csv no longer lists them as removed "
                   "(without it such an import exits 1 and appends nothing).")
@click.option("--report", type=click.Path(path_type=Path), default=None,
              help="Write the outcome, and every problem, as JSON to this file.")
@json_option
def import_legacy(data_root: Path, do_apply: bool, sync: bool, report: Path | None, as_json: bool) -> None:
    """Import a pipeline data root (metadata.json + membership.csv files) into the ledger.

    Example: cohort-ledger import-legacy --data-root data --apply --sync
    """
    ledger = open_ledger()
    with progress_bar() as progress:
        plan = plan_import(ledger.state, data_root, progress, sync=sync)
    if plan.problems:
        _fail(LegacyProblems("import-legacy", plan.problems), plan.data_root, as_json, report)
    disagree = plan.stale and not sync
    seqs = apply_import(ledger, plan) if do_apply and not disagree else []
    head = ledger.head
    outcome = {"ok": not disagree, "applied": do_apply and not disagree,
               **plan.summary(), "head": {"seq": head.seq, "hash": head.hash}, "problems": []}
    if report is not None:
        _write_report(report, {"command": "import-legacy", **outcome})
    if as_json:
        emit_json(outcome)
    else:
        _print_import(plan, do_apply, seqs, head.seq, head.hash)
    plan.raise_if_disagrees()


def _print_import(plan: ImportPlan, do_apply: bool, seqs: list[int], head_seq: int, head_hash: str) -> None:
    click.echo(f"read {plan.gens_read} metadata.json and {plan.membership_files_read} membership.csv "
               f"from {plan.data_root}")
    files = ", ".join(f"{n} {state}" for state, n in plan.key_files.items() if n)
    if files:
        click.echo(f"origin key: {plan.key_state} ({files})"
                   + "".join(f"; records rename {r['old_key']} -> {r['new_key']} ({r['phase']})"
                             for r in plan.renames()))
    if plan.opened:
        click.echo(f"empty cohorts to open: {', '.join(plan.opened)}")
    if plan.stale:
        shown = ", ".join(f"{s.cohort_id}/{s.gen_id}" for s in plan.stale[:FIRST])
        more = f" (and {len(plan.stale) - FIRST} more; --json lists all)" if len(plan.stale) > FIRST else ""
        verb = "to remove (--sync)" if plan.sync else "no longer listed by the source"
        click.echo(f"{len(plan.stale)} gen(s) the ledger has in a cohort {verb}: {shown}{more}")
        if not plan.sync:
            return
    if not plan.events:
        click.echo(f"nothing to import: the ledger already has all of it (head seq {head_seq})")
        return
    click.echo(f"{'cohort_id':<32} {'stage':<12} {'created':>8} {'reused':>8} {'removed':>8}")
    for row in plan.counts():
        click.echo(f"{row['cohort_id']:<32} {row['stage']:<12} {row['created']:>8} {row['reused']:>8} {row['removed']:>8}")
    if do_apply:
        click.echo(f"appended {len(plan.events)} events as one batch (seqs {seqs[0]}..{seqs[-1]}); "
                   f"head seq {head_seq} hash {head_hash}")
    else:
        click.echo(f"would append {len(plan.events)} events; nothing written (run with --apply to append them)")


@cli.command("export-metadata")
@data_root_option
@click.option("--apply", "do_apply", is_flag=True, help="Write the files; else only show what would change.")
@json_option
def export_metadata(data_root: Path, do_apply: bool, as_json: bool) -> None:
    """Write every gen's origin key(s) into its metadata.json, per the ledger's rename state."""
    ledger = open_ledger()
    with progress_bar() as progress:
        plan = plan_export(ledger.state, data_root, progress)
        if plan.problems:
            _fail(LegacyProblems("export-metadata", plan.problems), plan.data_root, as_json)
        written = apply_export(plan, progress) if do_apply else 0
    summary = {**plan.summary(), "applied": do_apply, "written": written}
    if as_json:
        emit_json(summary)
        return
    keys = " and ".join(plan.key_names)
    verb = "wrote" if do_apply else "would write"
    click.echo(f"origin key(s): {keys}; {verb} {summary['create']} new and {summary['update']} updated "
               f"metadata.json, {plan.unchanged} already right")
    for change in summary["sample"]:
        click.echo(f"  {change['action']:<6} {change['file']}  {change['keys']}")
    if not do_apply and plan.changes:
        click.echo("nothing written (run with --apply to write them)")

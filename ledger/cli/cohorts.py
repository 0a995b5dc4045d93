"""Cohort operations: reuse, show, history, seal, rename-key. Each only parses, calls, prints."""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..cohorts.admin import rename_key as rename_key_op
from ..cohorts.admin import seal_cohort
from ..errors import InvalidInputError
from ..cohorts.history import cohort_history
from ..cohorts.reuse import plan_and_apply, plan_reuse, read_wanted
from ..cohorts.scope import CohortScope
from .common import cli, emit_json, emit_json_list, json_option, open_ledger, print_table


def cli_provenance() -> dict[str, str]:
    """`by` of events an operator appends from the command line: who, and through what."""
    user = os.environ.get("USER") or os.environ.get("LOGNAME")
    return {"source": "cli", **({"actor": user} if user else {})}


@cli.command()
@click.option("--cohort", "cohort_id", required=True, help="Target cohort.")
@click.option("--stage", required=True, help="Stage of the wanted gens (draft, essay or evaluation).")
@click.option("--wanted", "wanted_csv", required=True, type=click.Path(path_type=Path),
              help="CSV: the stage's signature columns except replicate, plus replicates.")
@click.option("--allow-origin", "allowed", multiple=True,
              help="Reuse only gens originating in this cohort (repeatable; default: any cohort).")
@click.option("--apply", "do_apply", is_flag=True, help="Append the reuse events (else only print the plan).")
@json_option
def reuse(cohort_id: str, stage: str, wanted_csv: Path, allowed: tuple[str, ...], do_apply: bool,
          as_json: bool) -> None:
    """Plan skip-existing reuse into a cohort: which existing gens to reuse, which to create."""
    ledger = open_ledger()
    wanted = read_wanted(wanted_csv, stage)
    if do_apply:  # a conflict means someone appended meanwhile: re-plan on the new state
        plan, seqs = plan_and_apply(ledger, cohort_id, stage, wanted, allowed or None, cli_provenance())
    else:
        plan, seqs = plan_reuse(ledger.state, cohort_id, stage, wanted, allowed or None), []
    if as_json:
        emit_json({**plan.to_json(), "applied": do_apply, "seqs": seqs})
        return
    active = sum(len(sp.active) for sp in plan.signatures)
    print_table(f"reuse into {cohort_id} ({stage}), planned at seq {plan.seq}",
                ["gen_id", "origin", "replicate", "matched on"],
                [(r.gen_id, r.origin_cohort_id, r.replicate, "|".join(str(v) for v in r.matched_on.values()))
                 for r in plan.reuse])
    print_table("to create", ["gen_id", "signature", "replicate"],
                [(c.gen_id, "|".join(c.signature.values()), c.replicate) for c in plan.create])
    verdict = f"appended {len(seqs)} reuse event(s)" if do_apply else "nothing written (use --apply)"
    click.echo(f"{len(plan.reuse)} to reuse, {len(plan.create)} to create, {active} already active; {verdict}")


@cli.command()
@click.argument("cohort_id")
@click.option("--stage", default=None, help="Only members of this stage.")
@json_option
def show(cohort_id: str, stage: str | None, as_json: bool) -> None:
    """The cohort's active members with their origin metadata, origin cohort and when they joined.

    In `--json` rows, `cohort_id` is the member cohort (COHORT) and `origin_cohort_id` the
    cohort the gen was created in, whatever the manifest's rename state calls that column.

    Example: cohort-ledger show best_novelty_all_evals --stage evaluation --json
    """
    ledger = open_ledger()
    state = ledger.state
    cohort = state.cohorts.get(cohort_id)
    if cohort is None:
        raise InvalidInputError(f"cohort {cohort_id} is unknown to this ledger")
    rule = state.stage_rule(stage) if stage is not None else None
    if rule is not None:
        raise InvalidInputError(rule)
    rows = CohortScope.from_state(state).members(cohort_id, stage)
    if as_json:
        emit_json_list(rows)
        return
    sealed = f", sealed at seq {cohort.sealed_seq}" if cohort.sealed_seq is not None else ""
    reused = sum(1 for r in rows if r["reused"])
    print_table(f"cohort {cohort_id}: {len(rows)} active member(s), {reused} reused{sealed} (as of seq {state.seq})",
                ["stage", "gen_id", "origin", "reused", "added", "template", "model", "parent", "rep"],
                [(r["stage"], r["gen_id"], r["origin_cohort_id"], "yes" if r["reused"] else "", r["added_seq"],
                  r["template_id"], r["llm_model_id"], r["parent_gen_id"] or r["combo_id"], r["replicate"])
                 for r in rows])


def _who(by: dict[str, str]) -> str:
    return " ".join(f"{k}={by[k]}" for k in ("actor", "run_id", "source") if k in by)


@cli.command()
@click.argument("cohort_id")
@json_option
def history(cohort_id: str, as_json: bool) -> None:
    """How the cohort's composition changed: each event naming it, with running counts per stage."""
    ledger = open_ledger()
    entries = cohort_history(ledger, cohort_id)
    if as_json:
        emit_json_list(e.to_json() for e in entries)
        return
    print_table(f"history of cohort {cohort_id}",
                ["seq", "at", "event", "gen_id", "origin", "by", "counts"],
                [(e.seq, e.at, e.type + (f" ({e.reason})" if e.reason else ""), e.gen_id, e.origin_cohort_id,
                  _who(e.by), " ".join(f"{s}={n}" for s, n in e.counts.items()))
                 for e in entries])


@cli.command()
@click.argument("cohort_id")
@click.option("--reason", default=None, help="Why the cohort is frozen (e.g. 'scores published').")
@json_option
def seal(cohort_id: str, reason: str | None, as_json: bool) -> None:
    """Freeze a cohort: any later membership change for it is refused (exit 2)."""
    seq = seal_cohort(open_ledger(), cohort_id, reason, cli_provenance())
    if as_json:
        emit_json({"cohort_id": cohort_id, "seq": seq, "reason": reason})
    else:
        click.echo(f"sealed cohort {cohort_id} at seq {seq}")


@cli.command("rename-key")
@click.argument("old_key")
@click.argument("new_key")
@click.option("--phase", type=click.Choice(["alias", "final"]), required=True,
              help="alias: projections carry both keys; final: only the new one (after alias).")
@json_option
def rename_key(old_key: str, new_key: str, phase: str, as_json: bool) -> None:
    """Rename a manifest key in two phases, e.g. cohort_id -> origin_cohort_id."""
    seq = rename_key_op(open_ledger(), old_key, new_key, phase, cli_provenance())  # type: ignore[arg-type]
    if as_json:
        emit_json({"old_key": old_key, "new_key": new_key, "phase": phase, "seq": seq})
    else:
        click.echo(f"renamed {old_key} -> {new_key} ({phase}) at seq {seq}")

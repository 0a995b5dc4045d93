"""Asset checks that fail fast (docs/dagster.md, "Checks").

`ledger_checks` builds them for the user's cohort asset (and projections asset):

- `ledger_chain_verifies`: the whole chain verifies, and each pinned `SEQ:HASH` still holds;
- `cohort_members_complete`: every active member of the cohort (the run's partition key)
  has its origin metadata -- the fields of its stage's signature -- and its parent is an
  active member of the same cohort's previous stage;
- `projections_current`: the projection files reflect the ledger's head.

All are blocking by default: a failure stops the run's downstream assets, and the
description names the first offending gens or seq. The findings are computed by plain
functions over the ledger so they can be tested without Dagster.

No `from __future__ import annotations` here: Dagster reads the annotations of the
decorated functions (context, config, resources) when it builds the definitions.
"""


from pathlib import Path
from typing import Any, Mapping, Sequence

import dagster as dg

from ..app.service import Ledger
from ..cohorts.scope import CohortScope
from ..domain.ids import SIGNATURE_FIELDS
from ..domain.projection_files import PROJECTION_INFO_FILE
from ..app.pins import Pin, check_pins, parse_pin
from ..errors import CheckFailed, CorruptLogError, LedgerError
from .resource import CohortLedgerResource

#: How many offending gens a failed check names in its description.
NAMED = 5


# -- findings: plain functions --------------------------------------------------------------
def chain_problem(ledger: Ledger, pins: Sequence[Pin] = ()) -> str | None:
    """Why the chain fails (corrupt, or a pin the log no longer holds), or None when it verifies."""
    try:
        ledger.verify()
        check_pins(ledger, pins)
    except (CorruptLogError, CheckFailed) as exc:
        return str(exc)
    return None


def required_fields(stage: str, parents: Mapping[str, str]) -> tuple[str, ...]:
    """The origin metadata a member must carry: its stage's signature (what its id is
    computed from), or for a stage without a scheme its template and parent."""
    if stage in SIGNATURE_FIELDS:
        return ("origin_cohort_id", *SIGNATURE_FIELDS[stage])
    return ("origin_cohort_id", "template_id", *(("parent_gen_id",) if stage in parents else ()))


def member_problems(scope: CohortScope, parents: Mapping[str, str], cohort_id: str) -> list[str]:
    """One line per active member of the cohort that lacks origin metadata or whose parent is
    not an active member of the cohort's previous stage; in stage then gen order."""
    problems = []
    members = scope.members(cohort_id)
    active = {(m["stage"], m["gen_id"]) for m in members}
    for m in members:
        stage, gen = m["stage"], m["gen_id"]
        missing = [f for f in required_fields(stage, parents) if m.get(f) is None]
        if missing:
            problems.append(f"{gen}: no {', '.join(missing)}")
            continue
        parent_stage, parent = parents.get(stage), m.get("parent_gen_id")
        if parent_stage is not None and (parent_stage, parent) not in active:
            problems.append(f"{gen}: parent {parent} is not an active {parent_stage} of cohort {cohort_id}")
    return problems


def projection_problem(ledger: Ledger, out_dir: str | Path) -> str | None:
    """Why the projections in `out_dir` are not current (seq and hash = the head), or None."""
    # the projection record's reader lives with its writer; imported here, not at module
    # load, because `projections` depends on `ledger` (this integration is the exception)
    from projections.files import OutDir, owned

    path = Path(out_dir)
    record = None
    if (path / PROJECTION_INFO_FILE).is_file():
        out = OutDir(path)
        try:
            record = owned(out)
        finally:
            out.close()
    head = ledger.head
    if record is None:
        return f"{out_dir} holds no projections: run the projections asset (or `cohort-ledger build`)"
    if record.get("seq") != head.seq or record.get("hash") != head.hash:
        return f"projections in {out_dir} are at seq {record.get('seq')}, the ledger's head is seq {head.seq}"
    return None


def _describe(problems: list[str], what: str) -> str:
    more = f" (and {len(problems) - NAMED} more)" if len(problems) > NAMED else ""
    return f"{len(problems)} {what}: " + "; ".join(problems[:NAMED]) + more


# -- the factory ------------------------------------------------------------------------------
def ledger_checks(cohort_asset: dg.AssetsDefinition | dg.AssetKey | str, *,
                  projections_asset: dg.AssetsDefinition | dg.AssetKey | str | None = None,
                  pins: Sequence[str] = (), resource_key: str = "ledger",
                  blocking: bool = True) -> list[dg.AssetChecksDefinition]:
    """The ledger's asset checks, to add to `Definitions(asset_checks=...)`.

    `cohort_asset` is the asset whose partition key is a cohort id (an unpartitioned one
    is checked for every cohort); `pins` are `SEQ:HASH` values kept outside the ledger.
    """
    pinned = tuple(parse_pin(pin) for pin in pins)  # a bad pin fails here, not at the first run
    keys = {resource_key}

    @dg.asset_check(asset=cohort_asset, name="ledger_chain_verifies", blocking=blocking,
                    required_resource_keys=keys,
                    description="The ledger's hash chain verifies (and each pinned SEQ:HASH holds).")
    def chain_check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        resource: CohortLedgerResource = getattr(context.resources, resource_key)
        led = resource.ledger()
        problem = chain_problem(led, pinned)
        if problem is not None:
            return dg.AssetCheckResult(passed=False, description=problem, metadata={"pins": len(pinned)})
        head = led.head
        return dg.AssetCheckResult(passed=True, description=f"chain verifies to seq {head.seq}",
                                   metadata={"head_seq": head.seq, "head_hash": head.hash, "pins": len(pinned)})

    @dg.asset_check(asset=cohort_asset, name="cohort_members_complete", blocking=blocking,
                    required_resource_keys=keys,
                    description="Every active member has its origin metadata and its parent in the cohort.")
    def members_check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        resource: CohortLedgerResource = getattr(context.resources, resource_key)
        try:
            scope = resource.scope()
        except LedgerError as exc:  # a corrupt log: no state to check (the chain check names the seq)
            return dg.AssetCheckResult(passed=False, description=str(exc))
        parents = resource.ledger().config.parents
        cohorts = [context.partition_key] if context.has_partition_key else scope.cohorts()
        problems = [p for c in cohorts for p in member_problems(scope, parents, c)]
        members = sum(len(scope.members(c)) for c in cohorts)
        metadata: dict[str, Any] = {"members": members, "offending": len(problems), "scope_seq": scope.seq or 0}
        if problems:
            return dg.AssetCheckResult(passed=False, metadata=metadata,
                                       description=_describe(problems, f"of {members} member(s) fail"))
        return dg.AssetCheckResult(passed=True, metadata=metadata,
                                   description=f"{members} member(s) complete, parents in their cohort")

    checks = [chain_check, members_check]
    if projections_asset is not None:
        @dg.asset_check(asset=projections_asset, name="projections_current", blocking=blocking,
                        required_resource_keys=keys,
                        description="The projection files reflect the ledger's head.")
        def projections_check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
            resource: CohortLedgerResource = getattr(context.resources, resource_key)
            try:
                problem = projection_problem(resource.ledger(), resource.projections_out())
            except LedgerError as exc:
                problem = str(exc)
            return dg.AssetCheckResult(passed=problem is None, description=problem or "projections are current")

        checks.append(projections_check)
    return checks


__all__ = ["chain_problem", "ledger_checks", "member_problems",
           "projection_problem", "required_fields"]

"""`CohortLedgerResource`: the ledger as a Dagster resource (docs/dagster.md).

The method names `recorder`, `scope`, `is_materialized` and `sync_partitions` are a
contract: pipeline code is written against them. The resource holds only configuration
(`ledger_path`, `projections_dir`, both settable from `EnvVar`), so Dagster can pickle it
into every step process; each process opens the ledger itself, on first use, and the
store's lock makes the processes' appends safe. The path is passed through untouched to
the library, so whatever `Ledger.open` accepts (a directory, an `s3://bucket/prefix` URL) works.
"""

from __future__ import annotations

from typing import Any, Collection, Mapping, Sequence

import dagster as dg
from pydantic import PrivateAttr

from ..app.service import Head, Ledger
from ..cohorts.hooks import PipelineRecorder, materialized_seq
from ..cohorts.reuse import ReusePlan, Wanted, plan_reuse
from ..cohorts.scope import CohortScope
from ..domain.state import Generation
from ..errors import ConflictError, InvalidInputError
from ..log.file_store import FileLogStore

#: What a step records as `by.actor`.
ACTOR = "dagster"
#: Re-plans of `plan_cohort_stage` (and re-reads of partitions in `sync_partitions`) when
#: other writers keep changing them in between.
PLAN_ATTEMPTS = 5
Context = dg.AssetExecutionContext | dg.OpExecutionContext | dg.AssetCheckExecutionContext


class CohortLedgerResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """A cohort ledger for Dagster assets: record, scope, skip-existing, partitions."""

    ledger_path: str
    projections_dir: str | None = None

    _ledger: Ledger | None = PrivateAttr(default=None)

    # -- the ledger -----------------------------------------------------------------------
    def ledger(self) -> Ledger:
        """The ledger, opened once per process; its state catches up at each access."""
        if self._ledger is None:
            self._ledger = Ledger.open(self.ledger_path)
        return self._ledger

    def head(self) -> Head:
        return self.ledger().head

    def projections_out(self) -> str:
        """Where the projections go: `projections_dir`, else `<ledger>/projections` for a
        ledger directory (a ledger elsewhere needs `projections_dir`)."""
        from projections.build import DEFAULT_OUT

        if self.projections_dir:
            return self.projections_dir
        store = self.ledger().store
        if isinstance(store, FileLogStore):
            return str(store.path / DEFAULT_OUT)
        raise InvalidInputError(f"{store.location} is not a local directory: set projections_dir")

    def generation(self, gen_id: str) -> Generation | None:
        """A gen's origin metadata and materialization seq, None for an unknown gen."""
        return self.ledger().state.generations.get(gen_id)

    # -- the contract ---------------------------------------------------------------------
    def recorder(self, context: Context) -> PipelineRecorder:
        """A recorder bound to this run: events carry the run id, asset key and partition key.

        Event ids derive from the run id, so a step retried within its run (RetryPolicy)
        re-records as no-ops; a re-executed run has a new id, and the skip-existing plan and
        `is_materialized` keep it from recording again what already holds.
        """
        return PipelineRecorder(self.ledger(), run_id=context.run.run_id, actor=ACTOR,
                                asset_key=_asset_key(context), partition_key=_partition_key(context))

    def scope(self) -> CohortScope:
        """Active membership and origin metadata, as of this call (always from the ledger)."""
        return CohortScope.from_ledger(self.ledger())

    def is_materialized(self, gen_id: str) -> bool:
        """True when some run recorded the gen's outputs: the step can return without work."""
        return materialized_seq(self.ledger(), gen_id) is not None

    def sync_partitions(self, context: Context, cohort_id: str,
                        partitions: Mapping[str, dg.DynamicPartitionsDefinition],
                        prune: bool = False) -> dict[str, int]:
        """Add the cohort's active gens of each stage to that stage's dynamic partitions.

        Add-only: returns how many keys were added per stage. Keys registered but no longer
        active in any cohort (`stale_partitions`) are logged as a warning; they are deleted
        only with `prune=True` (their materialization history stays in the instance).
        """
        scope = self.scope()
        instance = context.instance
        added: dict[str, int] = {}
        for stage, definition in partitions.items():
            name = _partitions_name(definition)
            added[stage] = _add_partitions(instance, name, scope.active_stage_gen_ids(cohort_id, stage))
        for stage, stale in self._stale(scope, instance, partitions).items():
            if stale:
                name = _partitions_name(partitions[stage])
                action = "pruned" if prune else "kept (prune=True deletes them)"
                context.log.warning(f"{len(stale)} {name} partition(s) no longer active in any cohort, "
                                    f"{action}: {', '.join(stale[:10])}{' ...' if len(stale) > 10 else ''}")
                if prune:
                    for key in stale:
                        instance.delete_dynamic_partition(name, key)
        return added

    def stale_partitions(self, context: Context,
                         partitions: Mapping[str, dg.DynamicPartitionsDefinition]) -> dict[str, list[str]]:
        """Per stage, the registered partition keys no gen of which is active in any cohort."""
        return self._stale(self.scope(), context.instance, partitions)

    @staticmethod
    def _stale(scope: CohortScope, instance: dg.DagsterInstance,
               partitions: Mapping[str, dg.DynamicPartitionsDefinition]) -> dict[str, list[str]]:
        out = {}
        for stage, definition in partitions.items():
            active = {g for c in scope.cohorts() for g in scope.active_stage_gen_ids(c, stage)}
            out[stage] = sorted(set(instance.get_dynamic_partitions(_partitions_name(definition))) - active)
        return out

    # -- skip-existing --------------------------------------------------------------------
    def plan_cohort_stage(self, context: Context, cohort_id: str, stage: str, wanted: Sequence[Wanted],
                          allowed_origins: Collection[str] | None = None,
                          create: Mapping[str, Any] | None = None) -> ReusePlan:
        """Plan one stage of a cohort with the reuse planner and record the plan, one batch.

        Reuses matching gens (from `allowed_origins` only, if given) and creates the missing
        ones in `cohort_id` (`create`: extra created fields such as `mode`). When another
        writer appends in between, the plan is made again on the new state. Running it again
        for the same wanted list plans and writes nothing: the gens are active by then.
        """
        recorder = self.recorder(context)
        for attempt in range(PLAN_ATTEMPTS):
            plan = plan_reuse(recorder.ledger.state, cohort_id, stage, wanted, allowed_origins)
            try:
                recorder.record_plan(plan, create)
                return plan
            except ConflictError:
                if attempt == PLAN_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable: PLAN_ATTEMPTS >= 1")


def plan_table(plans: Sequence[ReusePlan]) -> dg.TableMetadataValue:
    """The plans as a Dagster table: one row per gen the plans reuse or create."""
    rows = [dg.TableRecord({"stage": p.stage, "gen_id": r.gen_id, "action": "reuse",
                            "origin_cohort_id": r.origin_cohort_id, "replicate": r.replicate})
            for p in plans for r in p.reuse]
    rows += [dg.TableRecord({"stage": p.stage, "gen_id": c.gen_id, "action": "create",
                             "origin_cohort_id": p.cohort_id, "replicate": c.replicate})
             for p in plans for c in p.create]
    schema = dg.TableSchema(columns=[
        dg.TableColumn("stage", "string"), dg.TableColumn("gen_id", "string"),
        dg.TableColumn("action", "string"), dg.TableColumn("origin_cohort_id", "string"),
        dg.TableColumn("replicate", "int")])
    return dg.MetadataValue.table(rows, schema)


def _add_partitions(instance: dg.DagsterInstance, name: str, keys: Sequence[str]) -> int:
    """Register the missing `keys`; return how many this call added.

    Steps of other runs (or of this one, in other processes) register keys at the same
    time, and the instance storage refuses a key added twice (each backend with its own
    integrity error): then the registered keys are read again and the rest added.
    """
    for attempt in range(PLAN_ATTEMPTS):
        registered = set(instance.get_dynamic_partitions(name))
        new = [k for k in keys if k not in registered]
        if not new:
            return 0
        try:
            instance.add_dynamic_partitions(name, new)
            return len(new)
        except Exception:  # noqa: BLE001 - the storage's own integrity error: someone added a key first
            if attempt == PLAN_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable: PLAN_ATTEMPTS >= 1")


def _asset_key(context: Context) -> str | None:
    if isinstance(context, dg.AssetCheckExecutionContext):
        return None
    op_context = context.op_execution_context if isinstance(context, dg.AssetExecutionContext) else context
    if not op_context.has_assets_def or len(op_context.assets_def.keys) != 1:
        return None
    return op_context.assets_def.key.to_user_string()


def _partition_key(context: Context) -> str | None:
    return context.partition_key if context.has_partition_key else None


def _partitions_name(definition: dg.DynamicPartitionsDefinition) -> str:
    if definition.name is None:
        raise dg.DagsterInvariantViolationError("sync_partitions needs named DynamicPartitionsDefinitions")
    return definition.name

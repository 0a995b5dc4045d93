"""The Dagster integration (extra `cohort-ledger[dagster]`; guide: docs/dagster.md).

`CohortLedgerResource` is the ledger as a Dagster resource (recorder, scope, skip-existing,
dynamic partitions); `ledger_checks` builds the asset checks that fail fast;
`projection_assets` builds the projections as assets.
"""

try:
    import dagster as _dagster  # noqa: F401  (the guard: nothing below works without it)
except ImportError:  # pragma: no cover - exercised in a subprocess without dagster
    raise ImportError("ledger.dagster needs Dagster: pip install 'cohort-ledger[dagster]'") from None

from .checks import ledger_checks
from .projections import projection_assets
from .resource import CohortLedgerResource, plan_table

__all__ = ["CohortLedgerResource", "ledger_checks", "plan_table", "projection_assets"]

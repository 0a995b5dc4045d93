"""Documented import path (README): `from ledger.scope import CohortScope`. Lives in ledger.cohorts.scope."""

from .cohorts.scope import CohortScope

__all__ = ["CohortScope"]

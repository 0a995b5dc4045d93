"""An example Dagster project on cohort-ledger (docs/dagster.md)."""

from .definitions import defs

__all__ = ["defs"]

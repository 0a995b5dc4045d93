"""cohort-ledger: an event-sourced, hash-chained ledger of cohort membership.

This module is the facade the README's examples import from: the service (`Ledger`), the
storage seam and its backends, the cohort services a pipeline calls (`CohortScope`,
`PipelineRecorder`) and every error. Importing it loads no Arrow, pandas or backend client
library (a pipeline hook starts a process per call): those are imported where they are used, and
the names below are resolved on first use.
docs/architecture.md maps the layers behind it.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .errors import (
    CheckFailed,
    ConflictError,
    CorruptLogError,
    EventRejected,
    IncompleteCopyError,
    InvalidInputError,
    LedgerEnvironmentError,
    LedgerError,
    NewerFormatError,
    NotALedgerError,
)

#: name -> the module that defines it. Loaded on first access (PEP 562): a pipeline hook that
#: imports `ledger.hooks` pays only for the modules its own path uses, not for the object-store
#: backend, the scope or the reuse planner (docs/benchmarks.md, hook process).
_LAZY = {
    "LedgerConfig": ".domain.config",
    "EventIn": ".domain.events", "RecordedEvent": ".domain.events",
    "Cohort": ".domain.state", "Generation": ".domain.state", "State": ".domain.state",
    "Head": ".app.service", "Ledger": ".app.service", "RepairReport": ".app.service", "VerifyReport": ".app.service",
    "PipelineRecorder": ".cohorts.hooks",
    "CohortScope": ".cohorts.scope",
    "FileLogStore": ".log.file_store",
    "MemoryLogStore": ".log.memory_store",
    "ObjectLogStore": ".log.object_store",
    "LogStore": ".log.store",
}

if TYPE_CHECKING:
    from .app.service import Head, Ledger, RepairReport, VerifyReport
    from .cohorts.hooks import PipelineRecorder
    from .cohorts.scope import CohortScope
    from .domain.config import LedgerConfig
    from .domain.events import EventIn, RecordedEvent
    from .domain.state import Cohort, Generation, State
    from .log.file_store import FileLogStore
    from .log.memory_store import MemoryLogStore
    from .log.object_store import ObjectLogStore
    from .log.store import LogStore


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value  # the next access is a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "CheckFailed",
    "Cohort",
    "CohortScope",
    "ConflictError",
    "CorruptLogError",
    "IncompleteCopyError",
    "EventIn",
    "EventRejected",
    "FileLogStore",
    "Generation",
    "Head",
    "InvalidInputError",
    "Ledger",
    "LedgerConfig",
    "LedgerEnvironmentError",
    "LedgerError",
    "LogStore",
    "MemoryLogStore",
    "NewerFormatError",
    "NotALedgerError",
    "ObjectLogStore",
    "PipelineRecorder",
    "RecordedEvent",
    "RepairReport",
    "State",
    "VerifyReport",
]

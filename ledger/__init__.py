"""cohort-ledger: an event-sourced, hash-chained ledger of cohort membership.

This module is the facade the README's examples import from: the service (`Ledger`), the
storage seam and its backends, the cohort services a pipeline calls (`CohortScope`,
`PipelineRecorder`) and every error. Importing it loads no Arrow, pandas or backend client
library (a pipeline hook starts a process per call): those are imported where they are used.
docs/architecture.md maps the layers behind it.
"""

from .domain.config import LedgerConfig
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
from .domain.events import EventIn, RecordedEvent
from .domain.state import Cohort, Generation, State
from .app.service import Head, Ledger, RepairReport, VerifyReport
from .cohorts.hooks import PipelineRecorder
from .cohorts.scope import CohortScope
from .log.file_store import FileLogStore
from .log.memory_store import MemoryLogStore
from .log.object_store import ObjectLogStore
from .log.store import LogStore

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

"""cohort-ledger: an event-sourced, hash-chained ledger of cohort membership."""

from .domain.config import LedgerConfig
from .errors import (
    CheckFailed,
    ConflictError,
    CorruptLogError,
    EventRejected,
    InvalidInputError,
    LedgerEnvironmentError,
    LedgerError,
    NewerFormatError,
    NotALedgerError,
)
from .domain.events import EventIn, RecordedEvent
from .domain.state import Cohort, Generation, State
from .app.service import Head, Ledger, RepairReport, VerifyReport
from .log.file_store import FileLogStore
from .log.memory_store import MemoryLogStore
from .log.store import LogStore

__all__ = [
    "CheckFailed",
    "Cohort",
    "ConflictError",
    "CorruptLogError",
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
    "RecordedEvent",
    "RepairReport",
    "State",
    "VerifyReport",
]

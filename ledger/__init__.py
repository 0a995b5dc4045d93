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

__all__ = [
    "CheckFailed",
    "Cohort",
    "ConflictError",
    "CorruptLogError",
    "EventIn",
    "EventRejected",
    "Generation",
    "Head",
    "InvalidInputError",
    "Ledger",
    "LedgerConfig",
    "LedgerEnvironmentError",
    "LedgerError",
    "NewerFormatError",
    "NotALedgerError",
    "RecordedEvent",
    "RepairReport",
    "State",
    "VerifyReport",
]

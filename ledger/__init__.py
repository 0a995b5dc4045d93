"""cohort-ledger: an event-sourced, hash-chained ledger of cohort membership."""

from .config import LedgerConfig
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
from .events import EventIn, RecordedEvent
from .state import Cohort, Generation, State
from .store import Head, Ledger, RepairReport, VerifyReport

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

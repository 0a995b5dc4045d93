"""The ledger's failure vocabulary.

Every failure a caller can act on is a `LedgerError` with a one-line message; its
`exit_code` is what the CLI exits with (README, "Exit codes": 1 failed check, 2 bad
input, 3 environment). Keeping the code on the class means the CLI needs no mapping table
that could drift from the library.
"""

from __future__ import annotations

import orjson


class LedgerError(Exception):
    """Base of every ledger failure; the message is always one line."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()) if "\n" in str(message) else message)


class InvalidInputError(LedgerError):
    """Bad input or usage: an event, a file or an argument the ledger refuses. Nothing written."""

    exit_code = 2


class EventRejected(InvalidInputError):
    """One event of a batch broke a schema or domain rule; the whole batch is refused.

    `index` is 0-based; the message counts from 1 (#1 is the first event, the first line).
    """

    def __init__(self, index: int, rule: str, event_id: str | None = None) -> None:
        self.index = index
        self.rule = rule
        self.event_id = event_id
        where = f"event #{index + 1}" + (f" (id {event_id})" if event_id else "")
        super().__init__(f"{where}: {rule}")


class NewerFormatError(InvalidInputError):
    """Data written by a newer cohort-ledger: reading on would be a guess."""


class NotALedgerError(InvalidInputError):
    """The path holds no ledger (or something that is not one)."""


class ConflictError(LedgerError):
    """`expected_seq` did not match the ledger's last seq; nothing was appended."""

    exit_code = 1

    def __init__(self, expected: int, actual: int) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"conflict: expected last seq {expected}, ledger is at {actual}")


class CorruptLogError(LedgerError):
    """A complete part of the log fails the chain; names the first bad seq. Never auto-fixed."""

    exit_code = 1

    def __init__(self, seq: int, reason: str, path: str = "events.jsonl") -> None:
        self.seq = seq
        self.reason = reason
        super().__init__(f"{path} is corrupt at seq {seq}: {reason}")


class CheckFailed(LedgerError):
    """A check the operator asked for did not hold (e.g. `verify --expect-head`)."""

    exit_code = 1


class IncompleteCopyError(LedgerError):
    """The location is a `copy` that has not finished: not a ledger until the copy is resumed."""

    exit_code = 1

    def __init__(self, location: str, marker: bytes) -> None:
        try:
            note = orjson.loads(marker)
            source, target = str(note["source"]), f"seq {int(note['seq'])}"
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            source, target = "?", "its source's head"
        self.location = location
        self.source = source
        super().__init__(f"{location} is an unfinished copy of {source} (copying up to {target}); "
                         f"run `cohort-ledger copy {source} {location}` again to finish it")


class LedgerEnvironmentError(LedgerError):
    """The machine refused: disk full, file too large, permission denied. Nothing half-written."""

    exit_code = 3

"""Pins: `SEQ:HASH` pairs an operator keeps outside the ledger, checked against the log.

A hash chain shows that a log is internally consistent, not that it is the log that was
written: whoever can rewrite `events.jsonl` can recompute every hash. A pin taken earlier
(`verify` prints the head seq and hash) and kept elsewhere is what detects a rewrite; unlike
`--expect-head`, a pin stays checkable however far the log grows after it.
"""

from __future__ import annotations

import re
from typing import Iterable, NamedTuple

from ..errors import CheckFailed, InvalidInputError
from .service import Ledger

_PIN = re.compile(r"(?P<seq>[0-9]+):(?P<hash>[0-9a-fA-F]{64})")


class Pin(NamedTuple):
    seq: int
    hash: str


def parse_pin(text: str) -> Pin:
    """`SEQ:HASH` (HASH: 64 hex digits) -> Pin; anything else is bad input."""
    found = _PIN.fullmatch(text.strip())
    if found is None or int(found["seq"]) < 1:
        raise InvalidInputError(f"--expect {text!r} is not SEQ:HASH (a seq >= 1, a colon, 64 hex digits)")
    return Pin(int(found["seq"]), found["hash"].lower())


def check_pins(ledger: Ledger, pins: Iterable[Pin]) -> None:
    """Raise CheckFailed naming the first pin the committed log does not hold."""
    for pin in sorted(set(pins)):
        found = next(iter(ledger.read(pin.seq, pin.seq)), None)
        if found is None:
            raise CheckFailed(f"pinned seq {pin.seq} is not in the committed log: events were removed "
                              "from its end, or the pin is from another ledger")
        if found.hash != pin.hash:
            raise CheckFailed(f"seq {pin.seq} has hash {found.hash}, not the pinned {pin.hash}: "
                              f"the log was rewritten at or before seq {pin.seq}")

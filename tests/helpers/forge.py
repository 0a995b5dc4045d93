"""A foreign writer: appends hand-made envelopes with a valid chain, skipping all validation.

Readers must classify such events themselves (docs/FORMAT.md §4.4): the chain proves only
that the bytes are the ones written, not that the writer followed the rules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from ledger.log.codec import encode_line, genesis_prev

AT = "2026-01-01T00:00:00.000000Z"


def head_of(ledger_dir: Path) -> tuple[int, str]:
    """(seq, hash) of the last line of the log, or (0, genesis) for an empty one."""
    lines = (ledger_dir / "events.jsonl").read_bytes().splitlines()
    if not lines:
        ledger_id = orjson.loads((ledger_dir / "ledger.json").read_bytes())["ledger_id"]
        return 0, genesis_prev(ledger_id)
    last = orjson.loads(lines[-1])
    return last["seq"], last["hash"]


def forge_batch(ledger_dir: Path, events: list[dict[str, Any]], *, at: str = AT, drop: tuple[str, ...] = (),
                **extra: Any) -> int:
    """Append `events` ({type, data, id?, by?, v?, at?}) as one batch with a valid chain; return
    the first seq. `drop` removes envelope keys, `extra` adds (or overrides) keys on every event."""
    seq, prev = head_of(ledger_dir)
    first = seq + 1
    lines = []
    for i, ev in enumerate(events):
        envelope = {"seq": first + i, "id": ev.get("id", f"forged-{first + i}"), "type": ev["type"],
                    "v": ev.get("v", 1), "at": ev.get("at", at), "by": ev.get("by", {}),
                    "txn": [first, len(events)], "data": ev["data"], "prev": prev, **extra}
        for key in drop:
            del envelope[key]
        line, prev = encode_line(envelope)
        lines.append(line)
    with open(ledger_dir / "events.jsonl", "ab") as f:
        f.write(b"".join(lines))
    return first

"""A writer process for the object-store race and crash tests (run as a script).

    python s3_writer.py URL NAME OPS ACKS [--die-after-lost-race]

Appends OPS operations to the ledger at URL, cycling through single events, batches of 3,
`expected_seq` appends (retried on conflict) and idempotent re-sends of an earlier batch.
After each append returns, it writes one line per event, `{"id":..,"seq":..}`, to ACKS and
fsyncs it: ACKS is exactly what was acknowledged. With --die-after-lost-race the process
SIGKILLs itself the first time its put-if-absent loses a race, before it retries.
Ids are `NAME-<op>-<i>`, so a batch's events are recognisable afterwards.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import orjson


def main(url: str, name: str, ops: int, acks_path: str, die_after_lost_race: bool) -> None:
    from ledger import ConflictError, Ledger
    from ledger.log.object_store import ObjectLogStore

    if die_after_lost_race:
        original = ObjectLogStore.append

        def append(self: ObjectLogStore, *args: Any) -> Any:
            end = original(self, *args)
            if end is None:
                os.kill(os.getpid(), signal.SIGKILL)
            return end

        ObjectLogStore.append = append  # type: ignore[method-assign]

    led = Ledger.open(url)
    fd = os.open(acks_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    sent: list[dict[str, Any]] = []

    def ack(batch: list[dict[str, Any]], seqs: list[int]) -> None:
        os.write(fd, b"".join(orjson.dumps({"id": ev["id"], "seq": seq}) + b"\n" for ev, seq in zip(batch, seqs)))
        os.fsync(fd)

    def events(op: int, n: int) -> list[dict[str, Any]]:
        return [{"type": "generation.created", "id": f"{name}-{op}-{i}",
                 "data": {"cohort_id": "c1", "stage": "draft", "gen_id": f"{name}-{op}-{i}", "template_id": "t"}}
                for i in range(n)]

    for op in range(ops):
        kind = op % 4
        if kind == 3 and sent:  # an idempotent retry of the previous batch: same seqs, nothing new
            batch = sent
            seqs = led.append(batch)
        elif kind == 2:
            batch = events(op, 2)
            while True:
                try:
                    seqs = led.append(batch, expected_seq=led.head.seq)
                    break
                except ConflictError:
                    continue
        else:
            batch = events(op, 1 if kind == 0 else 3)
            seqs = led.append(batch)
        ack(batch, seqs)
        sent = batch
    os.close(fd)


if __name__ == "__main__":
    args = sys.argv[1:]
    die = "--die-after-lost-race" in args
    url, name, ops, acks = [a for a in args if not a.startswith("--")]
    main(url, name, int(ops), acks, die)

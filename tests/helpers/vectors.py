"""The known-answer ledger of tests/vectors/format-v1/, made by the library's own writer.

`batches.json` is the input: each batch's events and the `at` its writer's clock gave. A
ledger with the vectors' `ledger.json` is created empty and the batches are appended with
the clock fixed, so the writer, not a hand-made file, produces `events.jsonl`; `build` then
produces the projection files. The test compares both with the stored files; run it with
`REGENERATE_VECTORS=1` to rewrite them after a deliberate format change.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from unittest import mock

import orjson

import projections
from projections.files import LOCK_NAME
from ledger import Ledger
from ledger.app import service

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "format-v1"
LEDGER_ID = "6f1c2a90-3b7e-4d2a-9c41-5e8f0d7b2a13"


def write_ledger(path: Path) -> Ledger:
    """A ledger at `path` holding the vector batches, appended by this implementation's writer."""
    default = Ledger.init(path).config
    (path / "ledger.json").write_bytes(replace(default, ledger_id=LEDGER_ID).to_json())
    ledger = Ledger.open(path)
    for batch in orjson.loads((VECTORS / "batches.json").read_bytes()):
        with mock.patch.object(service, "utc_now", return_value=batch["at"]):
            ledger.append(batch["events"])
    return ledger


def chain_listing(ledger_dir: Path) -> bytes:
    """`<seq> <hash>` per line, seq 0 carrying the genesis value."""
    ledger = Ledger.open(ledger_dir)
    rows = [(0, hashlib.sha256(ledger.config.ledger_id.encode("ascii")).hexdigest())]
    rows += [(ev.seq, ev.hash) for ev in ledger.read()]
    return b"".join(b"%d %s\n" % (seq, h.encode()) for seq, h in rows)


def build_files(ledger_dir: Path, out: Path) -> dict[str, bytes]:
    """Build the projections into `out`; return relative path -> bytes of every projection file
    (the empty `_projection.lock` that serialises builds is no projection)."""
    projections.build(ledger_dir, out_dir=out, full=True)
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != LOCK_NAME}


def sha256_listing(files: dict[str, bytes]) -> bytes:
    """The `sha256sum` format, so `sha256sum -c` checks a build directory."""
    return b"".join(b"%s  %s\n" % (hashlib.sha256(data).hexdigest().encode(), rel.encode())
                    for rel, data in sorted(files.items()))

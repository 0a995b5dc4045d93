"""Builders every test module may use: input events, the CLI run as a real subprocess, the raw log."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import orjson

#: the pipeline's real-shaped files (metadata.json, membership.csv), as checked in
REFERENCE = Path(__file__).resolve().parent.parent / "fixtures" / "reference"


def run_cli(*args: str, ledger: Path | str | None = None, stdin: bytes | None = None,
            env: dict[str, str] | None = None, timeout: float = 120,
            preexec_fn: Callable[[], None] | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run `cohort-ledger` in a child process, as a user would (`preexec_fn`: e.g. set an rlimit)."""
    argv = [sys.executable, "-m", "ledger", *((["--ledger", str(ledger)]) if ledger else []), *args]
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(argv, input=stdin, capture_output=True, env=full_env, timeout=timeout,
                          preexec_fn=preexec_fn)


def jsonl(*events: dict[str, Any]) -> bytes:
    return b"".join(orjson.dumps(e) + b"\n" for e in events)


def created(cohort: str, stage: str, gen_id: str, parent: str | None = None, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"cohort_id": cohort, "stage": stage, "gen_id": gen_id, "template_id": "t1", **extra}
    if parent is not None:
        data["parent_gen_id"] = parent
    return {"type": "generation.created", "data": data}


def event(event_type: str, event_id: str | None = None, **data: Any) -> dict[str, Any]:
    """An input event of any type; `event_id` becomes the client id when given."""
    ev: dict[str, Any] = {"type": event_type, "data": data}
    if event_id is not None:
        ev["id"] = event_id
    return ev


def log_bytes(ledger_dir: Path) -> bytes:
    """The raw log, for byte-for-byte "nothing was written" checks."""
    return (Path(ledger_dir) / "events.jsonl").read_bytes()

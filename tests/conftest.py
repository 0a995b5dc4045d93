"""Fixtures every test module may use: a fresh ledger, and the CLI run as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson
import pytest

from ledger import Ledger

from helpers.seaweed import SeaweedServer, start_server

REFERENCE = Path(__file__).resolve().parent / "fixtures" / "reference"


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger.init(tmp_path / "ledger")


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


# -- a real S3 server (SeaweedFS) for the object-store backend ---------------------------
S3_BUCKET = "ledger-test"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """One SeaweedFS server for the session, on free loopback ports; stopped at the end.

    If it cannot start, the tests that need it fail under CI=true (the s3 extra installs the
    binary, so a missing server there is a broken build) and are skipped, with the reason,
    elsewhere.
    """
    try:
        server = start_server(tmp_path_factory.mktemp("seaweed"))
    except RuntimeError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"S3 server (SeaweedFS) did not start: {exc}")
        pytest.skip(f"S3 server (SeaweedFS) did not start: {exc}")
    try:
        server.create_bucket(S3_BUCKET)
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_env(s3_server: SeaweedServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The server's endpoint and credentials in this process's environment (as a user sets them)."""
    env = s3_server.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def s3_url(s3_env: dict[str, str]) -> str:
    """A fresh, empty ledger location in the test bucket."""
    return f"s3://{S3_BUCKET}/t-{uuid.uuid4().hex[:12]}/ledger"

"""Fixtures every test module may use: a fresh ledger, and a real S3 server. Builders that
tests import live in tests/helpers/ (a package), never here."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Iterator

import pytest

from ledger import Ledger

from helpers.env import unavailable
from helpers.seaweed import SeaweedServer, start_server


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger.init(tmp_path / "ledger")


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
        unavailable(f"S3 server (SeaweedFS) did not start: {exc}")
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

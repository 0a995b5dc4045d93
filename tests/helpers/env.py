"""What a test does when a real mechanism it needs is missing here.

CI runs on a machine that has every one of them (root, mount namespaces, `chattr`, the S3
server, Chromium: `make test` installs what can be installed), so under `CI=true` a missing
mechanism is a broken build and the test FAILS; on a developer's machine it is skipped with
the reason.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

CI = os.environ.get("CI", "").lower() in ("true", "1")


def unavailable(reason: str) -> NoReturn:
    """Fail (under CI=true) or skip the current test because `reason` keeps it from running."""
    if CI:
        pytest.fail(f"{reason} (CI=true: the test must run here)", pytrace=False)
    pytest.skip(reason)

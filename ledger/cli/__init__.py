"""`cohort-ledger`: a thin command layer over the library.

Commands live in modules by subject (`core`, and later ones); each only parses arguments,
calls the library and prints. Every LedgerError becomes its one-line reason on stderr and
its exit code (README, "Exit codes"); an unexpected OSError is an environment failure (exit 3).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ..errors import LedgerError
from ..log.fsio import ENVIRONMENT_ERRNOS
from .common import cli
from . import audit, build, cohorts, copy, core, demo, legacy  # noqa: F401  (registers commands)


def main(argv: list[str] | None = None) -> Any:
    try:
        return cli.main(args=argv, prog_name="cohort-ledger", standalone_mode=False)
    except LedgerError as exc:
        click.echo(f"cohort-ledger: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("cohort-ledger: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except OSError as exc:
        click.echo(f"cohort-ledger: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), err=True)
        sys.exit(3 if exc.errno in ENVIRONMENT_ERRNOS else 2)

"""`cohort-ledger`: a thin command layer over the library.

Commands live in modules by subject (`core`, and later ones); each only parses arguments,
calls the library and prints. Every LedgerError becomes its one-line reason on stderr and
its exit code (README, "Exit codes"); an unexpected OSError is an environment failure (exit 3);
a usage error is one line too, pointing at the command's --help. Messages quote user text,
so they pass through `terminal_safe`: a control sequence in an argument is shown, not run.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ..errors import LedgerError
from ..log.fsio import ENVIRONMENT_ERRNOS
from .common import cli, terminal_safe
from . import audit, build, cohorts, copy, core, demo, legacy  # noqa: F401  (registers commands)


def main(argv: list[str] | None = None) -> Any:
    try:
        return cli.main(args=argv, prog_name="cohort-ledger", standalone_mode=False)
    except LedgerError as exc:
        _fail(str(exc), exc.exit_code)
    except click.exceptions.Abort:
        _fail("aborted", 130, prefix="cohort-ledger: ")
    except click.UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        _fail(exc.format_message() + hint, exc.exit_code)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except OSError as exc:
        _fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), 3 if exc.errno in ENVIRONMENT_ERRNOS else 2)


def _fail(message: str, code: int, prefix: str = "cohort-ledger: error: ") -> None:
    click.echo(prefix + terminal_safe(" ".join(message.split())), err=True)
    sys.exit(code)

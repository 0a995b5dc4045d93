"""Where a command may write a file the user named (`report --html/--md`, `log --out`).

Only the named file is ever replaced (atomically, ledger.log.fsio), and never one of the
ledger's own: a typo must not overwrite `events.jsonl` or a checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InvalidInputError
from ..log.file_store import LOG_FILE, RESERVED, FileLogStore
from .service import Ledger


def check_out_file(ledger: Ledger, target: Path) -> None:
    """Refuse a file that would replace one of the ledger's own, or has nowhere to go."""
    path = target.resolve()
    if isinstance(ledger.store, FileLogStore):  # an object store's ledger has no local files to clobber
        own = ledger.store.path.resolve()
        first = path.relative_to(own).parts[0] if path.is_relative_to(own) and path != own else None
        if first is not None and (first in RESERVED or first.startswith(LOG_FILE)):  # torn files too
            raise InvalidInputError(f"{target} is one of the ledger's own files (or inside one); write it elsewhere")
    if path.is_dir():
        raise InvalidInputError(f"{target} is a directory, not a file")
    if not path.parent.is_dir():
        raise InvalidInputError(f"{target}: directory {target.parent} does not exist")

"""From what a user names (a directory, a URL, a store object) to a `LogStore`.

`--ledger PATH`, `Ledger.open(...)` and `projections.build(...)` all go through
`open_store`. A plain path is the local directory backend. A URL `scheme://...` is handed
to the backend registered for that scheme in `SCHEMES`, imported only when such a URL is
used, so `import ledger` never loads a backend's client library.
"""

from __future__ import annotations

import importlib
import os
import re
from typing import Callable, cast

from ..errors import InvalidInputError
from .file_store import FileLogStore
from .store import LogStore

#: URL scheme -> "module:callable" building the store from the whole URL (e.g. s3://bucket/prefix)
SCHEMES: dict[str, str] = {
    scheme: "ledger.log.object_store:ObjectLogStore.from_url" for scheme in ("s3", "gs", "az", "abfs")
}

_URL = re.compile(r"^([a-z][a-z0-9+.-]*)://", re.IGNORECASE)

#: what a ledger can be named by
Where = str | os.PathLike[str] | LogStore


def is_url(text: str) -> bool:
    """Does `text` name a location by URL (`scheme://...`) rather than a local path?"""
    return _URL.match(text) is not None


def open_store(where: Where) -> LogStore:
    """The store `where` names: a LogStore as is, a registered URL's backend, else a directory."""
    if isinstance(where, LogStore):
        return where
    text = os.fspath(where)
    match = _URL.match(text) if isinstance(text, str) else None
    if match is None:
        return FileLogStore(text)
    scheme = match.group(1).lower()
    if scheme == "file":
        return FileLogStore(text[len("file://"):])
    target = SCHEMES.get(scheme)
    if target is None:
        known = ", ".join(f"{s}://" for s in sorted(SCHEMES)) or "none"
        raise InvalidInputError(f"{text}: no ledger backend for {scheme}:// (available: directories, file://, {known})")
    module, _, name = target.partition(":")
    factory: object = importlib.import_module(module)
    for attr in name.split("."):
        factory = getattr(factory, attr)
    return cast(Callable[[str], LogStore], factory)(text)

"""Object storage primitives: URLs, keys, and the few requests the object layout needs.

Everything here is storage-neutral except `connect`, which hands a URL to obstore
(`s3://`, `gs://`, `az://`, `abfs://`; endpoint and credentials from the environment).
Every failed request becomes a one-line LedgerEnvironmentError that names the location and
key and never a credential (`redact`), so no command can print one.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from typing import Any, Callable, Iterator, TypeVar

from ..errors import InvalidInputError, LedgerEnvironmentError

CONFIG_KEY = "ledger.json"
LOG_DIR = "log/"
CHECKPOINT_DIR = "checkpoints/"
_SEQ_DIGITS = 20
_URL = re.compile(r"^(?P<scheme>[A-Za-z0-9]+)://(?P<bucket>[^/?#]+)(?:/(?P<prefix>[^?#]*))?$")
#: environment variables whose values must never reach a message
_SECRET_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AZURE_STORAGE_ACCOUNT_KEY",
                "AZURE_STORAGE_SAS_KEY", "GOOGLE_SERVICE_ACCOUNT_KEY")

_BATCH_NAME = re.compile(r"log/(\d{%d})\.jsonl" % _SEQ_DIGITS)
_CHECKPOINT_NAME = re.compile(r"checkpoints/state-(\d{12})\.ckpt")
_ENDPOINT = re.compile(r"[a-z][a-z0-9+.-]*://[^\s,()]+", re.IGNORECASE)
_STATUS = re.compile(r"status code: (\d{3})")
_S3_CODE = re.compile(r"<Code>([A-Za-z0-9.]{1,64})</Code>")

T = TypeVar("T")


def batch_key(first_seq: int) -> str:
    """The object that holds the batch starting at `first_seq` (zero-padded: lexical = log order)."""
    return f"{LOG_DIR}{first_seq:0{_SEQ_DIGITS}d}.jsonl"


def checkpoint_key(seq: int) -> str:
    return f"{CHECKPOINT_DIR}state-{seq:012d}.ckpt"


def batch_start(key: str) -> int | None:
    """The first seq of the batch object `key` names; None for any other name."""
    match = _BATCH_NAME.fullmatch(key)
    return int(match.group(1)) if match else None


def checkpoint_seq(key: str) -> int | None:
    """The seq of the checkpoint object `key` names; None for any other name."""
    match = _CHECKPOINT_NAME.fullmatch(key)
    return int(match.group(1)) if match else None


def split_url(url: str) -> tuple[str, str, str]:
    """`s3://bucket/some/prefix` -> ("s3", "bucket", "some/prefix") (prefix without slashes around it)."""
    match = _URL.match(url)
    if match is None:
        raise InvalidInputError(f"{url} is not an object store URL (scheme://bucket/prefix)")
    prefix = (match.group("prefix") or "").strip("/")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise InvalidInputError(f"{url}: the prefix has an empty, '.' or '..' segment")
    return match.group("scheme").lower(), match.group("bucket"), prefix


def redact(text: str) -> str:
    """The first line of `text` without URLs (they name the endpoint) or credential values."""
    line = text.strip().splitlines()[0] if text.strip() else text
    line = _ENDPOINT.sub("<endpoint>", line)
    for name in _SECRET_VARS:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            line = line.replace(value, "***")
    return line


def environment_error(exc: BaseException, doing: str) -> LedgerEnvironmentError:
    """A one-line LedgerEnvironmentError (exit 3) for a failed request.

    An HTTP answer is reported as its status and S3 error code; anything else (connection
    refused, a timeout, a bad configuration) by the client's first line, redacted. Neither
    names the endpoint or a credential.
    """
    text = str(exc)
    status = _STATUS.search(text)
    if status is not None:
        code = _S3_CODE.search(text)
        reason = f"HTTP {status.group(1)}" + (f" {code.group(1)}" if code else "")
    else:
        reason = redact(text) or type(exc).__name__
        if len(reason) > 300:
            reason = reason[:300] + "..."
    return LedgerEnvironmentError(f"{doing}: {reason}")


def connect(url: str) -> Any:
    """An obstore store for `url`, configured from the environment (see the module docstring).

    Retries are bounded (5 attempts within 30 s) so that an unreachable endpoint fails a
    command in well under a minute instead of obstore's default three.
    """
    import obstore.store

    retry = {"max_retries": 5, "retry_timeout": timedelta(seconds=30)}
    try:
        return obstore.store.from_url(url, retry_config=retry)  # type: ignore[call-overload]
    except Exception as exc:  # obstore raises its own errors for a bad configuration
        raise environment_error(exc, f"configuring {url}") from None


class Objects:
    """The handful of object operations the backend needs, with errors mapped to ledger errors.

    Keys are relative to the ledger's prefix. Every failure other than "not found" / "already
    exists" becomes a LedgerEnvironmentError naming the location and key, never a credential.
    """

    def __init__(self, store: Any, location: str) -> None:
        import obstore
        from obstore.exceptions import AlreadyExistsError

        self._obstore = obstore
        self._exists_error = AlreadyExistsError
        self.store = store
        self.location = location

    def _call(self, doing: str, key: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except (FileNotFoundError, self._exists_error):
            raise
        except Exception as exc:
            raise environment_error(exc, f"{doing} {self.location}/{key}") from None

    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        try:
            return self._call("reading", key, lambda: bytes(self._obstore.get(self.store, key).bytes()))
        except FileNotFoundError:
            return None

    def create(self, key: str, data: bytes) -> bool:
        """Put-if-absent, as one single-part PUT: True if we created it, False if it existed."""
        try:
            self._call("writing", key, lambda: self._obstore.put(self.store, key, data, mode="create",
                                                                 use_multipart=False))
            return True
        except self._exists_error:
            return False

    def put(self, key: str, data: bytes) -> None:
        """Create or replace the object (atomic: readers see the old or the new bytes)."""
        self._call("writing", key, lambda: self._obstore.put(self.store, key, data))

    def delete(self, key: str) -> None:
        """Remove the object; removing one that is already gone is not an error."""
        try:
            self._call("removing", key, lambda: self._obstore.delete(self.store, key))
        except FileNotFoundError:
            pass

    def head(self, key: str) -> dict[str, Any] | None:
        """The object's metadata (size, e_tag, ...), or None when it does not exist."""
        try:
            return self._call("reading", key, lambda: dict(self._obstore.head(self.store, key)))
        except FileNotFoundError:
            return None

    def keys(self, prefix: str, after: str | None = None) -> Iterator[str]:
        """Keys under `prefix` (which ends with "/" or is ""), in lexical order, those > `after`."""
        stream = self._call("listing", prefix, lambda: self._obstore.list(self.store, prefix or None, offset=after,
                                                                          chunk_size=1000))
        while True:
            chunk = self._call("listing", prefix, lambda: next(stream, None))
            if chunk is None:
                return
            for meta in chunk:
                yield str(meta["path"])

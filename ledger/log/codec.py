"""Canonical encoding and the hash chain (docs/FORMAT.md §3).

A line is the canonical bytes C of the envelope without `hash`, with its final `}`
replaced by `,"hash":"<64 hex>"}` and a `\n` appended. The hash is
sha256(prev_hex_ascii + C). Because C is a byte slice of the line, a verifier hashes
bytes it already has and never re-encodes: that is what keeps verification cheap and
lets a second implementation check a ledger without reproducing our JSON encoder.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

#: The keys of every event envelope, exactly these (docs/FORMAT.md §3.1); `hash` comes last on the line.
ENVELOPE_KEYS = ("seq", "id", "type", "v", "at", "by", "txn", "data", "prev", "hash")
HASH_KEY = b',"hash":"'
HASH_SUFFIX_LEN = len(HASH_KEY) + 64 + len(b'"}')  # bytes after C[:-1], before "\n"


def canonical(obj: Any) -> bytes:
    """orjson with sorted keys and no whitespace: the only encoding ever hashed."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def genesis_prev(ledger_id: str) -> str:
    """`prev` of seq 1: sha256 of the ledger id, so two ledgers never share a chain."""
    return hashlib.sha256(ledger_id.encode("ascii")).hexdigest()


def chain_hash(prev: str, body: bytes) -> str:
    return hashlib.sha256(prev.encode("ascii") + body).hexdigest()


def encode_line(envelope: dict[str, Any]) -> tuple[bytes, str]:
    """Encode an envelope (without `hash`, with `prev`) into its line; return (line, hash)."""
    body = canonical(envelope)
    digest = chain_hash(envelope["prev"], body)
    return b'%b,"hash":"%b"}\n' % (body[:-1], digest.encode("ascii")), digest

"""Canonical bytes and the line layout, checked against a second implementation.

The second implementation is the standard library's `json` with sorted keys and no
whitespace: if our orjson-based encoder ever drifted from that (key order, escapes, a
layout detail), another verifier written from the format description would reject our
ledgers, so these properties compare against it rather than against our own code.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

import orjson
import pytest
from hypothesis import given, settings, strategies as st

from ledger.log.codec import HASH_SUFFIX_LEN, canonical, chain_hash, encode_line, genesis_prev
from ledger.errors import CorruptLogError
from ledger.domain.events import normalize_batch
from ledger.log.scan import check_line

IDENT = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", fullmatch=True)
TEXT = st.text(min_size=1, max_size=40)  # any unicode except lone surrogates
HEX64 = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
INT64 = st.integers(min_value=-(2**63), max_value=2**64 - 1)  # orjson's integer range

def json_values(integers: st.SearchStrategy[int]) -> st.SearchStrategy[Any]:
    """JSON values without floats (float text differs between encoders and has no place in v1 payloads)."""
    return st.recursive(
        st.none() | st.booleans() | integers | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=25,
    )


JSON = json_values(INT64)
JSON_OBJECT = st.dictionaries(st.text(max_size=8), JSON, max_size=5)
#: what a payload may hold: integers within signed 64 bits (docs/FORMAT.md; writers refuse the rest)
SIGNED64 = st.integers(-(2**63), 2**63 - 1)
PAYLOAD_OBJECT = st.dictionaries(st.text(max_size=8), json_values(SIGNED64), max_size=5)


def stdlib_canonical(obj: Any) -> bytes:
    """The format's canonical bytes, by an implementation that shares no code with ours."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def reorder(obj: Any, rnd: random.Random) -> Any:
    """The same JSON value with every object's keys in a random insertion order."""
    if isinstance(obj, dict):
        items = list(obj.items())
        rnd.shuffle(items)
        return {k: reorder(v, rnd) for k, v in items}
    if isinstance(obj, list):
        return [reorder(v, rnd) for v in obj]
    return obj


def _opt(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


PAYLOADS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "cohort.opened": st.fixed_dictionaries(
        {"cohort_id": IDENT}, optional={"description": TEXT, "spec": PAYLOAD_OBJECT}),
    "cohort.sealed": st.fixed_dictionaries({"cohort_id": IDENT}, optional={"reason": TEXT}),
    "generation.created": st.fixed_dictionaries(
        {"cohort_id": IDENT, "stage": IDENT, "gen_id": IDENT, "template_id": IDENT},
        optional={"combo_id": _opt(IDENT), "llm_model_id": _opt(IDENT), "parent_gen_id": _opt(IDENT),
                  "replicate": st.integers(1, 2**31 - 1), "mode": st.sampled_from(["llm", "copy"])}),
    "generation.reused": st.fixed_dictionaries(
        {"cohort_id": IDENT, "stage": IDENT, "gen_id": IDENT,
         "reason": st.sampled_from(["skip-existing", "curated", "manual", "imported"])},
        optional={"matched_on": st.dictionaries(st.text(max_size=10), st.text(max_size=10) | SIGNED64, max_size=4)}),
    "generation.removed": st.fixed_dictionaries(
        {"cohort_id": IDENT, "stage": IDENT, "gen_id": IDENT, "reason": TEXT}),
    "generation.materialized": st.fixed_dictionaries(
        {"cohort_id": IDENT, "stage": IDENT, "gen_id": IDENT,
         "artifacts": st.dictionaries(st.text(min_size=1, max_size=12), HEX64, max_size=3)},
        optional={"run_id": TEXT}),
    "metadata.key_renamed": st.fixed_dictionaries(
        {"old_key": st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True),
         "new_key": st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True),
         "phase": st.sampled_from(["alias", "final"])}),
}


@st.composite
def envelopes(draw: st.DrawFn) -> dict[str, Any]:
    """A valid envelope without `hash`: a normalised payload of any type, any provenance."""
    event_type = draw(st.sampled_from(sorted(PAYLOADS)))
    seq = draw(st.integers(1, 2**40))
    client = normalize_batch([{
        "type": event_type,
        "data": draw(PAYLOADS[event_type]),
        "by": draw(st.fixed_dictionaries({}, optional={"actor": TEXT, "run_id": TEXT, "source": TEXT})),
    }])[0]
    return {
        "seq": seq,
        "id": draw(st.from_regex(r"[!-~]{1,64}", fullmatch=True)),
        "type": event_type,
        "v": 1,
        "at": "2026-11-28T17:31:00.123456Z",
        "by": client["by"],
        "txn": [seq, draw(st.integers(1, 1000))],
        "data": client["data"],
        "prev": draw(HEX64),
    }


@settings(max_examples=200, deadline=None)
@given(value=JSON_OBJECT | st.lists(JSON), seed=st.integers())
def test_canonical_bytes_are_stable_and_order_free(value: Any, seed: int) -> None:
    once = canonical(value)
    assert canonical(value) == once
    assert canonical(orjson.loads(once)) == once  # loads -> dumps round trip
    assert canonical(reorder(value, random.Random(seed))) == once  # insertion order is irrelevant
    assert once == stdlib_canonical(value)


@settings(max_examples=100, deadline=None)
@given(value=st.dictionaries(st.text(max_size=5), st.floats(allow_nan=False, allow_infinity=False), max_size=5))
def test_canonical_floats_round_trip(value: dict[str, float]) -> None:
    """Floats are not hashed by v1 payloads, but a `spec` may hold them: they must not drift."""
    once = canonical(value)
    assert canonical(orjson.loads(once)) == once


@settings(max_examples=300, deadline=None)
@given(env=envelopes(), seed=st.integers())
def test_envelope_round_trip_through_the_line_layout(env: dict[str, Any], seed: int) -> None:
    line, digest = encode_line(reorder(env, random.Random(seed)))
    body = stdlib_canonical(env)

    # FORMAT: the line is C with its final "}" replaced by ,"hash":"<hex>"} and a "\n" appended
    assert line == body[:-1] + b',"hash":"' + digest.encode() + b'"}\n'
    assert line.count(b"\n") == 1
    assert len(line) - len(body) == HASH_SUFFIX_LEN
    # FORMAT: hash = sha256(prev_hex_ascii + C)
    assert digest == hashlib.sha256(env["prev"].encode("ascii") + body).hexdigest()
    assert digest == chain_hash(env["prev"], body)

    assert check_line(line[:-1], env["seq"], env["prev"]) == {**env, "hash": digest}
    with pytest.raises(CorruptLogError) as wrong_seq:
        check_line(line[:-1], env["seq"] + 1, env["prev"])
    assert wrong_seq.value.seq == env["seq"] + 1
    other_prev = ("0" if env["prev"][0] != "0" else "1") + env["prev"][1:]
    with pytest.raises(CorruptLogError, match="prev"):
        check_line(line[:-1], env["seq"], other_prev)


@settings(max_examples=100, deadline=None)
@given(prev=HEX64, body=st.binary(max_size=200))
def test_chain_hash_is_sha256_of_prev_ascii_then_bytes(prev: str, body: bytes) -> None:
    assert chain_hash(prev, body) == hashlib.sha256(bytes(prev, "ascii") + body).hexdigest()
    assert len(chain_hash(prev, body)) == 64


@given(ledger_id=st.uuids().map(str))
def test_genesis_prev_is_sha256_of_the_ledger_id(ledger_id: str) -> None:
    assert genesis_prev(ledger_id) == hashlib.sha256(ledger_id.encode("ascii")).hexdigest()


@pytest.mark.parametrize("line", [
    b"",
    b'{"seq":1}',
    b'{"a":1,"hash":"' + b"0" * 63 + b'"}',  # one hex digit short
    b'{"a":1,"hsh":"' + b"0" * 65 + b'"}',
    b'{"a":1,"hash":"' + "é".encode() * 32 + b'"}',  # right length, not ASCII
])
def test_check_line_rejects_broken_layouts(line: bytes) -> None:
    with pytest.raises(CorruptLogError) as bad:
        check_line(line, 1, "0" * 64)
    assert bad.value.seq == 1

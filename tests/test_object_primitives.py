"""What the object layout asks of a store (docs/FORMAT.md §10.1), checked on the real server.

The commit protocol rests on one property: of concurrent put-if-absent requests for one name,
exactly one succeeds. These tests race processes on the SeaweedFS the suite starts, so a
server (or server version) that does not honour `If-None-Match: *` atomically fails here,
before any ledger test could blame the ledger.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import Counter

import pytest

from ledger.errors import InvalidInputError, LedgerEnvironmentError
from ledger.log.objects import Objects, batch_key, batch_start, checkpoint_key, checkpoint_seq, connect, redact, split_url

RACERS = 8
NAMES = 60


def _race(url: str, env: dict[str, str], racer: int, start: float, out: "multiprocessing.Queue[tuple[int, list[int]]]") -> None:
    os.environ.update(env)
    objects = Objects(connect(url), url)
    while time.time() < start:
        pass
    won = [n for n in range(1, NAMES + 1) if objects.create(batch_key(n), f"racer {racer}\n".encode())]
    out.put((racer, won))


def test_put_if_absent_has_exactly_one_winner_per_name(s3_url: str, s3_env: dict[str, str]) -> None:
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[tuple[int, list[int]]] = ctx.Queue()
    start = time.time() + 3.0  # every racer connected before the first request
    procs = [ctx.Process(target=_race, args=(s3_url, s3_env, r, start, out)) for r in range(RACERS)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    wins = Counter(n for _, won in results for n in won)
    assert sorted(wins) == list(range(1, NAMES + 1))
    assert set(wins.values()) == {1}, {n: c for n, c in wins.items() if c != 1}
    objects = Objects(connect(s3_url), s3_url)
    owner = {n: racer for racer, won in results for n in won}
    for n in range(1, NAMES + 1):
        assert objects.get(batch_key(n)) == f"racer {owner[n]}\n".encode()  # the winner's bytes, whole


def test_listing_after_a_name_and_missing_objects(s3_url: str) -> None:
    objects = Objects(connect(s3_url), s3_url)
    for n in (1, 4, 9):
        assert objects.create(batch_key(n), b"x\n")
    assert list(objects.keys("log/", after=batch_key(1))) == [batch_key(4), batch_key(9)]
    assert list(objects.keys("log/")) == [batch_key(1), batch_key(4), batch_key(9)]
    assert objects.get(batch_key(2)) is None
    assert objects.head(batch_key(2)) is None
    objects.delete(batch_key(2))  # already gone: not an error


def test_a_sibling_prefix_is_not_listed(s3_url: str) -> None:
    a = Objects(connect(s3_url), s3_url)
    b = Objects(connect(s3_url + "x"), s3_url + "x")  # ".../ledgerx" shares the text prefix only
    b.create("ledger.json", b"{}")
    assert list(a.keys("")) == []


def test_object_names_round_trip() -> None:
    assert batch_key(1) == "log/00000000000000000001.jsonl"
    assert sorted(batch_key(n) for n in (10, 9, 100)) == [batch_key(9), batch_key(10), batch_key(100)]
    assert [batch_start(batch_key(n)) for n in (1, 10**19)] == [1, 10**19]
    assert checkpoint_seq(checkpoint_key(42)) == 42
    for other in ("log/1.jsonl", "log/00000000000000000001.json", "checkpoints/state-1.ckpt", "ledger.json"):
        assert batch_start(other) is None and checkpoint_seq(other) is None


def test_url_parsing() -> None:
    assert split_url("s3://bucket/a/b/") == ("s3", "bucket", "a/b")
    assert split_url("S3://bucket") == ("s3", "bucket", "")
    for bad in ("s3://", "s3:///x", "s3://b/a//c", "s3://b/../c", "/local/dir"):
        with pytest.raises(InvalidInputError):
            split_url(bad)


def test_credentials_never_in_errors(s3_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-value")
    objects = Objects(connect(s3_url), s3_url)
    with pytest.raises(LedgerEnvironmentError) as info:
        objects.get("ledger.json")
    message = str(info.value)
    assert message.startswith(f"reading {s3_url}/ledger.json: HTTP 403")
    assert "\n" not in message
    for secret in ("wrong-secret-value", os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_ENDPOINT_URL"],
                   os.environ["AWS_ENDPOINT_URL"].split("//")[1]):
        assert secret not in message
    assert redact("key wrong-secret-value leaked\nsecond line") == "key *** leaked"
    assert redact("error sending request for url (http://10.1.2.3:9000/b/k), retrying") == \
        "error sending request for url (<endpoint>), retrying"


def test_an_unreachable_endpoint_is_an_environment_error(s3_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(LedgerEnvironmentError) as info:
        Objects(connect(s3_url), s3_url).get("ledger.json")
    assert f"127.0.0.1:{port}" not in str(info.value)

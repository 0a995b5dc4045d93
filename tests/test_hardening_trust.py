"""Issue 11, items 5, 9 and 16: derived files never change what the log says. A forged or
damaged checkpoint is ignored (its mac fails) and named by `verify --checkpoints` and
`build --full`; a build on a read-only ledger still delivers the projection; pinned
`SEQ:HASH` pairs detect a rewritten history however far the log has grown."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import orjson
import pyarrow.parquet as pq
import pytest
from helpers.builders import created, event, jsonl, run_cli
from helpers.env import unavailable
from helpers.faults import dir_snapshot, list_checkpoints, read_only_mount_problem, rewrite_checkpoint, run_cli_read_only

from ledger import Ledger
from ledger.log.codec import encode_line, genesis_prev
from projections import build
from projections.build import CHECKPOINT_EVERY


@pytest.fixture
def sealed(tmp_path: Path) -> Ledger:
    """Cohort S sealed with two members, cohort A open; one checkpoint at the head (seq 5)."""
    ledger = Ledger.init(tmp_path / "ledger")
    ledger.append([created("S", "draft", "s1"), created("S", "draft", "s2"), created("A", "draft", "a1")])
    ledger.append([event("cohort.sealed", cohort_id="S")])
    ledger.append([created("A", "draft", "a2")])
    build(ledger.path, checkpoint_every=1)
    assert len(list_checkpoints(ledger.path)) == 1
    return ledger


def forge(ledger: Ledger, edit: Callable[[dict[str, Any]], None], with_key: bool) -> Path:
    (path,) = list_checkpoints(ledger.path)
    rewrite_checkpoint(ledger.path, path, edit, with_key)
    return path


def unseal(doc: dict[str, Any]) -> None:
    for cohort in doc["cohorts"]:
        if cohort["cohort_id"] == "S":
            cohort["sealed_seq"] = None


def drop_gen(doc: dict[str, Any]) -> None:
    gens = doc["generations"]
    for field, column in gens.items():
        if isinstance(column, dict):
            column["codes"].pop()
        else:
            column.pop()


def add_gen(doc: dict[str, Any]) -> None:
    gens = doc["generations"]
    for field, column in gens.items():
        if isinstance(column, dict):
            column["codes"].append(column["codes"][-1])
        else:
            column.append({"gen_id": "fake", "parent_gen_id": None, "replicate": 1, "created_seq": 1,
                           "materialized_seq": None}[field])


FORGERIES = {"sealed shown unsealed": unseal, "a gen dropped": drop_gen, "a fake gen added": add_gen}


def projection(ledger: Ledger, out: Path, **kw: Any) -> dict[str, Any]:
    build(ledger.path, out, checkpoint_every=10**9, **kw)
    return {"manifest": pq.read_table(out / "manifest.parquet").to_pylist(),
            "csvs": {p.parent.name: p.read_bytes() for p in (out / "cohorts").glob("*/membership.csv")}}


@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_checkpoint_forged_without_the_key_changes_nothing(sealed: Ledger, tmp_path: Path, forgery: str) -> None:
    honest = projection(sealed, tmp_path / "honest")
    forge(sealed, FORGERIES[forgery], with_key=False)
    assert projection(sealed, tmp_path / "after") == honest
    reopened = Ledger.open(sealed.path)
    assert reopened.state.cohorts["S"].sealed_seq == 4 and set(reopened.state.generations) == {"s1", "s2", "a1", "a2"}
    # append judges by the log, not by the forged checkpoint
    r = run_cli("append", ledger=sealed.path, stdin=jsonl(
        event("generation.reused", cohort_id="S", stage="draft", gen_id="a1", reason="manual")))
    assert r.returncode == 2 and b"sealed" in r.stderr, r.stderr
    r = run_cli("show", "S", ledger=sealed.path)
    assert r.returncode == 0 and b"s1" in r.stdout and b"s2" in r.stdout, r.stderr


@pytest.mark.parametrize("with_key", [False, True], ids=["without the key", "with the key"])
@pytest.mark.parametrize("forgery", FORGERIES)
def test_verify_checkpoints_and_full_build_name_a_forged_checkpoint(sealed: Ledger, tmp_path: Path, forgery: str,
                                                                   with_key: bool) -> None:
    path = forge(sealed, FORGERIES[forgery], with_key)
    assert run_cli("verify", ledger=sealed.path).returncode == 0  # the chain itself is intact
    before = dir_snapshot(sealed.path)
    r = run_cli("verify", "--checkpoints", ledger=sealed.path)
    assert r.returncode == 1 and r.stderr.count(b"\n") == 1 and path.name.encode() in r.stderr, r.stderr
    assert (b"disagrees" if with_key else b"mac") in r.stderr
    out = tmp_path / "out"
    r = run_cli("build", "--full", "--out", str(out), ledger=sealed.path)
    assert r.returncode == 1 and path.name.encode() in r.stderr, r.stderr
    assert not out.exists()
    assert dir_snapshot(sealed.path) == before  # nothing removed, nothing written


def test_verify_checkpoints_passes_on_honest_checkpoints(sealed: Ledger, tmp_path: Path) -> None:
    sealed.append([created("A", "draft", "a3")])
    build(sealed.path, tmp_path / "fresh", checkpoint_every=1)  # a new out dir: folded (a patch saves none)
    assert len(list_checkpoints(sealed.path)) == 2
    r = run_cli("verify", "--checkpoints", ledger=sealed.path)
    assert r.returncode == 0, r.stderr
    assert build(sealed.path, full=True).seq == 6


@pytest.mark.parametrize("damage", ["a key missing", "not a batch end"])
def test_a_damaged_checkpoint_is_one_line_never_a_traceback(sealed: Ledger, damage: str) -> None:
    if damage == "a key missing":
        path = forge(sealed, lambda doc: doc.pop("cohorts"), with_key=True)
    else:
        (old,) = list_checkpoints(sealed.path)
        path = old.with_name("state-000000000002.ckpt")  # seq 2 is inside the batch [1, 3]
        path.write_bytes(old.read_bytes())
    for args in (("show", "S"), ("build", "--out", str(sealed.path.parent / "o")), ("log",)):
        r = run_cli(*args, ledger=sealed.path)
        assert r.returncode == 0 and b"Traceback" not in r.stderr, r.stderr
    r = run_cli("verify", "--checkpoints", ledger=sealed.path)
    assert r.returncode == 1 and r.stderr.count(b"\n") == 1 and path.name.encode() in r.stderr, r.stderr


def test_build_on_a_read_only_ledger_delivers_the_projection_with_a_warning(tmp_path: Path) -> None:
    reason = read_only_mount_problem()
    if reason:
        unavailable(reason)
    ledger = Ledger.init(tmp_path / "ledger")
    ledger.append([created("A", "draft", f"d{i}") for i in range(CHECKPOINT_EVERY)])  # a checkpoint is due
    out = tmp_path / "out"
    before = dir_snapshot(ledger.path)
    r = run_cli_read_only(ledger.path, "build", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert r.stderr.count(b"\n") == 1 and b"warning" in r.stderr and b"checkpoint" in r.stderr, r.stderr
    assert pq.read_table(out / "manifest.parquet").num_rows == CHECKPOINT_EVERY
    assert dir_snapshot(ledger.path) == before


def rewrite_without_seal(ledger: Ledger) -> None:
    """The issue's ~25-line attack: drop the seal and recompute the chain with the codec."""
    lines = [orjson.loads(line) for line in ledger.log_path.read_bytes().splitlines()]
    kept = [ev for ev in lines if ev["type"] != "cohort.sealed"]
    prev, out = genesis_prev(ledger.config.ledger_id), []
    for seq, ev in enumerate(kept, start=1):
        ev.pop("hash")
        ev.update(seq=seq, prev=prev, txn=[seq, 1])
        line, prev = encode_line(ev)
        out.append(line)
    ledger.log_path.write_bytes(b"".join(out))
    for ckpt in list_checkpoints(ledger.path):
        ckpt.unlink()


def test_a_pin_kept_outside_catches_a_rewrite_however_far_the_log_grew(sealed: Ledger) -> None:
    head = sealed.head
    pin = f"{head.seq}:{head.hash}"
    sealed.append([created("A", "draft", f"later{i}") for i in range(5)])  # legitimate growth
    r = run_cli("verify", "--expect", pin, "--expect", f"1:{next(iter(sealed.read(1, 1))).hash}", ledger=sealed.path)
    assert r.returncode == 0, r.stderr
    assert run_cli("verify", "--expect-head", head.hash, ledger=sealed.path).returncode == 1  # stale head pin
    rewrite_without_seal(sealed)
    assert run_cli("verify", ledger=sealed.path).returncode == 0  # a recomputed chain is consistent
    r = run_cli("verify", "--expect", pin, ledger=sealed.path)
    assert r.returncode == 1 and r.stderr.count(b"\n") == 1 and f"seq {head.seq}".encode() in r.stderr, r.stderr


@pytest.mark.parametrize("bad", ["5", "x:" + "0" * 64, "5:abc", "0:" + "0" * 64])
def test_a_malformed_pin_is_bad_input(sealed: Ledger, bad: str) -> None:
    r = run_cli("verify", "--expect", bad, ledger=sealed.path)
    assert r.returncode == 2 and r.stderr.count(b"\n") == 1 and b"SEQ:HASH" in r.stderr, r.stderr


def test_a_pin_beyond_the_head_fails(sealed: Ledger) -> None:
    r = run_cli("verify", "--expect", f"99:{'0' * 64}", ledger=sealed.path)
    assert r.returncode == 1 and b"99" in r.stderr, r.stderr

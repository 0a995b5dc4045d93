"""The writers' index (ledger/app/facts.py) decides exactly like the reference fold.

A writer that has no full state loaded validates through the SQLite index; one that has it
validates against `State`. Random batches, valid and rule-breaking, must get the same
accept/reject decision and the same message from both, and the index must then hold exactly
the facts of the reference state of its own log.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_reliability_stateful import client_ids, events, with_id

from ledger import CheckFailed, Ledger, LedgerError
from ledger.app.replay import check_checkpoints
from ledger.log.file_store import FileLogStore
from ledger.domain.state import State

from helpers.builders import run_cli


def outcome(ledger: Ledger, batch: list[dict[str, Any]]) -> Any:
    try:
        return ledger.append(batch)
    except LedgerError as exc:
        return f"{type(exc).__name__}: {exc}"


def index_file(path: Path) -> Path:
    return FileLogStore(path).index_path()


def index_facts(path: Path) -> dict[str, Any]:
    db = sqlite3.connect(index_file(path))
    try:
        return {
            "gens": sorted(db.execute("SELECT * FROM gens").fetchall()),
            "cohorts": sorted(db.execute("SELECT cohort_id, opened_seq, sealed_seq FROM cohorts")),
            "members": sorted(db.execute("SELECT cohort_id, gen_id, stage, seq FROM members")),
            "event_ids": sorted(db.execute("SELECT id, seq FROM event_ids")),
        }
    finally:
        db.close()


def state_facts(state: State) -> dict[str, Any]:
    gens = state.generations
    return {
        "gens": sorted((g.stage, g.gen_id, g.origin_cohort_id, g.template_id, g.combo_id, g.llm_model_id,
                        g.parent_gen_id, g.replicate, g.mode, g.created_seq, g.materialized_seq) for g in gens.values()),
        "cohorts": sorted((c.cohort_id, c.opened_seq, c.sealed_seq) for c in state.cohorts.values()),
        "members": sorted((c.cohort_id, gid, gens[gid].stage, seq) for c in state.cohorts.values()
                          for gid, seq in c.members.items()),
        "event_ids": sorted(state.event_ids.items()),
    }


#: every gen of the strategies' pool, created first, so that most random events that follow
#: act on existing gens (reuse, removal, materialization, seals) rather than being rejected
PRELUDE = [{"type": "generation.created", "data": {"cohort_id": cohort, "stage": stage, "gen_id": gen_id,
                                                   "template_id": "t1", **({"parent_gen_id": parent} if parent else {})}}
           for cohort, stage, gen_id, parent in (("A", "draft", "d1", None), ("B", "draft", "d2", None),
                                                  ("A", "essay", "e1", "d1"), ("B", "essay", "e2", "d2"),
                                                  ("C", "evaluation", "v1", "e1"))]
batches = st.lists(st.lists(st.builds(with_id, events, client_ids), min_size=1, max_size=3), min_size=1, max_size=20)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches, st.lists(st.booleans(), min_size=20, max_size=20))
def test_the_index_decides_like_the_reference_fold(tmp_path_factory: Any, plan: list[list[dict[str, Any]]],
                                                   reopen: list[bool]) -> None:
    root = tmp_path_factory.mktemp("facts")
    reference = Ledger.init(root / "reference")
    reference.state  # a loaded full state: appends validate against State itself
    indexed = Ledger.init(root / "indexed")
    try:
        for ledger in (reference, indexed):
            ledger.append(PRELUDE[:2])
            ledger.append(PRELUDE[2:])
        for batch, fresh in zip(plan, reopen):
            if fresh:  # a new process: everything it knows comes from the index file
                indexed.close()
                indexed = Ledger.open(indexed.path)
            assert outcome(indexed, batch) == outcome(reference, batch)
        assert indexed._state is None  # the index path was the one exercised
        assert index_facts(indexed.path) == state_facts(Ledger.open(indexed.path).state)
        check_checkpoints(indexed.store, indexed.config, index=True)  # the audit agrees: every column, every row
    finally:
        indexed.close()
        reference.close()


def _grow(ledger: Ledger, prefix: str, n: int) -> None:
    ledger.append([{"type": "cohort.opened", "data": {"cohort_id": prefix}}])
    ledger.append([{"type": "generation.created", "data": {"cohort_id": prefix, "stage": "draft",
                                                          "gen_id": f"{prefix}{i}", "template_id": "t"}}
                   for i in range(n)])


def test_an_index_behind_the_log_is_caught_up(tmp_path: Path) -> None:
    led = Ledger.init(tmp_path / "l")
    _grow(led, "a", 5)
    other = Ledger.open(led.path)
    other.state  # this writer validates against its full state and leaves the index behind
    _grow(other, "b", 5)
    assert led.generation("b3") is not None and led.generation("zz") is None
    assert index_facts(led.path) == state_facts(Ledger.open(led.path).state)


def test_a_missing_foreign_or_unreadable_index_is_rebuilt(tmp_path: Path) -> None:
    led = Ledger.init(tmp_path / "l")
    _grow(led, "a", 5)
    foreign = Ledger.init(tmp_path / "f")
    _grow(foreign, "f", 3)
    led.close()
    for damage in ("missing", "foreign", "garbage"):
        index = index_file(led.path)
        if damage == "missing":
            index.unlink()
        elif damage == "foreign":
            foreign.close()
            shutil.copy(index_file(foreign.path), index)
        else:
            index.write_bytes(b"not a database" * 100)
        for suffix in ("-wal", "-shm"):
            Path(f"{index}{suffix}").unlink(missing_ok=True)
        fresh = Ledger.open(led.path)
        assert fresh.append([{"type": "generation.reused", "data": {"cohort_id": "a2", "stage": "draft",
                                                                    "gen_id": "a1", "reason": "manual"}}])
        assert fresh.generation("f1") is None
        fresh.close()
        assert index_facts(led.path) == state_facts(Ledger.open(led.path).state)


def test_an_index_of_a_rewritten_log_is_not_used(tmp_path: Path) -> None:
    led = Ledger.init(tmp_path / "l")
    _grow(led, "a", 5)
    log = led.log_path.read_bytes()
    led.append([{"type": "cohort.sealed", "data": {"cohort_id": "a"}}])
    led.close()
    led.log_path.write_bytes(log)  # the seal is gone (a restore from backup): the index is ahead
    fresh = Ledger.open(led.path)
    assert fresh.append([{"type": "generation.removed", "data": {"cohort_id": "a", "stage": "draft", "gen_id": "a1",
                                                                 "reason": "dropped"}}]) == [7]
    fresh.close()
    assert index_facts(led.path) == state_facts(Ledger.open(led.path).state)


@pytest.mark.parametrize("tamper, named", [
    ("UPDATE gens SET template_id = 'forged' WHERE gen_id = 'A3'", "differs in the gens row of 'A3'"),
    ("DELETE FROM members WHERE gen_id = 'A4'", "the members row of ('A', 'A4')"),
    ("INSERT INTO event_ids VALUES ('planted', 2)", "has an extra the event_ids row of 'planted'"),
    ("UPDATE cohorts SET sealed_seq = 1 WHERE cohort_id = 'A'", "differs in the cohorts row of 'A'"),
])
def test_verify_checkpoints_names_an_index_that_is_not_the_fold(tmp_path: Path, tamper: str, named: str) -> None:
    """A writer trusts the index at its boundary; `verify --checkpoints` is what checks that trust."""
    ledger = Ledger.init(tmp_path / "l")
    _grow(ledger, "A", 10)
    ledger.generation("A1")  # the index is at the log's end
    check_checkpoints(ledger.store, ledger.config, index=True)
    db = sqlite3.connect(index_file(ledger.path))
    db.execute(tamper)
    db.commit()
    db.close()
    with pytest.raises(CheckFailed, match="writers' index") as found:
        check_checkpoints(ledger.store, ledger.config, index=True)
    assert named in str(found.value) and "at seq 11" in str(found.value)
    check_checkpoints(ledger.store, ledger.config)  # without `index`, checkpoints only
    out = run_cli("verify", "--checkpoints", ledger=ledger.path)
    assert out.returncode == 1 and named in out.stderr.decode()

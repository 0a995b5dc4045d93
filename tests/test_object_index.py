"""The writers' index for a ledger in an object store, kept in a local directory
($COHORT_LEDGER_INDEX_DIR, or `ObjectLogStore(..., index_dir=)`), on a real S3 server.

A machine with no ledger directory still appends one event without folding the state: its
index is a cache of the store's log, caught up from the store under a lock of this machine,
rebuilt when it does not match; writers on other machines move the log on without it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ledger import EventRejected, Ledger
from ledger.log.object_store import INDEX_DIR_VARIABLE, ObjectLogStore

from helpers.builders import created, event


def machine(url: str, index_dir: Path) -> Ledger:
    """A Ledger as a process on a machine whose index directory is `index_dir` sees it."""
    return Ledger.open(ObjectLogStore.from_url(url, index_dir=index_dir))


def test_machines_with_their_own_index_agree_with_the_fold(s3_url: str, tmp_path: Path) -> None:
    Ledger.init(s3_url).append([event("cohort.opened", cohort_id="c1")])
    a, b = machine(s3_url, tmp_path / "a"), machine(s3_url, tmp_path / "b")
    a.append([created("c1", "draft", "d1")])
    b.append([created("c1", "draft", "d2")])  # b catches up on a's event from the store
    a.append([created("c1", "essay", "e1", parent="d2")])  # a: on b's
    with pytest.raises(EventRejected) as by_index:
        b.append([created("c1", "draft", "d1", template_id="other")])
    reference = Ledger.open(s3_url)  # no index: validates against the folded state
    reference.state
    with pytest.raises(EventRejected) as by_fold:
        reference.append([created("c1", "draft", "d1", template_id="other")])
    assert str(by_index.value) == str(by_fold.value)
    for led in (a, b):
        assert led._state is None  # the index answered: no state was folded
        gen = led.generation("e1")
        assert gen is not None and gen.parent_gen_id == "d2"
    assert (tmp_path / "a").is_dir() and (tmp_path / "b").is_dir()
    assert [e.seq for e in reference.read()] == [1, 2, 3, 4]


def test_an_index_of_another_ledger_at_the_same_location_is_rebuilt(s3_url: str, tmp_path: Path) -> None:
    first = Ledger.init(ObjectLogStore.from_url(s3_url, index_dir=tmp_path))
    first.append([event("cohort.opened", cohort_id="c1"), created("c1", "draft", "d1")])
    index = first.store.index_path()
    assert index is not None and index.is_file()
    # the prefix is emptied and a new ledger created there: the cached index is not its own
    store = first.store
    assert isinstance(store, ObjectLogStore)
    for key in list(store.objects.keys("")):
        store.objects.delete(key)
    Ledger.init(s3_url).append([event("cohort.opened", cohort_id="c1")])
    again = machine(s3_url, tmp_path)
    again.append([created("c1", "draft", "d1")])  # d1 is new to this ledger: no stale fact says otherwise
    assert again.generation("d1") is not None
    assert [e.seq for e in Ledger.open(s3_url).read()] == [1, 2]


HOOK = """
import sys
from ledger.hooks import PipelineRecorder
gen = sys.argv[2]
rec = PipelineRecorder(sys.argv[1], "run-1")
assert rec.is_materialized(gen) is False
rec.record_materialized("c1", "draft", gen, {"parsed.txt": "0" * 64})
assert rec.is_materialized(gen) is True
assert rec.ledger._state is None, "the hook folded the state"
print("ok")
"""


def test_a_hook_process_uses_the_index_from_the_environment(s3_url: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    led = Ledger.init(s3_url)
    led.append([event("cohort.opened", cohort_id="c1")])
    led.append([created("c1", "draft", f"d{i}") for i in range(1, 200)])
    monkeypatch.setenv(INDEX_DIR_VARIABLE, str(tmp_path / "index"))
    for gen in ("d1", "d2"):  # the first process builds the index, the second catches it up
        out = subprocess.run([sys.executable, "-c", HOOK, s3_url, gen], capture_output=True, text=True, timeout=120)
        assert out.stdout.strip() == "ok", out.stderr
    assert len(list((tmp_path / "index").glob("*/facts.sqlite"))) == 1
    events = list(Ledger.open(s3_url).read())
    assert [e.data.get("gen_id") for e in events if e.type == "generation.materialized"] == ["d1", "d2"]

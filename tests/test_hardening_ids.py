"""Issue 11, item 3 (ids): a cohort id becomes a folder (`cohorts/<id>/`), so an id that is
another cohort's folder on a case-insensitive or Windows file system (`A` beside `a`, `A.`
beside `A`), a Windows device name (`CON`, `nul`, `aux.txt`, `com1`) or an id ending in `.`
is refused at append (exit 2, naming the existing cohort), through the plain fold and the
writers' index alike. Logs written before the rule still replay."""

from __future__ import annotations

import pytest
from helpers.builders import created, event, jsonl, log_bytes, run_cli

from ledger import EventRejected, Ledger


@pytest.mark.parametrize("existing,new", [("A", "a"), ("abc", "ABC"), ("A", "A."), ("best_x", "Best_X.")])
def test_an_id_that_is_an_existing_cohorts_folder_elsewhere_is_refused(ledger: Ledger, existing: str,
                                                                        new: str) -> None:
    ledger.append([created(existing, "draft", "d1")])
    before = log_bytes(ledger.path)
    r = run_cli("append", ledger=ledger.path, stdin=jsonl(event("cohort.opened", "o1", cohort_id=new)))
    assert r.returncode == 2 and r.stderr.count(b"\n") == 1, r.stderr
    assert f"existing cohort {existing}".encode() in r.stderr, r.stderr
    with pytest.raises(EventRejected, match=f"existing cohort {existing}"):
        Ledger.open(ledger.path).append([event("generation.reused", cohort_id=new, stage="draft", gen_id="d1",
                                               reason="manual")])
    assert log_bytes(ledger.path) == before


def test_two_such_ids_in_one_batch_are_refused(ledger: Ledger) -> None:
    with pytest.raises(EventRejected, match="event #2.*existing cohort Mixed"):
        ledger.append([created("Mixed", "draft", "d1"), created("mixed", "draft", "d2")])
    assert ledger.head.seq == 0


@pytest.mark.parametrize("cohort_id", ["CON", "con", "nul", "aux.txt", "com1", "LPT9.csv", "prn.x.y", "A.", "x.."])
def test_device_names_and_trailing_dots_are_refused(ledger: Ledger, cohort_id: str) -> None:
    with pytest.raises(EventRejected, match="Windows"):
        ledger.append([created(cohort_id, "draft", "d1")])
    assert ledger.head.seq == 0


@pytest.mark.parametrize("cohort_id", ["console", "com10", "auxiliary", "nul_set", "c.2", "A.b", "lpt"])
def test_names_that_only_look_alike_are_accepted(ledger: Ledger, cohort_id: str) -> None:
    assert ledger.append([created(cohort_id, "draft", "d1")]) == [1]


def test_the_same_cohort_again_is_fine(ledger: Ledger) -> None:
    ledger.append([created("A", "draft", "d1")])
    assert ledger.append([created("A", "draft", "d2")]) == [2]

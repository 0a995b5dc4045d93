"""The Ledger API: lifecycle errors, append guarantees, every domain rule of docs/FORMAT.md §6.2, read."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from helpers.builders import created, event, log_bytes
from ledger import (ConflictError, CorruptLogError, EventRejected, InvalidInputError, Ledger, NewerFormatError,
                    NotALedgerError)
from ledger.domain import events as event_models
from ledger.log.codec import encode_line, genesis_prev

AT_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def opened(cohort: str, event_id: str | None = None) -> dict[str, Any]:
    return event("cohort.opened", event_id, cohort_id=cohort)


def reused(cohort: str, stage: str, gen_id: str, event_id: str | None = None) -> dict[str, Any]:
    return event("generation.reused", event_id, cohort_id=cohort, stage=stage, gen_id=gen_id, reason="skip-existing")


def removed(cohort: str, stage: str, gen_id: str) -> dict[str, Any]:
    return event("generation.removed", cohort_id=cohort, stage=stage, gen_id=gen_id, reason="bad output")


def materialized(cohort: str, stage: str, gen_id: str) -> dict[str, Any]:
    return event("generation.materialized", cohort_id=cohort, stage=stage, gen_id=gen_id,
                 artifacts={"parsed.txt": "ab" * 32})


def renamed(old: str, new: str, phase: str) -> dict[str, Any]:
    return event("metadata.key_renamed", old_key=old, new_key=new, phase=phase)


def forge(path: Path, *fields: dict[str, Any]) -> None:
    """Write a log by hand with a valid chain, for content our own writer would never produce."""
    prev = genesis_prev(Ledger.open(path).config.ledger_id)
    lines = []
    for seq, extra in enumerate(fields, 1):
        envelope = {"seq": seq, "id": f"forged-{seq}", "type": "cohort.opened", "v": 1,
                    "at": "2026-01-01T00:00:00.000000Z", "by": {}, "txn": [seq, 1],
                    "data": {"cohort_id": f"f{seq}"}, "prev": prev, **extra}
        line, prev = encode_line(envelope)
        lines.append(line)
    (path / "events.jsonl").write_bytes(b"".join(lines))


def rejected(ledger: Ledger, batch: list[dict[str, Any]], index: int, rule: str) -> EventRejected:
    """Append `batch`, expect event #index+1 rejected for `rule`, and prove nothing changed."""
    before, head = log_bytes(ledger.path), ledger.head
    with pytest.raises(EventRejected) as exc:
        ledger.append(batch)
    assert exc.value.index == index
    assert str(exc.value).startswith(f"event #{index + 1}")
    assert re.search(rule, str(exc.value)), str(exc.value)
    assert log_bytes(ledger.path) == before
    assert ledger.head == head
    assert Ledger.open(ledger.path).head == head
    return exc.value


# -- init / open --------------------------------------------------------------------------
def test_init_writes_the_layout(tmp_path: Path) -> None:
    ledger = Ledger.init(tmp_path / "l")
    config = orjson.loads((tmp_path / "l" / "ledger.json").read_bytes())
    assert config == {"format": "cohort-ledger", "format_version": 1, "ledger_id": ledger.config.ledger_id,
                      "stages": ["draft", "essay", "evaluation"],
                      "parents": {"essay": "draft", "evaluation": "essay"}}
    assert log_bytes(ledger.path) == b""
    assert (tmp_path / "l" / "checkpoints").is_dir() and (tmp_path / "l" / "events.lock").is_file()
    assert ledger.head == (0, genesis_prev(ledger.config.ledger_id))
    assert ledger.verify().head == ledger.head and ledger.verify().events == 0
    assert Ledger.init(tmp_path / "m").config.ledger_id != ledger.config.ledger_id


def test_init_custom_stages_and_into_an_empty_dir(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    ledger = Ledger.init(tmp_path / "empty", stages=["a", "b", "c"], parents={"c": "a"})
    reopened = Ledger.open(tmp_path / "empty")
    assert reopened.config.stages == ("a", "b", "c") and reopened.config.parents == {"c": "a"}
    assert Ledger.init(tmp_path / "two", stages=["draft", "essay"]).config.parents == {"essay": "draft"}
    assert ledger.append([created("X", "a", "a1"), created("X", "c", "c1", parent="a1")]) == [1, 2]


@pytest.mark.parametrize("stages, parents, rule", [
    (["a", "b"], {"b": "z"}, "unknown stage"),
    (["a", "b"], {"a": "b"}, "must come before"),
    (["a", "a"], {}, "listed twice"),
    (["a", "../b"], {}, "not a safe identifier"),
    ([], {}, "at least one stage"),
])
def test_init_rejects_a_bad_stage_graph_and_creates_nothing(tmp_path: Path, stages: list[str],
                                                            parents: dict[str, str], rule: str) -> None:
    with pytest.raises(InvalidInputError, match=rule):
        Ledger.init(tmp_path / "l", stages=stages, parents=parents)
    assert not (tmp_path / "l").exists()


def test_init_refuses_a_non_empty_dir_or_a_file(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(InvalidInputError, match="not an empty directory"):
        Ledger.init(tmp_path / "full")
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == ["keep.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInputError):
        Ledger.init(tmp_path / "file")
    existing = Ledger.init(tmp_path / "l")
    with pytest.raises(InvalidInputError):
        Ledger.init(existing.path)


def test_open_errors(tmp_path: Path, ledger: Ledger) -> None:
    with pytest.raises(NotALedgerError, match="no ledger.json"):
        Ledger.open(tmp_path / "nowhere")
    (tmp_path / "bare").mkdir()
    with pytest.raises(NotALedgerError, match="cohort-ledger init"):
        Ledger.open(tmp_path / "bare")
    config_path = ledger.path / "ledger.json"
    config = orjson.loads(config_path.read_bytes())

    config_path.write_bytes(orjson.dumps({**config, "format_version": 2}))
    with pytest.raises(NewerFormatError, match="newer cohort-ledger"):
        Ledger.open(ledger.path)
    config_path.write_bytes(orjson.dumps({**config, "format": "something-else"}))
    with pytest.raises(NotALedgerError):
        Ledger.open(ledger.path)
    config_path.write_bytes(b"{not json")
    with pytest.raises(NotALedgerError, match="not valid JSON"):
        Ledger.open(ledger.path)
    config_path.write_bytes(orjson.dumps(config))
    (ledger.path / "events.jsonl").unlink()
    with pytest.raises(NotALedgerError, match="no events.jsonl"):
        Ledger.open(ledger.path)


def test_a_newer_event_version_stops_every_reader_and_writer(ledger: Ledger) -> None:
    """A batch whose second event is v2: nothing of it may be folded, however often we ask."""
    forge(ledger.path, {"txn": [1, 2]}, {"txn": [1, 2], "v": 2, "data": {"cohort_id": "f2"}})
    assert ledger.verify().head.seq == 2  # the chain is intact; only its meaning is unknown
    reader = Ledger.open(ledger.path)
    for _ in range(2):  # the second access must not fold a half-applied batch again
        with pytest.raises(NewerFormatError, match="v2 at seq 2 was written by a newer cohort-ledger"):
            reader.head
    with pytest.raises(NewerFormatError):
        list(reader.read())
    before = log_bytes(ledger.path)
    with pytest.raises(NewerFormatError):
        reader.append([opened("A")])
    assert log_bytes(ledger.path) == before


def test_an_unknown_event_type_in_the_log_is_a_newer_format(ledger: Ledger) -> None:
    forge(ledger.path, {}, {"type": "cohort.archived", "data": {"cohort_id": "f1"}})
    with pytest.raises(NewerFormatError, match="unknown event type 'cohort.archived' at seq 2"):
        Ledger.open(ledger.path).head


# -- append ------------------------------------------------------------------------------
def test_append_returns_seqs_and_records_txn_envelope(ledger: Ledger) -> None:
    assert ledger.append([opened("A"), created("A", "draft", "d1"), created("A", "draft", "d2")]) == [1, 2, 3]
    assert ledger.append([event("cohort.sealed", "client-7", cohort_id="A")]) == [4]
    events = list(ledger.read())
    assert [e.txn for e in events] == [(1, 3)] * 3 + [(4, 1)]
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert events[3].id == "client-7"
    assert all(re.fullmatch(r"[0-9a-f]{32}-[0-9]+", e.id) for e in events[:3])
    assert len({e.id for e in events}) == 4
    assert all(AT_RE.match(e.at) for e in events) and events[0].at == events[2].at
    assert all(e.v == 1 for e in events)
    assert events[0].prev == genesis_prev(ledger.config.ledger_id)
    assert [e.prev for e in events[1:]] == [e.hash for e in events[:-1]]
    assert ledger.head == (4, events[3].hash) == ledger.verify().head


def test_txn_counts_only_the_lines_written(ledger: Ledger) -> None:
    ledger.append([created("A", "draft", "d1")])
    before = log_bytes(ledger.path)
    batch = [created("A", "draft", "d1"), created("A", "draft", "d2"), reused("A", "draft", "d1"),
             created("A", "draft", "d3")]
    assert ledger.append(batch) == [1, 2, 1, 3]
    assert [e.txn for e in ledger.read(2)] == [(2, 2), (2, 2)]
    assert ledger.append(batch[:1] + batch[2:3]) == [1, 1]  # all no-ops: nothing written at all
    assert log_bytes(ledger.path).startswith(before) and ledger.verify().events == 3


def test_append_records_provenance_and_normalised_payload(ledger: Ledger) -> None:
    ledger.append([{"type": "generation.created", "by": {"actor": "hook", "run_id": "r-1"},
                    "data": {"cohort_id": "A", "stage": "draft", "gen_id": "d1", "template_id": "t",
                             "combo_id": None}}])
    (ev,) = ledger.read()
    assert ev.by == {"actor": "hook", "run_id": "r-1"}
    assert ev.data == {"cohort_id": "A", "stage": "draft", "gen_id": "d1", "template_id": "t", "replicate": 1}


def test_head_is_current_across_ledger_objects(ledger: Ledger) -> None:
    other = Ledger.open(ledger.path)
    assert other.head.seq == 0
    ledger.append([opened("A"), created("A", "draft", "d1")])
    assert other.head == ledger.head == (2, ledger.verify().head.hash)
    assert "d1" in other.state.generations
    assert other.append([created("A", "essay", "e1", parent="d1")]) == [3]  # caught up, not stale
    assert ledger.head.seq == 3 and ledger.head == other.head
    assert ledger.append([reused("B", "essay", "e1")]) == [4]
    assert [e.seq for e in Ledger.open(ledger.path).read()] == [1, 2, 3, 4]


def test_expected_seq(ledger: Ledger) -> None:
    assert ledger.append([opened("A")], expected_seq=0) == [1]
    before = log_bytes(ledger.path)
    with pytest.raises(ConflictError) as exc:
        ledger.append([opened("B")], expected_seq=0)
    assert (exc.value.expected, exc.value.actual) == (0, 1)
    assert exc.value.exit_code == 1
    assert log_bytes(ledger.path) == before and ledger.head.seq == 1
    Ledger.open(ledger.path).append([opened("C")])  # someone else moves the head
    with pytest.raises(ConflictError):
        ledger.append([opened("B")], expected_seq=1)
    assert ledger.append([opened("B")], expected_seq=2) == [3]


def test_idempotent_retry_writes_nothing_and_returns_the_original_seqs(ledger: Ledger) -> None:
    ledger.append([opened("A")])
    batch = [created("A", "draft", "d1") | {"id": "run1/d1"}, created("A", "draft", "d2") | {"id": "run1/d2"}]
    assert ledger.append(batch) == [2, 3]
    ledger.append([opened("B")])
    before = log_bytes(ledger.path)
    assert ledger.append(batch) == [2, 3]
    assert Ledger.open(ledger.path).append(batch, expected_seq=0) == [2, 3]  # checked before expected_seq
    assert ledger.append(batch[::-1]) == [3, 2]
    assert log_bytes(ledger.path) == before


def test_retry_of_a_batch_that_held_no_ops(ledger: Ledger) -> None:
    """A no-op writes no line, so its client id never reaches the log; the retry must still pass."""
    ledger.append([created("A", "draft", "d1"), created("B", "draft", "d2")])
    batch = [reused("A", "draft", "d2", "r/1"), reused("A", "draft", "d1", "r/2"),
             created("A", "draft", "d1") | {"id": "r/3"}]
    assert ledger.append(batch) == [3, 1, 1]
    before = log_bytes(ledger.path)
    assert Ledger.open(ledger.path).append(batch) == [3, 1, 1]
    assert log_bytes(ledger.path) == before
    # ...but once the no-op would write something, the retry is a mix of known and new events
    ledger.append([removed("A", "draft", "d1")])
    rejected(ledger, batch, 1, r"batch mixes already-committed ids \(event #1\) with new events")


def test_known_id_with_another_payload_or_mixed_batches_are_rejected(ledger: Ledger) -> None:
    ledger.append([opened("A", "x1"), opened("B", "x2")])
    rejected(ledger, [opened("Z", "x1")], 0, r"id x1 is already committed at seq 1 with a different payload")
    rejected(ledger, [opened("B", "x2"), event("cohort.sealed", "x1", cohort_id="A")], 1, "different payload")
    rejected(ledger, [opened("A", "x1"), opened("C", "x3")], 1, r"mixes already-committed ids \(event #1\)")
    rejected(ledger, [opened("C", "x3"), opened("B", "x2")], 0, "mixes already-committed ids")
    rejected(ledger, [opened("C"), opened("A", "x1")], 0, "mixes already-committed ids")


def test_duplicate_id_inside_a_batch(ledger: Ledger) -> None:
    rejected(ledger, [opened("A", "same"), opened("B", "other"), opened("C", "same")], 2,
             r"id same appears twice in the batch \(first at event #1\)")


def test_empty_batch(ledger: Ledger) -> None:
    with pytest.raises(InvalidInputError, match="empty batch"):
        ledger.append([])
    assert log_bytes(ledger.path) == b""


def test_a_rule_broken_by_event_k_rejects_the_whole_batch(ledger: Ledger) -> None:
    ledger.append([opened("A")])
    batch = [created("A", "draft", "d1"), reused("B", "draft", "d1"), created("A", "essay", "e1", parent="d9"),
             created("A", "draft", "d2")]
    rejected(ledger, batch, 2, "parent d9 does not exist")
    state = ledger.state
    assert "d1" not in state.generations and "B" not in state.cohorts and state.seq == 1
    # the journal undid events #1 and #2 exactly: the same gens can be created now, at the next seq
    assert ledger.append(batch[:2] + batch[3:]) == [2, 3, 4]
    assert Ledger.open(ledger.path).state.cohorts["B"].members == {"d1": 3}


@pytest.mark.parametrize("bad, rule", [
    ({"cohort_id": "../x"}, "cohort_id: String should match pattern"),
    ({"replicate": 0}, "replicate: Input should be greater than or equal to 1"),
    ({"replicate": "1"}, "replicate: Input should be a valid integer"),
    ({"replicate": True}, "replicate: Input should be a valid integer"),
    ({"gen_id": "d1\n"}, "gen_id: String should match pattern"),
    ({"colour": "red"}, "colour: Extra inputs are not permitted"),
    ({"mode": "batch"}, "mode: Input should be 'llm' or 'copy'"),
])
def test_schema_errors_name_the_event(ledger: Ledger, bad: dict[str, Any], rule: str) -> None:
    ev = created("A", "draft", "d2")
    ev["data"].update(bad)
    rejected(ledger, [created("A", "draft", "d1"), ev], 1, re.escape(f"generation.created data.{rule}"))


def test_a_payload_orjson_cannot_encode_is_rejected_before_writing(ledger: Ledger) -> None:
    rejected(ledger, [opened("A"), event("cohort.opened", cohort_id="B", spec={"n": 2**64})], 1,
             "outside the signed 64-bit range")
    rejected(ledger, [opened("A"), event("cohort.opened", cohort_id="B", spec={"s": "\ud800"})], 1,
             "not encodable as")
    assert ledger.append([opened("A")]) == [1]


def test_missing_payload_keys_and_unknown_types(ledger: Ledger) -> None:
    rejected(ledger, [event("generation.created", cohort_id="A", stage="draft", gen_id="d1")], 0,
             "template_id: Field required")
    rejected(ledger, [opened("A"), event("cohort.deleted", cohort_id="A")], 1, "unknown event type 'cohort.deleted'")
    rejected(ledger, [{"type": "cohort.opened", "data": {"cohort_id": "A"}, "extra": 1}], 0,
             r"unknown envelope key\(s\) \['extra'\]")
    rejected(ledger, [{"type": "cohort.opened", "data": {"cohort_id": "A"}, "id": "has space"}], 0, "id: must be 1-256 printable ASCII")
    rejected(ledger, [{"type": "cohort.opened", "data": {"cohort_id": "A"}, "by": {"who": "me"}}], 0, "by.who")


# -- domain rules (docs/FORMAT.md §6.2) --------------------------------------------------------
def test_created_rules(ledger: Ledger) -> None:
    rejected(ledger, [created("A", "summary", "s1")], 0, "stage 'summary' is not one of this ledger's stages")
    rejected(ledger, [created("A", "essay", "e1")], 0, "a essay needs parent_gen_id")
    rejected(ledger, [created("A", "essay", "e1", parent="d9")], 0, "parent d9 does not exist")
    rejected(ledger, [created("A", "draft", "d0", parent="d9")], 0, "a draft has no parent stage")
    ledger.append([created("A", "draft", "d1"), created("A", "essay", "e1", parent="d1")])
    rejected(ledger, [created("A", "essay", "e2", parent="e1")], 0, "parent e1 is a essay, not a draft")
    rejected(ledger, [created("A", "evaluation", "v1", parent="d1")], 0, "parent d1 is a draft, not a essay")
    # identical re-create: a no-op returning the original seq, even from another cohort's batch
    before = log_bytes(ledger.path)
    assert ledger.append([created("A", "draft", "d1")]) == [1]
    assert log_bytes(ledger.path) == before
    rejected(ledger, [created("A", "draft", "d1", replicate=2)], 0, "already exists with other origin metadata")
    rejected(ledger, [created("B", "draft", "d1")], 0, "immutable")
    state = ledger.state
    assert state.generations["e1"].parent_gen_id == "d1" and state.cohorts["A"].members == {"d1": 1, "e1": 2}


def test_reuse_and_remove_rules(ledger: Ledger) -> None:
    ledger.append([created("A", "draft", "d1"), created("A", "essay", "e1", parent="d1")])
    rejected(ledger, [reused("B", "draft", "d9")], 0, "generation d9 does not exist")
    rejected(ledger, [reused("B", "essay", "d1")], 0, "generation d1 is a draft, not a essay")
    assert ledger.append([reused("B", "draft", "d1")]) == [3]
    before = log_bytes(ledger.path)
    assert ledger.append([reused("B", "draft", "d1")]) == [3]  # active member: no-op, original seq
    assert ledger.append([reused("A", "essay", "e1")]) == [2]  # its origin cohort added it at creation
    assert log_bytes(ledger.path) == before

    rejected(ledger, [removed("C", "draft", "d1")], 0, "generation d1 is not a member of cohort C")
    rejected(ledger, [removed("B", "essay", "e1")], 0, "not a member of cohort B")
    assert ledger.append([removed("B", "draft", "d1")]) == [4]
    state = ledger.state
    assert "d1" not in state.cohorts["B"].members and state.cohorts["A"].members["d1"] == 1  # only B
    rejected(ledger, [removed("B", "draft", "d1")], 0, "not a member")

    # a removed gen re-added to its origin through reuse: written, and a member again
    assert ledger.append([removed("A", "draft", "d1"), reused("A", "draft", "d1")]) == [5, 6]
    state = Ledger.open(ledger.path).state
    assert state.cohorts["A"].members == {"d1": 6, "e1": 2}
    assert state.generations["d1"].origin_cohort_id == "A" and state.generations["d1"].created_seq == 1


def test_sealed_cohort_rules(ledger: Ledger) -> None:
    ledger.append([opened("A"), created("A", "draft", "d1"), created("B", "draft", "d2")])
    rejected(ledger, [event("cohort.sealed", cohort_id="Q")], 0, "cohort Q is unknown")
    assert ledger.append([event("cohort.sealed", cohort_id="A", reason="published")]) == [4]
    rejected(ledger, [event("cohort.sealed", cohort_id="A")], 0, r"cohort A is already sealed \(seq 4\)")
    rejected(ledger, [created("A", "draft", "d3")], 0, r"cohort A is sealed \(seq 4\)")
    rejected(ledger, [reused("A", "draft", "d2")], 0, "cohort A is sealed")
    rejected(ledger, [removed("A", "draft", "d1")], 0, "cohort A is sealed")
    assert ledger.append([materialized("A", "draft", "d1")]) == [5]
    assert ledger.append([reused("A", "draft", "d1")]) == [2]  # a no-op changes nothing, sealed or not
    rejected(ledger, [materialized("A", "draft", "d9")], 0, "generation d9 does not exist")
    state = ledger.state
    assert state.cohorts["A"].sealed_seq == 4 and state.generations["d1"].materialized_seq == 5
    assert state.cohorts["A"].members == {"d1": 2}


def test_opened_twice(ledger: Ledger) -> None:
    ledger.append([created("A", "draft", "d1")])
    assert ledger.append([event("cohort.opened", cohort_id="A", description="late", spec={"k": [1, 2]})]) == [2]
    rejected(ledger, [opened("A")], 0, "cohort A was already opened at seq 2")
    assert ledger.state.cohorts["A"].spec == {"k": [1, 2]}


def test_rename_rules(ledger: Ledger) -> None:
    rejected(ledger, [renamed("origin_cohort_id", "x", "alias")], 0, "not a current manifest key")
    rejected(ledger, [renamed("stage", "step", "alias")], 0, "not a current manifest key that can be renamed")
    rejected(ledger, [renamed("template_id", "combo_id", "alias")], 0, "would collide")
    rejected(ledger, [renamed("template_id", "stage", "alias")], 0, "would collide")
    rejected(ledger, [renamed("template_id", "tpl", "final")], 0, "needs the alias phase first")
    assert ledger.append([renamed("cohort_id", "origin_cohort_id", "alias")]) == [1]
    assert ledger.state.key_names["cohort_id"] == ("cohort_id", "origin_cohort_id")
    assert ledger.state.manifest_columns()[2:4] == ["cohort_id", "origin_cohort_id"]
    rejected(ledger, [renamed("cohort_id", "origin", "alias")], 0, "already being renamed to 'origin_cohort_id'")
    rejected(ledger, [renamed("origin_cohort_id", "y", "alias")], 0, "already being renamed")
    rejected(ledger, [renamed("cohort_id", "origin", "final")], 0, "needs the alias phase first")
    rejected(ledger, [renamed("origin_cohort_id", "cohort_id", "final")], 0, "needs the alias phase first")
    assert ledger.append([renamed("cohort_id", "origin_cohort_id", "final")]) == [2]
    assert ledger.state.key_names["cohort_id"] == ("origin_cohort_id",)
    rejected(ledger, [renamed("cohort_id", "c", "alias")], 0, "'cohort_id' is not a current manifest key")
    assert ledger.append([renamed("origin_cohort_id", "origin", "alias")]) == [3]
    assert Ledger.open(ledger.path).state.key_names["cohort_id"] == ("origin_cohort_id", "origin")


# -- at, read, repair --------------------------------------------------------------------------
def test_at_never_goes_backwards(ledger: Ledger) -> None:
    future = "2999-01-01T00:00:00.000000Z"
    forge(ledger.path, {"at": future})
    assert ledger.append([opened("A")]) == [2]
    ledger.append([opened("B"), opened("C")])
    ats = [e.at for e in ledger.read()]
    assert ats == [future] * 4


def test_at_is_monotonic_across_appends(ledger: Ledger) -> None:
    for i in range(5):
        ledger.append([opened(f"A{i}"), opened(f"B{i}")])
    ats = [e.at for e in ledger.read()]
    assert ats == sorted(ats) and all(AT_RE.match(a) for a in ats)


def test_read_ranges_and_streaming(ledger: Ledger) -> None:
    for i in range(4):
        ledger.append([opened(f"A{i}"), opened(f"B{i}"), opened(f"C{i}")])
    assert [e.seq for e in ledger.read(2, 4)] == [2, 3, 4]
    assert [e.seq for e in ledger.read(11)] == [11, 12]
    assert [e.seq for e in ledger.read(5, 5)] == [5]
    assert list(ledger.read(13)) == [] and list(ledger.read(3, 2)) == []
    # lazy, batch by batch: the batches before a corrupt line come out before the error does
    data = bytearray(log_bytes(ledger.path))
    data[data.rindex(b'"cohort_id":"C3"') + 14] ^= 1
    (ledger.path / "events.jsonl").write_bytes(bytes(data))
    stream = Ledger.open(ledger.path).read()
    assert [next(stream).seq for _ in range(9)] == list(range(1, 10))
    with pytest.raises(CorruptLogError) as exc:
        next(stream)
    assert exc.value.seq == 12


def test_read_through_the_sparse_index(ledger: Ledger) -> None:
    """Past INDEX_EVERY events a reader starts from an indexed batch boundary; same events."""
    for i in range(5):
        ledger.append([opened(f"c{i}-{k}") for k in range(1100)])
    reader = Ledger.open(ledger.path)
    assert reader.head.seq == 5500
    assert reader.read_start(5499).seq >= 4096 and reader.read_start(3).seq == 0  # the ranges below use it
    everything = list(reader.read())
    for lo, hi in [(4095, 4097), (4400, 4402), (5499, None), (1, 3)]:
        got = list(reader.read(lo, hi))
        assert got == everything[lo - 1:hi]


def test_read_upcasts_older_payload_versions(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """The upcast path with a v2 of cohort.sealed registered the way a future version would."""
    ledger.append([opened("A"), event("cohort.sealed", cohort_id="A")])
    monkeypatch.setitem(event_models.CURRENT_VERSION, "cohort.sealed", 2)
    monkeypatch.setitem(event_models.UPCASTERS, ("cohort.sealed", 1),
                        lambda d: {**d, "reason": d.get("reason", "unspecified")})
    (sealed,) = Ledger.open(ledger.path).read(2)
    assert (sealed.v, sealed.data) == (1, {"cohort_id": "A", "reason": "unspecified"})
    ledger.append([opened("B"), event("cohort.sealed", cohort_id="B", reason="done")])
    assert [(e.v, e.data.get("reason")) for e in Ledger.open(ledger.path).read(3)] == [(1, None), (2, "done")]
    assert Ledger.open(ledger.path).state.cohorts["B"].sealed_seq == 4


def test_repair_on_a_clean_log_cuts_nothing(ledger: Ledger) -> None:
    ledger.append([opened("A"), opened("B")])
    before = log_bytes(ledger.path)
    report = Ledger.open(ledger.path).repair()
    assert (report.head, report.cut_bytes, report.cut_lines, report.torn_file) == (ledger.head, 0, 0, None)
    assert log_bytes(ledger.path) == before
    assert not list(ledger.path.glob("events.jsonl.torn-*"))
    assert Ledger.init(ledger.path.parent / "empty").repair().head.seq == 0


def test_repair_refuses_a_corrupt_log(ledger: Ledger) -> None:
    ledger.append([opened("A")])
    ledger.append([opened("B")])
    data = bytearray(log_bytes(ledger.path))
    data[10] ^= 1
    (ledger.path / "events.jsonl").write_bytes(bytes(data))
    with pytest.raises(CorruptLogError) as exc:
        Ledger.open(ledger.path).repair()
    assert exc.value.seq == 1 and log_bytes(ledger.path) == bytes(data)


def test_a_replayed_event_that_breaks_a_rule_is_corruption(ledger: Ledger) -> None:
    """Bytes that chain correctly but were never validated (a foreign writer) are refused."""
    forge(ledger.path, {}, {"data": {"cohort_id": "f1"}})
    assert ledger.verify().head.seq == 2
    with pytest.raises(CorruptLogError, match="seq 2: event breaks a domain rule: cohort f1 was already opened"):
        Ledger.open(ledger.path).head

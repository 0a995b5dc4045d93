"""The object layout (docs/FORMAT.md §10) on a real S3 server: layout, races, stale listings,
corruption, checkpoints, builds to the bucket. Multi-process races and SIGKILLs are in
test_object_store_processes.py."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from ledger import ConflictError, CorruptLogError, InvalidInputError, Ledger
from ledger.log.file_store import FileLogStore
from ledger.log.object_store import ObjectLogStore
from ledger.log.objects import Objects, batch_key

from helpers.builders import created, event


def drafts(prefix: str, n: int, ids: bool = True) -> list[dict[str, Any]]:
    return [{**created("c1", "draft", f"{prefix}{i}"), **({"id": f"id-{prefix}{i}"} if ids else {})}
            for i in range(n)]


def opened(url: str) -> Ledger:
    led = Ledger.init(url)
    led.append([event("cohort.opened", cohort_id="c1")])
    return led


def store_of(led: Ledger) -> ObjectLogStore:
    assert isinstance(led.store, ObjectLogStore)
    return led.store


def test_one_object_per_batch_holding_the_file_backends_lines(s3_url: str, tmp_path: Path) -> None:
    led = opened(s3_url)
    led.append(drafts("a", 3))
    led.append(drafts("b", 1))
    objects = store_of(led).objects
    assert list(objects.keys("log/")) == [batch_key(1), batch_key(2), batch_key(5)]
    blobs = [objects.get(k) for k in objects.keys("log/")]
    assert [b.count(b"\n") for b in blobs if b] == [1, 3, 1]
    # the concatenation is the events.jsonl of a file ledger with the same id: same head
    local = tmp_path / "copy"
    FileLogStore(local).create(objects.get("ledger.json") or b"")
    (local / "events.jsonl").write_bytes(b"".join(b for b in blobs if b))
    assert Ledger.open(local).verify().head == led.verify().head == led.head


def test_init_needs_an_empty_prefix_and_has_one_winner(s3_url: str) -> None:
    Ledger.init(s3_url)
    with pytest.raises(InvalidInputError, match="already"):
        Ledger.init(s3_url)
    other = s3_url + "-other"
    Objects(ObjectLogStore.from_url(other).objects.store, other).put("notes.txt", b"someone's")
    with pytest.raises(InvalidInputError, match="already holds objects"):
        Ledger.init(other)
    racing = s3_url + "-race"
    outcomes: list[str] = []

    def init() -> None:
        try:
            outcomes.append(Ledger.init(racing).config.ledger_id)
        except InvalidInputError:
            outcomes.append("refused")

    threads = [threading.Thread(target=init) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [o for o in outcomes if o != "refused"]
    assert len(outcomes) == 6 and len(winners) == 1
    assert Ledger.open(racing).config.ledger_id == winners[0]


def test_a_writer_that_lost_the_race_catches_up_and_retries(s3_url: str) -> None:
    a = opened(s3_url)
    b = Ledger.open(s3_url)
    assert b.head.seq == 1
    a.append(drafts("a", 2))  # b's view is now stale: its put of log/2 will find the object there
    assert b.append(drafts("b", 1)) == [4]
    with pytest.raises(ConflictError) as info:
        a.append(drafts("c", 1), expected_seq=3)
    assert (info.value.expected, info.value.actual) == (3, 4)
    assert a.append(drafts("a", 2)) == [2, 3]  # an idempotent retry after catching up
    assert [e.seq for e in Ledger.open(s3_url).read()] == [1, 2, 3, 4]


class _AnswerLost(Objects):
    """Creates the object, then reports "already exists": what a client sees when its PUT
    succeeded, the answer was lost, and its automatic retry got 412."""

    def create(self, key: str, data: bytes) -> bool:
        super().create(key, data)
        return False


def test_a_put_whose_answer_was_lost_is_recognised_as_ours(s3_url: str) -> None:
    led = opened(s3_url)
    store = store_of(led)
    store.objects = _AnswerLost(store.objects.store, store.objects.location)
    assert led.append(drafts("a", 2, ids=False)) == [2, 3]  # generated ids: only the bytes tell
    assert Ledger.open(s3_url).verify().events == 3


class _StaleListing(Objects):
    """Listings frozen at the moment of the wrapper's creation (a lagging index); GETs and
    puts are current, as the layout requires."""

    def __init__(self, objects: Objects, frozen: dict[str, list[str]] | None = None) -> None:
        super().__init__(objects.store, objects.location)
        self._frozen = frozen if frozen is not None else {
            prefix: list(super(_StaleListing, self).keys(prefix)) for prefix in ("log/", "checkpoints/", "")}

    def keys(self, prefix: str, after: str | None = None) -> Iterator[str]:
        return iter([k for k in self._frozen.get(prefix, []) if after is None or k > after])


def test_stale_listings_never_fork_the_chain(s3_url: str) -> None:
    opened(s3_url).append(drafts("seed", 3))  # seqs 2..4, listed in every frozen snapshot
    writers = []
    for w in range(4):
        led = Ledger.open(s3_url)
        store = store_of(led)
        store.objects = _StaleListing(store.objects)
        writers.append(led)
    acked: dict[str, int] = {}
    errors: list[BaseException] = []

    def write(w: int, led: Ledger) -> None:
        try:
            for i in range(6):
                batch = drafts(f"w{w}-{i}-", 1 + i % 3)
                for ev, seq in zip(batch, led.append(batch)):
                    acked[ev["id"]] = seq
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w, led)) for w, led in enumerate(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    fresh = Ledger.open(s3_url)
    report = fresh.verify()  # lists everything: a second object at any seq would be caught here
    events = {e.id: e.seq for e in fresh.read()}
    assert report.events == len(events) == 4 + len(acked)
    assert all(events[i] == seq for i, seq in acked.items())
    stale_reader = Ledger.open(s3_url)
    store_of(stale_reader).objects = _StaleListing(store_of(fresh).objects, {"log/": [batch_key(1)]})
    assert stale_reader.head == report.head  # found by GETs of the computed names


def _corrupt_ledger(url: str) -> tuple[Ledger, Objects]:
    led = opened(url)
    led.append(drafts("a", 3))  # seqs 2..4 in log/2
    led.append(drafts("b", 1))  # seq 5 in log/5
    return led, store_of(led).objects


def test_an_object_inside_a_batch_is_corruption(s3_url: str) -> None:
    led, objects = _corrupt_ledger(s3_url)
    objects.create(batch_key(3), objects.get(batch_key(5)) or b"")
    with pytest.raises(CorruptLogError, match="seq 3"):
        Ledger.open(s3_url).verify()
    with pytest.raises(CorruptLogError, match="seq 3"):
        Ledger.open(s3_url).head


def test_a_missing_batch_is_corruption(s3_url: str) -> None:
    led, objects = _corrupt_ledger(s3_url)
    objects.delete(batch_key(2))
    with pytest.raises(CorruptLogError, match="seq 2"):
        Ledger.open(s3_url).verify()


@pytest.mark.parametrize("damage", ["short", "flipped", "no-newline"])
def test_a_damaged_batch_object_is_corruption_not_a_tail(s3_url: str, damage: str) -> None:
    led, objects = _corrupt_ledger(s3_url)
    blob = objects.get(batch_key(2)) or b""
    bad = {"short": blob[: blob.index(b"\n") + 1],
           "flipped": blob.replace(b'"gen_id":"a1"', b'"gen_id":"a9"'),
           "no-newline": blob[:-1]}[damage]
    objects.put(batch_key(2), bad)
    with pytest.raises(CorruptLogError):
        Ledger.open(s3_url).verify()
    with pytest.raises(CorruptLogError):
        Ledger.open(s3_url).repair()  # reported, never cut: an object is never in flight
    assert objects.get(batch_key(2)) == bad


def test_checkpoints_live_on_the_store_and_are_used(s3_url: str) -> None:
    from projections import build

    led = opened(s3_url)
    led.append(drafts("a", 5))
    first = build(s3_url, checkpoint_every=1)
    assert first.checkpoint_written == 6
    assert list(store_of(led).objects.keys("checkpoints/")) == ["checkpoints/state-000000000006.ckpt"]
    led.append(drafts("b", 2))
    second = build(s3_url)
    assert (second.checkpoint_seq, second.events_folded) == (6, 2)
    assert Ledger.open(s3_url).head == led.head


def test_build_to_the_bucket_writes_the_bytes_of_a_local_build(s3_url: str, tmp_path: Path) -> None:
    from projections import build
    from projections.object_out import ObjectOut

    led = opened(s3_url)
    led.append(drafts("a", 4) + [event("cohort.opened", cohort_id="c2")])
    led.append([event("generation.reused", cohort_id="c2", stage="draft", gen_id="a1", reason="curated")])
    out = s3_url + "-data"
    remote = build(s3_url, out)
    local = build(s3_url, tmp_path / "data")
    assert remote.written == local.written and remote.out_dir == out
    bucket = ObjectOut(out)
    for name in [*local.written, "_projection.json"]:
        assert bucket.read(name) == (tmp_path / "data" / name).read_bytes(), name
    # ownership as on disk: a file someone else put there stays; ours are replaced or removed
    bucket.objects.put("cohorts/c2/notes.txt", b"not ours")
    led.append([event("generation.removed", cohort_id="c2", stage="draft", gen_id="a1", reason="x")])
    again = build(s3_url, out)
    assert "cohorts/c2/membership.csv" in again.written  # header-only now: c2 had a member
    assert bucket.read("cohorts/c2/notes.txt") == b"not ours"
    assert build(s3_url, out).written == []  # nothing changed: nothing rewritten
    earlier = build(s3_url, out, as_of=2)  # before c2 had members: its CSV is ours to remove
    assert earlier.removed == ["cohorts/c2/membership.csv"]
    assert bucket.read("cohorts/c2/membership.csv") is None
    assert bucket.read("cohorts/c2/notes.txt") == b"not ours"


def test_out_may_not_be_inside_the_ledger(s3_url: str) -> None:
    from projections import build

    opened(s3_url)
    for bad in (s3_url, s3_url + "/log", s3_url + "/checkpoints/x", s3_url + "/ledger.json"):
        with pytest.raises(InvalidInputError):
            build(s3_url, bad)


def test_pipeline_recorder_and_scope_take_a_ledger_url(s3_url: str) -> None:
    from ledger import CohortScope, PipelineRecorder

    opened(s3_url)
    rec = PipelineRecorder(s3_url, run_id="run-1")
    seq = rec.record_created("c1", "draft", "d1", "t1")
    assert PipelineRecorder(s3_url, run_id="run-1").record_created("c1", "draft", "d1", "t1") == seq  # a retry
    assert CohortScope.open(s3_url).active_stage_gen_ids("c1", "draft") == ["d1"]


def test_the_dagster_resource_takes_a_ledger_url(s3_url: str) -> None:
    from ledger.dagster import CohortLedgerResource

    opened(s3_url).append(drafts("a", 2))
    resource = CohortLedgerResource(ledger_path=s3_url, projections_dir=None)
    assert resource.head().seq == 3
    assert resource.scope().active_stage_gen_ids("c1", "draft") == ["a0", "a1"]
    with pytest.raises(InvalidInputError, match="projections_dir"):
        resource.projections_out()  # the projection assets read a local directory

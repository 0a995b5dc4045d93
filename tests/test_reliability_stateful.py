"""Random valid and invalid operations against the library, checked against a model.

The model is written from docs/FORMAT.md §3-6 alone (it does not use ledger/domain/state.py): membership,
origin metadata, seals, key renames and client ids. After every step the state of a freshly
opened ledger must equal the model, each append must return what the model predicts, and an
operation the model says is invalid (or a conflict, or a no-op) must leave the log's bytes as
they were. From time to time the projections are built and compared with the model too.
Crashes are simulated by dropping the Ledger object and leaving a torn fragment
of a next batch at the end of the log, as a writer that lost power would.
"""

from __future__ import annotations

import copy
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from helpers.builders import log_bytes
from helpers.faults import torn_fragment
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from ledger import ConflictError, InvalidInputError, Ledger
from projections import build

STAGES = ("draft", "essay", "evaluation")
PARENT_STAGE = {"essay": "draft", "evaluation": "essay"}
#: manifest keys (docs/FORMAT.md §8): renameable origin-metadata keys, and keys no rename may touch
METADATA_KEYS = ("cohort_id", "template_id", "combo_id", "llm_model_id", "parent_gen_id", "replicate", "mode")
FIXED_KEYS = ("stage", "gen_id", "created_seq", "materialized")

COHORTS = ("A", "B", "C")
#: a small pool, so that operations often hit the same gens; the id hints at its usual stage
GENS = {"d1": "draft", "d2": "draft", "e1": "essay", "e2": "essay", "v1": "evaluation"}
NATURAL_PARENT = {"essay": "d1", "evaluation": "e1"}
CLIENT_IDS = ("x1", "x2", "x3")


class Rejected(Exception):
    """The model says the ledger must refuse this batch."""


class Model:
    """What the ledger should hold, by docs/FORMAT.md §3-6."""

    def __init__(self) -> None:
        self.seq = 0
        self.gens: dict[str, dict[str, Any]] = {}  # gen_id -> origin metadata + created_seq
        self.members: dict[str, dict[str, int]] = {}  # cohort -> gen_id -> seq that added it
        self.known: set[str] = set()  # cohorts the ledger has heard of (opened or ever had members)
        self.opened: set[str] = set()
        self.sealed: set[str] = set()
        self.materialized: set[str] = set()
        self.names: dict[str, tuple[str, ...]] = {k: (k,) for k in METADATA_KEYS}
        self.ids: dict[str, tuple[str, dict[str, Any], int]] = {}  # client id -> type, data, seq

    def append(self, events: list[dict[str, Any]], expected_seq: int | None) -> tuple[str, list[int]]:
        """('written' | 'noop' | 'conflict', seqs); raises Rejected. Updates self only when written."""
        ids = [ev["id"] for ev in events if "id" in ev]
        if len(ids) != len(set(ids)):
            raise Rejected("duplicate id in the batch")
        if any(ev.get("id") in self.ids for ev in events):  # a retry: nothing may be written
            if any(self.ids[ev["id"]][:2] != (ev["type"], ev["data"]) for ev in events if ev.get("id") in self.ids):
                raise Rejected("known id with another payload")
            return "noop", [self.ids[ev["id"]][2] if ev.get("id") in self.ids else self._noop(ev) for ev in events]
        if expected_seq is not None and expected_seq != self.seq:
            return "conflict", []
        trial = copy.deepcopy(self)
        seqs = [trial._apply(ev) for ev in events]
        if trial.seq == self.seq:
            return "noop", seqs
        self.__dict__ = trial.__dict__
        return "written", seqs

    def _noop(self, ev: dict[str, Any]) -> int:
        """The seq holding the effect of an event that would write nothing now (in a retry, an
        event that was a no-op the first time left no id behind)."""
        trial = copy.deepcopy(self)
        done = trial._apply(ev)
        if trial.seq != self.seq:
            raise Rejected("known ids mixed with new events")
        return done

    def _apply(self, ev: dict[str, Any]) -> int:
        handler = getattr(self, "_" + ev["type"].replace(".", "_"))
        done = handler(ev["data"], self.seq + 1)
        if done is not None:
            return done
        self.seq += 1
        if "id" in ev:
            self.ids[ev["id"]] = (ev["type"], ev["data"], self.seq)
        return self.seq

    def _gen(self, d: dict[str, Any]) -> dict[str, Any]:
        gen = self.gens.get(d["gen_id"])
        if gen is None or gen["stage"] != d["stage"]:
            raise Rejected("no such gen at that stage")
        return gen

    def _open_for_change(self, cohort: str) -> None:
        if cohort in self.sealed:
            raise Rejected("sealed cohort")

    def _cohort_opened(self, d: dict[str, Any], seq: int) -> int | None:
        if d["cohort_id"] in self.opened:
            raise Rejected("opened twice")
        self.opened.add(d["cohort_id"])
        self.known.add(d["cohort_id"])
        return None

    def _cohort_sealed(self, d: dict[str, Any], seq: int) -> int | None:
        if d["cohort_id"] not in self.known or d["cohort_id"] in self.sealed:
            raise Rejected("unknown or already sealed")
        self.sealed.add(d["cohort_id"])
        return None

    def _generation_created(self, d: dict[str, Any], seq: int) -> int | None:
        meta = {k: d.get(k) for k in ("stage", "cohort_id", "template_id", "parent_gen_id", "replicate")}
        if d["stage"] not in STAGES:
            raise Rejected("unknown stage")
        old = self.gens.get(d["gen_id"])
        if old is not None:
            if {k: old[k] for k in meta} == meta:
                return int(old["created_seq"])
            raise Rejected("origin metadata is immutable")
        want = PARENT_STAGE.get(d["stage"])
        parent = self.gens.get(d.get("parent_gen_id") or "")
        if (want is None) != (d.get("parent_gen_id") is None) or (want and (parent is None or parent["stage"] != want)):
            raise Rejected("bad parent")
        self._open_for_change(d["cohort_id"])
        self.gens[d["gen_id"]] = {**meta, "created_seq": seq}
        self.members.setdefault(d["cohort_id"], {})[d["gen_id"]] = seq
        self.known.add(d["cohort_id"])
        return None

    def _generation_reused(self, d: dict[str, Any], seq: int) -> int | None:
        self._gen(d)
        members = self.members.setdefault(d["cohort_id"], {})
        if d["gen_id"] in members:
            return members[d["gen_id"]]
        self._open_for_change(d["cohort_id"])
        members[d["gen_id"]] = seq
        self.known.add(d["cohort_id"])
        return None

    def _generation_removed(self, d: dict[str, Any], seq: int) -> int | None:
        self._gen(d)
        if d["gen_id"] not in self.members.get(d["cohort_id"], {}):
            raise Rejected("not a member")
        self._open_for_change(d["cohort_id"])
        del self.members[d["cohort_id"]][d["gen_id"]]
        return None

    def _generation_materialized(self, d: dict[str, Any], seq: int) -> int | None:
        self._gen(d)
        self.materialized.add(d["gen_id"])
        return None

    def _metadata_key_renamed(self, d: dict[str, Any], seq: int) -> int | None:
        current = {name: key for key, names in self.names.items() for name in names}
        key = current.get(d["old_key"])
        if key is None:
            raise Rejected("not a current key")
        if d["phase"] == "alias":
            if len(self.names[key]) != 1 or d["new_key"] in current or d["new_key"] in FIXED_KEYS:
                raise Rejected("bad alias")
            self.names[key] = (d["old_key"], d["new_key"])
        else:
            if self.names[key] != (d["old_key"], d["new_key"]):
                raise Rejected("final without alias")
            self.names[key] = (d["new_key"],)
        return None


# -- strategies: events over small pools, so that collisions (and rule breaks) are common ---------
cohorts = st.sampled_from(COHORTS)
gen_ids = st.sampled_from(sorted(GENS))


@st.composite
def created_events(draw: st.DrawFn) -> dict[str, Any]:
    gen_id = draw(gen_ids)
    stage = GENS[gen_id] if draw(st.integers(0, 9)) else draw(st.sampled_from(STAGES + ("review",)))
    data = {"cohort_id": draw(cohorts), "stage": stage, "gen_id": gen_id,
            "template_id": draw(st.sampled_from(("t1", "t1", "t2"))), "replicate": draw(st.sampled_from((1, 1, 2)))}
    parent = draw(st.sampled_from((NATURAL_PARENT.get(stage), NATURAL_PARENT.get(stage), None, "d2", "e2")))
    if parent is not None:
        data["parent_gen_id"] = parent
    return {"type": "generation.created", "data": data}


@st.composite
def membership_events(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(("reused", "removed", "materialized")))
    gen_id = draw(gen_ids)
    data: dict[str, Any] = {"cohort_id": draw(cohorts), "stage": GENS[gen_id] if draw(st.integers(0, 9)) else "draft",
                            "gen_id": gen_id}
    extra: dict[str, dict[str, Any]] = {"reused": {"reason": "manual"}, "removed": {"reason": "dropped"},
                                        "materialized": {"artifacts": {"out.txt": "a" * 64}}}
    data.update(extra[kind])
    return {"type": f"generation.{kind}", "data": data}


cohort_events = st.builds(lambda t, c: {"type": t, "data": {"cohort_id": c}},
                          st.sampled_from(("cohort.opened", "cohort.sealed")), cohorts)
rename_events = st.builds(
    lambda old, new, phase: {"type": "metadata.key_renamed", "data": {"old_key": old, "new_key": new, "phase": phase}},
    st.sampled_from(("cohort_id", "origin_cohort_id", "template_id", "stage")),
    st.sampled_from(("origin_cohort_id", "template", "gen_id", "cohort_id")),
    st.sampled_from(("alias", "final")),
)
events = st.one_of(created_events(), created_events(), created_events(), membership_events(), membership_events(),
                   cohort_events, rename_events)


#: mostly no client id; a few from a small pool, so retries (and id misuse) happen
client_ids = st.sampled_from((None,) * 6 + CLIENT_IDS)


def with_id(ev: dict[str, Any], client_id: str | None) -> dict[str, Any]:
    return {**ev, "id": client_id} if client_id is not None else ev


#: payloads the schema refuses before any rule is looked at (docs/FORMAT.md §6.1 identifiers)
HOSTILE_IDS = ("../x", "a/b", "", "=cmd", "-x", "a b", "é", "x" * 129)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="ledger-stateful-"))
        self.path = Ledger.init(self.tmp / "ledger").path
        self.ledger = Ledger.open(self.path)
        self.model = Model()
        self.committed = b""  # the log's bytes without a torn tail
        self.torn = b""  # a torn fragment after them, if a crash left one
        self.fresh = 0  # counter for fresh client ids

    def teardown(self) -> None:
        self.ledger.close()
        shutil.rmtree(self.tmp)

    def _append(self, batch: list[dict[str, Any]], expected_seq: int | None = None, schema_ok: bool = True) -> None:
        try:
            if not schema_ok:
                raise Rejected("the schema refuses it")
            predicted = self.model.append(copy.deepcopy(batch), expected_seq)
        except Rejected:
            predicted = ("rejected", [])
        try:
            outcome = ("appended", self.ledger.append(batch, expected_seq=expected_seq))
        except ConflictError:
            outcome = ("conflict", [])
        except InvalidInputError:
            outcome = ("rejected", [])
        event(f"append: {predicted[0]}")
        after = log_bytes(self.path)
        if predicted[0] == "written":
            assert outcome == ("appended", predicted[1]), (batch, predicted, outcome)
            assert after.startswith(self.committed) and len(after) > len(self.committed)
            self.committed, self.torn = after, b""
            return
        if predicted[0] == "noop":
            assert outcome == ("appended", predicted[1]), (batch, predicted, outcome)
        else:
            assert outcome == predicted, (batch, predicted, outcome)
        # nothing written; the only change allowed is recovery cutting a torn tail
        assert after == self.committed or after == self.committed + self.torn, "an invalid operation wrote"
        if after == self.committed:
            self.torn = b""

    @initialize(cohort=cohorts)
    def seed_gens(self, cohort: str) -> None:
        """Start from a draft and its essay, so that most random operations have something to hit."""
        self._append([
            {"type": "generation.created", "data": {"cohort_id": cohort, "stage": "draft", "gen_id": "d1",
                                                    "template_id": "t1", "replicate": 1}},
            {"type": "generation.created", "data": {"cohort_id": cohort, "stage": "essay", "gen_id": "e1",
                                                    "template_id": "t1", "replicate": 1, "parent_gen_id": "d1"}},
        ])

    @rule(ev=events, client_id=client_ids)
    def append_one(self, ev: dict[str, Any], client_id: str | None) -> None:
        self._append([with_id(ev, client_id)])

    @rule(evs=st.lists(events, min_size=2, max_size=4),
          client_ids=st.lists(client_ids, min_size=4, max_size=4))
    def append_batch(self, evs: list[dict[str, Any]], client_ids: list[str | None]) -> None:
        self._append([with_id(ev, cid) for ev, cid in zip(evs, client_ids)])

    @rule(evs=st.lists(events, min_size=1, max_size=3), stale=st.booleans())
    def append_then_retry(self, evs: list[dict[str, Any]], stale: bool) -> None:
        """A hook's batch with fresh ids, then its retry after a 'timeout' (from a new Ledger
        object, maybe with an expected_seq that is stale by now): the retry writes nothing."""
        self.fresh += 1
        batch = [with_id(ev, f"hook{self.fresh}-{i}") for i, ev in enumerate(evs)]
        expected = self.model.seq
        self._append(batch)
        self.ledger = Ledger.open(self.path)
        self._append(batch, expected_seq=expected if stale else None)

    @rule(ev=events, delta=st.sampled_from((0, -1, 1, 0)), client_id=client_ids)
    def append_expected(self, ev: dict[str, Any], delta: int, client_id: str | None) -> None:
        self._append([with_id(ev, client_id)], expected_seq=max(0, self.model.seq + delta))

    @rule(data=st.data())
    def recreate_existing(self, data: st.DataObject) -> None:
        """Re-create a gen that exists: identical (a no-op) or with one field changed (refused)."""
        if not self.model.gens:
            return
        gen_id = data.draw(st.sampled_from(sorted(self.model.gens)))
        meta = {k: v for k, v in self.model.gens[gen_id].items() if k != "created_seq" and v is not None}
        change = data.draw(st.sampled_from((None, "template_id", "cohort_id", "replicate")))
        if change is not None:
            meta[change] = {"template_id": "t9", "cohort_id": "C9", "replicate": 7}[change]
        self._append([{"type": "generation.created", "data": {**meta, "gen_id": gen_id}}])

    @rule(ev=created_events(), field=st.sampled_from(("gen_id", "cohort_id", "template_id")),
          bad=st.sampled_from(HOSTILE_IDS))
    def append_hostile(self, ev: dict[str, Any], field: str, bad: str) -> None:
        self._append([{**ev, "data": {**ev["data"], field: bad}}], schema_ok=False)

    @rule(lines=st.integers(1, 3), seed=st.integers(0, 2**16), then_repair=st.booleans())
    def crash_and_reopen(self, lines: int, seed: int, then_repair: bool) -> None:
        """The writer dies mid-write: the Ledger object is gone, a torn next batch is left."""
        self.ledger.close()
        del self.ledger
        if not self.torn:
            self.torn = torn_fragment(self.path, lines, random.Random(seed))
            with open(self.path / "events.jsonl", "ab") as f:
                f.write(self.torn)
        self.ledger = Ledger.open(self.path)
        if then_repair:
            report = self.ledger.repair()
            assert report.cut_bytes == len(self.torn)
            self.torn = b""
        assert log_bytes(self.path) == self.committed + self.torn

    @rule()
    def build_and_compare(self) -> None:
        """The projections agree with the model too: manifest rows and columns (named by the
        rename state), and active memberships with their origin and `reused` flag. Each build
        also saves a checkpoint, so later steps open the ledger from checkpoint + tail."""
        out = self.tmp / "out"
        build(self.path, out, checkpoint_every=1)
        m = self.model
        manifest = pq.read_table(out / "manifest.parquet").to_pylist()
        origin_names = m.names["cohort_id"]
        metadata_columns = [c for c in pq.read_schema(out / "manifest.parquet").names if c not in FIXED_KEYS]
        assert metadata_columns[: len(origin_names)] == list(origin_names)
        assert {r["gen_id"]: (r["stage"], *(r[n] for n in origin_names), r["created_seq"], r["materialized"])
                for r in manifest} == \
               {g: (x["stage"], *(x["cohort_id"] for _ in origin_names), x["created_seq"], g in m.materialized)
                for g, x in m.gens.items()}
        membership = pq.read_table(out / "membership.parquet").to_pylist()
        assert {(r["cohort_id"], r["gen_id"]): (r["origin_cohort_id"], r["reused"], r["added_seq"])
                for r in membership} == \
               {(c, g): (m.gens[g]["cohort_id"], m.gens[g]["cohort_id"] != c, seq)
                for c, members in m.members.items() for g, seq in members.items()}

    @invariant()
    def state_matches_model(self) -> None:
        state = Ledger.open(self.path).state
        m = self.model
        assert state.seq == m.seq
        assert {g: (x.stage, x.origin_cohort_id, x.template_id, x.parent_gen_id, x.replicate, x.created_seq)
                for g, x in state.generations.items()} == \
               {g: (x["stage"], x["cohort_id"], x["template_id"], x["parent_gen_id"], x["replicate"], x["created_seq"])
                for g, x in m.gens.items()}
        assert {c: dict(x.members) for c, x in state.cohorts.items() if x.members} == \
               {c: members for c, members in m.members.items() if members}
        assert {c for c, x in state.cohorts.items() if x.sealed_seq is not None} == m.sealed
        assert {g for g, x in state.generations.items() if x.materialized_seq is not None} == m.materialized
        assert dict(state.key_names) == m.names
        assert self.ledger.head == Ledger.open(self.path).head


LedgerMachine.TestCase.settings = settings(max_examples=30, stateful_step_count=30, deadline=None,
                                           suppress_health_check=[HealthCheck.too_slow])
TestLedgerMachine = LedgerMachine.TestCase

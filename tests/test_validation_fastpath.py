"""The one-call envelope schema is never more permissive than the per-rule checks.

`normalize_batch` trusts the schema when it accepts a batch and only runs the rules (which
name the event and the rule) when it rejects one; so anything the schema accepts, the rules
must accept too, or an invalid event could slip in.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ledger.errors import EventRejected
from ledger.domain.events import _raise_first_invalid, envelope_schema, normalize_batch

ids = st.sampled_from(["g1", "d_5ezrffv9uf3lr37d", "", "-x", "a/b", "x" * 129, "é"])
texts = st.one_of(st.none(), st.sampled_from(["", "ok", "x" * 4097, "run 1"]), st.integers())
payloads = st.fixed_dictionaries(
    {"cohort_id": ids, "stage": st.sampled_from(["draft", "essay", "bad stage"]), "gen_id": ids},
    optional={"template_id": ids, "replicate": st.one_of(st.integers(-1, 3), st.booleans(), st.just("1")),
              "mode": st.sampled_from(["llm", "copy", "x", None]), "reason": st.sampled_from(["skip-existing", "x"]),
              "parent_gen_id": st.one_of(st.none(), ids),
              "artifacts": st.dictionaries(ids, st.sampled_from(["0" * 64, "z"]), max_size=2),
              "extra": st.just(1), "description": texts},
)
envelopes = st.fixed_dictionaries(
    {"type": st.sampled_from(["cohort.opened", "generation.created", "generation.reused", "generation.materialized",
                              "generation.removed", "nope"]),
     "data": st.one_of(payloads, st.just([]))},
    optional={"id": st.one_of(st.none(), st.sampled_from(["a", "a b", "x\n", "!" * 257, "run/1/c"]), st.integers()),
              "by": st.one_of(st.none(), st.dictionaries(st.sampled_from(["actor", "run_id", "source", "who"]), texts,
                                                         max_size=3)),
              "extra": st.just(1)},
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(envelopes, st.just("not an object")), min_size=1, max_size=4))
def test_schema_accepts_only_what_the_rules_accept(batch: list[Any]) -> None:
    try:
        envelope_schema().validate_python(batch)
    except ValidationError:
        return
    _raise_first_invalid(batch)  # must not raise
    assert len(normalize_batch(batch)) == len(batch)


@settings(max_examples=200, deadline=None)
@given(st.lists(envelopes, min_size=1, max_size=4))
def test_a_rejected_batch_names_the_rule_the_checks_name(batch: list[Any]) -> None:
    try:
        normalize_batch(batch)
    except EventRejected as fast:
        try:
            _raise_first_invalid(batch)
        except EventRejected as slow:
            assert str(fast) == str(slow)
        else:
            raise AssertionError("normalize_batch rejected a batch every rule accepts")

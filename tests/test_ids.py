"""Deterministic gen ids against the pipeline's own (real ids from its published data root)."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.builders import REFERENCE
from ledger.domain.ids import (GEN_ID_PREFIX, SIGNATURE_FIELDS, coerce_replicate, collision_gen_id, free_gen_id, gen_id,
                               is_identifier, signature_key, signature_text)

GENS = REFERENCE / "data" / "gens"


def _metadata(stage: str, gid: str) -> dict:
    return json.loads((GENS / stage / gid / "metadata.json").read_text())


@pytest.mark.parametrize(("stage", "gid"), [("draft", "d_5ezrffv9uf3lr37d"), ("essay", "e_sq5klak2lljyyom")])
def test_real_pipeline_ids(stage: str, gid: str) -> None:
    meta = _metadata(stage, gid)
    assert meta["gen_id"] == gid
    signature = {k: meta[k] for k in SIGNATURE_FIELDS[stage]}
    assert gen_id(stage, **signature) == gid


def test_reference_signature_texts() -> None:
    assert signature_text("draft", _metadata("draft", "d_5ezrffv9uf3lr37d")) == (
        "combo_v1_85128e4e5ef3|creative-synthesis-v10|gemini_25_pro|1")
    assert signature_text("essay", _metadata("essay", "e_sq5klak2lljyyom")) == (
        "d_5ezrffv9uf3lr37d|creative-synthesis-v10|1")


def test_text_is_stripped_and_lower_cased() -> None:
    base = gen_id("draft", combo_id="combo_v1_85128e4e5ef3", template_id="creative-synthesis-v10",
                  llm_model_id="gemini_25_pro", replicate=1)
    assert gen_id("draft", combo_id=" COMBO_v1_85128e4e5ef3 ", template_id="Creative-Synthesis-V10",
                  llm_model_id="GEMINI_25_PRO", replicate=1) == base


def test_bad_signatures() -> None:
    with pytest.raises(ValueError, match="needs 'llm_model_id'"):
        gen_id("evaluation", parent_gen_id="e_1", template_id="t", replicate=1)
    for bad in (0, True, None, "", " ", "0", "-1", "+1", "1.5", "\u00b2", "\u0663", 1.5):
        with pytest.raises(ValueError):
            gen_id("essay", parent_gen_id="d_1", template_id="t", replicate=bad)
    for blank in ("", "   ", "\t"):
        with pytest.raises(ValueError, match="'template_id' is empty"):
            gen_id("essay", parent_gen_id="d_1", template_id=blank, replicate=1)
    with pytest.raises(ValueError, match="no gen id scheme"):
        gen_id("summary", template_id="t", replicate=1)


def test_replicate_as_the_pipeline_reads_it() -> None:
    """The pipeline's CSV input gives replicates as strings: `"2"` and `" 2 "` are replicate 2."""
    base = gen_id("essay", parent_gen_id="d_1", template_id="t", replicate=2)
    for same in ("2", " 2 ", 2.0):
        assert gen_id("essay", parent_gen_id="d_1", template_id="t", replicate=same) == base
    assert [coerce_replicate(v) for v in (1, "07", 3.0, "x", None, False, 0)] == [1, 7, 3, None, None, None, None]


def test_collision_suffix() -> None:
    """Collision k hashes `<signature>|collision:<k>` and appends `-<k>`: a valid identifier."""
    sig = {"parent_gen_id": "d_1", "template_id": "t", "replicate": 1}
    first = collision_gen_id("essay", 1, **sig)
    body, suffix = first.rsplit("-", 1)
    digest = hashlib.blake2b(b"d_1|t|1|collision:1", digest_size=10).digest()
    assert suffix == "1" and int(body[2:], 36) == int.from_bytes(digest, "big") and is_identifier(first)
    assert collision_gen_id("essay", 0, **sig) == gen_id("essay", **sig)
    taken = {gen_id("essay", **sig), first}
    assert free_gen_id("essay", taken, **sig) == collision_gen_id("essay", 2, **sig)
    assert free_gen_id("essay", set(), **sig) == gen_id("essay", **sig)
    with pytest.raises(ValueError):
        collision_gen_id("essay", -1, **sig)


text = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-.", min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(stage=st.sampled_from(sorted(SIGNATURE_FIELDS)), values=st.lists(text, min_size=3, max_size=3),
       replicate=st.integers(1, 10_000))
def test_id_shape_and_digest(stage: str, values: list[str], replicate: int) -> None:
    names = [n for n in SIGNATURE_FIELDS[stage] if n != "replicate"]
    sig = dict(zip(names, values), replicate=replicate)
    gid = gen_id(stage, **sig)
    assert gid.startswith(GEN_ID_PREFIX[stage]) and is_identifier(gid)
    body = gid[len(GEN_ID_PREFIX[stage]):]
    assert body == body.lower() and not body.startswith("0")
    digest = hashlib.blake2b("|".join([*values[:len(names)], str(replicate)]).encode(), digest_size=10).digest()
    assert int(body, 36) == int.from_bytes(digest, "big")
    # the key is the signature minus replicate, so ids of one key differ only by replicate
    assert signature_key(stage, sig) == tuple(values[:len(names)])


def test_every_id_of_the_reference_wide_membership() -> None:
    """The 8-column wide file lists drafts, essays and evaluations with their full signatures."""
    import csv

    with open(REFERENCE / "wide" / "membership-8col.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6
    for row in rows:
        stage = row["stage"]
        signature = {k: row[k] for k in SIGNATURE_FIELDS[stage] if k != "replicate"}
        assert gen_id(stage, **signature, replicate=int(row["replicate"])) == row["gen_id"], row

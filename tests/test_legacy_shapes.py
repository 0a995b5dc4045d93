"""The compatibility readers: every membership.csv shape and every metadata.json shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.builders import REFERENCE

from ledger.errors import InvalidInputError
from ledger.legacy import SHAPES, MembershipShapeError, normalize_metadata, parse_json_object, read_membership_csv

GENS = REFERENCE / "data" / "gens"


def test_slim_reference(tmp_path: Path) -> None:
    table = read_membership_csv(REFERENCE / "data" / "cohorts" / "best_novelty_all_evals" / "membership.csv")
    assert table.shape == "slim"
    assert [(r.stage, r.gen_id, r.cohort_id) for r in table.rows] == [
        ("draft", "d_5ezrffv9uf3lr37d", None), ("essay", "e_sq5klak2lljyyom", None),
        ("evaluation", "v_2pzejj5kr4xwdzil", None)]


def test_slim_with_cohort(tmp_path: Path) -> None:
    p = tmp_path / "m.csv"
    p.write_text("stage,gen_id,cohort_id\ndraft,d1,A\n\nessay,e1,\n")
    table = read_membership_csv(p)
    assert table.shape == "slim-cohort"
    assert [(r.line, r.gen_id, r.cohort_id) for r in table.rows] == [(2, "d1", "A"), (4, "e1", None)]


def test_wide_7_reference_empty_cells_are_null() -> None:
    table = read_membership_csv(REFERENCE / "wide" / "membership-7col.csv")
    assert table.shape == "wide-7"
    d, e = table.rows
    assert (d.gen_id, d.cohort_id, d.parent_gen_id, d.combo_id, d.template_id, d.llm_model_id) == (
        "D100", "C-COPY", None, None, "links-vX", "gen-1")
    assert (e.parent_gen_id, e.combo_id, e.template_id) == ("D100", "combo-1", "parsed-from-links-v1")
    assert d.origin_cohort_id is None and d.replicate is None


def test_wide_8_reference_crlf() -> None:
    table = read_membership_csv(REFERENCE / "wide" / "membership-8col.csv")
    assert table.shape == "wide-8-curated"
    assert len(table.rows) == 6
    last = table.rows[-1]
    assert (last.gen_id, last.origin_cohort_id, last.llm_model_id, last.replicate) == (
        "v_1fo1pv48lzrkhwlh", "best_novelty_all_evals", "sonnet-4", "2")
    assert all(r.cohort_id is None for r in table.rows)


@pytest.mark.parametrize("header", ["gen_id,stage", "stage,gen_id,cohort", "stage,gen_id,extra,x", ""])
def test_unknown_header_names_found_and_accepted(tmp_path: Path, header: str) -> None:
    p = tmp_path / "membership.csv"
    p.write_text(header + "\n")
    with pytest.raises(MembershipShapeError) as info:
        read_membership_csv(p)
    msg = str(info.value)
    assert str(p) in msg and (header or "(none)") in msg
    for shape in SHAPES.values():
        assert ",".join(shape) in msg
    assert "\n" not in msg


def test_row_width_mismatch_names_line(tmp_path: Path) -> None:
    p = tmp_path / "membership.csv"
    p.write_text("stage,gen_id\ndraft,d1\ndraft,d2,X\n")
    with pytest.raises(InvalidInputError, match=r"membership\.csv:3: 3 cells"):
        read_membership_csv(p)


def _norm(doc: dict, stage: str = "draft", gen_id: str = "g1"):
    return normalize_metadata(doc, stage, gen_id)


def test_compact_legacy_reference_g1() -> None:
    origin, problems = _norm(parse_json_object((GENS / "draft" / "G1" / "metadata.json").read_bytes()), "draft", "G1")
    assert problems == []
    assert origin.as_metadata() == {"stage": "draft", "gen_id": "G1", "cohort_id": "lost-drafts",
                                    "template_id": "draft-template", "combo_id": "combo_v1_123",
                                    "llm_model_id": "model-x", "parent_gen_id": None, "replicate": None,
                                    "mode": "llm"}  # no replicate key: the import makes it 1 unless a wide row says


def test_current_reference_essay() -> None:
    path = GENS / "essay" / "e_sq5klak2lljyyom" / "metadata.json"
    origin, problems = _norm(parse_json_object(path.read_bytes()), "essay", "e_sq5klak2lljyyom")
    assert problems == [] and origin.cohort_id == "best_novelty_all_evals"
    assert origin.parent_gen_id == "d_5ezrffv9uf3lr37d" and origin.combo_id is None


@pytest.mark.parametrize("stage,key", [("draft", "draft_template"), ("essay", "essay_template"),
                                       ("essay", "essay_template_id"), ("essay", "generation_template"),
                                       ("evaluation", "evaluation_template")])
def test_legacy_template_keys(stage: str, key: str) -> None:
    origin, problems = _norm({"cohort_id": "A", key: "t-1"}, stage)
    assert problems == [] and origin.template_id == "t-1"


def test_ancestor_template_keys_are_not_the_gens_own() -> None:
    """An evaluation's draft_template / generation_template name its draft's and essay's templates."""
    origin, problems = _norm({"cohort_id": "A", "draft_template": "dt", "generation_template": "et",
                              "essay_template_id": "et"}, "evaluation")
    assert problems == [] and origin.template_id is None


def test_template_keys_that_disagree() -> None:
    _, problems = _norm({"cohort_id": "A", "template_id": "a", "essay_template": "b"}, "essay")
    assert problems == ["template keys disagree: template_id=a, essay_template=b"]


def test_both_origin_keys_agree_or_not() -> None:
    origin, problems = _norm({"template_id": "t", "cohort_id": "A", "origin_cohort_id": "A"})
    assert problems == [] and origin.cohort_id == "A"
    _, problems = _norm({"template_id": "t", "cohort_id": "A", "origin_cohort_id": "B"})
    assert problems == ["origin cohort keys disagree: origin_cohort_id=B, cohort_id=A"]


def test_nan_in_every_form_is_null() -> None:
    raw = b'{"template_id":"t","origin_cohort_id":"nan","cohort_id":"A","parent_gen_id":NaN,"combo_id":"",' \
          b'"llm_model_id":"NaN","mode":"nan","replicate":"nan"}'
    origin, problems = _norm(parse_json_object(raw))
    assert problems == []
    assert (origin.cohort_id, origin.parent_gen_id, origin.combo_id, origin.llm_model_id, origin.mode,
            origin.replicate) == ("A", None, None, None, None, None)


@pytest.mark.parametrize("value,expected", [(None, None), (2, 2), ("3", 3), (" 4 ", 4), (2.0, 2)])
def test_replicate_forms(value: object, expected: int) -> None:
    doc = {"template_id": "t", "cohort_id": "A"}
    if value is not None:
        doc["replicate"] = value
    origin, problems = _norm(doc)
    assert problems == [] and origin.replicate == expected


@pytest.mark.parametrize("value", [0, -1, "x", True, 1.5, "\u00b2", "+2"])
def test_bad_replicate(value: object) -> None:
    _, problems = _norm({"template_id": "t", "cohort_id": "A", "replicate": value})
    assert len(problems) == 1 and "replicate" in problems[0]


def test_stage_and_gen_id_must_match_directory() -> None:
    _, problems = _norm({"stage": "essay", "gen_id": "other", "template_id": "t", "cohort_id": "A"}, "draft", "g1")
    assert len(problems) == 2 and "'essay'" in problems[0] and "'other'" in problems[1]


def test_run_time_keys_are_ignored() -> None:
    doc = {"template_id": "t", "cohort_id": "A", "files": {"raw": "x"}, "usage": {"t": 1}, "duration_s": 1.0,
           "finish_reason": "stop", "run_id": "R", "function": "f", "parser_name": "nan", "truncated": False}
    origin, problems = _norm(doc)
    assert problems == [] and origin.as_metadata()["template_id"] == "t"


@pytest.mark.parametrize("raw", [b"[1]", b"{", b"\xff\xfe{}"])
def test_not_a_json_object(raw: bytes) -> None:
    with pytest.raises(ValueError):
        parse_json_object(raw)


def test_reference_metadata_files_all_parse() -> None:
    for path in GENS.glob("*/*/metadata.json"):
        assert isinstance(json.loads(path.read_bytes()), dict)
        _, problems = normalize_metadata(parse_json_object(path.read_bytes()), path.parent.parent.name, path.parent.name)
        assert problems == [], path

"""`diff` against a naive model on generated logs, and through the real CLI."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.audit_logs import histories
from helpers.builders import created, jsonl, run_cli
from ledger import Ledger
from ledger.cohorts.diff import Point, diff

def model_diff(log: list[dict[str, Any]], a: tuple[str, int], b: tuple[str, int]) -> dict[str, Any]:
    """The diff as a reader of the log would work it out by hand: replay to each side's seq."""

    def side(cohort: str, upto: int) -> tuple[dict[str, int], dict[str, int]]:
        members: dict[str, int] = {}
        removed: dict[str, int] = {}
        for ev in log:
            d = ev["data"]
            if ev["seq"] > upto or d.get("cohort_id") != cohort:
                continue
            if ev["type"] in ("generation.created", "generation.reused"):
                members[d["gen_id"]] = ev["seq"]
                removed.pop(d["gen_id"], None)
            elif ev["type"] == "generation.removed":
                del members[d["gen_id"]]
                removed[d["gen_id"]] = ev["seq"]
        return members, removed

    origin = {ev["data"]["gen_id"]: (ev["data"]["stage"], ev["data"]["cohort_id"])
              for ev in log if ev["type"] == "generation.created"}
    (ma, ra), (mb, rb) = side(*a), side(*b)
    out: dict[str, Any] = {s: {"only_in_a": [], "only_in_b": [], "both": []} for s in ("draft", "essay", "evaluation")}
    for g in sorted(ma.keys() | mb.keys()):
        stage, orig = origin[g]
        key = "both" if g in ma and g in mb else "only_in_a" if g in ma else "only_in_b"
        out[stage][key].append({
            "stage": stage, "gen_id": g, "origin_cohort_id": orig,
            "reused_in_a": orig != a[0] if g in ma else None, "reused_in_b": orig != b[0] if g in mb else None,
            "added_seq_a": ma.get(g), "added_seq_b": mb.get(g),
            "removed_seq_a": ra.get(g), "removed_seq_b": rb.get(g)})
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.data())
def test_diff_matches_the_model(batches: list[list[dict[str, Any]]], data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        led = Ledger.init(Path(tmp) / "ledger")
        for batch in batches:
            led.append(batch)
        log = [orjson.loads(line) for line in (led.path / "events.jsonl").read_bytes().splitlines()]
        head = led.head.seq
        known = sorted({ev["data"]["cohort_id"] for ev in log})
        sides = []
        for _ in range(2):
            cohort = data.draw(st.sampled_from(known))
            how = data.draw(st.sampled_from(["head", "seq", "time"]))
            if how == "head":
                sides.append((Point(cohort), (cohort, head)))
            elif how == "seq":
                s = data.draw(st.integers(0, head))
                sides.append((Point.parse(f"{cohort}@{s}"), (cohort, s)))
            else:
                ev = data.draw(st.sampled_from(log))
                last = max(e["seq"] for e in log if e["at"] <= ev["at"])  # a batch shares one `at`
                sides.append((Point.parse(f"{cohort}@{ev['at']}"), (cohort, last)))
        result = diff(led, sides[0][0], sides[1][0]).to_json()
        assert (result["a"]["seq"], result["b"]["seq"]) == (sides[0][1][1], sides[1][1][1])
        for side, (_, (_, s)) in zip(("a", "b"), sides):
            assert result[side]["hash"] == (log[s - 1]["hash"] if s else result[side]["hash"])
        assert result["stages"] == model_diff(log, sides[0][1], sides[1][1])
        assert result["counts"] == {s: {k: len(v) for k, v in d.items()} for s, d in result["stages"].items()}


def _seed(path: Path) -> None:
    assert run_cli("init", ledger=path).returncode == 0
    for batch in (
        [created("A", "draft", "d1"), created("A", "draft", "d2"), created("A", "essay", "e1", parent="d1")],
        [{"type": "generation.reused", "data": {"cohort_id": "B", "stage": "draft", "gen_id": "d1",
                                                "reason": "skip-existing"}},
         created("B", "draft", "d3")],
        [{"type": "generation.removed", "data": {"cohort_id": "A", "stage": "draft", "gen_id": "d2",
                                                 "reason": "\x1b[2J[bold]wiped[/bold] <b>x</b>"}}],
    ):
        assert run_cli("append", ledger=path, stdin=jsonl(*batch)).returncode == 0


def test_diff_cli_sides_json_and_text(tmp_path: Path) -> None:
    led = tmp_path / "ledger"
    _seed(led)
    r = run_cli("diff", "A", "B", "--json", ledger=led)
    assert r.returncode == 0, r.stderr
    out = orjson.loads(r.stdout)
    assert out["a"]["seq"] == out["b"]["seq"] == 6
    assert out["counts"]["draft"] == {"only_in_a": 0, "only_in_b": 1, "both": 1}
    assert out["counts"]["essay"] == {"only_in_a": 1, "only_in_b": 0, "both": 0}
    (both,) = out["stages"]["draft"]["both"]
    assert both == {"stage": "draft", "gen_id": "d1", "origin_cohort_id": "A", "reused_in_a": False,
                    "reused_in_b": True, "added_seq_a": 1, "added_seq_b": 4, "removed_seq_a": None,
                    "removed_seq_b": None}
    over_time = orjson.loads(run_cli("diff", "A", "--from", "3", "--to", "6", "--json", ledger=led).stdout)
    (gone,) = over_time["stages"]["draft"]["only_in_a"]
    assert (gone["gen_id"], gone["added_seq_a"], gone["removed_seq_b"]) == ("d2", 2, 6)
    assert run_cli("diff", "A", "--from", "3", ledger=led).returncode == 0  # --to defaults to the head
    text = run_cli("diff", "A@3", "A", ledger=led)
    assert text.returncode == 0 and b"1 only in A, 0 only in B, 1 in both" in text.stdout
    assert b"\x1b" not in text.stdout


def test_diff_refuses_bad_sides(tmp_path: Path) -> None:
    led = tmp_path / "ledger"
    _seed(led)
    for args in (["A"], ["A", "B", "--from", "1"], ["A@", "B"], ["nope", "A"], ["A@99", "B"],
                 ["A@yesterday", "B"], ["A@2026-01-01T00:00:00", "B"], ["A@1", "--from", "2"]):
        r = run_cli("diff", *args, ledger=led)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.count(b"\n") == 1, r.stderr

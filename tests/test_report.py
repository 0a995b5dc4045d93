"""`report`: the same log prefix gives the same bytes; recorded text stays text; bad input writes nothing."""

from __future__ import annotations

import os
import shutil
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.audit_logs import HOSTILE, histories
from helpers.builders import created, jsonl, run_cli
from ledger import Ledger
from ledger.report import composition, render

def _cut_after(src: Path, dst: Path, seq: int) -> None:
    """A copy of the ledger whose log ends with the batch holding `seq` (a committed prefix)."""
    shutil.copytree(src, dst)
    lines = (src / "events.jsonl").read_bytes().splitlines(keepends=True)
    end = next(i + ev["txn"][1] - 1 for i, ev in ((i, orjson.loads(line)) for i, line in enumerate(lines))
               if ev["txn"][0] <= seq <= ev["txn"][0] + ev["txn"][1] - 1)
    (dst / "events.jsonl").write_bytes(b"".join(lines[: end + 1]))
    shutil.rmtree(dst / "checkpoints")
    (dst / "checkpoints").mkdir()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.data())
def test_same_prefix_same_bytes(batches: list[list[dict[str, Any]]], data: st.DataObject) -> None:
    """A report as of seq S is a function of events 1..S: the longer log and the log cut after
    S's batch give byte-identical pages and Markdown."""
    with tempfile.TemporaryDirectory() as tmp:
        led = Ledger.init(Path(tmp) / "full")
        for batch in batches:
            led.append(batch)
        seq = data.draw(st.integers(1, led.head.seq))
        _cut_after(led.path, Path(tmp) / "cut", seq)
        known = sorted({ev.data["cohort_id"] for ev in led.read(1, seq) if "cohort_id" in ev.data})
        chosen = data.draw(st.lists(st.sampled_from(known), unique=True, max_size=3))
        full = render(composition(led, chosen, seq))
        cut = render(composition(Ledger.open(Path(tmp) / "cut"), chosen, seq))
        assert full == cut
        page, md = full
        assert b"<script" not in page and b"\x1b" not in page and b"\x1b" not in md
        assert b"http" not in page.replace(b"http-equiv", b"").replace(b"http://www.w3.org/", b"").replace(
            b"http://x.invalid", b"").replace(b"http://example.invalid", b"")


def _seed(path: Path) -> None:
    led = Ledger.init(path)
    led.append([{"type": "cohort.opened", "data": {"cohort_id": "A", "description": HOSTILE},
                 "by": {"actor": HOSTILE, "run_id": "r-1"}},
                created("A", "draft", "d1"), created("A", "draft", "d2")])
    led.append([{"type": "generation.removed", "by": {"actor": "ops"},
                 "data": {"cohort_id": "A", "stage": "draft", "gen_id": "d2", "reason": HOSTILE}}])
    led.append([{"type": "generation.reused", "data": {"cohort_id": "B", "stage": "draft", "gen_id": "d1",
                                                       "reason": "curated"}}])


class _Text(HTMLParser):
    """The page as a browser shows it: element names seen, and the text of the document."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_hostile_text_is_shown_as_text(tmp_path: Path) -> None:
    _seed(tmp_path / "ledger")
    r = run_cli("report", "A", "B", "--html", str(tmp_path / "r.html"), "--md", str(tmp_path / "r.md"),
                ledger=tmp_path / "ledger")
    assert r.returncode == 0, r.stderr
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    parser = _Text()
    parser.feed(page)
    assert "script" not in parser.tags and parser.tags.isdisjoint({"script", "iframe", "object", "embed"})
    assert [t for t in parser.tags if t == "img"] == ["img"]  # the charts' own, nothing from the text
    shown = HOSTILE.replace("\x1b", "\\u001b").replace("\x07", "\\u0007")
    text = "".join(parser.text)
    assert text.count(shown) >= 3  # description, actor and removal reason, exactly as recorded
    assert "onerror" not in page.replace("onerror=alert(2)&gt;", "")
    md = (tmp_path / "r.md").read_text(encoding="utf-8")
    assert "<script>" not in md and "<img" not in md and "\x1b" not in md and "\x07" not in md
    assert "&lt;script&gt;alert\\(1\\)" in md or "&lt;script&gt;alert(1)" in md
    assert "\\[a\\](http://x.invalid) \\| \\*b\\*" in md


def test_report_is_the_same_in_another_process_and_zone(tmp_path: Path) -> None:
    _seed(tmp_path / "ledger")
    outs = []
    for i, env in enumerate(({"PYTHONHASHSEED": "1", "TZ": "UTC"}, {"PYTHONHASHSEED": "2", "TZ": "Asia/Kolkata"})):
        r = run_cli("report", "--html", str(tmp_path / f"{i}.html"), "--md", str(tmp_path / f"{i}.md"),
                    ledger=tmp_path / "ledger", env=env)
        assert r.returncode == 0, r.stderr
        outs.append(((tmp_path / f"{i}.html").read_bytes(), (tmp_path / f"{i}.md").read_bytes()))
    assert outs[0] == outs[1]
    assert b'data-cohort="A"' in outs[0][0] and b'data-cohort="B"' in outs[0][0]  # every cohort by default


def test_bad_input_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "ledger"
    _seed(path)
    before = sorted(p.name for p in tmp_path.iterdir())
    for args in (["A"], ["nope", "--html", "x.html"], ["A", "--html", "x.html", "--as-of", "99"],
                 ["A", "--html", "x.html", "--as-of", "soon"], ["A", "--html", str(path / "events.jsonl")],
                 ["A", "--html", str(tmp_path / "missing" / "x.html")], ["A", "--html", "y.md", "--md", "y.md"]):
        r = run_cli("report", *args, ledger=path)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.count(b"\n") == 1, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert run_cli("verify", ledger=path).returncode == 0


def test_report_as_of_time_and_json(tmp_path: Path) -> None:
    path = tmp_path / "ledger"
    _seed(path)
    events = [orjson.loads(line) for line in (path / "events.jsonl").read_bytes().splitlines()]
    r = run_cli("report", "A", "--md", str(tmp_path / "a.md"), "--as-of", events[3]["at"], "--json", ledger=path)
    assert r.returncode == 0, r.stderr
    out = orjson.loads(r.stdout)
    assert (out["seq"], out["hash"], out["cohorts"], out["html"]) == (4, events[3]["hash"], ["A"], None)
    assert f"{4}:{events[3]['hash']}" in (tmp_path / "a.md").read_text()
    os.remove(tmp_path / "a.md")

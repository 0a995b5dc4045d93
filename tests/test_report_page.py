"""The report page in a real headless Chromium, offline: it loads clean, every chart is drawn,
and the numbers it shows are the ones `history --json` and `diff --json` give."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from helpers.audit_logs import HOSTILE
from helpers.chromium import Browser, executable
from helpers.env import unavailable
from helpers.builders import run_cli
from ledger import Ledger
from ledger.cli.demo_story import run_demo

if executable() is None:  # make test installs it; in CI a missing browser is a failure, never a skip
    unavailable("chromium is not installed: the report page tests need the Debian chromium package")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's ledger, plus a cohort whose recorded text is hostile."""
    root = tmp_path_factory.mktemp("page")
    result = run_demo(root / "demo", say=lambda _: None)
    led = Ledger.open(result.ledger_path)
    picked = sorted(led.state.cohorts["cohort-b"].members)[:2]
    stage = {g: led.state.generations[g].stage for g in picked}
    led.append([{"type": "cohort.opened", "data": {"cohort_id": "hostile", "description": HOSTILE},
                 "by": {"actor": HOSTILE}}]
               + [{"type": "generation.reused", "data": {"cohort_id": "hostile", "stage": stage[g], "gen_id": g,
                                                         "reason": "curated"}} for g in picked])
    led.append([{"type": "generation.removed", "data": {"cohort_id": "hostile", "stage": stage[picked[0]],
                                                        "gen_id": picked[0], "reason": HOSTILE}}])
    return result.ledger_path


def _cli_json(ledger: Path, *args: str) -> Any:
    r = run_cli(*args, "--json", ledger=ledger)
    assert r.returncode == 0, r.stderr
    return orjson.loads(r.stdout)


def _colored_share(png: bytes) -> float:
    """Share of pixels with a clear hue (chart ink): text and a broken-image icon are grey."""
    from PIL import Image

    raw = Image.open(io.BytesIO(png)).convert("RGB").tobytes()
    pixels = len(raw) // 3
    inked = sum(1 for i in range(0, len(raw), 3) if max(raw[i:i + 3]) - min(raw[i:i + 3]) > 60)
    return inked / max(1, pixels)


def test_page_offline_clean_charts_drawn_numbers_match(demo: Path, tmp_path: Path) -> None:
    cohorts = ["cohort-a", "cohort-b", "hostile"]
    page = tmp_path / "report.html"
    r = run_cli("report", *cohorts, "--html", str(page), ledger=demo)
    assert r.returncode == 0, r.stderr
    with Browser() as browser:
        browser.open(page)
        charts = browser.evaluate("""[...document.querySelectorAll('figure[data-chart]')].map(f => {
            const img = f.querySelector('img'); const r = img.getBoundingClientRect();
            return {name: f.dataset.chart, cohort: f.closest('section').dataset.cohort || null,
                    ok: img.complete && img.naturalWidth > 0, alt: img.alt,
                    x: r.left + window.scrollX, y: r.top + window.scrollY, w: r.width, h: r.height}; })""")
        metrics = browser.evaluate("""[...document.querySelectorAll('[data-metric]')].map(
            e => ({...e.dataset, value: Number(e.textContent)}))""")
        scripts = browser.evaluate("document.querySelectorAll('script, iframe, object, embed').length")
        text = browser.evaluate("document.body.innerText")
        shots = {(c["cohort"], c["name"]): browser.screenshot(clip={"x": c["x"], "y": c["y"], "width": c["w"],
                                                                     "height": c["h"]}) for c in charts}
        assert browser.problems() == []
        assert all(u.startswith(("file:", "data:")) for u in browser.requests()), browser.requests()
    assert scripts == 0
    assert text.count(HOSTILE.replace("\x1b", "\\u001b").replace("\x07", "\\u0007")) >= 3

    expected = {(c, n) for c in cohorts for n in ("composition", "flows", "coverage")} | {(None, "overlap")}
    assert set(shots) == expected and len(charts) == len(expected)
    for c in charts:
        assert c["ok"] and c["alt"] and c["w"] > 200 and c["h"] > 80, c
        assert _colored_share(shots[(c["cohort"], c["name"])]) > 0.003, c

    def metric(name: str, **tags: str) -> int:
        found = [m["value"] for m in metrics if m["metric"] == name and all(m.get(k) == v for k, v in tags.items())]
        assert len(found) == 1, (name, tags, found)
        return int(found[0])

    stages = ["draft", "essay", "evaluation"]
    seq = metric("as-of-seq")
    for cohort in cohorts:
        history = _cli_json(demo, "history", cohort)
        assert metric("events", cohort=cohort) == len(history)
        last = history[-1]["counts"]
        for stage in stages:
            assert metric("members", cohort=cohort, stage=stage) == last[stage]
        removed = sum(1 for e in history if e["type"] == "generation.removed")
        assert [m["value"] for m in metrics if m["metric"] == "removals" and m["cohort"] == cohort] == (
            [removed] if removed else [])
        same = _cli_json(demo, "diff", f"{cohort}@{seq}", cohort)
        for stage in stages:
            both = same["stages"][stage]["both"]
            assert metric("reused", cohort=cohort, stage=stage) == sum(1 for e in both if e["reused_in_a"])
    for i, a in enumerate(cohorts):
        for b in cohorts[i + 1:]:
            d = _cli_json(demo, "diff", f"{a}@{seq}", f"{b}@{seq}")
            for stage in stages:
                assert metric("both", a=a, b=b, stage=stage) == d["counts"][stage]["both"]
    assert metric("both", a="cohort-a", b="cohort-b", stage="evaluation") > 0

"""The benchmark harness must not rot: run it end to end at a tiny N (figures are not checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(sys.platform != "linux", reason="the harness measures fdatasync and /proc on Linux")
def test_harness_runs_end_to_end(tmp_path: Path) -> None:
    results, docs = tmp_path / "r.json", tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\nprose that must survive\n")
    subprocess.run([sys.executable, "-m", "benchmarks.run", "--n", "2000", "--work", str(tmp_path / "work"),
                    "--results", str(results), "--docs", str(docs), "--repeat", "1", "--samples", "10"],
                   cwd=ROOT, check=True, capture_output=True, timeout=900)
    res = orjson.loads(results.read_bytes())
    assert res["append_batch"]["events"] == 2000 and res["verify"]["events_per_s"] > 0
    assert res["read_all"]["events_per_s"] > 0 and res["read_arrow"]["events_per_s"] > 0
    assert all(c["chain_verified"] for c in res["concurrent"])
    assert res["baseline_a"]["generations"] > 0
    assert res["baseline_b"].get("events", 2000) == 2000  # skipped when the bench extra is not installed
    text = docs.read_text()
    assert "prose that must survive" in text and "| verify (whole chain) |" in text
    assert "| read as Arrow (Ledger.to_arrow), every event |" in text

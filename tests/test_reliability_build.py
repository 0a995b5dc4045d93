"""Projection builds under faults: a build that the machine refuses leaves every old file
whole, a corrupt log is refused before anything is written, `--out` may not point into the
ledger, and a build running while writers append reflects only complete batches."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from helpers.builders import created, log_bytes, run_cli
from helpers.faults import FAULTS, dir_snapshot, fsize_limit

from ledger import Ledger

PROJECTION = "_projection.json"


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, Path]:
    """A ledger with one build in `out`, then more events the next build must add."""
    ledger = Ledger.init(tmp_path / "ledger")
    ledger.append([created("A", "draft", f"d{i}") for i in range(20)])
    out = tmp_path / "out"
    assert run_cli("build", "--out", str(out), ledger=ledger.path).returncode == 0
    ledger.append([created("B", "draft", f"x{i}") for i in range(300)]
                  + [{"type": "generation.reused", "data": {"cohort_id": "C", "stage": "draft", "gen_id": "d1",
                                                           "reason": "manual"}}])
    return ledger.path, out


def files_of(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_build_refused_by_efbig_leaves_the_old_files(built: tuple[Path, Path]) -> None:
    ledger, out = built
    old = files_of(out)
    ledger_before = dir_snapshot(ledger)
    r = run_cli("build", "--out", str(out), ledger=ledger, preexec_fn=fsize_limit(16))
    assert r.returncode == 3 and r.stderr.count(b"\n") == 1 and b"File too large" in r.stderr, r.stderr
    assert files_of(out) == old  # every old file whole, no temp file left behind
    assert dir_snapshot(ledger) == ledger_before
    r = run_cli("build", "--out", str(out), ledger=ledger)
    assert r.returncode == 0, r.stderr
    assert orjson.loads((out / PROJECTION).read_bytes())["seq"] == Ledger.open(ledger).head.seq


def test_build_refused_mid_way_leaves_every_file_whole(built: tuple[Path, Path], tmp_path: Path) -> None:
    """A limit that lets the small CSVs through but not the Parquet files: the build fails
    part-way. Every projection file still holds its old bytes (nothing is renamed until all
    are staged), no temp file remains, and the next build completes the set."""
    ledger, out = built
    old = files_of(out)
    fresh = tmp_path / "fresh"
    assert run_cli("build", "--out", str(fresh), ledger=ledger).returncode == 0
    new = files_of(fresh)
    sizes = sorted(len(v) for k, v in new.items() if k.endswith(".csv"))
    limit = sizes[-1] + 1
    assert any(len(v) > limit for k, v in new.items() if k.endswith(".parquet"))
    r = run_cli("build", "--out", str(out), ledger=ledger, preexec_fn=fsize_limit(limit))
    assert r.returncode == 3, r.stderr
    now = files_of(out)
    # every changed file is staged before any is renamed: the failed build changed none of them
    assert {k: v for k, v in now.items() if k != PROJECTION} == {k: v for k, v in old.items() if k != PROJECTION}
    assert all(rel in old or rel in new for rel in now), "a temp file was left behind"
    assert orjson.loads(now[PROJECTION])["seq"] == orjson.loads(old[PROJECTION])["seq"]
    assert run_cli("build", "--out", str(out), ledger=ledger).returncode == 0
    assert {k: v for k, v in files_of(out).items() if k != PROJECTION} == \
           {k: v for k, v in new.items() if k != PROJECTION}


def test_build_refuses_a_corrupt_log(built: tuple[Path, Path]) -> None:
    ledger, out = built
    lines = log_bytes(ledger).splitlines(keepends=True)
    (ledger / "events.jsonl").write_bytes(b"".join(lines[:5] + lines[6:]))
    old, ledger_before = files_of(out), dir_snapshot(ledger)
    for args in (("build", "--out", str(out)), ("build", "--out", str(out), "--full")):
        r = run_cli(*args, ledger=ledger)
        assert r.returncode == 1 and b"corrupt at seq 6:" in r.stderr, r.stderr
    assert files_of(out) == old and dir_snapshot(ledger) == ledger_before


@pytest.mark.parametrize("target", ["events.jsonl", "events.jsonl/x", ".", "checkpoints", "checkpoints/out",
                                    "ledger.json", "events.lock"])
def test_out_inside_the_ledger_is_refused(built: tuple[Path, Path], target: str) -> None:
    ledger, _ = built
    before = dir_snapshot(ledger)
    r = run_cli("build", "--out", str(ledger / target), ledger=ledger)
    assert r.returncode == 2 and r.stderr.count(b"\n") == 1, r.stderr
    assert dir_snapshot(ledger) == before


def test_build_while_writers_append_reflects_only_complete_batches(tmp_path: Path) -> None:
    """Builds in a loop while 4 writers append batches of 1-12 events: every build reflects a
    batch boundary, and its manifest holds exactly the gens created up to that seq."""
    ledger = Ledger.init(tmp_path / "ledger").path
    writers = [subprocess.Popen([sys.executable, str(FAULTS), "race", str(ledger), str(tmp_path / f"w{w}.json"),
                                 str(w), "10"], stderr=subprocess.PIPE) for w in range(4)]
    from projections import build

    seen: list[tuple[int, int]] = []
    out = tmp_path / "out"
    while any(w.poll() is None for w in writers) or not seen:
        report = build(ledger, out)
        seen.append((report.seq, pq.read_table(out / "manifest.parquet").num_rows))
    for w in writers:
        assert w.wait() == 0, w.stderr.read().decode() if w.stderr else ""
    events = list(Ledger.open(ledger).read())
    ends = {ev.seq for ev in events if ev.seq == ev.txn[0] + ev.txn[1] - 1} | {0}
    for seq, rows in seen:
        assert seq in ends, f"a build reflected seq {seq}, inside a batch"
        assert rows == sum(1 for ev in events if ev.seq <= seq and ev.type == "generation.created")
    assert len({seq for seq, _ in seen}) >= 2, "the builds never overlapped the writers"

"""Scale benchmark for `build` and checkpoints (not run by the test suite).

Generates an N-event ledger (drafts -> essays -> evaluations, plus reuse and
materialization; ~400 bytes per event) with `Ledger.append` in large batches, then times:
a full build (`build --full`, a subprocess, with its peak RSS), an incremental build after
1% more events, `Ledger.open` + first state access with and without a checkpoint, and a
raw loop of orjson.loads + sha256 per line over the same log as a floor for comparison.

    python benchmarks/build_scale.py --events 1000000 [--dir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import orjson

from ledger import Ledger

BATCH = 10_000
COHORTS = 200


def _created(cohort: str, stage: str, gen_id: str, parent: str | None, i: int) -> dict[str, Any]:
    data: dict[str, Any] = {"cohort_id": cohort, "stage": stage, "gen_id": gen_id,
                            "template_id": f"creative-synthesis-v{i % 12}",
                            "llm_model_id": ("gemini_2.5_flash", "sonnet-4")[i % 2],
                            "replicate": 1 + i % 3}
    if parent is None:
        data["combo_id"] = f"combo_v1_{i:08x}"
    else:
        data["parent_gen_id"] = parent
    return {"type": "generation.created", "data": data}


def events(n: int, start: int = 0) -> Iterator[dict[str, Any]]:
    """A deterministic stream: per draft, 2 essays, 5 evaluations, 1 reuse, 1 materialization."""
    unit = 0
    emitted = 0
    while True:
        u = start + unit
        cohort = f"cohort_{u % COHORTS:04d}"
        draft = f"d_{u:07x}"
        group = [_created(cohort, "draft", draft, None, u)]
        essays = [f"e_{u:07x}{k}" for k in range(2)]
        group += [_created(cohort, "essay", e, draft, u + k) for k, e in enumerate(essays)]
        group += [_created(cohort, "evaluation", f"v_{u:07x}{k}", essays[k % 2], u + k) for k in range(5)]
        group.append({"type": "generation.reused", "data": {
            "cohort_id": f"cohort_{(u + 1) % COHORTS:04d}", "stage": "draft", "gen_id": draft,
            "reason": "skip-existing"}})
        group.append({"type": "generation.materialized", "data": {
            "cohort_id": cohort, "stage": "essay", "gen_id": essays[0], "artifacts": {"essay.txt": "ab" * 32}}})
        for ev in group:
            if emitted == n:
                return
            yield ev
            emitted += 1
        unit += 1


def fill(ledger: Ledger, n: int, start_unit: int) -> None:
    batch: list[dict[str, Any]] = []
    for ev in events(n, start_unit):
        batch.append(ev)
        if len(batch) == BATCH:
            ledger.append(batch)
            batch = []
    if batch:
        ledger.append(batch)


def timed_cli(*args: str) -> tuple[float, int]:
    """Wall seconds and peak RSS (MiB) of one `cohort-ledger` subprocess."""
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "ledger", *args], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"cohort-ledger {' '.join(args)} exited {proc.returncode}")
    return wall, usage.ru_maxrss // 1024


def timed_open(path: Path) -> float:
    code = ("import time,sys; from ledger import Ledger; t=time.perf_counter(); "
            "Ledger.open(sys.argv[1]).head; print(time.perf_counter()-t)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], check=True, capture_output=True)
    return float(out.stdout)


def raw_loop(log: Path) -> float:
    t = time.perf_counter()
    with open(log, "rb") as f:
        for line in f:
            orjson.loads(line)
            hashlib.sha256(line).digest()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a temp dir, removed)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="build-scale-"))
    path = work / "ledger"
    try:
        t = time.perf_counter()
        ledger = Ledger.init(path)
        fill(ledger, args.events, 0)
        size = ledger.log_path.stat().st_size
        print(f"generated {args.events} events, {size / 1e6:.0f} MB ({size / args.events:.0f} B/event) "
              f"in {time.perf_counter() - t:.1f}s")
        print(f"raw loop orjson.loads+sha256 per line: {raw_loop(ledger.log_path):.2f}s")
        print(f"Ledger.open + head, no checkpoint: {timed_open(path):.2f}s")
        wall, rss = timed_cli("--ledger", str(path), "build", "--full", "--out", str(work / "out"))
        ckpts = sorted((path / "checkpoints").iterdir())
        print(f"build --full: {wall:.2f}s wall, peak RSS {rss} MiB; checkpoint "
              f"{ckpts[-1].name} {ckpts[-1].stat().st_size / 1e6:.0f} MB")
        print(f"Ledger.open + head, from checkpoint: {timed_open(path):.2f}s")
        extra = args.events // 100
        fill(Ledger.open(path), extra, args.events // 9 + 1)
        wall, rss = timed_cli("--ledger", str(path), "build", "--out", str(work / "out"))
        print(f"build after {extra} new events (incremental): {wall:.2f}s wall, peak RSS {rss} MiB")
        wall, _ = timed_cli("--ledger", str(path), "build", "--out", str(work / "out"))
        print(f"build with nothing new: {wall:.2f}s wall")
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()

"""Append throughput and single-event durable latency, next to a bare write + fdatasync.

    python benchmarks/append_latency.py [--events 100000] [--appends 300] [--dir DIR]

1. One `Ledger.append` of N events (one atomic batch): wall time and events/s. This covers
   schema validation, the domain fold, encoding, hashing, one write and one fdatasync.
2. Single-event appends through `Ledger.append`, each durable on return, timed one by one;
   interleaved with each, the same line's bytes written with a bare `os.write` +
   `os.fdatasync` to another file in the same directory, i.e. the floor set by the disk.
   Interleaving keeps both series under the same machine load.

Everything runs in a temporary directory under --dir (default: the current directory, so
the filesystem is the one you run it on), removed at the end.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ledger import Ledger


def draft(cohort: str, n: int) -> dict[str, object]:
    """A realistic `generation.created` for a draft (ids shaped like the pipeline's)."""
    return {"type": "generation.created",
            "data": {"cohort_id": cohort, "stage": "draft", "gen_id": f"d_{n:016x}",
                     "template_id": "creative-synthesis-v10", "combo_id": f"combo_v1_{n % 997:012x}",
                     "llm_model_id": "gemini_2.5_flash", "replicate": 1 + n % 3, "mode": "llm"}}


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


def bench_batch(root: Path, events: int) -> None:
    ledger = Ledger.init(root / "batch")
    batch = [draft("bench-batch", n) for n in range(events)]
    t0 = time.perf_counter()
    seqs = ledger.append(batch)
    elapsed = time.perf_counter() - t0
    assert seqs[-1] == events
    size = (root / "batch" / "events.jsonl").stat().st_size
    print(f"one batch of {events} events: {elapsed:.3f} s, {events / elapsed:,.0f} events/s, "
          f"{size / 2**20:.1f} MiB written")
    t0 = time.perf_counter()
    report = Ledger.open(root / "batch").verify()
    print(f"  verify of that log: {time.perf_counter() - t0:.3f} s ({report.events} events)")


def bench_single(root: Path, appends: int) -> None:
    ledger = Ledger.init(root / "single")
    ledger.append([{"type": "cohort.opened", "data": {"cohort_id": "bench-single"}}])  # warm: state loaded
    log = root / "single" / "events.jsonl"
    bare = os.open(root / "bare.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    ledger_s: list[float] = []
    bare_s: list[float] = []
    try:
        for n in range(appends):
            offset = log.stat().st_size
            t0 = time.perf_counter()
            ledger.append([draft("bench-single", n)])
            ledger_s.append(time.perf_counter() - t0)
            with open(log, "rb") as f:
                f.seek(offset)
                line = f.read()
            t0 = time.perf_counter()
            os.write(bare, line)
            os.fdatasync(bare)
            bare_s.append(time.perf_counter() - t0)
    finally:
        os.close(bare)
    lp50, lp99 = percentile(ledger_s, 50) * 1e3, percentile(ledger_s, 99) * 1e3
    bp50, bp99 = percentile(bare_s, 50) * 1e3, percentile(bare_s, 99) * 1e3
    print(f"single-event append, {appends} appends of a {len(line)}-byte line:")
    print(f"  Ledger.append          p50 {lp50:.3f} ms  p99 {lp99:.3f} ms")
    print(f"  os.write+os.fdatasync  p50 {bp50:.3f} ms  p99 {bp99:.3f} ms")
    print(f"  ratio (ledger / bare)  p50 {lp50 / bp50:.1f}x  p99 {lp99 / bp99:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="events in the one big batch")
    parser.add_argument("--appends", type=int, default=300, help="single-event appends to time (>= 2)")
    parser.add_argument("--dir", type=Path, default=Path("."), help="where the temporary ledgers go")
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.platform()}, {os.cpu_count()} CPUs")
    root = Path(tempfile.mkdtemp(prefix="append-latency-", dir=args.dir))
    try:
        bench_batch(root, args.events)
        bench_single(root, args.appends)
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    sys.exit(main())

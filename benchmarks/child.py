"""Measurements that need a process of their own: a build (for its peak RSS), verify and
opening a ledger cold (not inside the harness's big heap, which a fork would copy), and one
of several concurrent appenders. Prints one JSON object.

    python -m benchmarks.child build LEDGER OUT [--full]
    python -m benchmarks.child open LEDGER
    python -m benchmarks.child verify LEDGER
    python -m benchmarks.child phases LEDGER OUT SCRATCH
    python -m benchmarks.child duckdb LEDGER OUT
    python -m benchmarks.child scope PATH COHORT STAGE GEN_ID
    python -m benchmarks.child append LEDGER TAG APPENDS BATCH   (waits for "go" on stdin)
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import orjson

from .hook_step import maxrss_kib as _maxrss_kib


def build(ledger: str, out: str, full: bool) -> dict[str, Any]:
    from projections.build import build as run_build

    t0 = time.perf_counter()
    report = run_build(ledger, out, full=full)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "maxrss_kib": _maxrss_kib(), "seq": report.seq,
            "checkpoint_seq": report.checkpoint_seq, "events_folded": report.events_folded,
            "checkpoint_written": report.checkpoint_written, "patched_from": report.patched_from,
            "written": report.written}


def phases(ledger: str, out: str, scratch: str) -> dict[str, Any]:
    """The steps of a full build timed one by one (the same calls `build` makes, in order);
    the checkpoint goes to `scratch` so the ledger's own checkpoints stay as they are."""
    from pathlib import Path

    from ledger import Ledger
    from ledger.log.checkpoint import write_checkpoint
    from ledger.log.file_store import FileLogStore
    from ledger.log.perf import paused_gc
    from ledger.app.replay import replay
    from projections.build import about, render
    from projections.files import replace_files

    led = Ledger.open(ledger)
    times: dict[str, float] = {}
    with paused_gc():
        t0 = time.perf_counter()
        folded = replay(led.store, led.config, None, use_checkpoints=False)
        times["replay"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        files = render(folded.state)
        times["render"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        replace_files(Path(out), files, folded.state.seq, folded.state.hash, about(folded.state))
        times["write_files"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        Path(scratch).mkdir(parents=True, exist_ok=True)
        assert folded.position is not None
        write_checkpoint(FileLogStore(scratch), led.config, folded.state, folded.position)
        times["checkpoint"] = time.perf_counter() - t0
    return times


def duckdb_peer(ledger: str, out: str) -> dict[str, Any]:
    """The DuckDB peer in a fresh process, timed from before `import duckdb`."""
    from pathlib import Path

    from ledger import Ledger

    from . import duckdb_peer as peer

    led = Ledger.open(ledger)
    t0 = time.perf_counter()
    counts = peer.run(led.log_path, Path(out), list(led.config.stages))
    return {"seconds": time.perf_counter() - t0, "maxrss_kib": _maxrss_kib(), **counts}


def scope(path: str, cohort: str, stage: str, gen_id: str) -> dict[str, Any]:
    """The two questions every pipeline asset asks, from a fresh process, timed after imports."""
    import importlib.util

    import pyarrow.parquet  # noqa: F401  (imports are not what this measures)

    if importlib.util.find_spec("pandas") is not None:
        import pandas  # noqa: F401  (pyarrow imports it on its first conversion of a Python value)

    from ledger.cohorts.scope import CohortScope

    t0 = time.perf_counter()
    sc = CohortScope.open(path)
    active = sc.active_stage_gen_ids(cohort, stage)
    origin = sc.origin_metadata(gen_id)
    return {"seconds": time.perf_counter() - t0, "active": len(active), "origin_stage": origin["stage"],
            "maxrss_kib": _maxrss_kib()}


def open_state(ledger: str) -> dict[str, Any]:
    from ledger import Ledger

    t0 = time.perf_counter()
    state = Ledger.open(ledger).state
    return {"seconds": time.perf_counter() - t0, "seq": state.seq, "maxrss_kib": _maxrss_kib()}


def verify(ledger: str) -> dict[str, Any]:
    from ledger import Ledger

    t0 = time.perf_counter()
    report = Ledger.open(ledger).verify()
    return {"seconds": time.perf_counter() - t0, "events": report.events}


def append(ledger: str, tag: str, appends: int, batch: int) -> dict[str, Any]:
    from ledger import Ledger

    from .generate import fresh_drafts

    from ledger.domain.events import normalize_batch

    led = Ledger.open(ledger)
    led.generation("")  # catch up (the writers' index) before the start line, so the timing is appends only
    events = fresh_drafts(tag, appends * batch)
    # and build the schema validator, a process's one-time cost (the hook process figure has it):
    # eight of them inside a window of a few hundred ms would be measured as append throughput
    normalize_batch(events[:1])
    print("ready", flush=True)
    sys.stdin.readline()
    latencies = []
    cpu = time.process_time()
    start = time.perf_counter()
    for i in range(appends):
        t0 = time.perf_counter()
        led.append(events[i * batch : (i + 1) * batch])
        latencies.append(time.perf_counter() - t0)
    return {"start": start, "end": time.perf_counter(), "latencies": latencies, "events": appends * batch,
            "cpu_seconds": time.process_time() - cpu}


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="task", required=True)
    b = sub.add_parser("build")
    b.add_argument("ledger")
    b.add_argument("out")
    b.add_argument("--full", action="store_true")
    o = sub.add_parser("open")
    o.add_argument("ledger")
    f = sub.add_parser("phases")
    f.add_argument("ledger")
    f.add_argument("out")
    f.add_argument("scratch")
    sc = sub.add_parser("scope")
    for name in ("path", "cohort", "stage", "gen_id"):
        sc.add_argument(name)
    d = sub.add_parser("duckdb")
    d.add_argument("ledger")
    d.add_argument("out")
    v = sub.add_parser("verify")
    v.add_argument("ledger")
    a = sub.add_parser("append")
    a.add_argument("ledger")
    a.add_argument("tag")
    a.add_argument("appends", type=int)
    a.add_argument("batch", type=int)
    args = ap.parse_args()
    if args.task == "build":
        result = build(args.ledger, args.out, args.full)
    elif args.task == "open":
        result = open_state(args.ledger)
    elif args.task == "phases":
        result = phases(args.ledger, args.out, args.scratch)
    elif args.task == "scope":
        result = scope(args.path, args.cohort, args.stage, args.gen_id)
    elif args.task == "duckdb":
        result = duckdb_peer(args.ledger, args.out)
    elif args.task == "verify":
        result = verify(args.ledger)
    else:
        result = append(args.ledger, args.tag, args.appends, args.batch)
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()

"""The benchmark harness: `make bench [N=...]`, or `python -m benchmarks.run --n N`.

One run on one machine: generates a realistic ledger of N events, then measures the
library (verify, build, incremental build, open, appends) next to the raw floor and the two
baselines, prints every figure as it is measured, writes them to a JSON file and renders the
table of docs/benchmarks.md. Sections that need `projections` are skipped (and say so) when
it is not importable.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import orjson

from ledger import Ledger
from ledger.log.codec import genesis_prev
from ledger.domain.events import normalize_batch
from ledger.log.store import count_events
from ledger.log.perf import paused_gc
from ledger.log.scan import LogScanner, Position

from . import baselines
from .generate import COHORT_A, Event, batches, fresh_drafts, stream
from .report import render_docs

ROOT = Path(__file__).resolve().parent.parent
BATCH = 10_000


def log(msg: str) -> None:
    print(msg, flush=True)


def best(runs: int, fn: Callable[[], float]) -> tuple[float, list[float]]:
    times = [fn() for _ in range(runs)]
    return min(times), times


def clock(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def child(*args: str) -> dict[str, Any]:
    """Run one benchmarks.child task in a fresh interpreter; its last stdout line is JSON."""
    out = subprocess.run([sys.executable, "-m", "benchmarks.child", *args], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    return orjson.loads(out.strip().splitlines()[-1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    for dist in ("cohort-ledger", "orjson", "pydantic", "pydantic-core", "pyarrow", "eventsourcing", "duckdb"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "platform": platform.platform(), "versions": versions}


# -- sections -----------------------------------------------------------------------------------
def append_stream(ledger: Ledger, events: list[Event] | Any) -> tuple[float, int]:
    """Append in 10,000-event batches; time only the append calls."""
    total, count = 0.0, 0
    for chunk in batches(iter(events), BATCH):
        t0 = time.perf_counter()
        ledger.append(chunk)
        total += time.perf_counter() - t0
        count += len(chunk)
    return total, count


#: how many of the last 10,000-event batches of the batch-append figure are timed phase by phase
PROFILED_BATCHES = 10


@contextmanager
def append_phases() -> Iterator[dict[str, float]]:
    """Seconds spent in each phase of `Ledger.append` while the block runs: wall-clock timers
    around the library's own functions (restored on exit), so the figure says where a batch
    append's time goes without a profiler's overhead on every call."""
    from ledger.app import facts, group, service
    from ledger.log import file_store

    spent = dict.fromkeys(("validation", "index lookups", "fold + encode", "write + fdatasync", "index commit"), 0.0)
    targets = [(group, "normalize", "validation"), (facts.IndexedState, "preload", "index lookups"),
               (file_store.FileLogStore, "append", "write + fdatasync"), (facts.FactIndex, "commit", "index commit"),
               (service.Ledger, "_validate", "fold + encode")]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in targets]

    def timed(fn: Callable[..., Any], label: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - t0
        return call

    for (owner, name, label), (_, _, fn) in zip(targets, originals):
        setattr(owner, name, timed(fn, label))
    try:
        yield spent
    finally:
        for owner, name, fn in originals:
            setattr(owner, name, fn)
        spent["fold + encode"] -= spent["index lookups"]  # a batch's rows are preloaded inside its validation


def validation_seconds(events: list[Event]) -> float:
    """The schema part of a batch append, alone: the same batches through `normalize_batch`."""
    total = 0.0
    with paused_gc():
        for chunk in batches(iter(events), BATCH):
            t0 = time.perf_counter()
            normalize_batch(chunk)
            total += time.perf_counter() - t0
    return total


def raw_floor(path: Path) -> None:
    """The naive per-line loop every replay has to beat: orjson.loads + sha256 of each line."""
    loads, sha256 = orjson.loads, hashlib.sha256
    with open(path, "rb") as f:
        for line in f:
            loads(line)
            sha256(line).digest()


def verify_one_core(path: Path) -> int:
    """What `verify` does without its second process: the sequential scan."""
    led = Ledger.open(path)
    with paused_gc():
        return count_events(LogScanner(led.log_path, Position(0, genesis_prev(led.config.ledger_id), 0)))


def latency(ledgers: dict[str, Path], bare_dir: Path, samples: int) -> dict[str, dict[str, Any]]:
    """Single-event durable appends through the library, each followed by a bare
    write+fdatasync of the same line bytes (the sync call the library itself makes), taking
    turns between the ledgers: every figure, and so the ratio between ledgers of different
    sizes, sees the same disk weather."""
    opened = {key: Ledger.open(path) for key, path in ledgers.items()}
    for led in opened.values():
        led.state  # the catch-up replay is not what this measures
    lib: dict[str, list[float]] = {key: [] for key in ledgers}
    bare: dict[str, list[float]] = {key: [] for key in ledgers}
    fds = {key: os.open(bare_dir / f"{key}.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) for key in ledgers}
    events = {key: fresh_drafts(f"lat{key}", samples) for key in ledgers}
    try:
        for i in range(samples):
            for key, led in opened.items():
                t0 = time.perf_counter()
                led.append([events[key][i]])
                lib[key].append(time.perf_counter() - t0)
                line = _last_line(ledgers[key] / "events.jsonl")
                t0 = time.perf_counter()
                os.write(fds[key], line)
                os.fdatasync(fds[key])
                bare[key].append(time.perf_counter() - t0)
    finally:
        for fd in fds.values():
            os.close(fd)
    return {key: {"events_in_ledger": opened[key].head.seq - samples, "samples": samples,
                  "lib_p50_ms": percentile(lib[key], 0.5) * 1e3, "lib_p99_ms": percentile(lib[key], 0.99) * 1e3,
                  "bare_p50_ms": percentile(bare[key], 0.5) * 1e3, "bare_p99_ms": percentile(bare[key], 0.99) * 1e3,
                  "p50_ratio": percentile(lib[key], 0.5) / percentile(bare[key], 0.5)} for key in ledgers}


def _last_line(path: Path) -> bytes:
    with open(path, "rb") as f:
        f.seek(max(0, os.fstat(f.fileno()).st_size - 8192))
        return f.read().rsplit(b"\n", 2)[-2] + b"\n"


def concurrent(path: Path, procs: int, appends: int, batch: int) -> dict[str, Any]:
    """`procs` processes appending at once; the chain is verified afterwards."""
    before = Ledger.open(path).head.seq
    workers = [subprocess.Popen([sys.executable, "-m", "benchmarks.child", "append", str(path), f"p{i}b{batch}",
                                 str(appends), str(batch)], cwd=ROOT, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True) for i in range(procs)]
    for w in workers:
        assert w.stdout is not None and w.stdout.readline().strip() == "ready"
    for w in workers:
        assert w.stdin is not None
        w.stdin.write("go\n")
        w.stdin.flush()
    results = []
    for w in workers:
        out, _ = w.communicate()
        if w.returncode != 0:
            raise RuntimeError(f"concurrent appender exited with {w.returncode}")
        results.append(orjson.loads(out.strip().splitlines()[-1]))
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    events = sum(r["events"] for r in results)
    lat = [x for r in results for x in r["latencies"]]
    report = Ledger.open(path).verify()
    if report.events != before + events:
        raise RuntimeError(f"concurrent appends: expected {before + events} events, found {report.events}")
    return {"processes": procs, "appends_each": appends, "batch": batch, "events": events, "seconds": wall,
            "events_per_s": events / wall, "cpu_ms_per_event": sum(r["cpu_seconds"] for r in results) / events * 1e3,
            "append_p50_ms": percentile(lat, 0.5) * 1e3,
            "append_p99_ms": percentile(lat, 0.99) * 1e3, "chain_verified": True}


def run(n: int, work: Path, repeat: int, samples: int) -> dict[str, Any]:
    has_projections = importlib.util.find_spec("projections.build") is not None
    res: dict[str, Any] = {"n": n, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           "machine": machine(), "projections": has_projections}
    log(f"cohort-ledger benchmarks, N={n:,} (repeat {repeat}, best run reported)")
    for name in ("ledger", "small", "concurrent", "bare", "out", "peer", "import"):
        shutil.rmtree(work / name, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    extra = n // 100
    events = list(stream(n + extra))
    head, tail = events[:n], events[n:]
    del events
    # a million live event dicts would make every cyclic-GC pass of this process (and so the
    # in-process timings) scan them all; they live until the end, so take them out of its view
    gc.collect()
    gc.freeze()

    # batch append: building the N-event ledger itself, 10,000 events per append
    path = work / "ledger"
    led = Ledger.init(path)
    last = min(len(head), PROFILED_BATCHES * BATCH)  # the last batches are timed phase by phase too
    seconds, count = append_stream(led, head[:len(head) - last])
    with append_phases() as phases:
        more, n_more = append_stream(led, head[len(head) - last:])
    seconds, count = seconds + more, count + n_more
    log_bytes = (path / "events.jsonl").stat().st_size
    res["append_batch"] = {"events": count, "seconds": seconds, "events_per_s": count / seconds,
                           "batch": BATCH, "log_bytes": log_bytes, "bytes_per_event": log_bytes / count,
                           "last_batches": {"events": n_more, "seconds": more, **phases}}
    log(f"batch append ({BATCH:,}/batch): {count / seconds:,.0f} events/s ({seconds:.2f} s; "
        f"{log_bytes / count:.0f} bytes/event)")
    log(f"  the last {n_more:,} events, per event: " + ", ".join(
        f"{k} {v / n_more * 1e6:.1f} us" for k, v in phases.items()) + f" of {more / n_more * 1e6:.1f} us")
    validation = validation_seconds(head)
    res["append_batch"]["validation_seconds"] = validation
    log(f"  of which validation (events.normalize_batch): {validation:.2f} s "
        f"({validation / count * 1e6:.2f} us/event); fold, encoding, hashing, write: "
        f"{(seconds - validation) / count * 1e6:.2f} us/event")
    del led

    log_path = path / "events.jsonl"
    floor, runs = best(repeat, lambda: clock(lambda: raw_floor(log_path)))
    res["raw_floor"] = {"seconds": floor, "runs": runs, "events_per_s": n / floor}
    log(f"raw floor (orjson.loads + sha256 per line): {floor:.3f} s ({n / floor:,.0f} lines/s)")

    verify, runs = best(repeat, lambda: child("verify", str(path))["seconds"])
    res["verify"] = {"seconds": verify, "runs": runs, "events_per_s": n / verify}
    log(f"verify: {verify:.3f} s ({n / verify:,.0f} events/s)")
    one_core, runs = best(repeat, lambda: clock(lambda: verify_one_core(path)))
    res["verify_one_core"] = {"seconds": one_core, "runs": runs, "events_per_s": n / one_core}
    log(f"verify on one core (the sequential scan): {one_core:.3f} s ({n / one_core:,.0f} events/s)")

    read_s, runs = best(repeat, lambda: clock(lambda: sum(1 for _ in Ledger.open(path).read())))
    res["read_all"] = {"seconds": read_s, "runs": runs, "events_per_s": n / read_s}
    log(f"read back (Ledger.read, all events in order): {read_s:.3f} s ({n / read_s:,.0f} events/s)")
    Ledger.open(path).to_arrow(1, 1)  # imports pyarrow (and pandas, on its first pa.array): once per process
    arrow_s, runs = best(repeat, lambda: clock(lambda: Ledger.open(path).to_arrow()))
    res["read_arrow"] = {"seconds": arrow_s, "runs": runs, "events_per_s": n / arrow_s}
    log(f"read as Arrow (Ledger.to_arrow, all events): {arrow_s:.3f} s ({n / arrow_s:,.0f} events/s)")

    replay, runs = best(repeat, lambda: child("open", str(path))["seconds"])
    res["open_replay"] = {"seconds": replay, "runs": runs, "events_per_s": n / replay}
    log(f"Ledger.open + state, full replay: {replay:.3f} s ({n / replay:,.0f} events/s)")

    if has_projections:
        builds = []
        for i in range(repeat):
            shutil.rmtree(path / "checkpoints", ignore_errors=True)
            (path / "checkpoints").mkdir()
            shutil.rmtree(work / "out", ignore_errors=True)
            builds.append(child("build", str(path), str(work / "out" / "full"), "--full"))
        full = min(b["seconds"] for b in builds)
        rss = max(b["maxrss_kib"] for b in builds) * 1024
        res["full_build"] = {"seconds": full, "runs": [b["seconds"] for b in builds], "events_per_s": n / full,
                             "vs_floor": full / floor, "peak_rss_bytes": rss,
                             "checkpoint_written": builds[-1]["checkpoint_written"]}
        log(f"full build (verify + fold + Parquet/CSV + checkpoint): {full:.3f} s ({n / full:,.0f} events/s), "
            f"{full / floor:.2f}x the raw floor; peak RSS {rss / 2**20:,.0f} MiB")

        res["duckdb_peer"] = duckdb_peer(path, work, res["full_build"])

        phases = child("phases", str(path), str(work / "out" / "phases"), str(work / "out" / "phases-ckpt"))
        res["full_build"]["phases"] = phases
        log("full build step by step: " + ", ".join(f"{k} {v:.3f} s" for k, v in phases.items()))
        ckpts = sorted((path / "checkpoints").iterdir())
        res["full_build"]["checkpoint_bytes"] = ckpts[-1].stat().st_size if ckpts else 0
        has_ckpt = bool(ckpts)
        if has_ckpt:
            opened, runs = best(repeat, lambda: child("open", str(path))["seconds"])
            res["open_checkpoint"] = {"seconds": opened, "runs": runs, "vs_replay": opened / replay}
            log(f"Ledger.open + state from a checkpoint: {opened:.3f} s ({opened / replay:.1%} of a full replay)")
        else:
            res["open_checkpoint"] = {"skipped": "no checkpoint (N below the build's checkpoint interval)"}
            log("Ledger.open from a checkpoint: skipped (no checkpoint at this N)")

        snapshot = work / "out" / "checkpoints.snapshot"
        shutil.copytree(path / "checkpoints", snapshot)
        led = Ledger.open(path)
        append_stream(led, tail)
        del led
        incs = []
        for i in range(repeat):
            shutil.rmtree(path / "checkpoints")
            shutil.copytree(snapshot, path / "checkpoints")
            target = work / "out" / f"inc{i}"
            shutil.copytree(work / "out" / "full", target)
            incs.append(child("build", str(path), str(target)))
        inc = min(b["seconds"] for b in incs)
        res["incremental_build"] = {"new_events": len(tail), "seconds": inc, "runs": [b["seconds"] for b in incs],
                                    "vs_full": inc / full, "events_folded": incs[-1]["events_folded"],
                                    "checkpoint_seq": incs[-1]["checkpoint_seq"],
                                    "checkpoint_written": incs[-1]["checkpoint_written"],
                                    "patched_from": incs[-1].get("patched_from"), "written": incs[-1].get("written")}
        log(f"incremental build after {len(tail):,} new events (1%): {inc:.3f} s ({inc / full:.1%} of a full build)")
        noops = [child("build", str(path), str(work / "out" / f"inc{repeat - 1}")) for _ in range(repeat)]
        noop = min(noops, key=lambda b: b["seconds"])
        res["noop_build"] = {"seconds": noop["seconds"], "runs": [b["seconds"] for b in noops],
                             "events_folded": noop["events_folded"], "peak_rss_bytes": noop["maxrss_kib"] * 1024}
        log(f"build again, no new events: {noop['seconds']:.3f} s, peak RSS {noop['maxrss_kib'] / 1024:,.0f} MiB")
        res["scope"] = scope_queries(path, work / "out" / "full", head, repeat)
    else:
        for key in ("full_build", "open_checkpoint", "incremental_build"):
            res[key] = {"skipped": "projections.build is not importable"}
        log("build sections skipped: projections.build is not importable")
        led = Ledger.open(path)
        append_stream(led, tail)
        del led

    small = work / "small"
    append_stream(Ledger.init(small), stream(1000))
    (work / "bare").mkdir()
    lat = latency({"1k": small, "n": path}, work / "bare", samples)
    res["latency_1k"], res["latency_n"] = lat["1k"], lat["n"]
    for key in ("latency_1k", "latency_n"):
        r = res[key]
        log(f"durable single append on {r['events_in_ledger']:,} events: p50 {r['lib_p50_ms']:.3f} ms, "
            f"p99 {r['lib_p99_ms']:.3f} ms; bare write+fdatasync p50 {r['bare_p50_ms']:.3f} ms, "
            f"p99 {r['bare_p99_ms']:.3f} ms; ratio {r['p50_ratio']:.2f}x")
    growth = res["latency_n"]["lib_p50_ms"] / res["latency_1k"]["lib_p50_ms"]
    res["latency_growth"] = growth
    log(f"append p50 at N vs at 1,000 events: {growth:.2f}x")

    res["hook"] = hook_processes(path, work, head, repeat)

    res["concurrent"] = []
    # `samples` single appends per process: windows long enough for a steady state (one writer's
    # 200 appends take a tenth of a second), the same count for 1 and for 8 writers
    for procs, appends, batch in ((1, max(10, samples), 1), (8, max(10, samples), 1), (4, 10, 1000)):
        shutil.rmtree(work / "concurrent", ignore_errors=True)
        shutil.copytree(small, work / "concurrent")
        r = concurrent(work / "concurrent", procs, appends, batch)
        res["concurrent"].append(r)
        log(f"{procs} process(es) x {appends} appends of {batch}: {r['events_per_s']:,.0f} events/s "
            f"({r['cpu_ms_per_event']:.2f} ms of CPU per event), "
            f"append p50 {r['append_p50_ms']:.2f} ms, p99 {r['append_p99_ms']:.2f} ms, chain verified")
    res["writers_8_vs_1"] = res["concurrent"][1]["events_per_s"] / res["concurrent"][0]["events_per_s"]
    log(f"8 writers vs 1 writer (single durable appends): {res['writers_8_vs_1']:.2f}x the throughput")

    res["legacy_import"] = legacy_import(work, max(1000, n // 10))
    res["baseline_a"] = baseline_a(work, head, res)
    res["baseline_b"] = baseline_b(work, head, res, samples, repeat)
    res["object_store"] = object_store(work, min(n, 100_000), samples)
    res["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return res


def _first_gens(head: list[Event]) -> dict[str, str]:
    """The first generation of each stage in the stream (present in every prefix past it)."""
    found: dict[str, str] = {}
    for ev in head:
        if ev["type"] == "generation.created":
            found.setdefault(ev["data"]["stage"], ev["data"]["gen_id"])
    return found


#: a hook process lasts a fifth of a second, so one scheduling hiccup on a shared machine is a
#: large part of it: the best of this many runs (each a fresh process) is reported
HOOK_RUNS = 10


def hook_processes(path: Path, work: Path, head: list[Event], repeat: int) -> dict[str, Any]:
    """A pipeline step's process, timed from spawn to exit (imports included), at N and at 10,000
    events: `is_materialized` and one durable `record_materialized` (benchmarks/hook_step.py)."""
    small = work / "hook10k"
    shutil.rmtree(small, ignore_errors=True)
    append_stream(Ledger.init(small), stream(min(10_000, len(head))))
    gen = _first_gens(head[:10_000])["draft"]
    out: dict[str, Any] = {}
    for label, ledger in (("n", path), ("10k", small)):
        runs = []
        for i in range(HOOK_RUNS):
            t0 = time.perf_counter()
            stdout = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "hook_step.py"), str(ledger),
                                     f"bench-hook-{label}-{i}", COHORT_A, "draft", gen], cwd=ROOT, check=True,
                                    capture_output=True, text=True).stdout
            wall = time.perf_counter() - t0
            r = orjson.loads(stdout.strip().splitlines()[-1])
            r["wall_seconds"] = wall
            runs.append(r)
        best_run = min(runs, key=lambda r: r["wall_seconds"])
        out[label] = {"wall_seconds": best_run["wall_seconds"],
                      "runs": [r["wall_seconds"] for r in runs], "import_seconds": best_run["import_seconds"],
                      "work_seconds": best_run["work_seconds"], "cpu_seconds": best_run["cpu_seconds"],
                      "peak_rss_bytes": max(r["maxrss_kib"] for r in runs) * 1024}
        log(f"hook process on the {label} ledger: {best_run['wall_seconds'] * 1e3:.0f} ms wall (imports "
            f"{best_run['import_seconds'] * 1e3:.0f} ms, recorder + is_materialized + record "
            f"{best_run['work_seconds'] * 1e3:.0f} ms, CPU {best_run['cpu_seconds'] * 1e3:.0f} ms), "
            f"peak RSS {out[label]['peak_rss_bytes'] / 2**20:,.0f} MiB")
    out["wall_vs_10k"] = out["n"]["wall_seconds"] / out["10k"]["wall_seconds"]
    out["rss_vs_10k"] = out["n"]["peak_rss_bytes"] / out["10k"]["peak_rss_bytes"]
    return out


def scope_queries(path: Path, projection: Path, head: list[Event], repeat: int) -> dict[str, Any]:
    """CohortScope's two pipeline questions from a fresh process (after imports), over the full
    build's projection dir and over the ledger itself."""
    gens = _first_gens(head)
    out: dict[str, Any] = {}
    for label, where in (("projection", projection), ("ledger", path)):
        runs = [child("scope", str(where), COHORT_A, "evaluation", gens["evaluation"]) for _ in range(repeat)]
        best_run = min(runs, key=lambda r: r["seconds"])
        out[label] = {"seconds": best_run["seconds"], "runs": [r["seconds"] for r in runs],
                      "active": best_run["active"], "peak_rss_bytes": best_run["maxrss_kib"] * 1024}
        log(f"CohortScope from the {label}: active_stage_gen_ids ({best_run['active']:,} gens) + origin_metadata "
            f"in {best_run['seconds'] * 1e3:.0f} ms after imports")
    return out


def duckdb_peer(path: Path, work: Path, full: dict[str, Any]) -> dict[str, Any]:
    """The DuckDB peer (benchmarks/duckdb_peer.py) in a fresh process per run, beside the full
    build; its row counts must equal those of the build's own Parquet files."""
    if importlib.util.find_spec("duckdb") is None:
        log("DuckDB peer skipped: duckdb is not installed (pip install -e '.[bench]')")
        return {"skipped": "duckdb is not installed"}
    import pyarrow.parquet as pq

    runs = [child("duckdb", str(path), str(work / "out" / "duckdb")) for _ in range(len(full["runs"]))]
    best_run = min(runs, key=lambda r: r["seconds"])
    for table in ("manifest", "membership"):
        ours = pq.ParquetFile(work / "out" / "full" / f"{table}.parquet").metadata.num_rows
        if best_run[table] != ours:
            raise RuntimeError(f"DuckDB peer: {table} has {best_run[table]} rows, the build's {ours}")
    out = {"seconds": best_run["seconds"], "runs": [r["seconds"] for r in runs], "manifest_rows": best_run["manifest"],
           "membership_rows": best_run["membership"], "peak_rss_bytes": best_run["maxrss_kib"] * 1024,
           "full_build_vs_peer": full["seconds"] / best_run["seconds"], "row_counts_equal": True}
    log(f"DuckDB peer (read_json + SQL -> manifest/membership.parquet): {out['seconds']:.3f} s, "
        f"{out['manifest_rows']:,} + {out['membership_rows']:,} rows (equal to the build's); "
        f"full build {out['full_build_vs_peer']:.2f}x the peer")
    return out


#: below this N the object-store section is skipped: its server start and 8-process runs would
#: dominate a smoke run and say nothing at that size
OBJECT_STORE_MIN_N = 10_000


def object_store(work: Path, events: int, samples: int) -> dict[str, Any]:
    """The s3:// backend beside the file backend on a local SeaweedFS (benchmarks/object_store.py)."""
    from .object_store import measure

    if events < OBJECT_STORE_MIN_N:
        log(f"object store section skipped: N below {OBJECT_STORE_MIN_N:,} (python -m benchmarks.object_store runs it alone)")
        return {"skipped": f"N below {OBJECT_STORE_MIN_N}"}
    try:
        return measure(work, events=events, samples=samples, log=log)
    except RuntimeError as exc:  # no `weed` binary: the s3 extra is not installed
        log(f"object store section skipped: {exc}")
        return {"skipped": str(exc)}


def legacy_import(work: Path, gens: int) -> dict[str, Any]:
    """import-legacy of a data root in every historical shape (benchmarks/import_scale.py)."""
    from .import_scale import measure

    shutil.rmtree(work / "import", ignore_errors=True)
    out = measure(gens, work / "import")
    log(f"import-legacy of {out['gens']:,} gens ({out['events']:,} events): plan {out['plan_seconds']:.2f} s, "
        f"apply {out['apply_seconds']:.2f} s, no-op re-plan {out['replan_seconds']:.2f} s")
    return out


def baseline_a(work: Path, head: list[Event], res: dict[str, Any]) -> dict[str, Any]:
    tree = work / f"baseline-a-{len(head)}"
    stamp = tree / "complete.stamp"
    gens = [ev for ev in head if ev["type"] == "generation.created"]
    digest = hashlib.sha256(b"".join(baselines.metadata_json(ev["data"]).encode() for ev in gens)).hexdigest()
    reused = stamp.is_file() and stamp.read_text() == digest
    if not reused:
        shutil.rmtree(tree, ignore_errors=True)
        tree.mkdir(parents=True)
        t0 = time.perf_counter()
        baselines.write_gens_tree(tree / "data", gens)
        stamp.write_text(digest)
        log(f"baseline A: wrote {len(gens):,} metadata.json files ({time.perf_counter() - t0:.1f} s, not measured)")
    else:
        log(f"baseline A: reusing the identical {len(gens):,}-file tree from a previous run")
    seconds = clock(lambda: baselines.scan_gens_tree(tree / "data", work / "baseline-a.parquet"))
    out: dict[str, Any] = {"generations": len(gens), "seconds": seconds, "tree_reused": reused}
    line = f"baseline A (scan {len(gens):,} metadata.json -> manifest.parquet): {seconds:.3f} s"
    if "seconds" in res["full_build"]:
        out["vs_full_build"] = seconds / res["full_build"]["seconds"]
        out["vs_incremental_build"] = seconds / res["incremental_build"]["seconds"]
        line += (f"; ledger full build is {out['vs_full_build']:.1f}x faster, "
                 f"incremental build {out['vs_incremental_build']:.1f}x faster")
    log(line)
    return out


def baseline_b(work: Path, head: list[Event], res: dict[str, Any], samples: int, repeat: int) -> dict[str, Any]:
    if importlib.util.find_spec("eventsourcing") is None:
        log("baseline B skipped: eventsourcing is not installed (pip install -e '.[bench]')")
        return {"skipped": "eventsourcing is not installed"}
    work.joinpath("peer").mkdir()
    peer = baselines.EventsourcingPeer(work / "peer" / "events.sqlite")
    total = 0.0
    for chunk in batches(iter(head), BATCH):
        t0 = time.perf_counter()
        peer.append(chunk)
        total += time.perf_counter() - t0
    n = len(head)
    read, read_runs = best(repeat, lambda: clock(lambda: peer.read_all()))
    lat = []
    for ev in fresh_drafts("peer", samples):
        t0 = time.perf_counter()
        peer.append([ev])
        lat.append(time.perf_counter() - t0)
    out = {"events": n, "append_seconds": total, "append_events_per_s": n / total, "read_seconds": read,
           "read_runs": read_runs, "read_events_per_s": n / read, "single_p50_ms": percentile(lat, 0.5) * 1e3,
           "single_p99_ms": percentile(lat, 0.99) * 1e3,
           "ledger_append_speedup": res["append_batch"]["events_per_s"] / (n / total),
           "ledger_read_speedup": read / res["read_all"]["seconds"],
           "ledger_arrow_speedup": read / res["read_arrow"]["seconds"],
           "ledger_verify_speedup": read / res["verify"]["seconds"],
           "ledger_single_p50_ratio": res["latency_n"]["lib_p50_ms"] / (percentile(lat, 0.5) * 1e3)}
    log(f"baseline B (eventsourcing + SQLite): append {n / total:,.0f} events/s "
        f"(ledger {out['ledger_append_speedup']:.1f}x), read back {n / read:,.0f} events/s "
        f"(ledger read {out['ledger_read_speedup']:.1f}x, to_arrow {out['ledger_arrow_speedup']:.1f}x, "
        f"verify {out['ledger_verify_speedup']:.1f}x), "
        f"single save p50 {out['single_p50_ms']:.3f} ms")
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="events in the generated ledger")
    ap.add_argument("--work", type=Path, default=ROOT / "bench-out", help="scratch directory")
    ap.add_argument("--results", type=Path, default=None,
                    help="JSON output (default benchmarks/results/bench-<N>.json)")
    ap.add_argument("--docs", type=Path, default=ROOT / "docs" / "benchmarks.md",
                    help="markdown file whose results table is rewritten; 'none' to skip")
    ap.add_argument("--repeat", type=int, default=3, help="runs per timing (the best is reported)")
    ap.add_argument("--samples", type=int, default=200, help="single-event appends per latency figure")
    args = ap.parse_args(argv)
    command = "make bench N=%d" % args.n
    if (args.repeat, args.samples) != (3, 200):  # say exactly what ran when it was not the make target
        command = f"python -m benchmarks.run --n {args.n} --repeat {args.repeat} --samples {args.samples}"
    res = run(args.n, args.work, args.repeat, args.samples)
    res["command"] = command
    results = args.results or ROOT / "benchmarks" / "results" / f"bench-{args.n}.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_bytes(orjson.dumps(res, option=orjson.OPT_INDENT_2) + b"\n")
    log(f"results: {results}")
    if str(args.docs) != "none":
        render_docs(args.docs, res, results.name)
        log(f"table: {args.docs}")


if __name__ == "__main__":
    main()

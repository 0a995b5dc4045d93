"""The report page at scale: `report` on a large cohort vs a build from a checkpoint.

    python -m benchmarks.audit_report --n 1000000        (make bench-report N=1000000)

Builds (or reuses) an N-event ledger from `benchmarks.generate` — its cohort B has about
N/6 active members (reused drafts, essays and evaluations plus new evaluations) — runs one
full build so a checkpoint exists at N, then times, each in a fresh interpreter and best of
`--repeat`, interleaved: a build from that checkpoint with no new events (`projections.build`), and the
report of cohort B (`ledger.report.write_report`, importing matplotlib included). Prints the
figures and writes them to `benchmarks/results/audit-report-<N>.json`. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from ledger import Ledger

from .generate import COHORT_B, batches, stream

RESULTS = Path(__file__).resolve().parent / "results"


def _child(*args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "benchmarks.audit_report", "--child", *args],
                         check=True, capture_output=True)
    return orjson.loads(out.stdout)  # type: ignore[no-any-return]


def _cpu() -> float:
    """CPU seconds of this process and of its reaped children (the report's second-half reader)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def child(kind: str, ledger: str, out: str) -> dict[str, Any]:
    """One measurement in this (fresh) process: wall clock and CPU time (the machine may be shared)."""
    t0, c0 = time.perf_counter(), _cpu()
    if kind == "build":
        from projections.build import build

        build(ledger, out)
        return {"seconds": time.perf_counter() - t0, "cpu": _cpu() - c0}
    from ledger.report import write_report  # matplotlib is part of the report's cost

    done = write_report(Ledger.open(ledger), [COHORT_B], Path(out) / "report.html", Path(out) / "report.md")
    seconds, cpu = time.perf_counter() - t0, _cpu() - c0
    page = (Path(out) / "report.html").stat().st_size
    return {"seconds": seconds, "cpu": cpu, "seq": done.seq, "html_bytes": page}


def ledger_of(n: int, work: Path) -> Path:
    """An n-event generated ledger in `work` (kept and reused by the next run with the same n)."""
    path = work / f"ledger-{n}"
    if path.exists() and Ledger.open(path).head.seq == n:
        return path
    shutil.rmtree(path, ignore_errors=True)
    led = Ledger.init(path)
    for batch in batches(iter(stream(n)), 10_000):
        led.append(batch)
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--work", type=Path, default=Path("bench-out") / "audit")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--child", nargs=3, metavar=("KIND", "LEDGER", "OUT"))
    args = p.parse_args(argv)
    if args.child:
        sys.stdout.write(orjson.dumps(child(*args.child)).decode())
        return
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    path = ledger_of(args.n, args.work)
    print(f"ledger of {args.n:,} events ready in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    out = args.work / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    from projections.build import build

    store = Ledger.open(path).store
    for seq in store.checkpoints():  # a kept ledger's checkpoints may be another version's: start clean
        store.delete_checkpoint(seq)
    build(path, out, full=True)  # writes the checkpoint at N the timed build starts from
    state = Ledger.open(path).state
    members = len(state.cohorts[COHORT_B].members)
    del state
    builds: list[dict[str, Any]] = []
    reports: list[dict[str, Any]] = []
    for _ in range(args.repeat):  # interleaved, so both see the same machine weather
        builds.append(_child("build", str(path), str(out)))
        reports.append(_child("report", str(path), str(out)))
    best_build = min(b["seconds"] for b in builds)
    best_report = min(r["seconds"] for r in reports)
    cpu_build, cpu_report = min(b["cpu"] for b in builds), min(r["cpu"] for r in reports)
    res = {"n": args.n, "cohort": COHORT_B, "members": members,
           "build_from_checkpoint_s": [b["seconds"] for b in builds], "build_cpu_s": [b["cpu"] for b in builds],
           "report_s": [r["seconds"] for r in reports], "report_cpu_s": [r["cpu"] for r in reports],
           "html_bytes": reports[0]["html_bytes"], "ratio": best_report / best_build,
           "cpu_ratio": cpu_report / cpu_build, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"audit-report-{args.n}.json").write_bytes(orjson.dumps(res, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"N = {args.n:,} events; report of {COHORT_B} ({members:,} active members): {best_report:.2f} s; "
          f"build from the checkpoint at N: {best_build:.2f} s; ratio {best_report / best_build:.2f}x "
          f"(target <= 2x); CPU time {cpu_report:.2f} s vs {cpu_build:.2f} s = {cpu_report / cpu_build:.2f}x; "
          f"page {res['html_bytes']:,} bytes")


if __name__ == "__main__":
    main()

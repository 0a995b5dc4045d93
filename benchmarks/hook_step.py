"""One pipeline step's process, as the harness times it (docs/benchmarks.md, "Hook process"):

    python benchmarks/hook_step.py LEDGER RUN_ID COHORT STAGE GEN_ID

imports the hooks, asks whether a gen is materialized and records one event durably, then
prints one JSON line. It is a plain script, not `-m benchmarks.child`: a step imports the
library and nothing of the harness (argparse, the benchmarks package), and the harness times
the process from spawn to exit.
"""

from __future__ import annotations

import resource
import sys
import time


def maxrss_kib() -> int:
    """Peak RSS of this process image, in KiB.

    VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child forked from the
    harness (which holds a million generated events) would report the harness's size.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(ledger: str, run_id: str, cohort: str, stage: str, gen_id: str) -> None:
    t0 = time.perf_counter()
    from ledger.hooks import PipelineRecorder

    t1 = time.perf_counter()
    rec = PipelineRecorder(ledger, run_id)
    materialized = rec.is_materialized(gen_id)
    rec.record_materialized(cohort, stage, gen_id, {"parsed.txt": "0" * 64})
    t2 = time.perf_counter()
    import orjson  # loaded by the library already

    result = {"import_seconds": t1 - t0, "work_seconds": t2 - t1, "materialized": materialized,
              "cpu_seconds": time.process_time(), "maxrss_kib": maxrss_kib()}
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:6])

"""Crash soak: SIGKILL a writer many times and check every acknowledged batch survives.

Run by `make soak` (TRIALS=200 by default), outside the test suite. Each trial starts a
writer that appends batches of random sizes and acknowledges each one after `append`
returns, kills it with SIGKILL at a random moment, sometimes tears the log as a power loss
would, recovers (`repair` or a new writer, at random) and checks: every acknowledged batch
present in full, no batch partial, chain intact, cut bytes kept in events.jsonl.torn-<n>.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers.faults import CrashStats, check_acknowledged, crash_trials  # noqa: E402

from ledger import Ledger  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seed", type=int, default=None, help="default: random (printed, to replay a failure)")
    parser.add_argument("--max-batch", type=int, default=1000, help="largest batch a writer appends")
    parser.add_argument("--max-delay", type=float, default=0.3, help="longest a writer runs before the kill (s)")
    parser.add_argument("--mid-write-every", type=int, default=10,
                        help="aim every N-th kill into a large write (0: never)")
    parser.add_argument("--per-ledger", type=int, default=25,
                        help="trials on one ledger before starting a fresh one (the checks reread the whole log)")
    parser.add_argument("--dir", type=Path, default=None, help="keep the ledgers here (default: a temp dir)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    print(f"soak: {args.trials} trials, seed {seed}", flush=True)
    with tempfile.TemporaryDirectory(prefix="cohort-ledger-soak-") as tmp:
        root = args.dir or Path(tmp)
        rng = random.Random(seed)
        total = CrashStats()
        batches = 0
        started = time.monotonic()
        for n, first in enumerate(range(0, args.trials, args.per_ledger)):
            ledger = Ledger.init(root / f"ledger-{n}").path
            acks = root / f"acks-{n}.jsonl"
            stats = crash_trials(ledger, acks, min(args.per_ledger, args.trials - first), rng,
                                 args.max_batch, args.max_delay, args.mid_write_every)
            batches += check_acknowledged(ledger, acks)
            total.trials += stats.trials
            total.kill_tails += stats.kill_tails
            total.power_tails += stats.power_tails
            total.events += stats.events
            print(f"  {total.trials}/{args.trials} trials", flush=True)
        print(f"ok: {total.trials} SIGKILLs, {total.kill_tails} cut a write part-way, {total.power_tails} simulated "
              f"power-loss tears, all cut and kept; {batches} batches / {total.events} events intact; "
              f"{time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()

"""Fault injection shared by the reliability tests and the soak script (`tests/soak.py`).

Faults that end or constrain a process run in a child interpreter, `python faults.py CMD`:
`write` (the crash writer), `race` and `read` (concurrent writers and readers),
`efbig-retry` (a file-size limit inside one process), `enospc` (a full tmpfs, run inside a
private mount namespace).

The crash writer appends batches whose event ids name the batch and its size, and after each
`append` returns it appends one line to an acknowledgement file and fsyncs it. A line there
is therefore a promise the ledger made ("this batch is durable"), and `check_acknowledged`
holds the ledger to every one.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson

from ledger import ConflictError, Ledger, LedgerEnvironmentError
from ledger.domain.events import envelope_schema
from ledger.log.codec import encode_line
from ledger.log.file_store import FileLogStore

if not __package__:  # run as a script (`python tests/helpers/faults.py CMD`): make `helpers` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers.builders import log_bytes  # noqa: E402

LOG = "events.jsonl"
FAULTS = Path(__file__).resolve()
#: event ids of the crash writer: <tag>-<i>-of-<n>; the tag names the batch
_EVENT_ID = re.compile(r"^(?P<tag>[A-Za-z0-9]+)-(?P<i>\d+)-of-(?P<n>\d+)$")


# -- bytes on disk --------------------------------------------------------------------
def rewrite_checkpoint(ledger: Path, path: Path, edit: Callable[[dict[str, Any]], None], with_key: bool = True) -> None:
    """Edit a checkpoint's body; `with_key`: re-seal it (its mac) as someone holding the
    ledger's checkpoint.key could. Written from docs/reliability.md's description of the mac."""
    header_line, _, body = path.read_bytes().partition(b"\n")
    doc = orjson.loads(body)
    edit(doc)
    body = orjson.dumps(doc)
    header = orjson.loads(header_line)
    if with_key:
        fields = orjson.dumps({k: v for k, v in header.items() if k != "mac"}, option=orjson.OPT_SORT_KEYS)
        key = (ledger / "checkpoint.key").read_bytes()
        header["mac"] = hmac.new(key, fields + b"\n" + body, hashlib.sha256).hexdigest()
    path.write_bytes(orjson.dumps(header) + b"\n" + body)


def dir_snapshot(ledger: Path) -> dict[str, bytes]:
    """Every file of the ledger directory tree and its bytes: 'nothing written' means equal.

    Except the writers' index's `-shm` file: SQLite's shared memory of its WAL mode, which any
    process reading the index (an incremental build, a hook's lookup) rewrites, and which
    SQLite rebuilds from the database and the WAL whenever it is short or stale.
    """
    return {str(p.relative_to(ledger)): p.read_bytes() for p in sorted(ledger.rglob("*"))
            if p.is_file() and not p.name.endswith(".sqlite-shm")}


def torn_files(ledger: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in ledger.glob(LOG + ".torn-*")}


def line_spans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each complete line, end including its `\\n`; line k holds seq k+1."""
    spans, start = [], 0
    while (nl := data.find(b"\n", start)) != -1:
        spans.append((start, nl + 1))
        start = nl + 1
    return spans


# -- the machine refusing -------------------------------------------------------------------
def fsize_limit(limit: int) -> Callable[[], None]:
    """preexec_fn for a child whose writes past `limit` bytes fail with EFBIG (CPython ignores
    SIGXFSZ, so the write returns the error instead of killing the process)."""
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@contextmanager
def append_only(path: Path) -> Iterator[None]:
    """`chattr +a`: the file can be appended to but not truncated (ftruncate fails with EPERM),
    even for root. Skips the test where the filesystem has no such attribute."""
    from helpers.env import unavailable  # only the tests need it (and pytest), not the child processes

    if shutil.which("chattr") is None:
        unavailable("chattr not installed: cannot make ftruncate fail")
    done = subprocess.run(["chattr", "+a", str(path)], capture_output=True)
    if done.returncode != 0:
        unavailable(f"chattr +a not supported here: {done.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-a", str(path)], check=True)


# -- events ---------------------------------------------------------------------------
def draft_events(tag: str, n: int, cohort: str = "crash") -> list[dict[str, Any]]:
    """n valid, independent events whose client ids say which batch they belong to and its size."""
    return [
        {"id": f"{tag}-{i}-of-{n}", "type": "generation.created",
         "data": {"cohort_id": cohort, "stage": "draft", "gen_id": f"{tag}g{i}", "template_id": "t1"}}
        for i in range(n)
    ]


def torn_fragment(ledger: Path, lines: int, rng: random.Random) -> bytes:
    """A strict prefix of a correctly chained next batch of `lines` events: what a writer that
    lost power mid-write leaves behind (complete lines of the batch plus part of the next)."""
    head = Ledger.open(ledger).head
    prev, blob = head.hash, b""
    txn = [head.seq + 1, lines]
    for k in range(lines):
        line, prev = encode_line({
            "seq": head.seq + 1 + k, "id": f"torn{head.seq}x{k}", "type": "generation.created", "v": 1,
            "at": "2026-01-01T00:00:00.000000Z", "by": {}, "txn": txn, "prev": prev,
            "data": {"cohort_id": "torn", "stage": "draft", "gen_id": f"torn{head.seq}x{k}", "template_id": "t1"},
        })
        blob += line
    return blob[: rng.randrange(1, len(blob))]


# -- the crash writer (child process) ----------------------------------------------------
def batch_size(rng: random.Random, max_batch: int) -> int:
    """Mostly small batches, sometimes large ones (a long write is a wider target for the kill).
    A negative max_batch means always exactly -max_batch events."""
    if max_batch < 0:
        return -max_batch
    return rng.randint(1, 8) if rng.random() < 0.7 else rng.randint(1, max_batch)


def crash_writer(ledger: Path, acks: Path, seed: int, max_batch: int) -> None:
    rng = random.Random(seed)
    led = Ledger.open(ledger)
    led.generation("")  # before the kill window opens: the writers' index caught up (or built)
    envelope_schema()  # and the validators built, as a long-running writer has them
    with open(acks, "ab") as ack:
        print("ready", flush=True)
        for b in range(10**9):
            n = batch_size(rng, max_batch)
            tag = f"s{seed}b{b}"
            seqs = led.append(draft_events(tag, n))
            ack.write(orjson.dumps({"tag": tag, "n": n, "seqs": seqs}) + b"\n")
            ack.flush()
            os.fsync(ack.fileno())


#: events per batch when the kill is aimed at a write (~7 MB: the write takes milliseconds)
MID_WRITE_BATCH = 20_000


def kill_writer(ledger: Path, acks: Path, seed: int, rng: random.Random,
                max_batch: int = 400, max_delay: float = 0.4, mid_write: bool = False) -> None:
    """Start a crash writer and SIGKILL it: after a random moment, or (`mid_write`) the instant
    its first, large batch starts reaching the log, which cuts that write part-way."""
    size = (ledger / LOG).stat().st_size
    batch = -MID_WRITE_BATCH if mid_write else max_batch
    proc = subprocess.Popen([sys.executable, str(FAULTS), "write", str(ledger), str(acks), str(seed), str(batch)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ready = proc.stdout.readline() if proc.stdout else b""
        if ready != b"ready\n":
            proc.kill()
            raise AssertionError(f"crash writer did not start: {proc.stderr.read().decode() if proc.stderr else ''}")
        if mid_write:
            while (ledger / LOG).stat().st_size == size and proc.poll() is None:
                pass
        else:
            time.sleep(rng.uniform(0, max_delay))
        if proc.poll() is not None:
            raise AssertionError(f"crash writer died on its own: {proc.stderr.read().decode() if proc.stderr else ''}")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


# -- checks -------------------------------------------------------------------------------
def acknowledged(acks: Path) -> list[dict[str, Any]]:
    """Complete ack lines only: a line cut by the kill was never acknowledged."""
    if not acks.exists():
        return []
    raw = acks.read_bytes()
    return [orjson.loads(line) for line in raw[: raw.rfind(b"\n") + 1].splitlines()]


def check_acknowledged(ledger: Path, acks: Path) -> int:
    """Every acknowledged batch is in the log in full, at its seqs, as one txn; no batch of
    the crash writer is partial. Returns the number of batches found in the log."""
    by_tag: dict[str, list[Any]] = defaultdict(list)
    for ev in Ledger.open(ledger).read():
        m = _EVENT_ID.match(ev.id)
        if m:
            by_tag[m["tag"]].append((int(m["i"]), int(m["n"]), ev.seq, ev.txn))
    for tag, evs in by_tag.items():
        n = evs[0][1]
        assert sorted(i for i, *_ in evs) == list(range(n)), f"batch {tag} is partial: {len(evs)} of {n} events"
        first = min(seq for _, _, seq, _ in evs)
        assert all(txn == (first, n) for *_, txn in evs), f"batch {tag} is not one txn"
    for ack in acknowledged(acks):
        evs = sorted(by_tag.get(ack["tag"], []))
        assert [seq for _, _, seq, _ in evs] == ack["seqs"], f"acknowledged batch {ack['tag']} lost or moved"
    return len(by_tag)


@dataclass
class Recovery:
    cut_bytes: int
    committed_events: int


def recover_and_check(ledger: Path, acks: Path, how: str, rng: random.Random) -> Recovery:
    """Recover after a crash (`repair`, or a new writer's append) and check what it did:
    complete batches untouched, exactly the uncommitted tail cut, and kept in a torn file."""
    before = log_bytes(ledger)
    report = Ledger.open(ledger).verify()  # a reader: must not raise, must not write
    assert log_bytes(ledger) == before
    committed = len(before) - report.tail.bytes
    old_torn = torn_files(ledger)
    if how == "repair":
        Ledger.open(ledger).repair()
    else:
        led = Ledger.open(ledger)
        tag = f"r{rng.randrange(10**9)}"
        seqs = led.append(draft_events(tag, rng.randint(1, 5)))
        with open(acks, "ab") as ack:
            ack.write(orjson.dumps({"tag": tag, "n": len(seqs), "seqs": seqs}) + b"\n")
    after = log_bytes(ledger)
    assert after[:committed] == before[:committed], "recovery changed a committed byte"
    if how == "repair":
        assert len(after) == committed
    new_torn = {k: v for k, v in torn_files(ledger).items() if k not in old_torn}
    if report.tail.bytes:
        assert list(new_torn.values()) == [before[committed:]], "the cut bytes were not kept"
    else:
        assert not new_torn
    final = Ledger.open(ledger).verify()
    assert final.tail.bytes == 0
    check_acknowledged(ledger, acks)
    return Recovery(report.tail.bytes, final.events)


@dataclass
class CrashStats:
    trials: int = 0
    kill_tails: int = 0  # tails a SIGKILL itself left (a write cut part-way)
    power_tails: int = 0  # torn fragments added to simulate power loss mid-write
    events: int = 0


def crash_trials(ledger: Path, acks: Path, trials: int, rng: random.Random,
                 max_batch: int = 400, max_delay: float = 0.4, mid_write_every: int = 0) -> CrashStats:
    """Kill a writer `trials` times (every `mid_write_every`-th kill aimed into a write);
    after each kill maybe tear the log as a power loss would, then recover (repair or a new
    writer, at random) and check every promise."""
    stats = CrashStats()
    base = rng.randrange(10**6) * 10**4
    for t in range(trials):
        mid_write = mid_write_every > 0 and t % mid_write_every == mid_write_every - 1
        kill_writer(ledger, acks, base + t, rng, max_batch, max_delay, mid_write)
        tail = Ledger.open(ledger).verify().tail.bytes
        stats.kill_tails += tail > 0
        if tail == 0 and rng.random() < 0.3:
            with open(ledger / LOG, "ab") as f:
                f.write(torn_fragment(ledger, rng.randint(1, 4), rng))
            stats.power_tails += 1
        stats.events = recover_and_check(ledger, acks, rng.choice(["repair", "append"]), rng).committed_events
        stats.trials += 1
    return stats


# -- racing processes --------------------------------------------------------------------
RACE_KINDS = ("single", "batch", "expected", "stale", "retry")


def race_writer(ledger: Path, out: Path, worker: int, ops: int) -> None:
    """One of many concurrent writers, mixing every kind of append; writes what the ledger
    acknowledged (id -> seq) and every conflict it was told about to `out`."""
    rng = random.Random(worker)
    led = Ledger.open(ledger)
    acked: dict[str, int] = {}
    conflicts: list[tuple[int, int]] = []
    for op in range(ops):
        kind = RACE_KINDS[op % len(RACE_KINDS)] if op < len(RACE_KINDS) else rng.choice(RACE_KINDS)
        events = draft_events(f"w{worker}o{op}", 1 if kind == "single" else rng.randint(2, 12), f"w{worker}")
        if kind in ("expected", "stale"):
            while True:
                seen = led.head.seq
                expected = seen - 1 if kind == "stale" and seen > 0 and not conflicts else seen
                time.sleep(rng.uniform(0, 0.003))  # widen the window in which others append
                try:
                    seqs = led.append(events, expected_seq=expected)
                except ConflictError as exc:
                    assert exc.expected == expected and exc.actual != expected
                    conflicts.append((expected, exc.actual))
                    continue
                assert seqs == list(range(expected + 1, expected + 1 + len(events))), (expected, seqs)
                break
        else:
            seqs = led.append(events)
            if kind == "retry":  # a hook retried after a timeout, from a new process state, stale seq
                again = Ledger.open(ledger).append(events, expected_seq=max(0, seqs[0] - 1))
                assert again == seqs, (again, seqs)
        acked.update({ev["id"]: seq for ev, seq in zip(events, seqs)})
    out.write_bytes(orjson.dumps({"acked": acked, "conflicts": conflicts}))


def race_reader(ledger: Path, out: Path, stop: Path) -> None:
    """Read the log in a loop while writers append (`read` on one Ledger, `head` on another);
    record every batch seen whole or not, and every head seen, until `stop` exists."""
    reader, header = Ledger.open(ledger), Ledger.open(ledger)
    partial: list[Any] = []
    heads: list[tuple[int, str]] = []
    passes = 0
    print("ready", flush=True)
    while True:
        last = stop.exists()
        head = header.head
        heads.append((head.seq, head.hash))
        seen: dict[tuple[int, int], list[int]] = defaultdict(list)
        for ev in reader.read():
            seen[ev.txn].append(ev.seq)
        partial += [[txn, seqs] for txn, seqs in seen.items()
                    if seqs != list(range(txn[0], txn[0] + txn[1]))]
        passes += 1
        if last:
            break
    out.write_bytes(orjson.dumps({"partial": partial, "heads": heads, "passes": passes}))


# -- the same writer retrying after EFBIG ------------------------------------------------------
def efbig_then_retry(ledger: Path, room: int, n: int) -> None:
    """In one process and one Ledger object: an append hits the file-size limit, the limit is
    lifted, the same append is retried. Prints the error, then the retry's seqs, as JSON."""
    led = Ledger.open(ledger)
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, ((ledger / LOG).stat().st_size + room, hard))
    batch = draft_events("retry", n)
    try:
        led.append(batch)
        error = None
    except LedgerEnvironmentError as exc:
        error = str(exc)
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    print(orjson.dumps({"error": error, "seqs": led.append(batch)}).decode())


# -- a full disk ------------------------------------------------------------------------------
def enospc_scenario(root: Path) -> None:
    """Run inside a private mount namespace with a small tmpfs on `root`: fill the disk to
    leave two pages free, append a larger batch through the CLI, free the space, append again.
    Prints what happened as JSON for the test to judge."""
    ledger = Ledger.init(root / "ledger")
    ledger.append(draft_events("first", 3))
    filler = root / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\1" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    os.truncate(filler, max(0, filler.stat().st_size - 8192))
    before = log_bytes(ledger.path)
    cli = [sys.executable, "-m", "ledger", "--ledger", str(ledger.path), "append"]
    full = subprocess.run(cli, input=b"".join(orjson.dumps(e) + b"\n" for e in draft_events("big", 200)),
                          capture_output=True)
    unchanged = log_bytes(ledger.path) == before and not torn_files(ledger.path)
    filler.unlink()
    again = subprocess.run(cli, input=b"".join(orjson.dumps(e) + b"\n" for e in draft_events("big", 200)),
                           capture_output=True)
    print(orjson.dumps({"full_rc": full.returncode, "full_stderr": full.stderr.decode(), "unchanged": unchanged,
                        "again_rc": again.returncode, "events": Ledger.open(ledger.path).verify().events}).decode())


def main(argv: list[str]) -> None:
    if argv[:1] == ["write"]:
        crash_writer(Path(argv[1]), Path(argv[2]), int(argv[3]), int(argv[4]))
    elif argv[:1] == ["race"]:
        race_writer(Path(argv[1]), Path(argv[2]), int(argv[3]), int(argv[4]))
    elif argv[:1] == ["efbig-retry"]:
        efbig_then_retry(Path(argv[1]), int(argv[2]), int(argv[3]))
    elif argv[:1] == ["enospc"]:
        enospc_scenario(Path(argv[1]))
    elif argv[:1] == ["read"]:
        race_reader(Path(argv[1]), Path(argv[2]), Path(argv[3]))
    else:
        sys.exit(f"usage: {Path(__file__).name} write LEDGER ACKS SEED MAX_BATCH | race LEDGER OUT WORKER OPS"
                 " | read LEDGER OUT STOPFILE | efbig-retry LEDGER ROOM N | enospc DIR")


# -- read-only ledgers and checkpoints --------------------------------------------------
def read_only_mount_problem() -> str | None:
    """Why a read-only bind mount cannot be made here (None: it can)."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "unshare/mount not installed"
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True)
    return None if probe.returncode == 0 else f"no mount namespaces here: {probe.stderr.decode().strip()}"


def run_cli_read_only(ledger: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run the CLI with the ledger directory bind-mounted read-only, in a private mount
    namespace (root ignores file modes, so chmod would prove nothing; the mount goes away
    with the process)."""
    script = ('mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"')
    argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(ledger),
            sys.executable, "-m", "ledger", "--ledger", str(ledger), *args]
    return subprocess.run(argv, input=stdin, capture_output=True, timeout=120)


def list_checkpoints(ledger_dir: Path) -> list[Path]:
    """The checkpoint files of a ledger directory, newest first."""
    store = FileLogStore(ledger_dir)
    return [store.checkpoint_path(seq) for seq in store.checkpoints()]


if __name__ == "__main__":
    main(sys.argv[1:])

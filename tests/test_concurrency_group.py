"""Group commit (ledger/log/spool.py): writers that find the lock taken leave their batches for
the lock holder, which commits them with its own under one fdatasync.

Real processes throughout. To make a group form deterministically, the test holds the writing
section itself (a `FileLogStore.writing()` of its own) while the followers start, waits until
their requests are in the spool, and then either appends through the same store (so it leads
them) or lets go (so one of them leads). Crashes are SIGKILLs at the named step, injected in
the child by wrapping the step (the first process to reach it dies, once).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ledger import ConflictError, EventRejected, Ledger
from ledger.log.file_store import FileLogStore
from ledger.log.spool import SPOOL_DIR

WORKER = r"""
import json, os, signal, sys
from ledger import Ledger, LedgerError

path, tag, kind, expected = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
kill_at, marker = os.environ.get("KILL_AT"), os.environ.get("KILL_MARKER", "")

def die_once():
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    os.kill(os.getpid(), signal.SIGKILL)

if kill_at == "answer":  # after the group's lines are durable, before any result is left
    import ledger.log.spool as spool
    real_answer = spool.Request.answer
    def answer(self, result):
        die_once()
        real_answer(self, result)
    spool.Request.answer = answer
elif kill_at == "fdatasync":  # after the group's lines are written, before they are synced
    real_sync = os.fdatasync
    def fdatasync(fd):
        die_once()
        real_sync(fd)
    os.fdatasync = fdatasync

gen = f"g-{tag}"
batches = {
    # no ids (generated ones), and not a no-op if written twice: a duplicate would show
    "swap": [{"type": "generation.reused", "data": {"cohort_id": "shared", "stage": "draft", "gen_id": gen,
                                                    "reason": "manual"}},
             {"type": "generation.removed", "data": {"cohort_id": "shared", "stage": "draft", "gen_id": gen,
                                                     "reason": "r"}}],
    "reject": [{"type": "generation.removed", "data": {"cohort_id": "shared", "stage": "draft", "gen_id": gen,
                                                       "reason": "r"}}],
    "schema": [{"type": "generation.created", "data": {"cohort_id": "shared", "stage": "draft", "gen_id": gen}}],
}
led = Ledger.open(path)
if kind == "loop":
    n = int(expected)
    while not os.path.exists(os.path.join(path, "go")):
        pass
    out = [[f"{tag}-{i}", led.append([{"id": f"{tag}-{i}", "type": "generation.created",
                                       "data": {"cohort_id": "own", "stage": "draft", "gen_id": f"{tag}-{i}",
                                                "template_id": "t"}}])[0]] for i in range(n)]
    print(json.dumps({"seqs": out}))
    sys.exit(0)
try:
    seqs = led.append(batches[kind], expected_seq=None if expected == "-" else int(expected))
except LedgerError as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
else:
    print(json.dumps({"seqs": seqs}))
"""


def _ledger(path: Path, tags: list[str]) -> Path:
    """A ledger where each tag's gen `g-<tag>` exists (in cohort `own`), so `swap` can run."""
    led = Ledger.init(path)
    led.append([{"type": "generation.created", "data": {"cohort_id": "own", "stage": "draft", "gen_id": f"g-{t}",
                                                        "template_id": "t"}} for t in tags])
    return path


def _spawn(path: Path, tag: str, kind: str, expected: str = "-", env: dict[str, str] | None = None
           ) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", WORKER, str(path), tag, kind, expected],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def _requests(path: Path) -> list[str]:
    try:
        return sorted(n for n in os.listdir(path / SPOOL_DIR) if n.endswith(".req"))
    except FileNotFoundError:
        return []


def _wait_for_requests(path: Path, n: int, procs: list[subprocess.Popen[str]]) -> None:
    deadline = time.monotonic() + 60
    while len(_requests(path)) < n:
        for p in procs:
            assert p.poll() is None, p.communicate()
        assert time.monotonic() < deadline, f"only {_requests(path)} spooled"
        time.sleep(0.01)


def _result(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    doc: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return doc


def _events(path: Path) -> list[Any]:
    return list(Ledger.open(path).read())


def _swap_seqs_hold(path: Path, tag: str, seqs: list[int]) -> None:
    """The seqs a `swap` writer got back are its own two events, in order."""
    by_seq = {e.seq: e for e in _events(path)}
    assert [(by_seq[s].type, by_seq[s].data["gen_id"]) for s in seqs] == [
        ("generation.reused", f"g-{tag}"), ("generation.removed", f"g-{tag}")]


def _spool_is_empty(path: Path) -> None:
    assert not (path / SPOOL_DIR).exists() or os.listdir(path / SPOOL_DIR) == []


def test_the_lock_holder_commits_waiting_writers_batches_with_one_fdatasync(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tags = ["a", "b", "c", "lead"]
    path = _ledger(tmp_path / "l", tags)
    store = FileLogStore(path)
    led = Ledger.open(store)
    syncs = []
    real = os.fdatasync
    with store.writing():
        procs = [_spawn(path, t, "swap") for t in tags[:3]]
        _wait_for_requests(path, 3, procs)
        monkeypatch.setattr(os, "fdatasync", lambda fd: (syncs.append(fd), real(fd))[1])
        own = led.append([{"type": "generation.reused", "data": {"cohort_id": "shared", "stage": "draft",
                                                                  "gen_id": "g-lead", "reason": "manual"}}])
        monkeypatch.undo()
    assert len(syncs) == 1, "every batch of the group is made durable by one fdatasync"
    assert own == [11]  # the requests first (made before our batch), then ours
    results = {t: _result(p)["seqs"] for t, p in zip(tags, procs)}
    assert sorted(s for seqs in results.values() for s in seqs) == list(range(5, 11))
    for tag, seqs in results.items():
        _swap_seqs_hold(path, tag, seqs)
    assert Ledger.open(path).verify().events == 11
    _spool_is_empty(path)


def test_a_rejected_and_a_conflicting_request_fail_in_their_own_processes_while_the_rest_commit(
        tmp_path: Path) -> None:
    path = _ledger(tmp_path / "l", ["bad", "late", "shape", "ok", "lead"])
    store = FileLogStore(path)
    led = Ledger.open(store)
    with store.writing():
        procs = {"bad": _spawn(path, "bad", "reject"), "late": _spawn(path, "late", "swap", expected="0"),
                 "shape": _spawn(path, "shape", "schema")}
        _wait_for_requests(path, 3, list(procs.values()))
        procs["ok"] = _spawn(path, "ok", "swap")
        _wait_for_requests(path, 4, list(procs.values()))
        own = led.append([{"type": "generation.reused", "data": {"cohort_id": "shared", "stage": "draft",
                                                                  "gen_id": "g-lead", "reason": "manual"}}])
    out = {t: _result(p) for t, p in procs.items()}
    assert own == [8]
    with pytest.raises(EventRejected) as alone:  # what the rejected writer would have met alone
        Ledger.open(path).append([{"type": "generation.removed", "data": {
            "cohort_id": "shared", "stage": "draft", "gen_id": "g-bad", "reason": "r"}}])
    assert out["bad"] == {"error": "EventRejected", "message": str(alone.value)}
    with pytest.raises(EventRejected) as alone:  # the schema is checked by whoever commits the batch
        Ledger.open(path).append([{"type": "generation.created", "data": {
            "cohort_id": "shared", "stage": "draft", "gen_id": "g-shape"}}])
    assert out["shape"] == {"error": "EventRejected", "message": str(alone.value)}
    assert out["late"] == {"error": "ConflictError", "message": str(ConflictError(0, 5))}
    _swap_seqs_hold(path, "ok", out["ok"]["seqs"])
    assert out["ok"]["seqs"] == [6, 7]
    assert Ledger.open(path).verify().events == 8
    _spool_is_empty(path)


@pytest.mark.parametrize("kill_at", ["answer", "fdatasync"])
def test_a_leader_killed_before_answering_loses_and_duplicates_nothing(tmp_path: Path, kill_at: str) -> None:
    """The leader dies after writing every request's lines (synced, or not yet): each waiting
    writer finds no result, appends its batch itself, recognises its own (generated) ids in
    the log and returns their original seqs; no batch is there twice."""
    tags = ["a", "b", "c", "d"]
    path = _ledger(tmp_path / "l", tags)
    env = {"KILL_AT": kill_at, "KILL_MARKER": str(tmp_path / "killed")}
    with FileLogStore(path).writing():
        procs = [_spawn(path, t, "swap", env=env) for t in tags]
        _wait_for_requests(path, 4, procs)
    for p in procs:
        p.wait(timeout=120)
    killed = [t for t, p in zip(tags, procs) if p.returncode == -signal.SIGKILL]
    assert len(killed) == 1 and (tmp_path / "killed").exists()
    events = Ledger.open(path).verify().events
    survivors = {t: _result(p)["seqs"] for t, p in zip(tags, procs) if t not in killed}
    for tag, seqs in survivors.items():
        _swap_seqs_hold(path, tag, seqs)
    # the dead leader wrote the whole group in one write: its own batch is committed too, once
    assert events == len(tags) + 2 * len(tags)
    written = [(e.type, e.data["gen_id"]) for e in _events(path)[len(tags):]]
    assert sorted(written) == sorted((k, f"g-{t}") for t in tags for k in ("generation.reused", "generation.removed"))
    _spool_is_empty(path)


def test_a_writer_killed_while_waiting_leaves_nothing_behind(tmp_path: Path) -> None:
    """Its request is dropped unanswered (nobody holds its FIFO: nobody was promised it), and
    what crashed writers left in the spool (a half-written request, an answer nobody will
    read) is swept."""
    path = _ledger(tmp_path / "l", ["dead", "lead"])
    store = FileLogStore(path)
    led = Ledger.open(store)
    with store.writing():
        proc = _spawn(path, "dead", "swap")
        _wait_for_requests(path, 1, [proc])
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        (path / SPOOL_DIR / "00000000000000000001-1-00000000.req.tmp").write_bytes(b'{"tok')
        (path / SPOOL_DIR / "00000000000000000002-1-00000000.res").write_bytes(b'{"seqs":[7]}')
        own = led.append([{"type": "generation.reused", "data": {"cohort_id": "shared", "stage": "draft",
                                                                  "gen_id": "g-lead", "reason": "manual"}}])
    assert own == [3]
    assert Ledger.open(path).verify().events == 3
    _spool_is_empty(path)


def test_eight_writers_get_gapless_seqs_a_whole_chain_and_each_its_own_seqs(tmp_path: Path) -> None:
    path = Ledger.init(tmp_path / "l").path
    n = 25
    procs = [_spawn(path, f"w{i}", "loop", expected=str(n)) for i in range(8)]
    time.sleep(0.5)
    (path / "go").touch()
    got = {i: _result(p)["seqs"] for i, p in enumerate(procs)}
    (path / "go").unlink()
    assert sorted(seq for pairs in got.values() for _, seq in pairs) == list(range(1, 8 * n + 1))
    ids = {e.seq: e.id for e in _events(path)}
    for pairs in got.values():
        assert all(ids[seq] == event_id for event_id, seq in pairs)
    assert Ledger.open(path).verify().events == 8 * n
    _spool_is_empty(path)


def test_waiting_works_with_descriptor_numbers_past_fd_setsize(tmp_path: Path) -> None:
    """A long-running process may hold more than 1024 descriptors: a waiting writer's FIFO then
    gets a number select() refuses (it used to fail the append with ValueError)."""
    padding = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        path = Ledger.init(tmp_path / "l").path
        errors: list[BaseException] = []

        def writer(w: int) -> None:
            try:
                led = Ledger.open(path)
                for b in range(20):
                    led.append([{"type": "generation.created", "data": {
                        "cohort_id": "c", "stage": "draft", "gen_id": f"g{w}-{b}", "template_id": "t"}}])
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert Ledger.open(path).verify().events == 6 * 20
    finally:
        for fd in padding:
            os.close(fd)

"""The core commands as a new user meets them.

A new user's session and concurrent appends run as real `cohort-ledger` processes; the
detailed matrix (every flag, every bad input) runs the same `main()` inside the test process,
because an interpreter start-up per case would cost most of the suite's time budget.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import orjson
import pyarrow.parquet as pq
import pytest

from helpers.builders import created, event, jsonl, log_bytes, run_cli
from ledger import Ledger
from ledger.cli import main

Run = Callable[..., "subprocess.CompletedProcess[bytes]"]

ENVELOPE_KEYS = {"seq", "id", "type", "v", "at", "by", "txn", "data", "prev", "hash"}


def ok(r: subprocess.CompletedProcess[bytes]) -> str:
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode()


def one_line_error(r: subprocess.CompletedProcess[bytes], code: int) -> str:
    """The process failed with `code` and said why in exactly one line on stderr."""
    err = r.stderr.decode()
    assert r.returncode == code, (r.returncode, err, r.stdout)
    assert err.startswith("cohort-ledger: error: ") and err.count("\n") == 1, err
    return err


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]) -> Run:
    """`cohort-ledger ARGS` run by `main()` in this process, with `stdin` as its standard input."""
    def run(*args: str, ledger: Path | None = None, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        argv = [*(["--ledger", str(ledger)] if ledger else []), *args]
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        try:
            main(argv)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsysbinary.readouterr()
        return subprocess.CompletedProcess(argv, code, out, err)
    return run


@pytest.fixture
def led(tmp_path: Path) -> Path:
    return Ledger.init(tmp_path / "l").path


# -- a new user's session, in real processes -----------------------------------------------------
def test_a_new_users_session(tmp_path: Path) -> None:
    led = tmp_path / "ledger"
    assert "stages draft, essay, evaluation" in ok(run_cli("init", ledger=led))
    ok(run_cli("append", ledger=led, stdin=jsonl(created("A", "draft", "d1"), created("A", "essay", "e1", "d1"))))
    batch = tmp_path / "batch.jsonl"
    batch.write_bytes(jsonl(event("generation.reused", cohort_id="B", stage="essay", gen_id="e1", reason="manual")))
    assert "head seq 3" in ok(run_cli("append", str(batch), ledger=led))
    head = Ledger.open(led).head
    out = ok(run_cli("verify", "--expect-head", head.hash, ledger=led))
    assert out == f"ok: 3 events, head seq 3 hash {head.hash}\n"
    assert len(ok(run_cli("log", ledger=led)).splitlines()) == 3

    before = log_bytes(led)
    err = one_line_error(run_cli("append", ledger=led, stdin=jsonl(created("A", "draft", "d2"),
                                                                     created("../x", "draft", "d3"))), 2)
    assert "event #2" in err and "cohort_id" in err
    assert "event #1" in one_line_error(run_cli("append", ledger=led, stdin=b"{oops\n"), 2)
    assert log_bytes(led) == before

    (led / "events.jsonl").write_bytes(before + before[:25])  # a crashed writer's partial line
    r = run_cli("verify", ledger=led)
    assert ok(r).startswith("ok: 3 events, head seq 3") and b"tail: 25 uncommitted bytes" in r.stderr
    assert "cut 25 bytes" in ok(run_cli("repair", ledger=led))
    assert log_bytes(led) == before

    tampered = bytearray(before)
    tampered[before.index(b'"gen_id":"e1"') + 10] = ord("E")
    (led / "events.jsonl").write_bytes(bytes(tampered))
    assert "corrupt at seq 2" in one_line_error(run_cli("verify", ledger=led), 1)
    one_line_error(run_cli("verify", "--expect-head", head.hash, ledger=led), 1)


# -- init -----------------------------------------------------------------------------------
def test_init_defaults_and_json(cli: Run, tmp_path: Path) -> None:
    out = ok(cli("init", ledger=tmp_path / "a"))
    config = Ledger.open(tmp_path / "a").config
    assert f"({config.ledger_id}), stages draft, essay, evaluation" in out
    assert config.parents == {"essay": "draft", "evaluation": "essay"}
    info = orjson.loads(ok(cli("init", "--json", ledger=tmp_path / "b")))
    assert info["stages"] == ["draft", "essay", "evaluation"] and info["ledger"] == str(tmp_path / "b")


def test_init_location_from_env_and_default(tmp_path: Path) -> None:
    ok(run_cli("init", env={"COHORT_LEDGER": str(tmp_path / "from-env")}))
    assert (tmp_path / "from-env" / "ledger.json").is_file()
    env = {k: v for k, v in os.environ.items() if k != "COHORT_LEDGER"}
    ok(subprocess.run([sys.executable, "-m", "ledger", "init"], cwd=tmp_path, capture_output=True, env=env))
    assert (tmp_path / "ledger" / "ledger.json").is_file()


def test_init_stages_and_parents(cli: Run, tmp_path: Path) -> None:
    ok(cli("init", "--stages", "a,b,c", "--parents", "b=a,c=b", ledger=tmp_path / "l"))
    config = Ledger.open(tmp_path / "l").config
    assert (config.stages, config.parents) == (("a", "b", "c"), {"b": "a", "c": "b"})


@pytest.mark.parametrize("args, says", [
    (["--parents", "essay=nope"], "names an unknown stage"),
    (["--parents", "draft=essay"], "must come before"),
    (["--parents", "essay"], "is not CHILD=PARENT"),
    (["--stages", "a,../b"], "not a safe identifier"),
    (["--stages", ","], "at least one stage"),
])
def test_init_bad_stage_graph(cli: Run, tmp_path: Path, args: list[str], says: str) -> None:
    assert says in one_line_error(cli("init", *args, ledger=tmp_path / "l"), 2)
    assert not (tmp_path / "l").exists()


def test_init_refuses_an_existing_ledger(cli: Run, led: Path) -> None:
    before = (led / "ledger.json").read_bytes()
    assert "already exists" in one_line_error(cli("init", ledger=led), 2)
    assert (led / "ledger.json").read_bytes() == before


# -- append ---------------------------------------------------------------------------------
def test_append_from_stdin_and_from_file(cli: Run, led: Path, tmp_path: Path) -> None:
    out = ok(cli("append", ledger=led, stdin=jsonl(created("A", "draft", "d1"), created("A", "draft", "d2"))))
    assert out.startswith("appended 2 event(s); head seq 2 hash ")
    batch = tmp_path / "batch.jsonl"
    batch.write_bytes(jsonl({**created("A", "essay", "e1", parent="d1"), "id": "hook/e1",
                             "by": {"actor": "pipeline", "run_id": "r7"}}))
    info = orjson.loads(ok(cli("append", str(batch), "--json", ledger=led)))
    head = Ledger.open(led).head
    assert info == {"seqs": [3], "written": 1, "head": {"seq": 3, "hash": head.hash}}
    before = log_bytes(led)
    out = ok(cli("append", str(batch), ledger=led))  # a retry: idempotent
    assert "appended 0 event(s), 1 already recorded (no-op); head seq 3" in out
    assert log_bytes(led) == before
    (ev,) = Ledger.open(led).read(3)
    assert (ev.id, ev.by) == ("hook/e1", {"actor": "pipeline", "run_id": "r7"})


def test_append_expected_seq(cli: Run, led: Path) -> None:
    ok(cli("append", "--expected-seq", "0", ledger=led, stdin=jsonl(created("A", "draft", "d1"))))
    before = log_bytes(led)
    err = one_line_error(cli("append", "--expected-seq", "0", ledger=led,
                                 stdin=jsonl(created("A", "draft", "d2"))), 1)
    assert "conflict: expected last seq 0, ledger is at 1" in err
    assert log_bytes(led) == before
    ok(cli("append", "--expected-seq", "1", ledger=led, stdin=jsonl(created("A", "draft", "d2"))))


def test_append_without_a_ledger_or_file(cli: Run, tmp_path: Path, led: Path) -> None:
    err = one_line_error(cli("append", ledger=tmp_path / "none", stdin=jsonl(created("A", "draft", "d1"))), 2)
    assert "is not a ledger" in err and not (tmp_path / "none").exists()
    r = cli("append", str(tmp_path / "missing.jsonl"), ledger=led)
    assert r.returncode == 2 and b"missing.jsonl" in r.stderr and log_bytes(led) == b""


def test_concurrent_cli_appends(led: Path, tmp_path: Path) -> None:
    procs = []
    for p in range(6):
        f = tmp_path / f"b{p}.jsonl"
        f.write_bytes(jsonl(*(created(f"c{p}", "draft", f"d{p}-{k}") | {"id": f"p{p}/{k}"} for k in range(3))))
        procs.append(subprocess.Popen([sys.executable, "-m", "ledger", "--ledger", str(led), "append", str(f)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    assert "ok: 18 events, head seq 18" in ok(run_cli("verify", ledger=led))
    events = orjson.loads(ok(run_cli("log", "--json", ledger=led)))
    assert sorted(e["id"] for e in events) == sorted(f"p{p}/{k}" for p in range(6) for k in range(3))
    for e in events:  # each process's batch is one contiguous txn
        p, k = map(int, e["id"][1:].split("/"))
        assert e["txn"] == [e["seq"] - k, 3]


# -- log -----------------------------------------------------------------------------------
def test_log_filters_and_json(cli: Run, led: Path) -> None:
    assert orjson.loads(ok(cli("log", "--json", ledger=led))) == []
    ok(cli("append", ledger=led, stdin=jsonl(event("cohort.opened", cohort_id="A", description="Zürich ✓"),
                                                 created("A", "draft", "d1"), created("B", "draft", "d2"))))
    ok(cli("append", ledger=led, stdin=jsonl(event("generation.reused", cohort_id="B", stage="draft",
                                                       gen_id="d1", reason="curated"))))
    lines = ok(cli("log", ledger=led)).splitlines()
    assert len(lines) == 4 and "cohort.opened" in lines[0] and "Zürich ✓" in lines[0]
    assert [int(line.split()[0]) for line in ok(cli("log", "--from", "3", ledger=led)).splitlines()] == [3, 4]

    events = orjson.loads(ok(cli("log", "--json", ledger=led)))
    assert isinstance(events, list) and [e["seq"] for e in events] == [1, 2, 3, 4]
    assert all(set(e) == ENVELOPE_KEYS for e in events)
    assert events[3]["txn"] == [4, 1] and events[0]["data"]["description"] == "Zürich ✓"
    assert [e["hash"] for e in events] == [e.hash for e in Ledger.open(led).read()]

    def seqs(*args: str) -> list[int]:
        return [e["seq"] for e in orjson.loads(ok(cli("log", "--json", *args, ledger=led)))]

    assert seqs("--type", "generation.created") == [2, 3]
    assert seqs("--type", "generation.created", "--type", "cohort.opened") == [1, 2, 3]
    assert seqs("--cohort", "B") == [3, 4]
    assert seqs("--cohort", "B", "--type", "generation.reused", "--from", "2") == [4]
    assert seqs("--cohort", "nobody") == []
    assert ok(cli("log", "--from", "9", ledger=led)) == ""


def test_log_parquet_export(cli: Run, led: Path, tmp_path: Path) -> None:
    ok(cli("append", ledger=led, stdin=jsonl(event("cohort.opened", cohort_id="A"), created("A", "draft", "d1"),
                                                 created("B", "draft", "d2"))))
    out = tmp_path / "log.parquet"
    summary = orjson.loads(ok(cli("log", "--format", "parquet", "--out", str(out), "--json", ledger=led)))
    assert summary == {"events": 3, "last_seq": 3, "out": str(out), "bytes": out.stat().st_size}
    table = pq.read_table(out)
    assert table.equals(Ledger.open(led).to_arrow())
    listed = orjson.loads(ok(cli("log", "--json", "--cohort", "A", "--type", "generation.created", ledger=led)))
    ok(cli("log", "--format", "parquet", "--out", str(out), "--cohort", "A", "--type", "generation.created",
           "--from", "2", ledger=led))
    assert pq.read_table(out)["hash"].to_pylist() == [e["hash"] for e in listed] and len(listed) == 1
    assert "wrote 1 event(s), last seq 2" in ok(cli("log", "--format", "parquet", "--out", str(out), "--cohort", "A",
                                                    "--from", "2", ledger=led))


@pytest.mark.parametrize("args, says", [
    (["--format", "parquet"], "--format parquet needs --out FILE"),
    (["--out", "x.parquet"], "--out is only for --format parquet"),
    (["--format", "parquet", "--out", "{led}/events.jsonl"], "one of the ledger's own files"),
    (["--format", "parquet", "--out", "{led}/checkpoints/x.parquet"], "one of the ledger's own files"),
    (["--format", "parquet", "--out", "{tmp}/nowhere/x.parquet"], "does not exist"),
    (["--format", "parquet", "--out", "{tmp}"], "is a directory, not a file"),
])
def test_log_parquet_refuses_bad_targets(cli: Run, led: Path, tmp_path: Path, args: list[str], says: str) -> None:
    ok(cli("append", ledger=led, stdin=jsonl(event("cohort.opened", cohort_id="A"))))
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    err = one_line_error(cli("log", *[a.format(led=led, tmp=tmp_path) for a in args], ledger=led), 2)
    assert says in err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


# -- verify and repair ------------------------------------------------------------------------
def test_verify_text_json_and_expect_head(cli: Run, led: Path) -> None:
    ok(cli("append", ledger=led, stdin=jsonl(created("A", "draft", "d1"), created("A", "draft", "d2"))))
    head = Ledger.open(led).head
    assert ok(cli("verify", ledger=led)) == f"ok: 2 events, head seq 2 hash {head.hash}\n"
    info = orjson.loads(ok(cli("verify", "--json", ledger=led)))
    assert info == {"ok": True, "seq": 2, "hash": head.hash, "events": 2, "tail_bytes": 0, "tail_lines": 0}
    ok(cli("verify", "--expect-head", head.hash, ledger=led))
    ok(cli("verify", "--expect-head", head.hash.upper(), ledger=led))
    wrong = "0" * 64
    err = one_line_error(cli("verify", "--expect-head", wrong, ledger=led), 1)
    assert f"head hash {head.hash} (seq 2) is not the expected {wrong}" in err
    r = cli("verify", "--json", "--expect-head", wrong, ledger=led)
    assert r.returncode == 1 and orjson.loads(r.stdout)["ok"] is False


def test_verify_names_a_tampered_seq(cli: Run, led: Path) -> None:
    ok(cli("append", ledger=led, stdin=jsonl(created("A", "draft", "d1"))))
    ok(cli("append", ledger=led, stdin=jsonl(created("A", "draft", "d2"), created("A", "draft", "d3"))))
    data = bytearray(log_bytes(led))
    data[data.index(b'"gen_id":"d2"') + 10] = ord("x")
    (led / "events.jsonl").write_bytes(bytes(data))
    err = one_line_error(cli("verify", ledger=led), 1)
    assert "events.jsonl is corrupt at seq 2: hash does not match" in err
    err = one_line_error(cli("append", ledger=led, stdin=jsonl(created("A", "draft", "d4"))), 1)
    assert "corrupt at seq 2" in err
    assert "corrupt at seq 2" in one_line_error(cli("repair", ledger=led), 1)
    assert log_bytes(led) == bytes(data)


def test_torn_tail_verify_and_repair(cli: Run, led: Path) -> None:
    ok(cli("append", ledger=led, stdin=jsonl(created("A", "draft", "d1"))))
    assert ok(cli("repair", ledger=led)).startswith("nothing to repair; head seq 1 hash ")
    committed = log_bytes(led)
    ok(cli("append", ledger=led, stdin=jsonl(created("A", "draft", "d2"), created("A", "draft", "d3"))))
    full = log_bytes(led)
    torn = full[:len(committed) + (len(full) - len(committed)) * 3 // 4]  # mid second line
    (led / "events.jsonl").write_bytes(torn)
    cut = len(torn) - len(committed)

    r = cli("verify", ledger=led)
    head = Ledger.open(led).head
    assert ok(r) == f"ok: 1 events, head seq 1 hash {head.hash}\n"
    assert r.stderr.decode() == (f"tail: {cut} uncommitted bytes (1 complete lines of an incomplete batch) "
                                 "after the last complete batch\n")
    assert orjson.loads(ok(cli("verify", "--json", ledger=led)))["tail_bytes"] == cut
    assert [e["seq"] for e in orjson.loads(ok(cli("log", "--json", ledger=led)))] == [1]
    assert log_bytes(led) == torn  # readers never cut

    out = ok(cli("repair", ledger=led))
    assert out == (f"cut {cut} bytes (1 complete lines of an incomplete batch) into events.jsonl.torn-1; "
                   f"head seq 1 hash {head.hash}\n")
    assert (led / "events.jsonl.torn-1").read_bytes() == torn[len(committed):]
    assert log_bytes(led) == committed
    (led / "events.jsonl").write_bytes(torn)
    info = orjson.loads(ok(cli("repair", "--json", ledger=led)))
    assert info == {"seq": 1, "hash": head.hash, "cut_bytes": cut, "cut_lines": 1, "torn_file": "events.jsonl.torn-2"}


# -- bad input: exit 2, one line naming the event, nothing written --------------------------------
GOOD = orjson.dumps(created("A", "draft", "d9"))


def _line(**data: object) -> bytes:
    return orjson.dumps(created("A", "draft", "d1") | {"data": {**created("A", "draft", "d1")["data"], **data}})


BAD_INPUT = {
    "malformed JSON": (GOOD + b'\n{"type": "cohort.opened", \n', 2, "not valid JSON"),
    "non-object line": (b"[1, 2]\n", 1, "expected a JSON object, got list"),
    "string line": (GOOD + b'\n"hello"\n', 2, "expected a JSON object, got str"),
    "unknown type": (b'{"type":"cohort.deleted","data":{"cohort_id":"A"}}\n', 1, "unknown event type 'cohort.deleted'"),
    "unknown envelope key": (b'{"type":"cohort.opened","data":{"cohort_id":"A"},"seq":7}\n', 1,
                             "unknown envelope key(s) ['seq']"),
    "unknown data key": (_line(colour="red"), 1, "data.colour: Extra inputs are not permitted"),
    "missing type": (b'{"data":{"cohort_id":"A"}}\n', 1, "missing key 'type'"),
    "missing data key": (b'{"type":"cohort.opened","data":{}}\n', 1, "data.cohort_id: Field required"),
    "replicate as string": (_line(replicate="1"), 1, "data.replicate: Input should be a valid integer"),
    "replicate zero": (_line(replicate=0), 1, "data.replicate: Input should be greater than or equal to 1"),
    "replicate bool": (_line(replicate=True), 1, "data.replicate: Input should be a valid integer"),
    "replicate float": (_line(replicate=1.0), 1, "data.replicate: Input should be a valid integer"),
    "data not an object": (b'{"type":"cohort.opened","data":["A"]}\n', 1, "data: must be a JSON object"),
    "unsafe event id": (b'{"type":"cohort.opened","data":{"cohort_id":"A"},"id":"a b"}\n', 1, "id: must be 1-256 printable ASCII"),
    "event id with a newline": (b'{"type":"cohort.opened","data":{"cohort_id":"A"},"id":"a\\nb"}\n', 1,
                                "id: must be 1-256 printable ASCII"),
    "blank line in the middle": (GOOD + b"\n\n" + GOOD + b"\n", 2, "empty line"),
    "whitespace line": (GOOD + b"\n  \t\n", 2, "empty line"),
    "domain rule": (GOOD + b"\n" + orjson.dumps(created("A", "essay", "e1", parent="nope")) + b"\n", 2,
                    "parent nope does not exist"),
}
UNSAFE_IDS = ["../x", "a/b", "a b", "-x", "=cmd", "+1", "@x", "café", "x" * 129, "", ".hidden", "a\nb", "a\\b"]


def _assert_rejected(cli: Run, led: Path, stdin: bytes, k: int, says: str) -> None:
    ok(cli("append", ledger=led, stdin=jsonl(created("A", "draft", "d0"))))
    before = log_bytes(led)
    err = one_line_error(cli("append", ledger=led, stdin=stdin), 2)
    assert f"event #{k}" in err and says in err, err
    assert log_bytes(led) == before


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_refused_whole(cli: Run, led: Path, case: str) -> None:
    stdin, k, says = BAD_INPUT[case]
    _assert_rejected(cli, led, stdin, k, says)


@pytest.mark.parametrize("unsafe", UNSAFE_IDS, ids=[repr(u)[:20] for u in UNSAFE_IDS])
def test_unsafe_ids_are_refused(cli: Run, led: Path, unsafe: str) -> None:
    stdin = GOOD + b"\n" + orjson.dumps(created("A", "draft", unsafe)) + b"\n"
    _assert_rejected(cli, led, stdin, 2, "data.gen_id: String should match pattern")


def test_longest_safe_id_is_accepted(cli: Run, led: Path) -> None:
    longest = "a" + "-._9Z" * 25 + "xy"
    assert len(longest) == 128
    ok(cli("append", ledger=led, stdin=jsonl(created(longest, "draft", longest))))
    assert Ledger.open(led).state.cohorts[longest].members == {longest: 1}


def test_empty_batch(cli: Run, led: Path) -> None:
    for stdin in (b"", b"\n"):
        err = one_line_error(cli("append", ledger=led, stdin=stdin), 2)
        assert "empty" in err
    assert log_bytes(led) == b""

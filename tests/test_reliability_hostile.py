"""Hostile input through the real CLI: each is refused with exit 2 and a one-line reason, and
nothing is written (every byte of the ledger directory compared)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from helpers.builders import created, jsonl, run_cli
from helpers.env import unavailable
from helpers.faults import dir_snapshot, read_only_mount_problem, run_cli_read_only

from ledger import Ledger
from ledger.cli.core import MAX_LINE_BYTES

VALID = created("A", "draft", "d9")


def with_data(**changes: Any) -> dict[str, Any]:
    return {**VALID, "data": {**VALID["data"], **changes}}


def without_data(key: str) -> dict[str, Any]:
    return {**VALID, "data": {k: v for k, v in VALID["data"].items() if k != key}}


BAD_IDS = {
    "slash": "a/b", "dotdot": "..", "dot-dot-slash": "../etc", "space": "a b", "NUL": "a\x00b",
    "non-ASCII": "caf\u00e9", "129 chars": "x" * 129, "empty": "", "newline": "a\nb",
    "formula =": "=HYPERLINK(1)", "formula +": "+1", "formula @": "@SUM", "formula -": "-2",
}

#: name -> the bytes fed to `append` on stdin
CASES: dict[str, bytes] = {
    "malformed JSON": b'{"type": "generation.created", "data": {\n',
    "trailing garbage": jsonl(VALID).rstrip(b"\n") + b" x\n",
    "JSON array line": b"[1, 2, 3]\n",
    "JSON string line": b'"generation.created"\n',
    "JSON null line": b"null\n",
    "unknown type": jsonl({**VALID, "type": "generation.deleted"}),
    "unknown envelope key": jsonl({**VALID, "seq": 7}),
    "unknown data key": jsonl(with_data(colour="red")),
    "missing type": jsonl({"data": VALID["data"]}),
    "missing data": jsonl({"type": "generation.created"}),
    "missing data key": jsonl(without_data("template_id")),
    "data not an object": jsonl({**VALID, "data": ["A", "draft"]}),
    "replicate as string": jsonl(with_data(replicate="1")),
    "replicate as bool": jsonl(with_data(replicate=True)),
    "replicate zero": jsonl(with_data(replicate=0)),
    "replicate as float": jsonl(with_data(replicate=1.5)),
    "replicate beyond 64 bits": jsonl(VALID).replace(b'"template_id"', b'"replicate":' + b"9" * 30 + b',"template_id"'),
    "gen_id as number": jsonl(with_data(gen_id=5)),
    "event id with space": jsonl({**VALID, "id": "retry 1"}),
    "event id non-ASCII": jsonl({**VALID, "id": "r\u00e9try"}),
    "event id as number": jsonl({**VALID, "id": 7}),
    "unknown provenance key": jsonl({**VALID, "by": {"actor": "me", "host": "x"}}),
    "non-UTF-8 bytes": jsonl(VALID).replace(b'"d9"', b'"d\xff\xfe9"'),
    "UTF-8 BOM": b"\xef\xbb\xbf" + jsonl(VALID),
    "deeply nested": b'{"type":"cohort.opened","data":{"cohort_id":"A","spec":'
                     + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}}\n",
    "NaN": b'{"type":"cohort.opened","data":{"cohort_id":"A","spec":{"x":NaN}}}\n',
    "empty batch": b"",
    "only a newline": b"\n",
    "empty line inside": jsonl(VALID) + b"\n" + jsonl(created("A", "draft", "d8")),
    "second event bad": jsonl(created("A", "draft", "d8"), with_data(gen_id="../x")),
    "duplicate id in batch": jsonl({**created("A", "draft", "d7"), "id": "x"}, {**VALID, "id": "x"}),
    "known id, other payload": jsonl({**VALID, "id": "first"}),
    "unknown stage": jsonl(with_data(stage="review")),
    "line over the limit": jsonl(with_data(template_id="t" * MAX_LINE_BYTES)),
    **{f"{field} {name}": jsonl(with_data(**{field: bad})) for name, bad in BAD_IDS.items()
       for field in ("gen_id",)},
    **{f"{field} {name}": jsonl(with_data(**{field: bad})) for name, bad in BAD_IDS.items()
       if name in ("slash", "formula =") for field in ("cohort_id", "template_id", "parent_gen_id")},
}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ledger with one batch, including the client id `first`."""
    ledger = Ledger.init(tmp_path_factory.mktemp("hostile") / "ledger")
    ledger.append([{**created("A", "draft", "d1"), "id": "first"}, created("A", "draft", "d2")])
    return ledger.path


@pytest.fixture
def ledger(template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(template, tmp_path / "ledger"))


def assert_refused(r: subprocess.CompletedProcess[bytes], code: int = 2) -> None:
    assert r.returncode == code, (r.returncode, r.stderr)
    assert r.stderr.startswith(b"cohort-ledger: error: ") and r.stderr.count(b"\n") == 1, r.stderr
    assert len(r.stderr) < 1000, "the reason is one short line, not an echo of the input"


@pytest.mark.parametrize("name", CASES)
def test_hostile_batch_is_refused_and_writes_nothing(ledger: Path, name: str) -> None:
    before = dir_snapshot(ledger)
    r = run_cli("append", ledger=ledger, stdin=CASES[name])
    assert_refused(r)
    assert dir_snapshot(ledger) == before


def test_100_mb_line_is_refused_early_in_bounded_memory(ledger: Path, tmp_path: Path) -> None:
    """Refused after reading MAX_LINE_BYTES + 1 bytes of it, not after loading 100 MB."""
    big = tmp_path / "big.jsonl"
    with open(big, "wb") as f:
        f.write(b'{"type":"cohort.opened","data":{"cohort_id":"')
        chunk = b"A" * (1 << 20)
        for _ in range(100):
            f.write(chunk)
        f.write(b'"}}\n')
    before = dir_snapshot(ledger)
    # measured from a small intermediate interpreter: a child's peak RSS includes the RSS of
    # the process it was forked from, and this test process may be large by now
    measure = ("import os, sys; pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ); "
               "_, status, usage = os.wait4(pid, 0); "
               "print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))")
    r = subprocess.run([sys.executable, "-c", measure, sys.executable, "-m", "ledger", "--ledger", str(ledger),
                        "append", str(big)], capture_output=True, timeout=120)
    maxrss, code = map(int, r.stdout.split())
    err = r.stderr
    assert_refused(subprocess.CompletedProcess(r.args, code, b"", err))
    assert b"longer than" in err
    assert maxrss < 100 * 1024, f"peak RSS {maxrss} KiB: the line was loaded whole"
    assert dir_snapshot(ledger) == before


def test_newer_format_version_is_refused(ledger: Path) -> None:
    doc = orjson.loads((ledger / "ledger.json").read_bytes())
    (ledger / "ledger.json").write_bytes(orjson.dumps({**doc, "format_version": 2}))
    before = dir_snapshot(ledger)
    for args, stdin in ((("append",), jsonl(VALID)), (("verify",), None), (("repair",), None), (("log",), None)):
        r = run_cli(*args, ledger=ledger, stdin=stdin)
        assert_refused(r)
        assert b"newer" in r.stderr
    assert dir_snapshot(ledger) == before


def test_missing_ledger_directory(tmp_path: Path) -> None:
    for args in (("append",), ("verify",), ("repair",), ("log",)):
        r = run_cli(*args, ledger=tmp_path / "nowhere", stdin=jsonl(VALID))
        assert_refused(r)
        assert b"not a ledger" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_read_only_ledger_directory(ledger: Path) -> None:
    """README "Exit codes": permission denied / read-only is an environment failure, exit 3 (the
    issue lists it with the bad-input cases; the documented codes win). Readers still work on it."""
    reason = read_only_mount_problem()
    if reason:
        unavailable(reason)
    before = dir_snapshot(ledger)
    r = run_cli_read_only(ledger, "append", stdin=jsonl(VALID))
    assert_refused(r, code=3)
    assert b"Read-only file system" in r.stderr
    for args in (("verify",), ("log",)):
        assert run_cli_read_only(ledger, *args).returncode == 0
    assert_refused(run_cli_read_only(ledger, "repair"), code=3)
    assert dir_snapshot(ledger) == before

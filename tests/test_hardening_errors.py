"""Issue 11, items 14 and 15 (the parts outside the legacy importer): a failed `init` leaves
nothing behind, and inputs that used to end in a traceback are one line naming the file or
the event, with exit 1-3; click's usage errors are one line too."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from helpers.builders import created, run_cli
from helpers.faults import dir_snapshot

from ledger import Ledger
from ledger.log.codec import encode_line


def one_line(r, code: int) -> None:  # type: ignore[no-untyped-def]
    assert r.returncode == code, r.stderr
    assert r.stderr.count(b"\n") == 1 and b"Traceback" not in r.stderr, r.stderr


def test_projection_record_without_seq_is_one_line(ledger: Ledger, tmp_path: Path) -> None:
    ledger.append([created("A", "draft", "d1")])
    out = tmp_path / "out"
    assert run_cli("build", "--out", str(out), ledger=ledger.path).returncode == 0
    record = orjson.loads((out / "_projection.json").read_bytes())
    del record["seq"]
    (out / "_projection.json").write_bytes(orjson.dumps(record))
    ledger.append([created("B", "draft", "d2")])
    before = dir_snapshot(out)
    r = run_cli("build", "--out", str(out), ledger=ledger.path)
    one_line(r, 2)
    assert b"_projection.json" in r.stderr
    assert dir_snapshot(out) == before


@pytest.mark.parametrize("name", ["events.jsonl.torn-\u00b2", "events.jsonl.torn-\u0661", "events.jsonl.torn-x"])
def test_a_stray_torn_file_does_not_block_recovery(ledger: Ledger, name: str) -> None:
    ledger.append([created("A", "draft", "d1")])
    (ledger.path / name).write_bytes(b"someone else's\n")
    with open(ledger.log_path, "ab") as f:
        f.write(b'{"seq":2,"torn')
    r = run_cli("repair", ledger=ledger.path)
    assert r.returncode == 0, r.stderr
    assert (ledger.path / "events.jsonl.torn-1").read_bytes() == b'{"seq":2,"torn'
    assert (ledger.path / name).read_bytes() == b"someone else's\n"


def _foreign_line(ledger: Ledger, v: object) -> None:
    head = ledger.head
    line, _ = encode_line({"seq": head.seq + 1, "id": "foreign", "type": "generation.created", "v": v,
                           "at": "2099-01-01T00:00:00.000000Z", "by": {}, "txn": [head.seq + 1, 1],
                           "data": {"cohort_id": "A", "stage": "draft", "gen_id": "f1", "template_id": "t1"},
                           "prev": head.hash})
    with open(ledger.log_path, "ab") as f:
        f.write(line)


@pytest.mark.parametrize("v", [0, -1, "1", 1.5])
def test_an_event_with_no_version_from_a_foreign_writer_is_one_line(ledger: Ledger, tmp_path: Path, v: object) -> None:
    ledger.append([created("A", "draft", "d1")])
    _foreign_line(ledger, v)
    for args in (("build", "--out", str(tmp_path / "out")), ("show", "A"), ("log",)):
        r = run_cli(*args, ledger=ledger.path)
        one_line(r, 1)
        assert b"seq 2" in r.stderr and b"KeyError" not in r.stderr, (args, r.stderr)


@pytest.mark.parametrize("args", [("build", "--nope"), ("verify", "--expect"), ("show",), ("nosuchcommand",),
                                  ("build", "--lock-timeout", "soon")])
def test_usage_errors_are_one_line(ledger: Ledger, args: tuple[str, ...]) -> None:
    r = run_cli(*args, ledger=ledger.path)
    one_line(r, 2)
    assert r.stderr.startswith(b"cohort-ledger: error: "), r.stderr


def test_a_failed_init_leaves_nothing(tmp_path: Path) -> None:
    """init fails after making part of the directory (a file squats where checkpoints/ goes
    would be refused up front; here the disk refuses: a file-size limit of 0 bytes)."""
    from helpers.faults import fsize_limit

    target = tmp_path / "new-ledger"
    r = run_cli("--ledger", str(target), "init", preexec_fn=fsize_limit(0))
    assert r.returncode == 3, r.stderr
    assert not target.exists()
    r = run_cli("--ledger", str(target), "init")
    assert r.returncode == 0, r.stderr


def test_a_failed_init_into_an_empty_directory_leaves_it_empty(tmp_path: Path) -> None:
    from helpers.faults import fsize_limit

    target = tmp_path / "empty"
    target.mkdir()
    r = run_cli("--ledger", str(target), "init", preexec_fn=fsize_limit(0))
    assert r.returncode == 3, r.stderr
    assert list(target.iterdir()) == []
    assert run_cli("--ledger", str(target), "init").returncode == 0

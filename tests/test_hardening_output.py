"""Issue 11, items 1, 2, 3 (--out), 7 and 8: a build never writes, replaces or removes
anything outside its out dir (symlinks planted inside it are refused, temp files cannot be
redirected), builds into one out dir take turns, and a failed or killed build leaves no
debris the next build does not clean up."""

from __future__ import annotations

import fcntl
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from helpers.builders import created, run_cli
from helpers.faults import fsize_limit

from ledger import Ledger
from ledger.log.fsio import atomic_write
from projections import build
from ledger.errors import InvalidInputError
from projections.files import LOCK_NAME, BuildBusyError, check_out_dir

PROJECTION = "_projection.json"


def tree(root: Path) -> dict[str, bytes | str]:
    """Every entry below `root`: file bytes, symlink targets, "dir" for directories."""
    found: dict[str, bytes | str] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        found[rel] = f"-> {os.readlink(p)}" if p.is_symlink() else "dir" if p.is_dir() else p.read_bytes()
    return found


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A ledger with cohorts A and B, an out dir, and a victim directory beside the out dir."""
    ledger = Ledger.init(tmp_path / "ledger")
    ledger.append([created("A", "draft", f"a{i}") for i in range(3)] + [created("B", "draft", "b0")])
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "membership.csv").write_bytes(b"precious\n")
    (victim / "manifest.parquet").write_bytes(b"precious too\n")
    return ledger.path, tmp_path / "out", victim


def refused(r: subprocess.CompletedProcess[bytes], name: str) -> None:
    assert r.returncode == 2, r.stderr
    assert r.stderr.count(b"\n") == 1 and name.encode() in r.stderr and b"symlink" in r.stderr, r.stderr


def test_symlinked_cohort_folder_is_refused_and_the_victim_untouched(setup: tuple[Path, Path, Path]) -> None:
    """The acceptance check of issue 11: `out/cohorts/A -> ../victim`, then `build`."""
    ledger, out, victim = setup
    (out / "cohorts").mkdir(parents=True)
    (out / "cohorts" / "A").symlink_to("../../victim")
    before, victim_before = tree(out), tree(victim)
    refused(run_cli("build", "--out", str(out), ledger=ledger), "cohorts/A")
    assert tree(victim) == victim_before
    assert tree(out) == {**before, LOCK_NAME: b""}  # nothing written but the (empty) lock file


@pytest.mark.parametrize("plant", ["cohorts", "manifest.parquet", "cohorts/A/membership.csv", PROJECTION])
def test_any_symlink_where_our_files_belong_is_refused(setup: tuple[Path, Path, Path], plant: str) -> None:
    ledger, out, victim = setup
    assert run_cli("build", "--out", str(out), ledger=ledger).returncode == 0
    target = victim if plant == "cohorts" else victim / Path(plant).name
    (out / plant).unlink() if (out / plant).is_file() else None
    if plant == "cohorts":
        import shutil
        shutil.rmtree(out / "cohorts")
    (out / plant).symlink_to(target)
    victim_before = tree(victim)
    Ledger.open(ledger).append([created("C", "draft", "c0")])
    refused(run_cli("build", "--out", str(out), ledger=ledger), plant)
    assert tree(victim) == victim_before


def test_a_tampered_record_and_a_planted_folder_cannot_delete_outside(setup: tuple[Path, Path, Path]) -> None:
    """The record names `cohorts/ZZ/membership.csv` with the victim's sha256, and
    `cohorts/ZZ -> victim`: a build of a state without ZZ would remove it."""
    ledger, out, victim = setup
    assert run_cli("build", "--out", str(out), ledger=ledger).returncode == 0
    record = orjson.loads((out / PROJECTION).read_bytes())
    record["files"]["cohorts/ZZ/membership.csv"] = hashlib.sha256(b"precious\n").hexdigest()
    (out / PROJECTION).write_bytes(orjson.dumps(record))
    (out / "cohorts" / "ZZ").symlink_to(victim)
    refused(run_cli("build", "--out", str(out), ledger=ledger), "cohorts/ZZ")
    assert (victim / "membership.csv").read_bytes() == b"precious\n"


def test_a_directory_squatting_on_a_file_leaves_the_old_set_whole(setup: tuple[Path, Path, Path]) -> None:
    ledger, out, _ = setup
    assert run_cli("build", "--out", str(out), ledger=ledger).returncode == 0
    (out / "membership.parquet").unlink()
    (out / "membership.parquet").mkdir()
    Ledger.open(ledger).append([created("C", "draft", "c0")])
    before = tree(out)
    r = run_cli("build", "--out", str(out), ledger=ledger)
    assert r.returncode == 2 and b"membership.parquet" in r.stderr and r.stderr.count(b"\n") == 1, r.stderr
    assert tree(out) == before  # no new CSV, no cohorts/C, the same _projection.json


def test_predictable_temp_names_cannot_redirect_a_write(tmp_path: Path) -> None:
    """A symlink planted at the old `.<name>.tmp-<pid>` name: the write must not go through it."""
    outside = tmp_path / "outside"
    outside.write_bytes(b"keep\n")
    target = tmp_path / "dir" / "file.json"
    target.parent.mkdir()
    (target.parent / f".file.json.tmp-{os.getpid()}").symlink_to(outside)
    atomic_write(target, b"new\n")
    assert outside.read_bytes() == b"keep\n"
    assert target.read_bytes() == b"new\n" and not target.is_symlink()


def test_build_temp_files_cannot_be_redirected(setup: tuple[Path, Path, Path]) -> None:
    ledger, out, victim = setup
    out.mkdir()
    for name in ("manifest.parquet", "membership.parquet", PROJECTION):
        (out / f".{name}.tmp-{os.getpid()}").symlink_to(victim / "manifest.parquet")
    build(ledger, out)
    assert (victim / "manifest.parquet").read_bytes() == b"precious too\n"
    assert not (out / "manifest.parquet").is_symlink()
    assert pq.read_table(out / "manifest.parquet").num_rows == 4


def test_out_at_the_file_system_root_is_refused(setup: tuple[Path, Path, Path]) -> None:
    """Checked on the pure check, not by a build: a regression must not write into /."""
    with pytest.raises(InvalidInputError, match="root"):
        check_out_dir(setup[0], Path("/"))


@pytest.mark.parametrize("where", ["..", "../.."])
def test_out_at_an_ancestor_of_the_ledger_is_refused(setup: tuple[Path, Path, Path], where: str) -> None:
    ledger, _, _ = setup
    out = ledger / where
    r = run_cli("build", "--out", str(out), ledger=ledger)
    assert r.returncode == 2 and b"--out" in r.stderr and r.stderr.count(b"\n") == 1, r.stderr
    assert not (out / "manifest.parquet").exists()


def test_a_second_build_waits_for_the_first_and_gives_up_clearly(setup: tuple[Path, Path, Path]) -> None:
    ledger, out, _ = setup
    out.mkdir()
    fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a build in progress
        start = time.monotonic()
        with pytest.raises(BuildBusyError, match="another build"):
            build(ledger, out, lock_timeout=0.3)
        assert 0.3 <= time.monotonic() - start < 5
        assert sorted(os.listdir(out)) == [LOCK_NAME]
        r = run_cli("build", "--out", str(out), "--lock-timeout", "0.2", ledger=ledger)
        assert r.returncode == 1 and r.stderr.count(b"\n") == 1 and b"another build" in r.stderr, r.stderr
        waiting = subprocess.Popen([sys.executable, "-m", "ledger", "--ledger", str(ledger), "build", "--out",
                                    str(out)], stderr=subprocess.PIPE)
        time.sleep(0.5)
        assert waiting.poll() is None  # still waiting for the lock
    finally:
        os.close(fd)
    assert waiting.wait(timeout=60) == 0
    assert orjson.loads((out / PROJECTION).read_bytes())["seq"] == 4


def consistent(out: Path) -> int:
    """`_projection.json` names exactly the files present, with their bytes, at the seq it says."""
    record = orjson.loads((out / PROJECTION).read_bytes())
    present = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert set(present) - {PROJECTION, LOCK_NAME} == set(record["files"])
    for rel, digest in record["files"].items():
        assert hashlib.sha256(present[rel]).hexdigest() == digest, rel
    created_seqs = pq.read_table(out / "manifest.parquet").column("created_seq").to_pylist()
    assert sorted(created_seqs) == list(range(1, record["seq"] + 1))  # one gen per event in these logs
    assert [p for p in out.rglob("*") if ".tmp-" in p.name] == []
    assert [p for p in (out / "cohorts").iterdir() if not any(p.iterdir())] == []
    return int(record["seq"])


def test_concurrent_builds_into_one_out_dir_leave_a_consistent_set(tmp_path: Path) -> None:
    """A `--as-of 4` build alongside full builds (the issue's report): afterwards the record
    names exactly the files present and their content is the seq it says."""
    ledger = Ledger.init(tmp_path / "ledger")
    ledger.append([created(f"c{i}", "draft", f"d{i}") for i in range(4)])
    ledger.append([created(f"k{i}", "draft", f"x{i}") for i in range(300)])
    out = tmp_path / "out"
    for _ in range(2):
        procs = [subprocess.Popen([sys.executable, "-m", "ledger", "--ledger", str(ledger.path), "build", "--out",
                                   str(out), *(["--as-of", "4"] if i % 2 else [])], stderr=subprocess.PIPE)
                 for i in range(4)]
        assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
        consistent(out)


def test_a_build_failing_part_way_leaves_the_record_and_no_new_folder(setup: tuple[Path, Path, Path]) -> None:
    ledger, out, _ = setup
    assert run_cli("build", "--out", str(out), ledger=ledger).returncode == 0
    Ledger.open(ledger).append([created("C", "draft", f"c{i}") for i in range(2000)])
    before = tree(out)
    r = run_cli("build", "--out", str(out), ledger=ledger, preexec_fn=fsize_limit(4096))
    assert r.returncode == 3 and r.stderr.count(b"\n") == 1, r.stderr
    assert tree(out) == before  # old files, old _projection.json, no cohorts/C, no temp file


_KILLER = textwrap.dedent("""
    import os, signal, sys
    import ledger.log.fsio as fsio
    from projections import build
    real, calls = fsio.write_all, [0]
    def write_all(fd, data):
        calls[0] += 1
        if calls[0] > int(sys.argv[3]):
            os.kill(os.getpid(), signal.SIGKILL)
        real(fd, data)
    fsio.write_all = write_all
    build(sys.argv[1], sys.argv[2])
""")


@pytest.mark.parametrize("after", [2, 30])
def test_the_build_after_a_killed_one_removes_its_debris(tmp_path: Path, after: int) -> None:
    ledger = Ledger.init(tmp_path / "ledger")
    ledger.append([created(f"c{i}", "draft", f"d{i}") for i in range(3)])
    ledger.append([created(f"k{i}", "draft", f"x{i}") for i in range(60)])
    out = tmp_path / "out"
    killed = subprocess.run([sys.executable, "-c", _KILLER, str(ledger.path), str(out), str(after)])
    assert killed.returncode == -signal.SIGKILL
    assert any(".tmp-" in p.name for p in out.rglob("*")) or after > 60
    report = build(ledger.path, out, as_of=3)
    assert consistent(out) == 3 and report.seq == 3
    assert sorted(p.name for p in (out / "cohorts").iterdir()) == ["c0", "c1", "c2"]

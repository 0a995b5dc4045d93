"""tests/vectors/format-v1/: the project reproduces its known-answer files exactly.

The vectors are for a second implementation to check itself against (docs/FORMAT.md §11);
this test keeps them true of this one: the writer, given `batches.json` and a fixed clock,
writes `events.jsonl` byte for byte; the chain listed in `chain.txt` is what a verifier
written from FORMAT.md alone computes; `build` writes the files of `build/` with the
sha256 listed in `build.sha256`. `REGENERATE_VECTORS=1` rewrites the files instead (after
a deliberate change of format, which then needs a new format version).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from ledger import Ledger

from helpers.vectors import VECTORS, build_files, chain_listing, sha256_listing, write_ledger

REGENERATE = os.environ.get("REGENERATE_VECTORS") == "1"


def stored_ledger(tmp_path: Path) -> Path:
    """A copy of the vector ledger (readers must not need write access to the originals)."""
    path = tmp_path / "vector-ledger"
    path.mkdir()
    for name in ("ledger.json", "events.jsonl"):
        shutil.copyfile(VECTORS / name, path / name)
    (path / "events.lock").touch()
    return path


def check(name: str, data: bytes) -> None:
    if REGENERATE:
        (VECTORS / name).parent.mkdir(parents=True, exist_ok=True)
        (VECTORS / name).write_bytes(data)
    assert (VECTORS / name).read_bytes() == data, f"{name} differs from tests/vectors/format-v1/{name}"


def test_the_writer_reproduces_the_log(tmp_path: Path) -> None:
    ledger = write_ledger(tmp_path / "ledger")
    check("ledger.json", (ledger.path / "ledger.json").read_bytes())
    check("events.jsonl", (ledger.path / "events.jsonl").read_bytes())


def spec_verifier(ledger_dir: Path) -> list[tuple[int, str]]:
    """docs/FORMAT.md §3.3-§3.5 and §4.1, written from the text: sha256 over a slice of each
    line, never a re-encoding; returns (seq, hash) from the genesis on."""
    ledger_id = orjson.loads((ledger_dir / "ledger.json").read_bytes())["ledger_id"]
    prev = hashlib.sha256(ledger_id.encode("ascii")).hexdigest()
    chain = [(0, prev)]
    data = (ledger_dir / "events.jsonl").read_bytes()
    assert data.endswith(b"\n")
    batch_end = 0
    for seq, line in enumerate(data[:-1].split(b"\n"), 1):
        assert line[len(line) - 75:len(line) - 66] == b',"hash":"' and line.endswith(b'"}')
        stored = line[-66:-2].decode("ascii")
        c = line[:-75] + b"}"
        assert hashlib.sha256(prev.encode("ascii") + c).hexdigest() == stored
        obj = orjson.loads(line)
        assert obj["seq"] == seq and obj["prev"] == prev and obj["hash"] == stored
        first, size = obj["txn"]
        if seq > batch_end:
            assert first == seq and size >= 1
            batch_end = seq + size - 1
        else:
            assert first <= seq <= batch_end
        chain.append((seq, stored))
        prev = stored
    assert batch_end == len(chain) - 1  # the last batch is complete: no tail
    return chain


def test_the_chain_is_what_the_spec_computes(tmp_path: Path) -> None:
    path = stored_ledger(tmp_path)
    listing = chain_listing(path)
    check("chain.txt", listing)
    assert b"".join(b"%d %s\n" % (s, h.encode()) for s, h in spec_verifier(path)) == listing
    report = Ledger.open(path).verify()
    assert listing.endswith(b"%d %s\n" % (report.head.seq, report.head.hash.encode()))


def test_build_reproduces_the_files(tmp_path: Path) -> None:
    files = build_files(stored_ledger(tmp_path), tmp_path / "out")
    assert sorted(files) == ["_projection.json", "cohorts/A/membership.csv", "cohorts/B/membership.csv",
                             "manifest.parquet", "membership.parquet"]
    recorded = (VECTORS / "build" / "manifest.parquet")
    if not REGENERATE and recorded.exists():
        made_by = pq.ParquetFile(recorded).metadata.created_by
        ours = pq.ParquetFile(tmp_path / "out" / "manifest.parquet").metadata.created_by
        if made_by != ours:  # FORMAT.md §8: Parquet bytes are pinned per writer library version
            pytest.fail(f"the vectors were written by {made_by}, this build by {ours}: check the diff of "
                        "`REGENERATE_VECTORS=1` (only the Parquet files and their digests may change)")
    if REGENERATE:
        shutil.rmtree(VECTORS / "build", ignore_errors=True)
    for rel, data in files.items():
        check(f"build/{rel}", data)
    check("build.sha256", sha256_listing(files))
    assert sorted(p.relative_to(VECTORS / "build").as_posix() for p in (VECTORS / "build").rglob("*")
                  if p.is_file()) == sorted(files)

"""Projection files: columns and types, time as-of, ownership, refusals, corruption, CLI."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.builders import created, run_cli
from helpers.logs import snapshot

from ledger import CorruptLogError, InvalidInputError, Ledger
from ledger.log.codec import encode_line, genesis_prev
from projections import build


def _sample(ledger: Ledger) -> None:
    ledger.append([{"type": "cohort.opened", "data": {"cohort_id": "A"}},
                   created("A", "draft", "d1", combo_id="c1", llm_model_id="m1", replicate=2, mode="llm"),
                   created("A", "essay", "e1", parent="d1")])
    ledger.append([created("B", "draft", "d0"),
                   {"type": "generation.reused", "data": {"cohort_id": "B", "stage": "draft", "gen_id": "d1",
                                                          "reason": "skip-existing"}}])
    ledger.append([{"type": "generation.materialized",
                    "data": {"cohort_id": "B", "stage": "draft", "gen_id": "d1", "artifacts": {"a": "0" * 64}}}])


def _rename(ledger: Ledger, old: str, new: str, phase: str) -> None:
    ledger.append([{"type": "metadata.key_renamed", "data": {"old_key": old, "new_key": new, "phase": phase}}])


def test_manifest_schema_types_and_order(ledger: Ledger) -> None:
    _sample(ledger)
    build(ledger.path)
    table = pq.read_table(ledger.path / "projections" / "manifest.parquet")
    assert table.schema.names == ledger.state.manifest_columns() == [
        "stage", "gen_id", "cohort_id", "template_id", "combo_id", "llm_model_id", "parent_gen_id",
        "replicate", "mode", "created_seq", "materialized"]
    assert table.schema.field("replicate").type == pa.int64()
    assert table.schema.field("created_seq").type == pa.int64()
    assert table.schema.field("materialized").type == pa.bool_()
    rows = table.to_pylist()
    assert [(r["stage"], r["gen_id"]) for r in rows] == [("draft", "d0"), ("draft", "d1"), ("essay", "e1")]
    assert rows[1] == {"stage": "draft", "gen_id": "d1", "cohort_id": "A", "template_id": "t1", "combo_id": "c1",
                       "llm_model_id": "m1", "parent_gen_id": None, "replicate": 2, "mode": "llm",
                       "created_seq": 2, "materialized": True}
    assert rows[2]["combo_id"] is None and rows[2]["materialized"] is False
    assert table.column("combo_id").null_count == 2  # nulls, never the string "nan"


def test_membership_parquet_and_csvs(ledger: Ledger) -> None:
    _sample(ledger)
    ledger.append([{"type": "generation.removed",
                    "data": {"cohort_id": "A", "stage": "essay", "gen_id": "e1", "reason": "bad"}},
                   {"type": "generation.removed",
                    "data": {"cohort_id": "A", "stage": "draft", "gen_id": "d1", "reason": "bad"}},
                   {"type": "cohort.opened", "data": {"cohort_id": "never-used"}}])
    build(ledger.path)
    out = ledger.path / "projections"
    rows = pq.read_table(out / "membership.parquet").to_pylist()
    assert rows == [
        {"cohort_id": "B", "stage": "draft", "gen_id": "d0", "origin_cohort_id": "B", "reused": False, "added_seq": 4},
        {"cohort_id": "B", "stage": "draft", "gen_id": "d1", "origin_cohort_id": "A", "reused": True, "added_seq": 5},
    ]
    assert (out / "cohorts" / "B" / "membership.csv").read_bytes() == b"stage,gen_id,cohort_id\ndraft,d0,B\ndraft,d1,B\n"
    assert (out / "cohorts" / "A" / "membership.csv").read_bytes() == b"stage,gen_id,cohort_id\n"  # had members
    # opened, never a member: a header-only file, the pipeline's "empty cohort" (no file would be "data missing")
    assert (out / "cohorts" / "never-used" / "membership.csv").read_bytes() == b"stage,gen_id,cohort_id\n"
    assert orjson.loads((out / "_projection.json").read_bytes())["cohorts"] == ["A", "B", "never-used"]


def test_stage_order_is_the_configured_one_not_alphabetical(tmp_path: Path) -> None:
    ledger = Ledger.init(tmp_path / "l", stages=["zeta", "alpha"], parents={})
    ledger.append([created("A", "alpha", "a1"), created("A", "zeta", "z1")])
    build(ledger.path)
    out = ledger.path / "projections"
    assert (out / "cohorts" / "A" / "membership.csv").read_text() == "stage,gen_id,cohort_id\nzeta,z1,A\nalpha,a1,A\n"
    assert pq.read_table(out / "manifest.parquet").column("stage").to_pylist() == ["zeta", "alpha"]


@pytest.mark.parametrize("steps, columns", [
    ([], ["cohort_id"]),
    ([("alias",)], ["cohort_id", "origin_cohort_id"]),
    ([("alias",), ("final",)], ["origin_cohort_id"]),
])
def test_rename_phases_name_the_origin_columns(ledger: Ledger, steps: list, columns: list) -> None:
    _sample(ledger)
    for (phase,) in steps:
        _rename(ledger, "cohort_id", "origin_cohort_id", phase)
    _rename(ledger, "template_id", "template", "alias")
    build(ledger.path)
    table = pq.read_table(ledger.path / "projections" / "manifest.parquet")
    assert table.schema.names == ledger.state.manifest_columns()
    assert table.schema.names[2:2 + len(columns)] == columns
    assert "template_id" in table.schema.names and "template" in table.schema.names
    for name in columns:
        assert table.column(name).to_pylist() == ["B", "A", "A"]
    assert table.column("template").to_pylist() == table.column("template_id").to_pylist()
    # membership.parquet keeps its fixed names whatever the manifest's rename state
    assert pq.read_table(ledger.path / "projections" / "membership.parquet").schema.names[3] == "origin_cohort_id"


def test_subprocess_build_is_byte_identical_under_other_tz_locale_hashseed(ledger: Ledger, tmp_path: Path) -> None:
    _sample(ledger)
    _rename(ledger, "cohort_id", "origin_cohort_id", "alias")
    build(ledger.path, tmp_path / "here")
    for env in ({"TZ": "Pacific/Kiritimati", "PYTHONHASHSEED": "1", "LC_ALL": "C"},
                {"TZ": "America/St_Johns", "PYTHONHASHSEED": "4242", "LC_ALL": "C.UTF-8"}):
        out = tmp_path / f"sub-{env['PYTHONHASHSEED']}"
        r = run_cli("build", "--out", str(out), ledger=ledger.path, env=env)
        assert r.returncode == 0, r.stderr
        assert snapshot(out) == snapshot(tmp_path / "here")


def _ats(ledger: Ledger) -> list[str]:
    return [ev.at for ev in ledger.read()]


def test_as_of_time_is_the_prefix_up_to_that_instant(ledger: Ledger, tmp_path: Path) -> None:
    _sample(ledger)
    ats = _ats(ledger)
    middle = ats[3]  # the second batch
    last_seq = max(i + 1 for i, at in enumerate(ats) if at <= middle)
    build(ledger.path, tmp_path / "by-seq", as_of=last_seq)
    build(ledger.path, tmp_path / "by-time", as_of=middle)
    assert snapshot(tmp_path / "by-time") == snapshot(tmp_path / "by-seq")
    # the same instant written with an offset names the same prefix
    moment = datetime.fromisoformat(middle).astimezone(timezone(timedelta(hours=-5, minutes=-30)))
    r = run_cli("build", "--out", str(tmp_path / "offset"), "--as-of", moment.isoformat(), ledger=ledger.path)
    assert r.returncode == 0, r.stderr
    assert snapshot(tmp_path / "offset") == snapshot(tmp_path / "by-seq")
    early = build(ledger.path, tmp_path / "early", as_of="2000-01-01T00:00:00Z")
    assert early.seq == 0 and pq.read_table(tmp_path / "early" / "manifest.parquet").num_rows == 0


def _write_raw_log(path: Path, ats: list[str]) -> Ledger:
    """A ledger whose log we write by hand (valid chain), to give it non-monotonic `at`s."""
    ledger = Ledger.init(path)
    prev, lines = genesis_prev(ledger.config.ledger_id), []
    for seq, at in enumerate(ats, 1):
        ev = created("A", "draft", f"d{seq}")
        line, prev = encode_line({"seq": seq, "id": f"i{seq}", "type": ev["type"], "v": 1, "at": at, "by": {},
                                  "txn": [seq, 1], "data": {**ev["data"], "replicate": 1}, "prev": prev})
        lines.append(line)
    ledger.log_path.write_bytes(b"".join(lines))
    return ledger


def test_as_of_time_refuses_a_log_out_of_time_order_around_it(tmp_path: Path) -> None:
    ats = ["2026-01-01T00:00:01.000000Z", "2026-01-01T00:00:03.000000Z", "2026-01-01T00:00:02.000000Z"]
    ledger = _write_raw_log(tmp_path / "l", ats)
    # `at` going back is corruption (docs/FORMAT.md §4.4), whether the as-of straddles it or folds it
    for as_of in ("2026-01-01T00:00:02.5Z", "2026-01-01T00:00:03Z"):
        with pytest.raises(CorruptLogError, match="corrupt at seq 3: at 2026-01-01T00:00:02.000000Z is earlier"):
            build(ledger.path, tmp_path / "out", as_of=as_of)
        assert not (tmp_path / "out").exists()
    # an instant before the disorder is a clean prefix
    assert build(ledger.path, tmp_path / "ok", as_of="2026-01-01T00:00:01.5Z").seq == 1


def test_foreign_files_survive_and_stale_owned_files_go(ledger: Ledger, tmp_path: Path) -> None:
    _sample(ledger)
    out = tmp_path / "data"
    foreign = {"spec/cohort.yaml": b"x: 1\n", "reports/scores.csv": b"a,b\n", "cohorts/Z/membership.csv": b"theirs\n",
               "cohorts/B/notes.txt": b"keep me\n"}
    for rel, data in foreign.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    build(ledger.path, out)
    assert (out / "cohorts" / "B" / "membership.csv").exists()
    # as of seq 3, cohort B had no member yet: its CSV (ours) goes, its folder keeps notes.txt
    report = build(ledger.path, out, as_of=3)
    assert report.removed == ["cohorts/B/membership.csv"]
    assert not (out / "cohorts" / "B" / "membership.csv").exists()
    for rel, data in foreign.items():
        assert (out / rel).read_bytes() == data
    # back to the head: it comes back; a tampered record cannot make a build delete others' files
    build(ledger.path, out)
    record = orjson.loads((out / "_projection.json").read_bytes())
    digest = hashlib.sha256(b"x").hexdigest()  # the right bytes, but not a name of ours
    record["files"].update({"spec/cohort.yaml": digest, "../outside.txt": digest,
                            "cohorts/Z/membership.csv": digest})  # ours by name, but not our bytes
    (out / "_projection.json").write_bytes(orjson.dumps(record))
    (tmp_path / "outside.txt").write_bytes(b"x")
    build(ledger.path, out, as_of=0)
    assert (tmp_path / "outside.txt").exists()
    for rel, data in foreign.items():
        assert (out / rel).read_bytes() == data
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(
        [*foreign, "_projection.json", "_projection.lock", "manifest.parquet", "membership.parquet"])


def test_empty_owned_cohort_folder_is_removed(ledger: Ledger) -> None:
    _sample(ledger)
    out = ledger.path / "projections"
    build(ledger.path)
    build(ledger.path, as_of=3)
    assert not (out / "cohorts" / "B").exists() and (out / "cohorts" / "A" / "membership.csv").exists()


def test_second_build_rewrites_nothing(ledger: Ledger) -> None:
    _sample(ledger)
    first = build(ledger.path)
    out = ledger.path / "projections"
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    second = build(ledger.path)
    assert second.written == [] and second.unchanged == first.written
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == mtimes


@pytest.mark.parametrize("where", [".", "checkpoints", "checkpoints/x", "events.jsonl", "ledger.json"])
def test_out_dir_that_could_clobber_the_ledger_is_refused(ledger: Ledger, where: str) -> None:
    _sample(ledger)
    before = snapshot(ledger.path)
    r = run_cli("build", "--out", str(ledger.path / where), ledger=ledger.path)
    assert r.returncode == 2 and b"--out" in r.stderr and r.stderr.count(b"\n") == 1
    assert snapshot(ledger.path) == before


def test_default_out_is_inside_the_ledger(ledger: Ledger) -> None:
    _sample(ledger)
    r = run_cli("build", "--json", ledger=ledger.path)
    assert r.returncode == 0, r.stderr
    report = orjson.loads(r.stdout)
    assert report["seq"] == 6 and report["hash"] == ledger.head.hash
    assert report["out_dir"] == str(ledger.path / "projections")
    assert set(report) == {"seq", "hash", "out_dir", "written", "unchanged", "removed", "checkpoint_seq",
                           "events_folded", "checkpoint_written", "checkpoint_used", "warnings", "up_to_date",
                           "patched_from"}
    assert (ledger.path / "projections" / "manifest.parquet").exists()


def _corrupt(ledger: Ledger, seq: int) -> None:
    lines = ledger.log_path.read_bytes().split(b"\n")
    lines[seq - 1] = lines[seq - 1].replace(b'"t1"', b'"t9"')
    ledger.log_path.write_bytes(b"\n".join(lines))


def test_corrupt_log_exits_1_naming_the_seq_and_writes_nothing(ledger: Ledger, tmp_path: Path) -> None:
    _sample(ledger)
    out = tmp_path / "out"
    build(ledger.path, out, checkpoint_every=10**9)
    before, checkpoints = snapshot(out), snapshot(ledger.path / "checkpoints")
    _corrupt(ledger, 4)
    # --full: a build with nothing new since the last one checks only the log's last line
    # against the out dir (as a checkpoint's position is checked), not the whole chain
    r = run_cli("build", "--full", "--out", str(out), ledger=ledger.path)
    assert r.returncode == 1 and b"corrupt at seq 4" in r.stderr
    assert snapshot(out) == before and snapshot(ledger.path / "checkpoints") == checkpoints
    with pytest.raises(CorruptLogError) as err:
        build(ledger.path, tmp_path / "fresh")
    assert err.value.seq == 4 and not (tmp_path / "fresh").exists()


def test_corruption_after_a_checkpoint_is_found(ledger: Ledger, tmp_path: Path) -> None:
    _sample(ledger)
    build(ledger.path, checkpoint_every=1)  # checkpoint at seq 6
    ledger.append([created("C", "draft", "d9")])
    _corrupt(ledger, 7)
    with pytest.raises(CorruptLogError, match="seq 7"):
        build(ledger.path, tmp_path / "o1")
    with pytest.raises(CorruptLogError, match="seq 7"):
        Ledger.open(ledger.path).head
    assert not (tmp_path / "o1").exists()


def test_full_build_verifies_what_a_checkpoint_skips(ledger: Ledger, tmp_path: Path) -> None:
    """A checkpoint vouches for the prefix it was taken from; `--full` re-reads it."""
    _sample(ledger)
    build(ledger.path, checkpoint_every=1)
    _corrupt(ledger, 2)  # same length: the checkpoint's own line still matches
    assert build(ledger.path, tmp_path / "o1").checkpoint_seq == 6
    r = run_cli("build", "--full", "--out", str(tmp_path / "o2"), ledger=ledger.path)
    assert r.returncode == 1 and b"corrupt at seq 2" in r.stderr and not (tmp_path / "o2").exists()


def test_incremental_build_folds_only_new_events(ledger: Ledger, tmp_path: Path) -> None:
    _sample(ledger)
    assert build(ledger.path, checkpoint_every=1).checkpoint_written == 6
    ledger.append([created("C", "draft", "d7"), created("C", "draft", "d8")])
    report = build(ledger.path, checkpoint_every=100)  # the projection at 6, patched (projections/patch.py)
    assert (report.patched_from, report.checkpoint_seq, report.events_folded, report.checkpoint_written) == \
        (6, None, 2, None)
    resumed = build(ledger.path, tmp_path / "fresh", checkpoint_every=100)  # no projection there: folded
    assert (resumed.checkpoint_seq, resumed.events_folded, resumed.checkpoint_written) == (6, 2, None)
    assert snapshot(tmp_path / "fresh") == snapshot(ledger.path / "projections")
    full = build(ledger.path, tmp_path / "full", full=True, checkpoint_every=100)
    assert (full.checkpoint_seq, full.events_folded) == (None, 8)
    assert snapshot(ledger.path / "projections") == snapshot(tmp_path / "full")


def test_a_tail_is_not_built_and_progress_reaches_the_committed_end(ledger: Ledger) -> None:
    _sample(ledger)
    committed = ledger.log_path.stat().st_size
    with open(ledger.log_path, "ab") as f:
        f.write(b'{"seq":7,"half a line')  # a writer's batch in flight
    calls: list[tuple[int, int]] = []
    report = build(ledger.path, progress=lambda done, total: calls.append((done, total)))
    assert report.seq == 6 and ledger.log_path.stat().st_size > committed
    assert calls[-1] == (committed, ledger.log_path.stat().st_size)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_as_of_inside_a_batch_via_cli(ledger: Ledger, tmp_path: Path) -> None:
    _sample(ledger)
    r = run_cli("build", "--as-of", "2", "--out", str(tmp_path / "o"), "--json", ledger=ledger.path)
    assert r.returncode == 0, r.stderr
    report = orjson.loads(r.stdout)
    assert report["seq"] == 2 and report["checkpoint_written"] is None
    assert pq.read_table(tmp_path / "o" / "manifest.parquet").column("gen_id").to_pylist() == ["d1"]
    for bad in ("-1", "yesterday", "2026-01-01T00:00:00", "99"):
        r = run_cli("build", "--as-of", bad, "--out", str(tmp_path / "bad"), ledger=ledger.path)
        assert r.returncode == 2 and b"--as-of" in r.stderr, (bad, r.stderr)
    assert not (tmp_path / "bad").exists()


def test_a_build_with_nothing_new_reads_no_log_and_writes_nothing(ledger: Ledger, tmp_path: Path) -> None:
    _sample(ledger)
    out = tmp_path / "out"
    first = build(ledger.path, out, checkpoint_every=10**9)
    before = snapshot(out)
    again = build(ledger.path, out, checkpoint_every=10**9)
    assert again.up_to_date and (again.seq, again.hash) == (first.seq, first.hash)
    assert again.events_folded == 0 and again.written == [] and again.unchanged == sorted(first.written)
    assert snapshot(out) == before
    # a file someone changed, or a new event, is work to do again
    (out / "manifest.parquet").write_bytes(b"edited")
    repaired = build(ledger.path, out, checkpoint_every=10**9)
    assert not repaired.up_to_date and repaired.written == ["manifest.parquet"] and snapshot(out) == before
    ledger.append([created("C", "draft", "d9")])
    grown = build(ledger.path, out, checkpoint_every=10**9)
    assert not grown.up_to_date and grown.seq == first.seq + 1

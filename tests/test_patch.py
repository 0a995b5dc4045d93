"""The patched incremental build (projections/patch.py) against the builds that fold the state.

Random valid logs (the stateful test's event strategies: creations, reuses, removals,
materializations, seals, key renames), built at random split points: each build after the
first patches the previous projection, and must leave exactly the bytes `build --full` of
the same log writes, and those of the checkpoint path's incremental build. A rule-breaking
event past the split (appended by a foreign writer with a valid chain) must fail the patched
build with the same first bad seq and message as the full build, writing nothing.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as statistic
from hypothesis import strategies as st
from test_facts import PRELUDE, batches

from helpers.builders import created, event
from helpers.forge import forge_batch
from ledger import CorruptLogError, Ledger, LedgerError
from projections import build

#: the modules (the package exports its `build` function under the same name)
build_module = importlib.import_module("projections.build")
patch_module = importlib.import_module("projections.patch")


def files_of(out: Path) -> dict[str, bytes]:
    """Every file a build owns in `out` (the lock file is not a projection)."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != "_projection.lock"}


def stats_of(out: Path) -> dict[str, tuple[int, int]]:
    return {rel: (os.stat(out / rel).st_ino, os.stat(out / rel).st_mtime_ns) for rel in files_of(out)}


def append_all(ledger: Ledger, plan: list[list[dict[str, Any]]]) -> None:
    """Append each batch; one the rules refuse is tried event by event (random events break
    rules often, and a log with more of them in it tests more)."""
    for batch in plan:
        try:
            ledger.append(batch)
        except LedgerError:  # refused: not in the log
            for ev in batch if len(batch) > 1 else []:
                try:
                    ledger.append([ev])
                except LedgerError:
                    pass


def checkpoint_path_build(ledger: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> build_module.BuildReport:
    """The incremental build that folds the state from a checkpoint (the patch declined)."""
    with monkeypatch.context() as m:
        m.setattr(patch_module, "patch", lambda *args: None)
        return build(ledger, out)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=batches, data=st.data())
def test_patched_builds_equal_full_builds(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
                                          plan: list[list[dict[str, Any]]], data: st.DataObject) -> None:
    splits = data.draw(st.lists(st.integers(0, len(plan)), min_size=1, max_size=4, unique=True), label="splits")
    root = tmp_path_factory.mktemp("patch")
    path = root / "ledger"
    ledger = Ledger.init(path)
    ledger.append(PRELUDE)
    patched, folded = root / "patched", root / "folded"
    done, patches = 0, 0
    for split in sorted({*splits, len(plan)}):
        append_all(ledger, plan[done:split])
        done = split
        before = build(path, patched, checkpoint_every=3)
        after_fold = checkpoint_path_build(path, folded, monkeypatch)
        full = build(path, root / f"full-{split}", full=True)
        if before.patched_from is None and not before.up_to_date:  # only the first build renders
            assert split == min({*splits, len(plan)})
        patches += before.patched_from is not None
        assert (before.seq, before.hash) == (after_fold.seq, after_fold.hash) == (full.seq, full.hash)
        assert files_of(patched) == files_of(folded) == files_of(root / f"full-{split}")
    statistic(f"patched builds: {min(patches, 2)}{'+' if patches > 2 else ''}")
    ledger.close()


rule_breakers = st.sampled_from([
    event("generation.reused", cohort_id="A", stage="draft", gen_id="never-created"),
    event("cohort.sealed", cohort_id="never-named"),
    event("generation.created", **{**created("A", "draft", "d-new")["data"], "stage": "no-such-stage"}),
])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=batches, data=st.data(), bad=rule_breakers, good_after=st.integers(0, 3))
def test_a_rule_breaking_event_past_the_split_fails_like_the_fold(
        tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, plan: list[list[dict[str, Any]]],
        data: st.DataObject, bad: dict[str, Any], good_after: int) -> None:
    split = data.draw(st.integers(0, len(plan)), label="split")
    root = tmp_path_factory.mktemp("patch-bad")
    path = root / "ledger"
    ledger = Ledger.init(path)
    ledger.append(PRELUDE)
    append_all(ledger, plan[:split])
    out = root / "out"
    build(path, out)
    append_all(ledger, plan[split:])  # appended through the writers' index, which checks each batch
    ledger.close()
    seq = forge_batch(path, [{"type": bad["type"], "data": bad["data"]}], at="2999-01-01T00:00:00.000000Z")
    for i in range(good_after):  # valid events after it: still the first bad seq that is reported
        forge_batch(path, [event("cohort.opened", cohort_id=f"late-{i}")], at="2999-01-01T00:00:00.000000Z")
    files, stats = files_of(out), stats_of(out)
    errors = []
    for attempt in (lambda: build(path, out), lambda: checkpoint_path_build(path, out, monkeypatch),
                    lambda: build(path, root / "full", full=True)):
        with pytest.raises(CorruptLogError) as caught:
            attempt()
        errors.append((caught.value.seq, str(caught.value)))
    assert errors[0] == errors[1] == errors[2]
    assert errors[0][0] == seq
    assert files_of(out) == files, "a failed build wrote nothing"
    assert stats_of(out) == stats


def cohort_events(cohort: str, n: int, start: int = 0) -> list[dict[str, Any]]:
    return [created(cohort, "draft", f"{cohort}-d{i}") for i in range(start, start + n)]


def test_only_the_files_whose_bytes_change_are_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "ledger"
    ledger = Ledger.init(path)
    for cohort in ("alpha", "beta", "gamma"):
        ledger.append(cohort_events(cohort, 5))
    out = tmp_path / "out"
    build(path, out)
    before = stats_of(out)
    ledger.append(cohort_events("beta", 3, start=5) + [event("cohort.opened", cohort_id="delta")])
    ledger.append([event("generation.materialized", cohort_id="alpha", stage="draft", gen_id="alpha-d0",
                         artifacts={"out.txt": "ab" * 32})])  # manifest only
    report = build(path, out)
    assert report.patched_from is not None and report.checkpoint_seq is None
    assert report.written == ["cohorts/beta/membership.csv", "cohorts/delta/membership.csv",
                              "manifest.parquet", "membership.parquet"]
    after = stats_of(out)
    for rel in ("cohorts/alpha/membership.csv", "cohorts/gamma/membership.csv"):
        assert after[rel] == before[rel], f"{rel} was rewritten"
    assert after["cohorts/beta/membership.csv"] != before["cohorts/beta/membership.csv"]
    assert files_of(out) == files_of(Path(build(path, tmp_path / "full", full=True).out_dir))
    ledger.close()


def test_the_patch_declines_what_it_cannot_trust(tmp_path: Path) -> None:
    """A tampered file, an as-of projection, a ledger without an index: the build folds
    (and puts right what a full build would)."""
    path = tmp_path / "ledger"
    ledger = Ledger.init(path)
    ledger.append(cohort_events("alpha", 4))
    ledger.append(cohort_events("beta", 4))
    out = tmp_path / "out"
    build(path, out)
    ledger.append(cohort_events("alpha", 2, start=4))
    (out / "cohorts" / "beta" / "membership.csv").write_bytes(b"stage,gen_id,cohort_id\n")
    report = build(path, out)
    assert report.patched_from is None
    assert files_of(out) == files_of(Path(build(path, tmp_path / "full", full=True).out_dir))

    build(path, out, as_of=1)  # a projection inside the first batch: no batch boundary to scan from
    assert build(path, out).patched_from is None
    ledger.append(cohort_events("beta", 1, start=4))
    assert build(path, out).patched_from is not None

    ledger.append(cohort_events("gamma", 1))
    ledger.close()
    for name in os.listdir(path / "index"):
        os.unlink(path / "index" / name)
    assert build(path, out).patched_from is None
    assert files_of(out) == files_of(Path(build(path, tmp_path / "full2", full=True).out_dir))


def test_renames_removals_and_new_cohorts_between_builds(tmp_path: Path) -> None:
    """Each kind of change a patch applies, one build after another: a key renamed (alias,
    then final), a removal, a reuse into a new cohort, an empty new cohort, a seal."""
    path = tmp_path / "ledger"
    ledger = Ledger.init(path)
    ledger.append(cohort_events("alpha", 3) + [created("alpha", "essay", "alpha-e0", parent="alpha-d0")])
    out = tmp_path / "out"
    steps = [
        [event("metadata.key_renamed", old_key="template_id", new_key="template", phase="alias")],
        [event("generation.removed", cohort_id="alpha", stage="draft", gen_id="alpha-d1", reason="bad")],
        [event("generation.reused", cohort_id="beta", stage="draft", gen_id="alpha-d2", reason="manual"),
         event("cohort.opened", cohort_id="empty")],
        [event("metadata.key_renamed", old_key="template_id", new_key="template", phase="final")],
        [event("cohort.sealed", cohort_id="beta")],
    ]
    assert build(path, out).patched_from is None
    for i, batch in enumerate(steps):
        ledger.append(batch)
        report = build(path, out)
        assert report.patched_from is not None
        full = build(path, tmp_path / f"full-{i}", full=True)
        assert files_of(out) == files_of(Path(full.out_dir)), f"after step {i}"
    ledger.close()

"""Four steps of one run, in four processes (Dagster's multiprocess executor, a persistent
instance), appending to one ledger at once: gapless, verified, nothing twice."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

if os.environ.get("CI", "").lower() not in ("true", "1"):
    pytest.importorskip("dagster")

import dagster as dg  # noqa: E402

from ledger import Ledger  # noqa: E402
from ledger.scope import CohortScope  # noqa: E402

# by its package path: the step processes import it from the working directory (the repo root)
from tests import dagster_concurrent_job as job_module  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def test_four_steps_append_to_one_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger, data, home = tmp_path / "ledger", tmp_path / "data", tmp_path / "dagster_home"
    Ledger.init(ledger)
    data.mkdir()
    home.mkdir()
    monkeypatch.setenv("COHORT_LEDGER", str(ledger))
    monkeypatch.setenv("PIPELINE_DATA_ROOT", str(data))
    monkeypatch.chdir(ROOT)
    with dg.DagsterInstance.local_temp(str(home)) as instance:
        result = dg.execute_job(dg.reconstructable(job_module.four_cohorts), instance=instance)
        assert result.success
        pids = {e.pid for e in result.all_events if e.event_type_value == "STEP_START"}
        assert len(pids) == 4  # one process per step
        registered = {s: set(instance.get_dynamic_partitions(f"{s}_gens")) for s in ("draft", "essay", "evaluation")}

    led = Ledger.open(ledger)
    report = led.verify()
    events = list(led.read())
    assert [e.seq for e in events] == list(range(1, report.head.seq + 1))  # gapless, all verified
    assert len({e.id for e in events}) == len(events)
    keys = Counter((e.type, e.data["cohort_id"], e.data["gen_id"]) for e in events)
    assert max(keys.values()) == 1
    created = [e for e in events if e.type == "generation.created"]
    assert len(created) == len({e.data["gen_id"] for e in created}) == 6  # 2 drafts, 2 essays, 2 evaluations
    gens = {e.data["gen_id"] for e in created}
    assert sorted(e.data["gen_id"] for e in events if e.type == "generation.materialized") == sorted(gens)
    assert sum(e.type == "generation.reused" for e in events) == 3 * 6  # the three cohorts that lost each race
    scope = CohortScope.open(ledger)
    for cohort in job_module.COHORTS:
        assert {m["gen_id"] for m in scope.members(cohort)} == gens
    assert {g for s in registered.values() for g in s} == gens

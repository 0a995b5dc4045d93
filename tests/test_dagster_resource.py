"""CohortLedgerResource outside a full pipeline: partitions sync, the import guard, and the
example's Definitions loading in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

if os.environ.get("CI", "").lower() not in ("true", "1"):
    pytest.importorskip("dagster")

import dagster as dg  # noqa: E402

from ledger import Ledger  # noqa: E402
from ledger.dagster import CohortLedgerResource  # noqa: E402
from ledger.hooks import PipelineRecorder  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PARTITIONS = {"draft": dg.DynamicPartitionsDefinition(name="draft_gens"),
              "essay": dg.DynamicPartitionsDefinition(name="essay_gens")}


def test_sync_partitions_is_add_only_and_prunes_only_when_asked(tmp_path: Path) -> None:
    led = Ledger.init(tmp_path / "ledger")
    rec = PipelineRecorder(led.path, run_id="r1")
    for i in range(3):
        rec.record_created("A", "draft", f"d{i}", "t", combo_id="c", llm_model_id="m", replicate=i + 1)
    rec.record_created("A", "essay", "e0", "t", parent_gen_id="d0")
    rec.record_reused("B", "draft", "d0", reason="curated")
    resource = CohortLedgerResource(ledger_path=str(led.path))
    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_op_context(instance=instance)
        assert resource.sync_partitions(context, "A", PARTITIONS) == {"draft": 3, "essay": 1}
        assert resource.sync_partitions(context, "A", PARTITIONS) == {"draft": 0, "essay": 0}
        assert resource.sync_partitions(context, "B", PARTITIONS) == {"draft": 0, "essay": 0}
        rec.record_removed("A", "draft", "d2", "off-topic")   # d2: in no cohort now
        rec.record_removed("A", "draft", "d0", "off-topic")   # d0: still in B
        assert resource.sync_partitions(context, "A", PARTITIONS) == {"draft": 0, "essay": 0}
        assert instance.get_dynamic_partitions("draft_gens") == ["d0", "d1", "d2"]  # add-only
        assert resource.stale_partitions(context, PARTITIONS) == {"draft": ["d2"], "essay": []}
        resource.sync_partitions(context, "A", PARTITIONS, prune=True)
        assert instance.get_dynamic_partitions("draft_gens") == ["d0", "d1"]
        assert instance.get_dynamic_partitions("essay_gens") == ["e0"]


def test_resource_reads_the_ledger_as_of_each_call(tmp_path: Path) -> None:
    led = Ledger.init(tmp_path / "ledger")
    resource = CohortLedgerResource(ledger_path=str(led.path))
    assert resource.scope().cohorts() == [] and not resource.is_materialized("d0")
    rec = PipelineRecorder(led.path, run_id="r1")
    rec.record_created("A", "draft", "d0", "t", combo_id="c", llm_model_id="m")
    assert resource.scope().active_stage_gen_ids("A", "draft") == ["d0"] and not resource.is_materialized("d0")
    rec.record_materialized("A", "draft", "d0", {"raw": "ab" * 32})
    assert resource.is_materialized("d0") and not resource.is_materialized("unknown")
    assert resource.projections_out() == f"{led.path}/projections"


def test_import_without_dagster_is_one_line_naming_the_extra() -> None:
    code = "import sys; sys.modules['dagster'] = None\ntry:\n    import ledger.dagster\nexcept ImportError as e:\n    print(e)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "ledger.dagster needs Dagster: pip install 'cohort-ledger[dagster]'\n"


def test_example_definitions_validate_in_a_fresh_process() -> None:
    env = {**os.environ, "DAGSTER_HOME": "", "PYTHONPATH": str(ROOT)}
    env.pop("DAGSTER_HOME")
    dagster = Path(sys.executable).parent / "dagster"
    out = subprocess.run([str(dagster), "definitions", "validate", "-m", "examples.dagster_pipeline"],
                         cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Validation successful" in out.stdout + out.stderr


def test_the_example_runs_on_a_ledger_in_s3(s3_url: str, tmp_path: Path) -> None:
    """The resource passes `ledger_path` through: an s3:// ledger works like a directory."""
    from examples.dagster_pipeline.assets import cohort_membership, cohort_overview
    from examples.dagster_pipeline.definitions import ASSETS, checks, resources

    Ledger.init(s3_url)
    data = tmp_path / "data"
    data.mkdir()

    def run(keys: list[dg.AssetKey], partition_key: str | None = None) -> dg.ExecuteInProcessResult:
        return dg.materialize([*ASSETS, *checks], selection=dg.AssetSelection.assets(*keys),
                              partition_key=partition_key, instance=instance, resources=resources(s3_url, str(data)))

    with dg.DagsterInstance.ephemeral() as instance:
        result = run([cohort_membership.key], "cohort-a")
        assert [e.passed for e in result.get_asset_check_evaluations()] == [True, True]
        draft = instance.get_dynamic_partitions("draft_gens")[0]
        first, again = run([dg.AssetKey("draft")], draft), run([dg.AssetKey("draft")], draft)
        assert first.asset_materializations_for_node("draft")[0].metadata["status"].value == "generated"
        assert again.asset_materializations_for_node("draft")[0].metadata["status"].value == "reused"
        result = run([dg.AssetKey("ledger_manifest"), dg.AssetKey("ledger_membership"), cohort_overview.key])
        assert [e.passed for e in result.get_asset_check_evaluations()] == [True]
    led = Ledger.open(s3_url)
    assert led.verify().head.seq == 9  # 8 created, 1 materialized
    assert [e.type for e in led.read()].count("generation.materialized") == 1

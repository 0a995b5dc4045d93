"""Files a data root should not hold, and the round trip through a renamed origin key.

Every case is a one-line problem naming the file (exit 2, nothing appended, nothing written),
never a skipped file, a traceback or a silent pick.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import orjson
import pytest
from helpers.builders import run_cli
from helpers.legacy_root import SourceGen, write_root

from ledger import Ledger
from ledger.legacy import LegacyProblems, apply_export, apply_import, plan_export, plan_import

GENS = [SourceGen("draft", "d1", "A", "t", combo="c1", model="m"),
        SourceGen("essay", "e1", "A", "t", parent="d1", model="m")]


def root_with(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    write_root(root, GENS, {"A": ["d1", "e1"], "B": ["e1"]})
    return root


def only_problem(ledger: Ledger, root: Path) -> tuple[str, str | None, str]:
    plan = plan_import(ledger.state, root)
    assert plan.events == [] and len(plan.problems) == 1, plan.problems
    p = plan.problems[0]
    assert "\n" not in p.message
    return p.file, p.gen_id, p.message


def _dangling(path: Path) -> None:
    path.unlink()
    path.symlink_to(path.parent / "gone")


def _symlink_to_regular(path: Path) -> None:
    target = path.parent.parent / f"elsewhere-{path.name}"
    target.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(target)


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


#: what replaces a regular file, and what the problem says (each maker takes the regular file's place)
KINDS = {"dangling symlink": (_dangling, "is a symlink"), "symlink": (_symlink_to_regular, "is a symlink"),
         "fifo": (_fifo, "is a FIFO"), "directory": (_directory, "is a directory")}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_membership_csv_that_is_not_a_regular_file(tmp_path: Path, ledger: Ledger, kind: str) -> None:
    """Skipped, it would record every gen of cohort B as removed from it; now it is the problem."""
    root = root_with(tmp_path)
    make, text = KINDS[kind]
    make(root / "cohorts/B/membership.csv")
    assert only_problem(ledger, root) == ("cohorts/B/membership.csv", None, f"{text}, not a regular file")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_metadata_json_that_is_not_a_regular_file(tmp_path: Path, ledger: Ledger, kind: str) -> None:
    root = root_with(tmp_path)
    make, text = KINDS[kind]
    make(root / "gens/draft/d1/metadata.json")
    assert only_problem(ledger, root) == ("gens/draft/d1/metadata.json", "d1", f"{text}, not a regular file")


def test_cli_fifo_membership_exit_2_nothing_appended(tmp_path: Path) -> None:
    root, led = root_with(tmp_path), tmp_path / "ledger"
    run_cli("init", ledger=led)
    _fifo(root / "cohorts/B/membership.csv")
    r = run_cli("import-legacy", "--data-root", str(root), "--apply", ledger=led, timeout=60)
    assert r.returncode == 2
    assert r.stderr.decode().splitlines()[-1] == (
        "cohort-ledger: error: import-legacy: 1 problem; first: -: cohorts/B/membership.csv: "
        "is a FIFO, not a regular file")
    assert (led / "events.jsonl").read_bytes() == b""


def test_export_refuses_what_import_refuses(tmp_path: Path, ledger: Ledger) -> None:
    """A UTF-16 metadata.json: import used to accept it and export crash; both now name the file."""
    root = root_with(tmp_path)
    apply_import(ledger, plan_import(ledger.state, root))
    path = root / "gens/draft/d1/metadata.json"
    path.write_bytes(json.dumps(json.loads(path.read_bytes()), indent=2).encode("utf-16"))
    assert only_problem(ledger, root)[2].startswith("not UTF-8")
    plan = plan_export(ledger.state, root)
    assert [(p.file, p.message[:9]) for p in plan.problems] == [("gens/draft/d1/metadata.json", "not UTF-8")]
    before = path.read_bytes()
    with pytest.raises(LegacyProblems):
        apply_export(plan)
    assert path.read_bytes() == before
    _dangling(path)  # a dangling symlink is not a missing file to create
    assert [p.message for p in plan_export(ledger.state, root).problems] == ["is a symlink, not a regular file"]


@pytest.mark.parametrize(("raw", "text"), [
    (b"[" * 100_000 + b"]" * 100_000, "nested deeper than 32 levels"),
    (b'{"stage": "draft", "usage": ' + b'{"a": ' * 40 + b"1" + b"}" * 40 + b"}", "nested deeper than 32 levels"),
    (b'{"cohort_id": "A", "template_id": "t", "cohort_id": "Z"}', "duplicate key 'cohort_id'"),
    (b'{"cohort_id": "A", "template_id": "t", "usage": {"n": 1, "n": 2}}', "duplicate key 'n'"),
    ('{"cohort_id": "A", "template_id": "t"}'.encode("utf-16"), "not UTF-8"),
    (b'\xef\xbb\xbf{"cohort_id": "A"}', "not valid JSON"),
])
def test_metadata_json_read_errors_are_one_line_problems(tmp_path: Path, ledger: Ledger, raw: bytes,
                                                        text: str) -> None:
    root = root_with(tmp_path)
    (root / "gens/draft/d1/metadata.json").write_bytes(raw)
    file, gen, message = only_problem(ledger, root)
    assert (file, gen) == ("gens/draft/d1/metadata.json", "d1") and message.startswith(text)


def test_wide_replicate_superscript_two(tmp_path: Path, ledger: Ledger) -> None:
    """`"²".isdigit()` is True but `int("²")` raises: the cell is a problem, not a traceback."""
    root = tmp_path / "data"
    write_root(root, GENS, {"A": ["d1", "e1"]}, {"A": "wide-8"})
    path = root / "cohorts/A/membership.csv"
    path.write_text(path.read_text().replace(",m,1\n", ",m,\u00b2\n", 1))
    assert only_problem(ledger, root) == ("cohorts/A/membership.csv:2", "d1", "replicate '²' is not an integer >= 1")


@pytest.mark.parametrize("new_key", ["origin", "src_cohort"])
def test_reimport_reads_what_export_wrote_after_a_rename(tmp_path: Path, new_key: str) -> None:
    """cohort_id renamed to another key than origin_cohort_id: export writes it, import reads it back."""
    root, led = root_with(tmp_path), tmp_path / "ledger"
    for path in root.glob("gens/*/*/metadata.json"):  # all pre-rename, so the ledger starts at "no rename"
        path.write_bytes(path.read_bytes().replace(b'"origin_cohort_id"', b'"cohort_id"'))
    run_cli("init", ledger=led)
    assert run_cli("import-legacy", "--data-root", str(root), "--apply", ledger=led).returncode == 0
    for phase in ("alias", "final"):
        assert run_cli("rename-key", "cohort_id", new_key, "--phase", phase, ledger=led).returncode == 0
        assert run_cli("export-metadata", "--data-root", str(root), "--apply", ledger=led).returncode == 0
        doc = json.loads((root / "gens/draft/d1/metadata.json").read_bytes())
        assert doc[new_key] == "A" and (("cohort_id" in doc) == (phase == "alias"))
        again = run_cli("import-legacy", "--data-root", str(root), "--apply", "--json", ledger=led)
        assert again.returncode == 0, again.stderr
        assert orjson.loads(again.stdout)["events"] == 0

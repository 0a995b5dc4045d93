"""The layers of docs/architecture.md, checked on the source: who may import whom.

Each subpackage of `ledger/` imports only from the layers below it; `projections/` reaches
`ledger/` only through the facade and the documented modules; and importing the facade
loads no Arrow, pandas, CLI or backend client library (a pipeline hook pays for every import).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: ledger's layers, lowest first (docs/architecture.md, "Layers"); a layer imports only from earlier ones
LAYERS = ["errors", "domain", "log", "app", "cohorts", "legacy", "report", "dagster", "cli"]
#: top-level modules that only re-export a documented import path
RE_EXPORTS = {"__init__", "__main__", "scope", "hooks", "ids"}
#: what projections/ may import from ledger besides the facade (docs/architecture.md, "The build path")
DOCUMENTED_FOR_PROJECTIONS = ("ledger.domain.", "ledger.app.replay", "ledger.app.facts", "ledger.log.checkpoint",
                              "ledger.log.codec", "ledger.log.parquet", "ledger.log.file_store", "ledger.log.location",
                              "ledger.log.perf", "ledger.log.fsio", "ledger.log.object_store", "ledger.log.objects",
                              "ledger.log.scan")


def _imports(path: Path) -> set[str]:
    """Absolute names of the project modules `path` imports, at any depth (lazy imports too)."""
    module_parts = path.relative_to(ROOT).with_suffix("").parts
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(module_parts[:-node.level])
                found.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] in ("ledger", "projections")}


def test_each_layer_imports_only_from_layers_below() -> None:
    for path in sorted((ROOT / "ledger").rglob("*.py")):
        parts = path.relative_to(ROOT / "ledger").with_suffix("").parts
        layer = parts[0]
        if len(parts) == 1 and layer in RE_EXPORTS:
            continue
        assert layer in LAYERS, f"{path.relative_to(ROOT)} is in no layer of docs/architecture.md"
        below = LAYERS[:LAYERS.index(layer) + 1]
        for name in _imports(path):
            if name == "projections" or name.startswith("projections."):
                assert layer in ("cli", "dagster"), f"{path.relative_to(ROOT)} imports {name}"
                continue
            target = name.split(".")[1] if "." in name else "__init__"
            assert target in below, f"{path.relative_to(ROOT)} ({layer}) imports {name} from a higher layer"


def test_projections_use_only_the_facade_and_documented_modules() -> None:
    for path in sorted((ROOT / "projections").rglob("*.py")):
        for name in _imports(path):
            if name.startswith("projections"):
                continue
            assert name == "ledger" or name.startswith(DOCUMENTED_FOR_PROJECTIONS), \
                f"{path.relative_to(ROOT)} imports {name}, not the facade or a documented module"


def test_importing_the_facade_stays_light() -> None:
    heavy = ["pyarrow", "pandas", "numpy", "polars", "obstore", "click", "rich", "matplotlib", "projections"]
    code = f"import sys, ledger; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, text=True).stdout
    assert out.strip() == ""


def test_architecture_md_names_every_module() -> None:
    """docs/architecture.md is the map of the tree: a module it does not name is a stale map."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    modules = [p for package in ("ledger", "projections") for p in sorted((ROOT / package).rglob("*.py"))
               if p.name not in ("__init__.py", "__main__.py")]
    missing = [str(p.relative_to(ROOT)) for p in modules if p.name not in text]
    assert not missing, f"docs/architecture.md does not name {missing}"

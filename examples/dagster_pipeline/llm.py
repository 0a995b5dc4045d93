"""A deterministic stand-in for the LLM, and the store of generated outputs.

The stand-in answers from a hash of (model, prompt), so every run produces the same
texts, and it appends one line per call to `calls_log` (O_APPEND: safe from many
processes), `<root>/llm_calls.jsonl`: how the demo and the tests count the calls that
skip-existing saved.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import dagster as dg
import orjson
import pyarrow as pa


CALLS_LOG = "llm_calls.jsonl"


class StandInLLM(dg.ConfigurableResource):  # type: ignore[type-arg]
    root: str

    def complete(self, model: str, prompt: str, gen_id: str) -> str:
        digest = hashlib.sha256(f"{model}\n{prompt}".encode()).hexdigest()
        line = orjson.dumps({"gen_id": gen_id, "model": model}) + b"\n"
        fd = os.open(Path(self.root) / CALLS_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        if prompt.startswith("Evaluate"):
            return f"[{model}] reasoning {digest[:16]}\nSCORE: {1 + int(digest[:4], 16) % 10}"
        return f"[{model}] {digest[:32]}"


def calls(root: str | Path) -> list[dict[str, str]]:
    """The stand-in's calls so far (data root `root`), in order."""
    path = Path(root) / CALLS_LOG
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


class GenStore(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Outputs under `<root>/gens/<stage>/<gen_id>/`, as the pipeline's data root keeps them."""

    root: str

    def gen_dir(self, stage: str, gen_id: str) -> Path:
        return Path(self.root) / "gens" / stage / gen_id

    def report_dir(self, cohort_id: str) -> Path:
        out = Path(self.root) / "reports" / cohort_id
        out.mkdir(parents=True, exist_ok=True)
        return out

    def read(self, stage: str, gen_id: str, name: str = "parsed.txt") -> str:
        return (self.gen_dir(stage, gen_id) / name).read_text(encoding="utf-8")

    def write(self, stage: str, gen_id: str, files: dict[str, str]) -> dict[str, str]:
        """Write the gen's files; return their sha256 (the artifacts the ledger records)."""
        out = self.gen_dir(stage, gen_id)
        out.mkdir(parents=True, exist_ok=True)
        hashes = {}
        for name, text in sorted(files.items()):
            data = text.encode("utf-8")
            tmp = out / f".{name}.{os.getpid()}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, out / name)  # whole or absent: another step may be reading it
            hashes[name.split(".")[0]] = hashlib.sha256(data).hexdigest()
        return hashes

    def scores(self) -> pa.Table:
        """Every evaluation's score found on disk, whatever cohort it was made for."""
        base = Path(self.root) / "gens" / "evaluation"
        ids = sorted(p.name for p in base.iterdir() if (p / "parsed.txt").is_file()) if base.is_dir() else []
        return pa.table({"gen_id": pa.array(ids, pa.string()),
                         "score": pa.array([int(self.read("evaluation", g)) for g in ids], pa.int64())})

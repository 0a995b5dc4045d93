"""The two baselines the ledger is compared with.

A, the status quo: a pipeline keeps one `data/gens/<stage>/<gen_id>/metadata.json` per
generation and builds its manifest by scanning that tree (stdlib json, as pipelines do).
B, a peer: the `eventsourcing` library's SQLite persistence storing the same events
(one aggregate per cohort, one domain event per ledger event) and reading them back in
application-sequence order.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from .generate import Event

#: key order of the reference metadata.json (current shape); absent optional keys omitted
METADATA_ORDER = ("stage", "gen_id", "origin_cohort_id", "mode", "template_id", "combo_id", "parent_gen_id",
                  "llm_model_id", "replicate")
MANIFEST_COLUMNS = ("stage", "gen_id", "origin_cohort_id", "template_id", "combo_id", "llm_model_id",
                    "parent_gen_id", "replicate", "mode")


def metadata_json(data: dict[str, Any]) -> str:
    """The metadata.json a pipeline writes for a created generation (indent=2, reference key order)."""
    doc = {**data, "origin_cohort_id": data["cohort_id"]}
    return json.dumps({k: doc[k] for k in METADATA_ORDER if doc.get(k) is not None}, indent=2)


def write_gens_tree(root: Path, events: Iterable[Event], workers: int = 8) -> int:
    """Write one metadata.json per `generation.created` event under root/gens; return the count.

    Setup, not measured: threads only because creating a few hundred thousand small files
    is bound by file-system latency.
    """
    docs = [(ev["data"]["stage"], ev["data"]["gen_id"], metadata_json(ev["data"]))
            for ev in events if ev["type"] == "generation.created"]

    def write(item: tuple[str, str, str]) -> None:
        stage, gid, text = item
        folder = root / "gens" / stage / gid
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "metadata.json").write_text(text)

    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(write, docs, chunksize=512):
            pass
    return len(docs)


def scan_gens_tree(root: Path, out: Path) -> int:
    """Baseline A, measured: walk the tree, read every metadata.json, write manifest.parquet."""
    columns: dict[str, list[Any]] = {c: [] for c in MANIFEST_COLUMNS}
    for stage in sorted(os.listdir(root / "gens")):
        stage_dir = root / "gens" / stage
        for gid in sorted(os.listdir(stage_dir)):
            with open(stage_dir / gid / "metadata.json", encoding="utf-8") as f:
                doc = json.load(f)
            doc.setdefault("origin_cohort_id", doc.get("cohort_id"))
            for c in MANIFEST_COLUMNS:
                columns[c].append(doc.get(c))
    table = pa.table({c: pa.array(v, pa.int64() if c == "replicate" else pa.string()) for c, v in columns.items()})
    pq.write_table(table, out)
    return table.num_rows


# -- baseline B: eventsourcing + SQLite ---------------------------------------------------------
def _sqlite_app(db: Path) -> Any:
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event

    class CohortLog(Aggregate):
        """One aggregate per cohort; each ledger event becomes one `Recorded` domain event."""

        @event("Opened")
        def __init__(self, cohort_id: str) -> None:
            self.cohort_id = cohort_id

        @event("Recorded")
        def record(self, kind: str, data: dict[str, Any], event_id: str | None, by: dict[str, str]) -> None:
            pass

    class Peer(Application[Any]):
        pass

    app = Peer(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(db)})
    return app, CohortLog


class EventsourcingPeer:
    """The same events through eventsourcing's Application over its SQLite recorder."""

    def __init__(self, db: Path) -> None:
        self.app, self._aggregate = _sqlite_app(db)
        self.logs: dict[str, Any] = {}

    def append(self, events: list[Event]) -> None:
        """One `save` (one SQLite transaction) per batch, like one ledger append."""
        touched = {}
        for ev in events:
            cohort = ev["data"].get("cohort_id", "")
            log = self.logs.get(cohort)
            if log is None:
                log = self.logs[cohort] = self._aggregate(cohort)
            log.record(ev["type"], ev["data"], ev.get("id"), ev.get("by", {}))
            touched[cohort] = log
        self.app.save(*touched.values())

    def read_all(self, page: int = 10_000) -> int:
        """Read every stored event back in order, decoded to domain events."""
        recorder, mapper = self.app.recorder, self.app.mapper
        count, start = 0, 1
        while True:
            notes = recorder.select_notifications(start=start, limit=page)
            if not notes:
                return count
            for note in notes:
                mapper.to_domain_event(note)
            count += len(notes)
            start = notes[-1].id + 1


"""`Ledger.to_arrow` and the Parquet export of the log: the rows are `read`'s events, verified
the same way, on one core or two, and the file's bytes depend only on the log prefix."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from unittest import mock

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.builders import created, event
from helpers.forge import forge_batch
from helpers.logs import append_in_batches, batch_sizes, event_logs
from ledger import CorruptLogError, Ledger
from ledger.app import arrow_log
from ledger.app.arrow_log import FLATTENED, SCHEMA, scan_table, write_parquet
from ledger.domain.events import RecordedEvent
from ledger.log import parallel


def as_event(row: dict[str, Any]) -> dict[str, Any]:
    """A row of the table in `RecordedEvent.model_dump()`'s terms (JSON text decoded, time as text)."""
    at: datetime = row["at"]
    return {"seq": row["seq"], "id": row["id"], "type": row["type"], "v": row["v"],
            "at": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "by": orjson.loads(row["by"]), "txn": tuple(row["txn"]),
            "data": orjson.loads(row["data"]), "prev": row["prev"], "hash": row["hash"]}


def assert_rows_are_read(led: Ledger, table: pa.Table, from_seq: int = 1, to_seq: int | None = None) -> None:
    events = list(led.read(from_seq, to_seq))
    rows = table.to_pylist()
    assert table.schema == SCHEMA
    assert [as_event(r) for r in rows] == [e.model_dump() for e in events]
    for row, ev in zip(rows, events):
        assert row["data"].encode() == orjson.dumps(ev.data, option=orjson.OPT_SORT_KEYS)
        assert all(row[key] == ev.data.get(key) for key in FLATTENED)


def one_pass(led: Ledger) -> pa.Table:
    return scan_table(led.store.scan(led.read_start(1)))


def split(led: Ledger) -> pa.Table:
    """`to_arrow` with the two-core split taken whatever the log's size."""
    with mock.patch.object(parallel, "MIN_BYTES", 0):
        return led.to_arrow()


def _ledger(tmp_path: Path, batches: int = 12, size: int = 7) -> Ledger:
    led = Ledger.init(tmp_path / "ledger")
    led.append([{**event("cohort.opened", cohort_id="c1", description="Zürich ✓"), "by": {"actor": "ops", "run_id": "r0"}}])
    for b in range(batches):
        led.append([created("c1", "draft", f"d{b}-{i}") for i in range(size)])
    return led


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_rows_equal_read_on_random_logs(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    events = data.draw(event_logs())
    led = append_in_batches(tmp_path_factory.mktemp("l") / "ledger", events, data.draw(batch_sizes(len(events))))
    table = led.to_arrow()
    assert_rows_are_read(led, table)
    assert split(led).equals(table) and one_pass(led).equals(table)
    lo = data.draw(st.integers(1, len(events) + 1))
    hi = data.draw(st.none() | st.integers(0, len(events) + 1))
    assert_rows_are_read(led, led.to_arrow(lo, hi), lo, hi)


@pytest.mark.parametrize("chunk_rows", [5, 8192])
def test_the_split_is_taken_and_gives_the_same_file(tmp_path: Path, chunk_rows: int) -> None:
    """Halves and chunks cut the table differently from one pass; the file is the same."""
    led = _ledger(tmp_path)
    with mock.patch.object(parallel, "MIN_BYTES", 0), mock.patch.object(arrow_log, "CHUNK_ROWS", chunk_rows):
        assert led.store.scan_in_halves(led.read_start(1), scan_table) is not None
        halves = write_parquet(led, tmp_path / "split.parquet")
    whole = write_parquet(led, tmp_path / "whole.parquet")
    assert (tmp_path / "split.parquet").read_bytes() == (tmp_path / "whole.parquet").read_bytes()
    assert halves == whole.__class__(whole.events, whole.last_seq, str(tmp_path / "split.parquet"), whole.bytes)
    assert pq.read_table(tmp_path / "whole.parquet").equals(led.to_arrow())


def test_same_prefix_same_bytes(tmp_path: Path) -> None:
    led = _ledger(tmp_path, batches=3)
    head = led.head.seq
    write_parquet(led, tmp_path / "a.parquet")
    led.append([created("c1", "draft", "later")])
    write_parquet(led, tmp_path / "b.parquet", to_seq=head)
    write_parquet(Ledger.open(led.path), tmp_path / "c.parquet", to_seq=head)
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes() \
        == (tmp_path / "c.parquet").read_bytes()


@pytest.mark.parametrize("where", [0.1, 0.45, 0.55, 0.9])
def test_corruption_is_named_as_read_names_it(tmp_path: Path, where: float) -> None:
    led = _ledger(tmp_path)
    lines = led.log_path.read_bytes().splitlines(keepends=True)
    k = int(len(lines) * where)
    lines[k] = lines[k].replace(b'"gen_id":"d', b'"gen_id":"x', 1)
    led.log_path.write_bytes(b"".join(lines))
    with pytest.raises(CorruptLogError) as by_read:
        list(Ledger.open(led.path).read())
    for attempt in (lambda: Ledger.open(led.path).to_arrow(), lambda: split(Ledger.open(led.path))):
        with pytest.raises(CorruptLogError) as by_arrow:
            attempt()
        assert str(by_arrow.value) == str(by_read.value) and f"seq {k + 1}" in str(by_arrow.value)


@pytest.mark.parametrize("tail", [b'{"torn', "short batch"])
def test_the_tail_is_never_a_row(tmp_path: Path, tail: bytes | str) -> None:
    led = _ledger(tmp_path)
    committed = led.head.seq
    if tail == "short batch":  # three complete lines of a seven-event batch in flight
        led.append([created("c1", "draft", f"late-{i}") for i in range(7)])
        lines = led.log_path.read_bytes().splitlines(keepends=True)
        led.log_path.write_bytes(b"".join(lines[:-4]))
    else:
        with open(led.log_path, "ab") as f:
            f.write(tail)  # type: ignore[arg-type]
    reader = Ledger.open(led.path)
    for table in (reader.to_arrow(), split(reader)):
        assert table["seq"].to_pylist() == list(range(1, committed + 1))
        assert_rows_are_read(reader, table)


@pytest.mark.parametrize("forged, says", [
    ({"drop": ("by",)}, "envelope keys"),
    ({"at": "yesterday"}, "at 'yesterday' is not an RFC 3339 time"),
    ({"id": 7}, "id 7 is not a string"),
])
def test_a_foreign_writers_line_is_corruption_at_its_seq(tmp_path: Path, forged: dict[str, Any], says: str) -> None:
    led = _ledger(tmp_path, batches=2)
    ev = created("c1", "draft", "forged")
    if "id" in forged:
        ev["id"] = forged.pop("id")
    seq = forge_batch(led.path, [ev], **forged)
    with pytest.raises(CorruptLogError) as raised:
        Ledger.open(led.path).to_arrow()
    assert f"seq {seq}:" in str(raised.value) and says in str(raised.value)
    if "drop" in forged:  # read refuses the same envelope the same way
        with pytest.raises(CorruptLogError) as by_read:
            list(Ledger.open(led.path).read())
        assert str(by_read.value) == str(raised.value)


def test_empty_log_and_empty_ranges(tmp_path: Path) -> None:
    led = Ledger.init(tmp_path / "ledger")
    assert led.to_arrow().num_rows == 0 and led.to_arrow().schema == SCHEMA
    led.append([event("cohort.opened", cohort_id="c1"), created("c1", "draft", "d1")])
    assert led.to_arrow(3).num_rows == 0 and led.to_arrow(2, 1).num_rows == 0
    assert led.to_arrow(2)["gen_id"].to_pylist() == ["d1"] and led.to_arrow(1, 1)["stage"].to_pylist() == [None]


def test_from_log_is_model_construct(tmp_path: Path) -> None:
    """`RecordedEvent.from_log` skips `model_construct`'s loop, not any of what it sets."""
    led = _ledger(tmp_path, batches=1)
    for ev in led.read():
        fields = ev.model_dump()
        built = RecordedEvent.model_construct(**fields)
        assert ev == built and repr(ev) == repr(built) and ev.model_dump_json() == built.model_dump_json()
        assert ev.model_fields_set == built.model_fields_set
        assert ev.__pydantic_extra__ == built.__pydantic_extra__ and ev.__pydantic_private__ == built.__pydantic_private__
        with pytest.raises(ValidationError):
            ev.seq = 0  # type: ignore[misc]  # frozen, as constructed models are


def test_any_store_exports_the_same_rows(tmp_path: Path) -> None:
    """A store without the two-core split (here the in-memory one) gives the same table."""
    from ledger import MemoryLogStore

    led = _ledger(tmp_path, batches=3)
    mem = Ledger.init(MemoryLogStore())
    for batch in led.store.scan(led.read_start(1)):
        mem.append([{"type": ev["type"], "data": ev["data"], "id": ev["id"], "by": ev["by"]} for ev in batch])
    assert mem.store.scan_in_halves(mem.read_start(1), scan_table) is None
    mine, theirs = mem.to_arrow(), led.to_arrow()
    assert_rows_are_read(mem, mine)
    assert mine.drop_columns(["at", "prev", "hash"]).equals(theirs.drop_columns(["at", "prev", "hash"]))

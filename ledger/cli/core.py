"""init, append, log, verify, repair: the log itself."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import click
import orjson

from ..domain.config import parse_parents
from ..errors import CheckFailed, EventRejected, InvalidInputError
from ..domain.events import RecordedEvent
from ..app.pins import check_pins, parse_pin
from ..app.replay import check_checkpoints
from ..app.service import Ledger
from .common import cli, emit_json, emit_json_list, json_option, ledger_path, open_ledger, terminal_safe


@cli.command()
@click.option("--stages", default="draft,essay,evaluation", show_default=True, help="Stage names, in order.")
@click.option("--parents", default=None, help="Parent stage of each child stage, e.g. essay=draft,evaluation=essay.")
@json_option
def init(stages: str, parents: str | None, as_json: bool) -> None:
    """Create a new ledger."""
    stage_list = tuple(s.strip() for s in stages.split(",") if s.strip())
    ledger = Ledger.init(ledger_path(), stages=stage_list, parents=parse_parents(parents) if parents else None)
    info = {"ledger": ledger.store.location, "ledger_id": ledger.config.ledger_id,
            "stages": list(ledger.config.stages), "parents": ledger.config.parents}
    if as_json:
        emit_json(info)
    else:
        click.echo(f"created ledger {ledger.store.location} ({ledger.config.ledger_id}), stages {', '.join(ledger.config.stages)}")


#: Longest input line `append` accepts: far above any real event. A longer line is refused
#: after reading MAX_LINE_BYTES + 1 bytes of it, so a hostile input cannot exhaust memory.
MAX_LINE_BYTES = 1 << 20
#: a run of digits long enough to be an integer outside signed 64 bits (or inside a string)
_LONG_NUMBER = re.compile(rb"[0-9]{19,}")


def read_batch(stream: BinaryIO) -> list[Any]:
    """JSON lines -> objects. Event #k is line k; only a final newline may follow the last event."""
    batch: list[Any] = []
    while line := stream.readline(MAX_LINE_BYTES + 1):
        i = len(batch)
        if line.endswith(b"\n"):
            line = line[:-1]
        elif len(line) > MAX_LINE_BYTES:
            raise EventRejected(i, f"line is longer than {MAX_LINE_BYTES} bytes")
        if not line.strip():
            raise EventRejected(i, "empty line")
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise EventRejected(i, f"not valid JSON ({exc})") from None
        if _LONG_NUMBER.search(line):  # orjson reads an integer beyond 64 bits as a float: keep it exact
            obj = json.loads(line)  # so validation refuses it instead of committing a float
        batch.append(obj)
    return batch


@cli.command()
@click.argument("source", default="-", type=click.File("rb"))
@click.option("--expected-seq", type=click.IntRange(min=0), default=None,
              help="Append only if the ledger's last seq is this (else exit 1, nothing written).")
@json_option
def append(source: BinaryIO, expected_seq: int | None, as_json: bool) -> None:
    """Append one atomic batch of JSON lines {"type","data","id"?,"by"?} from SOURCE (default stdin)."""
    ledger = open_ledger()
    batch = read_batch(source)
    before = ledger.head.seq
    seqs = ledger.append(batch, expected_seq=expected_seq)
    head = ledger.head
    written = sum(1 for s in seqs if s > before)
    if as_json:
        emit_json({"seqs": seqs, "written": written, "head": {"seq": head.seq, "hash": head.hash}})
    else:
        noop = f", {len(seqs) - written} already recorded (no-op)" if written < len(seqs) else ""
        click.echo(f"appended {written} event(s){noop}; head seq {head.seq} hash {head.hash}")


def _touches_cohort(ev: RecordedEvent, cohort: str) -> bool:
    return ev.data.get("cohort_id") == cohort


def _filtered(ledger: Ledger, from_seq: int, types: tuple[str, ...], cohort: str | None) -> Iterator[RecordedEvent]:
    for ev in ledger.read(from_seq=from_seq):
        if types and ev.type not in types:
            continue
        if cohort is not None and not _touches_cohort(ev, cohort):
            continue
        yield ev


@cli.command()
@click.option("--from", "from_seq", type=click.IntRange(min=1), default=1, help="First seq to show.")
@click.option("--type", "types", multiple=True, help="Only events of this type (repeatable).")
@click.option("--cohort", default=None, help="Only events whose payload names this cohort.")
@click.option("--format", "fmt", type=click.Choice(["text", "parquet"]), default="text", show_default=True,
              help="text: print the events (a JSON array with --json); parquet: write them to --out, one row "
                   "per event (columns: docs/operators.md).")
@click.option("--out", "out_file", type=click.Path(path_type=Path), default=None,
              help="With --format parquet: the file to write (replaced atomically; nothing else is written).")
@json_option
def log(from_seq: int, types: tuple[str, ...], cohort: str | None, fmt: str, out_file: Path | None,
        as_json: bool) -> None:
    """Print committed events, or export them as Parquet for pandas, polars or DuckDB.

    Example: cohort-ledger log --cohort A --type generation.created --format parquet --out a.parquet
    """
    if (fmt == "parquet") != (out_file is not None):
        raise InvalidInputError("--format parquet needs --out FILE" if out_file is None
                                else "--out is only for --format parquet")
    if out_file is not None:
        from ..app.arrow_log import write_parquet  # pyarrow: loaded only for this format

        done = write_parquet(open_ledger(), out_file, from_seq, types=types, cohort=cohort)
        if as_json:
            emit_json(dataclasses.asdict(done))
        else:
            click.echo(terminal_safe(f"wrote {done.events} event(s), last seq {done.last_seq}, to {done.out}"))
        return
    events = _filtered(open_ledger(), from_seq, types, cohort)
    if as_json:
        emit_json_list(ev.model_dump() for ev in events)
        return
    for ev in events:
        payload = orjson.dumps(ev.data).decode()
        click.echo(terminal_safe(f"{ev.seq:>8}  {ev.at}  {ev.type:<24} {payload}"))


@cli.command()
@click.option("--expect-head", default=None, help="Fail (exit 1) unless the head hash is this.")
@click.option("--expect", "expects", multiple=True, metavar="SEQ:HASH",
              help="Fail (exit 1) unless event SEQ still has this hash (repeatable). Keep pins outside the ledger.")
@click.option("--checkpoints", is_flag=True,
              help="Also replay from seq 1 and compare every checkpoint and the writers' index with the replayed state.")
@json_option
def verify(expect_head: str | None, expects: tuple[str, ...], checkpoints: bool, as_json: bool) -> None:
    """Check the whole hash chain; print the head seq and hash.

    Example: cohort-ledger verify --expect "1200:$PINNED_HASH" --checkpoints
    """
    pins = [parse_pin(text) for text in expects]
    ledger = open_ledger()
    report = ledger.verify()
    check_pins(ledger, pins)
    if checkpoints:
        check_checkpoints(ledger.store, ledger.config, index=True)
    info = {"ok": True, "seq": report.head.seq, "hash": report.head.hash, "events": report.events,
            "tail_bytes": report.tail.bytes, "tail_lines": report.tail.lines}
    if expect_head is not None and expect_head.lower() != report.head.hash:
        info["ok"] = False
    if as_json:
        emit_json(info)
    else:
        click.echo(f"ok: {report.events} events, head seq {report.head.seq} hash {report.head.hash}")
        if report.tail.bytes:
            click.echo(f"tail: {report.tail.bytes} uncommitted bytes ({report.tail.lines} complete lines of an "
                       "incomplete batch) after the last complete batch", err=True)
    if not info["ok"]:
        raise CheckFailed(f"head hash {report.head.hash} (seq {report.head.seq}) is not the expected {expect_head}")


@cli.command()
@json_option
def repair(as_json: bool) -> None:
    """Cut an incomplete trailing batch (kept in events.jsonl.torn-<n>); never a complete one."""
    report = open_ledger().repair()
    info = {"seq": report.head.seq, "hash": report.head.hash, "cut_bytes": report.cut_bytes,
            "cut_lines": report.cut_lines, "torn_file": report.torn_file}
    if as_json:
        emit_json(info)
    elif report.torn_file is None:
        click.echo(f"nothing to repair; head seq {report.head.seq} hash {report.head.hash}")
    else:
        click.echo(f"cut {report.cut_bytes} bytes ({report.cut_lines} complete lines of an incomplete batch) "
                   f"into {report.torn_file}; head seq {report.head.seq} hash {report.head.hash}")



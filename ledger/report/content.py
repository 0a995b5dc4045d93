"""The report as a list of neutral blocks, so the HTML page and the Markdown file say the same.

Text recorded in the log (descriptions, reasons, `by`, ids) travels as plain `str`; the
renderers escape it for their medium. A cell may carry a metric tag (`Num`), which the HTML
renderer writes as `data-*` attributes so a test can read the numbers off the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence, Union

from ..cohorts.composition import CohortComposition, Composition, Run
from . import charts


@dataclass(frozen=True)
class Num:
    """A number shown on the page, tagged with what it measures (`data-metric`, `data-*`)."""

    value: int
    metric: str
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Code:
    """Verbatim text (an id, a hash, a command): monospace."""

    text: str


Inline = Union[str, Num, Code]


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Para:
    parts: tuple[Inline, ...]


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: list[tuple[Inline | None, ...]]
    #: rows left out (the page says how many, and where to find them)
    more: str = ""


@dataclass(frozen=True)
class Figure:
    #: the chart's id on the page (`data-chart`), its SVG, and its text alternative
    name: str
    svg: bytes
    alt: str
    caption: str
    data: Table


@dataclass
class Section:
    cohort_id: str | None
    blocks: list[Union[Heading, Para, Table, Figure]] = field(default_factory=list)


Block = Union[Heading, Para, Table, Figure]


def _by(by: tuple[tuple[str, str], ...]) -> str:
    return " ".join(f"{k}={v}" for k, v in by)


def _pct(done: int, total: int) -> str:
    return f"{100 * done / total:.1f}%" if total else "-"


def build(comp: Composition) -> tuple[str, list[Section]]:
    """The report's title and sections, charts drawn."""
    ids = [c.cohort_id for c in comp.cohorts]
    title = f"Cohort report: {', '.join(ids)} (seq {comp.seq})"
    head = Section(None, [
        Heading(1, title),
        Para(("As of seq ", Num(comp.seq, "as-of-seq"),
              f" (committed {comp.at})" if comp.at else " (the empty log)", ". "
              "Every event from seq 1 to here was read and its hash checked while this report was written: "
              "the chain is intact. Pin ", Code(f"{comp.seq}:{comp.hash}"),
              " elsewhere: a later ", Code("cohort-ledger verify"),
              " must still find this hash at this seq, or the log was rewritten.")),
    ])
    sections = [head] + [_cohort(comp, c) for c in comp.cohorts]
    if comp.overlaps:
        sections.append(_overlap(comp))
    return title, sections


def _cohort(comp: Composition, c: CohortComposition) -> Section:
    stages = comp.stages
    cid = c.cohort_id
    tag = (("cohort", cid),)
    sec = Section(cid, [Heading(2, f"Cohort {cid}")])
    if c.description:
        sec.blocks.append(Para(("Description: ", c.description)))
    opened = f"opened at seq {c.opened_seq}" if c.opened_seq is not None else "never explicitly opened"
    sealed = (f"sealed at seq {c.sealed_seq}" + (f" ({c.sealed_reason})" if c.sealed_reason else "")
              if c.sealed_seq is not None else "not sealed")
    sec.blocks.append(Para((f"{opened}; {sealed}; ", Num(c.events, "events", tag),
                            " events name it (", Code(f"cohort-ledger history {cid}"), " lists each).")))
    rows: list[tuple[Inline | None, ...]] = []
    for s in stages:
        st = tag + (("stage", s),)
        new = c.flows[s].get(cid, 0)
        done, total = c.coverage[s]
        rows.append((s, Num(c.members[s], "members", st), Num(new, "created", st), Num(total - new, "reused", st),
                     Num(done, "materialized", st), _pct(done, total)))
    sec.blocks.append(Table(("stage", "active members", "created here", "reused", "materialized", "coverage"), rows))

    series_rows: list[tuple[Inline | None, ...]] = [(str(seq), at, *(str(n) for n in counts))
                                                    for seq, at, counts in c.series]
    last = c.series[-1][2]
    sec.blocks.append(Figure(
        "composition", charts.composition(stages, c.series),
        f"Line chart of {cid}'s active members per stage over seq {c.series[0][0]} to {c.series[-1][0]}; at the end: "
        + ", ".join(f"{n} {s}" for s, n in zip(stages, last)) + ".",
        "Members per stage over the log (exact counts at the seqs in the table below).",
        Table(("seq", "at", *stages), series_rows)))

    flow_rows: list[tuple[Inline | None, ...]] = []
    for s in stages:
        for origin, n in c.flows[s].items():
            flow_rows.append((s, "created here" if origin == cid else f"reused from {origin}",
                              Num(n, "flow", tag + (("stage", s), ("origin", origin)))))
    reused = sum(n for s in stages for o, n in c.flows[s].items() if o != cid)
    origins = sorted({o for s in stages for o in c.flows[s] if o != cid})
    sec.blocks.append(Figure(
        "flows", charts.flows(cid, stages, c.flows),
        f"Stacked bars per stage: {sum(c.members.values()) - reused} members created in {cid}, {reused} reused"
        + (f" from {', '.join(origins)}." if origins else "."),
        "New vs reused active members, by origin cohort.",
        Table(("stage", "source", "active members"), flow_rows)))

    sec.blocks.append(Figure(
        "coverage", charts.coverage(stages, c.coverage),
        "Bars per stage of the share of active members with recorded outputs: "
        + ", ".join(f"{s} {_pct(*c.coverage[s])}" for s in stages) + ".",
        "Materialization coverage: active members whose outputs are recorded (generation.materialized).",
        Table(("stage", "materialized", "active", "coverage"),
              [(s, str(c.coverage[s][0]), str(c.coverage[s][1]), _pct(*c.coverage[s])) for s in stages])))

    sec.blocks.append(Heading(3, "Removals"))
    if not c.removals_total:
        sec.blocks.append(Para(("No member was removed.",)))
    else:
        sec.blocks.append(Para((Num(c.removals_total, "removals", tag), " removal(s), by stage and reason:")))
        sec.blocks.append(Table(("stage", "reason", "removals"),
                                [(s, r, str(n)) for (s, r), n in c.removal_reasons.items()]))
        sec.blocks.append(Table(("seq", "at", "stage", "gen_id", "origin", "reason", "by"),
                                [(str(r.seq), r.at, r.stage, Code(r.gen_id), r.origin_cohort_id, r.reason, _by(r.by))
                                 for r in c.removals],
                                _more(c.removals_total - len(c.removals), "removals", cid)))

    sec.blocks.append(Heading(3, "Timeline"))
    sec.blocks.append(Para(("The events that named the cohort. Within each stretch of consecutive events by "
                            "the same author (a pipeline run, an operator), events of the same type, origin and "
                            "reason are one row, with their count per stage; text is shown exactly as recorded.",)))
    sec.blocks.append(Table(("seq", "at", "event", "stages", "origin", "reason", "by", "events", "members after"),
                            [_run_row(r, stages) for r in c.runs], _more(c.runs_total - len(c.runs), "rows", cid)))
    return sec


def _more(n: int, what: str, cohort_id: str) -> str:
    return f"{n} more {what} not shown: `cohort-ledger history {cohort_id}` lists every event." if n else ""


def _run_row(r: Run, stages: Sequence[str]) -> tuple[Inline | None, ...]:
    seqs = str(r.first_seq) if r.first_seq == r.last_seq else f"{r.first_seq}-{r.last_seq}"
    at = r.first_at if r.first_at == r.last_at else f"{r.first_at} - {r.last_at}"
    per_stage = " ".join(f"{s}={r.stages[s]}" for s in stages if s in r.stages)
    return (seqs, at, r.type, per_stage, r.origin_cohort_id, r.reason, _by(r.by), str(r.events),
            " ".join(f"{s}={n}" for s, n in zip(stages, r.counts)))


def _overlap(comp: Composition) -> Section:
    ids = [c.cohort_id for c in comp.cohorts]
    members = {c.cohort_id: sum(c.members.values()) for c in comp.cohorts}
    shared = {(o.a, o.b): sum(o.both.values()) for o in comp.overlaps}
    rows: list[tuple[Inline | None, ...]] = []
    for o in comp.overlaps:
        for s in comp.stages:
            rows.append((o.a, o.b, s, Num(o.both[s], "both", (("a", o.a), ("b", o.b), ("stage", s)))))
    return Section(None, [
        Heading(2, "Overlap between the cohorts"),
        Figure("overlap", charts.overlap(ids, shared, members),
               "Matrix of active members shared by each pair of cohorts (all stages); the diagonal is each "
               "cohort's size: " + "; ".join(f"{a} and {b}: {n}" for (a, b), n in shared.items()) + ".",
               f"Active members two cohorts share at seq {comp.seq} (`cohort-ledger diff A@{comp.seq} B@{comp.seq}`, "
               "in both).",
               Table(("cohort A", "cohort B", "stage", "in both"), rows)),
    ])

"""The report's charts, rendered to SVG bytes when the report is written (matplotlib).

Deterministic output is the point: glyphs are drawn as paths from the DejaVu Sans that ships
with matplotlib (no font lookup on the machine, nothing for the browser to fetch), element
ids come from a fixed hash salt, and the SVG carries no date. Each function takes already
aggregated numbers (`ledger.cohorts.composition`), never one point per event.
"""

from __future__ import annotations

import io
from typing import Any, Sequence

import matplotlib
from matplotlib.figure import Figure

_RC: dict[Any, Any] = {  # Any keys: matplotlib types rc keys as a Literal
    "svg.hashsalt": "cohort-ledger",
    "svg.fonttype": "path",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": matplotlib.rcParamsDefault["axes.prop_cycle"],
}
#: stacked reuse-flow segments: the cohort's own gens, then this many origins, then "other"
MAX_ORIGINS = 7
_PALETTE = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974"]


def _svg(fig: Figure) -> bytes:
    buf = io.BytesIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    return buf.getvalue()


def _figure(height: float) -> Figure:
    with matplotlib.rc_context(_RC):
        return Figure(figsize=(7.5, height), dpi=100)


def composition(stages: Sequence[str], series: Sequence[tuple[int, str, tuple[int, ...]]]) -> bytes:
    """Members per stage over the log's seq (a step chart: each point is an exact count)."""
    with matplotlib.rc_context(_RC):
        fig = _figure(3.0)
        ax = fig.add_subplot()
        xs = [p[0] for p in series]
        for i, stage in enumerate(stages):
            ax.step(xs, [p[2][i] for p in series], where="post", label=stage, color=_PALETTE[i % len(_PALETTE)],
                    linewidth=1.6)
        ax.set_xlabel("seq")
        ax.set_ylabel("active members")
        ax.set_ylim(bottom=0)
        ax.margins(x=0.01)
        ax.legend(loc="upper left", frameon=False)
        ax.grid(axis="y", color="#e5e5e5", linewidth=0.6)
        return _svg(fig)


def flows(cohort_id: str, stages: Sequence[str], by_stage: dict[str, dict[str, int]]) -> bytes:
    """Stacked bars per stage: gens created in the cohort, then reused from each origin cohort."""
    totals: dict[str, int] = {}
    for f in by_stage.values():
        for origin, n in f.items():
            if origin != cohort_id:
                totals[origin] = totals.get(origin, 0) + n
    shown = sorted(totals, key=lambda o: (-totals[o], o))[:MAX_ORIGINS]
    segments = [(f"new in {cohort_id}", [by_stage[s].get(cohort_id, 0) for s in stages])]
    segments += [(f"reused from {o}", [by_stage[s].get(o, 0) for s in stages]) for o in shown]
    rest = [sum(n for o, n in by_stage[s].items() if o != cohort_id and o not in shown) for s in stages]
    if any(rest):
        segments.append(("reused from other cohorts", rest))
    with matplotlib.rc_context(_RC):
        fig = _figure(0.6 + 0.45 * len(stages) + 0.2 * len(segments))
        ax = fig.add_subplot()
        left = [0] * len(stages)
        ys = list(range(len(stages)))
        for k, (label, values) in enumerate(segments):
            ax.barh(ys, values, left=left, label=label, color=_PALETTE[k % len(_PALETTE)], height=0.6)
            left = [a + b for a, b in zip(left, values)]
        ax.set_yticks(ys, list(stages))
        ax.invert_yaxis()
        ax.set_xlabel("active members")
        if not any(left):
            _empty(ax)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=3, frameon=False)
        return _svg(fig)


def _empty(ax: Any) -> None:
    ax.text(0.5, 0.5, "no active members", transform=ax.transAxes, ha="center", va="center", color="#57606a")


def coverage(stages: Sequence[str], cov: dict[str, tuple[int, int]]) -> bytes:
    """Share of each stage's active members whose outputs are recorded as materialized."""
    with matplotlib.rc_context(_RC):
        fig = _figure(0.5 + 0.4 * len(stages))
        ax = fig.add_subplot()
        ys = list(range(len(stages)))
        shares = [100 * cov[s][0] / cov[s][1] if cov[s][1] else 0.0 for s in stages]
        ax.barh(ys, [100.0] * len(stages), color="#eeeeee", height=0.6)
        ax.barh(ys, shares, color=_PALETTE[2], height=0.6)
        for y, s in zip(ys, stages):
            done, total = cov[s]
            ax.text(101, y, f"{done} / {total}", va="center")
        ax.set_yticks(ys, list(stages))
        ax.invert_yaxis()
        ax.set_xlim(0, 118)
        ax.set_xticks([0, 25, 50, 75, 100])
        ax.set_xlabel("% of active members materialized")
        if not any(cov[s][1] for s in stages):
            _empty(ax)
        return _svg(fig)


def overlap(cohort_ids: Sequence[str], shared: dict[tuple[str, str], int], members: dict[str, int]) -> bytes:
    """A matrix of active members two cohorts share (all stages); the diagonal is each cohort's size."""
    n = len(cohort_ids)
    grid = [[members[a] if a == b else shared.get((a, b), shared.get((b, a), 0)) for b in cohort_ids]
            for a in cohort_ids]
    with matplotlib.rc_context(_RC):
        fig = _figure(1.2 + 0.45 * n)
        ax = fig.add_subplot()
        ax.imshow(grid, cmap="Blues", vmin=0, vmax=max(1, max(max(r) for r in grid)), aspect="auto")
        peak = max(1, max(max(r) for r in grid))
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(grid[i][j]), ha="center", va="center",
                        color="white" if grid[i][j] > peak / 2 else "black")
        ax.set_xticks(range(n), list(cohort_ids), rotation=30, ha="right")
        ax.set_yticks(range(n), list(cohort_ids))
        for side in ("top", "right", "left", "bottom"):
            ax.spines[side].set_visible(False)
        return _svg(fig)

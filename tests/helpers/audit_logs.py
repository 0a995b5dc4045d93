"""Valid logs for the audit tests: batches over three cohorts with creates, reuses and removals."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from helpers.builders import created

#: text a hostile writer might put in a reason: HTML, terminal escapes, Markdown
HOSTILE = "<script>alert(1)</script></td><img src=x onerror=alert(2)> \x1b[2J\x1b]0;title\x07 [a](http://x.invalid) | *b* &amp;"
COHORTS = ["A", "B", "C"]
#: removal reasons as a hostile writer might record them (all valid text)
REASONS = ["bad", "<script>alert(1)</script>", "\x1b[31mred\x1b[0m", "[x](http://example.invalid) | *y*"]


@st.composite
def histories(draw: st.DrawFn) -> list[list[dict[str, Any]]]:
    """Batches of valid events over three cohorts: creates, reuses, removals (hostile reasons)."""
    members: dict[str, set[str]] = {c: set() for c in COHORTS}
    gens: dict[str, str] = {}  # gen -> stage
    batches: list[list[dict[str, Any]]] = []
    if draw(st.booleans()):
        batches.append([{"type": "cohort.opened", "data": {"cohort_id": "C", "description": draw(st.sampled_from(REASONS))},
                         "by": {"actor": draw(st.sampled_from(REASONS))}}])
    for _ in range(draw(st.integers(1, 7))):
        batch: list[dict[str, Any]] = []
        for _ in range(draw(st.integers(1, 4))):
            kind = draw(st.sampled_from(["create", "reuse", "remove", "materialize"] if gens else ["create"]))
            cohort = draw(st.sampled_from(COHORTS))
            if kind == "create":
                drafts = [g for g, s in gens.items() if s == "draft"]
                gid = f"g{len(gens)}"
                if drafts and draw(st.booleans()):
                    batch.append(created(cohort, "essay", gid, parent=draw(st.sampled_from(sorted(drafts)))))
                    gens[gid] = "essay"
                else:
                    batch.append(created(cohort, "draft", gid))
                    gens[gid] = "draft"
                members[cohort].add(gid)
            elif kind == "reuse":
                outside = sorted(set(gens) - members[cohort])
                if not outside:
                    continue
                gid = draw(st.sampled_from(outside))
                batch.append({"type": "generation.reused", "data": {"cohort_id": cohort, "stage": gens[gid],
                                                                   "gen_id": gid, "reason": "curated"}})
                members[cohort].add(gid)
            elif kind == "materialize":
                gid = draw(st.sampled_from(sorted(gens)))
                batch.append({"type": "generation.materialized", "data": {
                    "cohort_id": cohort, "stage": gens[gid], "gen_id": gid, "artifacts": {"raw": "0" * 64}}})
            else:
                if not members[cohort]:
                    continue
                gid = draw(st.sampled_from(sorted(members[cohort])))
                reason = draw(st.sampled_from(REASONS))
                batch.append({"type": "generation.removed", "data": {"cohort_id": cohort, "stage": gens[gid],
                                                                    "gen_id": gid, "reason": reason}})
                members[cohort].discard(gid)
        if batch:
            batches.append(batch)
    return batches

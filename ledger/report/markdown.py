"""The report as Markdown, for pasting into a results write-up: the same blocks as the page,
each chart given by its text alternative (sentence and data table).

Recorded text is neutralised for Markdown: characters that would start markup or break a
table cell are backslash-escaped, HTML is escaped (Markdown renderers pass raw HTML through),
and control characters are shown as their JSON escapes.
"""

from __future__ import annotations

import html
import re

from .content import Block, Code, Figure, Heading, Inline, Num, Para, Section, Table

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MARKUP = re.compile(r"([\\`*_\[\]|~])")


def text(value: str) -> str:
    """Recorded text as inert Markdown."""
    escaped = html.escape(_MARKUP.sub(r"\\\1", value), quote=False)
    return _CONTROL.sub(lambda m: f"\\\\u{ord(m.group()):04x}", escaped)


def _inline(part: Inline | None) -> str:
    if part is None:
        return ""
    if isinstance(part, Num):
        return str(part.value)
    if isinstance(part, Code):
        body = _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", part.text)
        fence = "``" if "`" in body else "`"
        return f"{fence}{body}{fence}" if "|" not in body else text(body)
    return text(part)


def _table(t: Table) -> list[str]:
    lines = ["| " + " | ".join(text(c) for c in t.columns) + " |", "|" + "---|" * len(t.columns)]
    lines += ["| " + " | ".join(_inline(c) for c in row) + " |" for row in t.rows]
    if t.more:
        lines += ["", text(t.more)]
    return lines


def _block(b: Block) -> list[str]:
    if isinstance(b, Heading):
        return ["#" * b.level + " " + text(b.text)]
    if isinstance(b, Para):
        return ["".join(_inline(p) for p in b.parts)]
    if isinstance(b, Table):
        return _table(b)
    assert isinstance(b, Figure)
    return [f"*Chart: {text(b.caption)}* {text(b.alt)}", "", *_table(b.data)]


def render(title: str, sections: list[Section]) -> bytes:
    out: list[str] = []
    for sec in sections:
        for b in sec.blocks:
            out.extend(_block(b))
            out.append("")
    return ("\n".join(out).rstrip("\n") + "\n").encode("utf-8")

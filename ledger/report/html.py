"""The report page: one self-contained HTML file that opens offline.

No script, no external stylesheet or font: the CSS is inline, each chart is an SVG in a
`data:` URI (its own document, so ids in one chart cannot clash with another's) with its
text alternative as `alt` and as a data table. A Content-Security-Policy forbids any fetch
but `data:` images, so even a later edit cannot make the page call out. Recorded text is
HTML-escaped, and control characters are shown as the JSON escapes events.jsonl stores them as.
"""

from __future__ import annotations

import base64
import html
import re

from .content import Block, Code, Figure, Heading, Inline, Num, Para, Section, Table

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:70rem;padding:0 1rem;
color:#1f2328;line-height:1.45}
h1{font-size:1.5rem}h2{font-size:1.25rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem;margin-top:2.5rem}
h3{font-size:1.05rem;margin-top:1.5rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.85rem}
th,td{border:1px solid #d0d7de;padding:.2rem .5rem;text-align:left;vertical-align:top;white-space:pre-wrap}
th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums}
code{font-family:ui-monospace,monospace;font-size:.85em;background:#f6f8fa;padding:0 .2rem;overflow-wrap:anywhere}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(30rem,1fr));gap:0 2rem;align-items:start}
.ctl{color:#cf222e;font-family:ui-monospace,monospace}
figure{margin:1rem 0}figure img{display:block;max-width:100%;height:auto}
figcaption{font-size:.85rem;color:#57606a}details{font-size:.85rem}.more{font-size:.85rem;color:#57606a}
""".strip()


def text(value: str) -> str:
    """Recorded text as inert HTML: escaped, control characters made visible."""
    return _CONTROL.sub(lambda m: f'<span class="ctl">\\u{ord(m.group()):04x}</span>', html.escape(value, quote=True))


def _inline(part: Inline | None) -> str:
    if part is None:
        return ""
    if isinstance(part, Num):
        attrs = "".join(f' data-{k}="{text(v)}"' for k, v in part.tags)
        return f'<span data-metric="{part.metric}"{attrs}>{part.value}</span>'
    if isinstance(part, Code):
        return f"<code>{text(part.text)}</code>"
    return text(part)


def _table(t: Table) -> str:
    head = "".join(f"<th>{text(c)}</th>" for c in t.columns)
    body = "".join("<tr>" + "".join(f'<td class="n">{_inline(c)}</td>' if isinstance(c, Num)
                                    else f"<td>{_inline(c)}</td>" for c in row) + "</tr>\n" for row in t.rows)
    more = f'<p class="more">{text(t.more)}</p>' if t.more else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>{more}"


def _block(b: Block) -> str:
    if isinstance(b, Heading):
        return f"<h{b.level}>{text(b.text)}</h{b.level}>"
    if isinstance(b, Para):
        return "<p>" + "".join(_inline(p) for p in b.parts) + "</p>"
    if isinstance(b, Table):
        return _table(b)
    uri = "data:image/svg+xml;base64," + base64.b64encode(b.svg).decode("ascii")
    return (f'<figure data-chart="{b.name}"><img src="{uri}" alt="{text(b.alt)}">'
            f"<figcaption>{text(b.caption)}</figcaption>"
            f"<details><summary>Data (text alternative)</summary>{_table(b.data)}</details></figure>")


def _blocks(blocks: list[Block]) -> list[str]:
    """Blocks in order; consecutive charts share a grid, side by side where the page is wide."""
    out: list[str] = []
    figures: list[str] = []
    for b in blocks + [Para(())]:
        if isinstance(b, Figure):
            figures.append(_block(b))
            continue
        if figures:
            out.append('<div class="charts">' + "".join(figures) + "</div>")
            figures = []
        if b != Para(()):
            out.append(_block(b))
    return out


def render(title: str, sections: list[Section]) -> bytes:
    """The page's bytes (UTF-8)."""
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
             'style-src \'unsafe-inline\'">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{text(title)}</title><style>{_CSS}</style></head><body>"]
    for sec in sections:
        attr = f' data-cohort="{text(sec.cohort_id)}"' if sec.cohort_id is not None else ""
        parts.append(f"<section{attr}>")
        parts.extend(_blocks(sec.blocks))
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "\n".join(parts).encode("utf-8")

"""Self-contained HTML pages: one file with its style inline and its charts as inline SVG
(matplotlib's SVG backend), no script, font or request from anywhere, readable on a screen and
printed. The reports of runs, sweeps, capacity searches (html.py) and comparisons are built
from these pieces.

A chart's hover values are SVG <title>s on invisible shapes laid over it (one a second, or one
a point), placed from the figure's own transforms after it was drawn.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..results.summary import _write_atomic  # atomic, 0644 under the usual umask

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


STYLE = """
:root { color-scheme: light; --ok: #1b7f3b; --bad: #b3261e; --warn: #8a5a00; --line: #d0d4d9;
        --muted: #5f6368; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
       sans-serif; color: #1f2328; margin: 0 auto; max-width: 1060px; padding: 1.2em 1.5em 3em; }
h1 { font-size: 1.45em; margin: 0 0 .2em; }
h2 { font-size: 1.2em; margin: 1.8em 0 .5em; padding-bottom: .2em;
     border-bottom: 1px solid var(--line); }
h3 { font-size: 1.02em; margin: 1.2em 0 .3em; }
p { margin: .4em 0; }
.sub { color: var(--muted); margin-bottom: 1em; }
.answer { border: 1px solid var(--line); border-left: 6px solid var(--muted); border-radius: 6px;
          padding: .7em 1em; margin: 1em 0; }
.answer.ok { border-left-color: var(--ok); }
.answer.bad { border-left-color: var(--bad); }
.answer.warn { border-left-color: var(--warn); }
.answer .big { font-size: 1.15em; font-weight: 600; }
.ok-text { color: var(--ok); font-weight: 600; }
.bad-text { color: var(--bad); font-weight: 600; }
.warn-text { color: var(--warn); font-weight: 600; }
ul.reasons { margin: .3em 0 .3em 1.2em; padding: 0; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(15em, 1fr));
           gap: .3em 1.2em; margin: .6em 0; }
.figures.keys { grid-template-columns: repeat(auto-fill, minmax(24em, 1fr)); font-size: .93em; }
.figures.keys span:last-child { text-align: right; overflow-wrap: anywhere; }
.figures div { border-bottom: 1px dotted var(--line); display: flex;
               justify-content: space-between; gap: .6em; }
.figures span:last-child, td.num, th.num { font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; margin: .4em 0 .8em; font-size: .93em; }
th, td { padding: .22em .7em; border-bottom: 1px solid var(--line); text-align: left;
         vertical-align: top; }
th { background: #f3f4f6; font-weight: 600; }
td.num, th.num { text-align: right; white-space: nowrap; }
td.key { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
         font-size: .9em; }
.scroll { overflow-x: auto; }
figure { margin: .6em 0 1.2em; }
figcaption { color: var(--muted); font-size: .9em; }
svg.chart { width: 100%; height: auto; display: block; }
svg .hover rect, svg .hover circle { fill: #000; fill-opacity: 0; }
svg .hover rect:hover { fill-opacity: .07; }
svg .hover circle:hover { fill-opacity: .15; }
pre { background: #f6f8fa; border: 1px solid var(--line); border-radius: 4px; padding: .6em;
      font-size: .82em; white-space: pre-wrap; overflow-wrap: anywhere; }
details summary { cursor: pointer; color: var(--muted); }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
              font-size: .9em; }
footer { margin-top: 3em; color: var(--muted); font-size: .85em; }
@media print {
  body { max-width: none; padding: 0; font-size: 10pt; }
  h2 { break-after: avoid; }
  figure, table, .answer, .figures { break-inside: avoid; }
  .figures.keys { grid-template-columns: repeat(2, 1fr); }
  a { color: inherit; text-decoration: none; }
  svg .hover, .screen { display: none; }
  details::details-content { content-visibility: visible; display: block; }
  details summary { color: inherit; }
}
@page { margin: 14mm; }
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


@dataclass
class Cell:
    """A table cell: its HTML, right-aligned as a number, with an optional hover text."""

    html: str
    num: bool = False
    title: str = ""
    span: int = 1  # rows

    def render(self, tag: str = "td") -> str:
        attrs = ' class="num"' if self.num else ""
        attrs += f' title="{esc(self.title)}"' if self.title else ""
        attrs += f' rowspan="{self.span}"' if self.span > 1 else ""
        return f"<{tag}{attrs}>{self.html}</{tag}>"


def text(value: Any) -> Cell:
    return Cell(esc(value))


def num(value: Any) -> Cell:
    return Cell(esc(value), num=True)


def table(head: Sequence[str | Cell], rows: Iterable[Sequence[Cell | None]],
          caption: str = "") -> str:
    """A table; a None cell is one a rowspan above covers."""
    heads = "".join((h if isinstance(h, Cell) else Cell(esc(h))).render("th") for h in head)
    body = "".join("<tr>" + "".join(c.render() for c in row if c is not None) + "</tr>"
                   for row in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return (f'<div class="scroll"><table>{cap}<thead><tr>{heads}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def keys(items: Iterable[tuple[str, Any]]) -> str:
    """Keys (as the JSON names them) and their values, in a grid."""
    return '<div class="figures keys">' + "".join(
        f'<div><span class="mono">{esc(key)}</span><span>{esc(value)}</span></div>'
        for key, value in items) + "</div>"


def figures(items: Iterable[tuple[str, Any]]) -> str:
    """Headline figures as label: value, in a grid."""
    return '<div class="figures">' + "".join(
        f"<div><span>{esc(label)}</span><span>{esc(value)}</span></div>"
        for label, value in items) + "</div>"


def link(href: str, label: str) -> str:
    return f'<a href="{esc(href)}">{esc(label)}</a>'


@dataclass
class Hover:
    """Hover titles for one axes of a chart: one for each second (a column as wide as the
    second and as tall as the axes), or one for each point (a small circle)."""

    axes: Axes
    titles: Sequence[str]
    xs: Sequence[float]
    ys: Sequence[float] | None = None  # points; None: columns


def svg(fig: Figure, name: str, hovers: Sequence[Hover] = (), label: str = "") -> str:
    """The figure as inline SVG: text kept as text (small, searchable, the page's font
    stack), ids prefixed with `name` so several charts share a page, the hover titles laid
    on top."""
    import matplotlib

    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": name}):
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None,
                                                    "Format": None, "Type": None})
    doc = buffer.getvalue()
    doc = doc[doc.index("<svg"):]
    doc = re.sub(r'\bid="([^"]+)"', rf'id="{name}-\1"', doc)
    doc = re.sub(r"url\(#([^)]+)\)", rf"url(#{name}-\1)", doc)
    doc = re.sub(r'href="#([^"]+)"', rf'href="#{name}-\1"', doc)
    # The size comes from the page (CSS); the viewBox keeps the proportions.
    doc = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"',
                 rf'<svg\1 class="chart" role="img" aria-label="{esc(label or name)}"',
                 doc, count=1)
    doc = re.sub(r"<metadata>.*?</metadata>\s*", "", doc, count=1, flags=re.S)
    layer = "".join(_hover(fig, hover) for hover in hovers)
    if layer:
        end = doc.rindex("</svg>")
        doc = f'{doc[:end]}<g class="hover">{layer}</g>\n{doc[end:]}'
    return doc.strip()


def chart(fig: Figure, name: str, hovers: Sequence[Hover] = (), heading: str = "",
          label: str = "") -> str:
    """A figure as a page's <figure>, under its heading (if it has none of its own)."""
    head = f"<h3>{esc(heading)}</h3>" if heading else ""
    return f"<figure>{head}{svg(fig, name, hovers, heading or label)}</figure>"


def _hover(fig: Figure, hover: Hover) -> str:
    """The hover shapes in the SVG's units (points from the top left), from the axes'
    transforms as the figure was laid out when it was saved."""
    scale = 72 / fig.dpi
    height = fig.bbox.height * scale
    box = hover.axes.bbox
    data = hover.axes.transData
    out = []
    if hover.ys is None:
        x_low, x_high = box.x0, box.x1
        for x, title in zip(hover.xs, hover.titles, strict=True):
            left = max(x_low, data.transform((x - 0.5, 0))[0])
            right = min(x_high, data.transform((x + 0.5, 0))[0])
            if right <= left:
                continue
            out.append(f'<rect x="{left * scale:.1f}" y="{height - box.y1 * scale:.1f}" '
                       f'width="{(right - left) * scale:.1f}" '
                       f'height="{box.height * scale:.1f}"><title>{esc(title)}</title></rect>')
    else:
        for x, y, title in zip(hover.xs, hover.ys, hover.titles, strict=True):
            px, py = data.transform((x, y))
            out.append(f'<circle cx="{px * scale:.1f}" cy="{height - py * scale:.1f}" r="6">'
                       f"<title>{esc(title)}</title></circle>")
    return "".join(out)


@dataclass
class Page:
    """An HTML page put together section by section, then written as one file."""

    title: str
    subtitle: str = ""
    parts: list[str] = field(default_factory=list)

    def add(self, *chunks: str) -> Page:
        self.parts.extend(chunks)
        return self

    def section(self, anchor: str, heading: str, *chunks: str) -> Page:
        return self.add(f'<section id="{esc(anchor)}"><h2>{esc(heading)}</h2>',
                        *chunks, "</section>")

    def chart(self, fig: Figure, name: str, hovers: Sequence[Hover] = (),
              heading: str = "") -> Page:
        return self.add(chart(fig, name, hovers, heading))

    def render(self, footer: str = "") -> str:
        sub = f'<p class="sub">{self.subtitle}</p>' if self.subtitle else ""
        foot = f"<footer>{footer}</footer>" if footer else ""
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                '<meta name="viewport" content="width=device-width, initial-scale=1">'
                f"<title>{esc(self.title)}</title><style>{STYLE}</style></head>\n<body>"
                f"<h1>{esc(self.title)}</h1>{sub}\n" + "\n".join(self.parts)
                + f"\n{foot}</body></html>\n")

    def write(self, path: Path, footer: str = "") -> Path:
        _write_atomic(path, self.render(footer))
        return path

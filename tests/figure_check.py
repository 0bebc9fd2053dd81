"""One check for every figure esmeperf draws: from the figure's own artists, laid out and
measured with its renderer, no legend covers data or text and no text leaves the canvas.

`layout_problems(fig)` returns the problems found, one line each (empty: the figure is clean);
tests assert `layout_problems(fig) == []`, so a failure names the artists at fault.
"""

from __future__ import annotations

from typing import Any

from matplotlib.axes import Axes
from matplotlib.collections import Collection
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.text import Text
from matplotlib.transforms import Bbox

TOLERANCE = 0.5  # pixels: antialiasing, not layout


def layout_problems(fig: Figure) -> list[str]:
    """What is wrong with the figure's layout as it is drawn (see the module docstring)."""
    fig.canvas.draw()  # constrained layout runs at draw time: measure what is drawn
    renderer = fig.canvas.get_renderer()
    canvas = fig.bbox
    problems = []
    legends = _legends(fig)
    texts = _texts(fig)
    for text in texts:
        box = text.get_window_extent(renderer)
        if not _inside(box, canvas):
            problems.append(f"text {text.get_text()!r} leaves the canvas: {_fmt(box)} of "
                            f"{_fmt(canvas)}")
    for ax in fig.axes:
        # Text placed among the data (annotations, bar labels) stays inside its axes, clear
        # of the frame.
        for text in ax.texts:
            if not text.get_visible() or not text.get_text():
                continue
            box = text.get_window_extent(renderer)
            if not _inside(box, ax.bbox, margin=1.0):
                problems.append(f"text {text.get_text()!r} is not inside its axes: "
                                f"{_fmt(box)} of {_fmt(ax.bbox)}")
    for legend in legends:
        box = legend.get_window_extent(renderer)
        if not _inside(box, canvas):
            problems.append(f"legend {_names(legend)} leaves the canvas")
        own = {id(t) for t in [*legend.get_texts(), legend.get_title()]}
        for text in texts:
            if id(text) in own:
                continue
            if _overlap(box, text.get_window_extent(renderer)):
                problems.append(f"legend {_names(legend)} covers text {text.get_text()!r}")
        for other in legends:
            if other is not legend and _overlap(box, other.get_window_extent(renderer)):
                problems.append(f"legend {_names(legend)} covers legend {_names(other)}")
        for ax in fig.axes:
            problems += [f"legend {_names(legend)} covers {what}"
                         for what in _data_under(ax, box, renderer)]
    return sorted(set(problems))


def _legends(fig: Figure) -> list[Legend]:
    found = [*fig.legends, *(ax.get_legend() for ax in fig.axes)]
    return [legend for legend in found if legend is not None and legend.get_visible()]


def _texts(fig: Figure) -> list[Text]:
    """Every text drawn: titles, labels, tick labels (only the ticks drawn), annotations,
    legends' texts."""
    # A tick label is drawn only when its tick is in the view: matplotlib keeps spare tick
    # objects (and their labels) around.
    spare, drawn = set(), set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                spare |= {id(tick.label1), id(tick.label2)}
            if not (ax.get_visible() and axis.get_visible()):
                continue
            low, high = sorted(axis.get_view_interval())
            slack = (high - low) * 1e-9
            labels = {id(t) for t in axis.get_ticklabels(minor=False)
                      + axis.get_ticklabels(minor=True)}
            drawn |= {id(label) for tick in axis.get_major_ticks() + axis.get_minor_ticks()
                      if low - slack <= tick.get_loc() <= high + slack
                      for label in (tick.label1, tick.label2) if id(label) in labels}
    return [text for text in fig.findobj(Text)
            if text.get_visible() and text.get_text().strip()
            and (id(text) in drawn or id(text) not in spare)]


def _data_under(ax: Axes, legend: Bbox, renderer: Any) -> list[str]:
    """The data of `ax` the legend box covers: lines and markers, bars, scattered points.
    Data is clipped to its axes, so only the part of the legend over the axes can cover it."""
    area = Bbox.intersection(legend, ax.bbox)
    if area is None or area.width <= TOLERANCE or area.height <= TOLERANCE:
        return []
    area = area.expanded(1.0, 1.0)
    found = []
    for line in ax.get_lines():
        if not line.get_visible() or len(line.get_xydata()) == 0:
            continue
        name = f"line {line.get_label()!r}"
        path = line.get_transform().transform_path(line.get_path())
        if line.get_linestyle() not in ("None", "none", "", " ") and len(path.vertices) > 1:
            if path.intersects_bbox(area, filled=False):
                found.append(name)
                continue
        if line.get_marker() not in (None, "None", "none", "", " "):
            pad = line.get_markersize() / 2 * renderer.points_to_pixels(1)
            if _any_point_in(path.vertices, area.expanded(1, 1).padded(pad)):
                found.append(f"{name} (its markers)")
    for container in ax.containers:
        for patch in getattr(container, "patches", []) or []:
            if _overlap(patch.get_window_extent(renderer), area):
                found.append(f"bar {container.get_label()!r}")
                break
    for collection in ax.collections:
        if not isinstance(collection, Collection) or not collection.get_visible():
            continue
        offsets = collection.get_offset_transform().transform(collection.get_offsets())
        if len(offsets) and _any_point_in(offsets, area):
            found.append(f"points {collection.get_label()!r}")
    return found


def _any_point_in(points: Any, box: Bbox) -> bool:
    return any(box.x0 <= x <= box.x1 and box.y0 <= y <= box.y1 for x, y in points)


def _inside(box: Bbox, outer: Bbox, margin: float = 0.0) -> bool:
    slack = TOLERANCE - margin
    return (box.x0 >= outer.x0 - slack and box.y0 >= outer.y0 - slack
            and box.x1 <= outer.x1 + slack and box.y1 <= outer.y1 + slack)


def _overlap(a: Bbox, b: Bbox) -> bool:
    return (min(a.x1, b.x1) - max(a.x0, b.x0) > TOLERANCE
            and min(a.y1, b.y1) - max(a.y0, b.y0) > TOLERANCE)


def _names(legend: Legend) -> str:
    return repr([t.get_text() for t in legend.get_texts()][:3])


def _fmt(box: Bbox) -> str:
    return f"[{box.x0:.0f}, {box.y0:.0f}, {box.x1:.0f}, {box.y1:.0f}]"


"""Geometry of the overview's SVG charts, computed on the server. No Flask.

The templates only draw what is computed here (``templates/overview/_charts.html``): every
shape has its coordinates in the chart's own units (the SVG ``viewBox``), a CSS class for
its colour (no inline styles: the Content-Security-Policy is ``style-src 'self'``), a
``title`` (the tooltip, and what the data table says) and ``data`` attributes with the
numbers it stands for.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date


def nice_ceiling(value: float) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... at least ``value`` (1 for nothing)."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return int(step * power)
    return int(10 * power)


def short_day(day: date) -> str:
    return f"{day.day} {day:%b}"


def number(n: int) -> str:
    return f"{n:,}"


def plural(n: int, one: str, many: str | None = None) -> str:
    return f"{number(n)} {one if n == 1 else (many or one + 's')}"


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    css: str
    value: int
    name: str  # what the value counts, e.g. "succeeded"


@dataclass
class Column:
    """One day's stacked bar."""

    x: float
    center: float
    label: str
    title: str
    rects: list[Rect]
    data: dict
    tick: str | None = None  # a date shown under the axis


@dataclass
class ColumnChart:
    width: int
    height: int
    top: int
    bottom: int  # y of the axis
    left: int
    right: int
    scale_max: int
    columns: list[Column]
    gridlines: list[tuple[float, str]] = field(default_factory=list)  # (y, label)


DAY_WIDTH, DAY_HEIGHT = 720, 280
DAY_MARGINS = {"top": 28, "bottom": 236, "left": 8, "right": 712}


def day_columns(days, every: int = 7) -> ColumnChart:
    """Stacked columns for a list of ``DayCount``, oldest first: masks made in the dashboard at the
    bottom, masks made through the API above them, the dashboard's failed attempts on top."""
    top, bottom, left, right = (DAY_MARGINS[k] for k in ("top", "bottom", "left", "right"))
    scale_max = nice_ceiling(max((d.total for d in days), default=0))
    slot = (right - left) / max(len(days), 1)
    bar = slot * 0.72
    plot = bottom - top
    columns = []
    for i, d in enumerate(days):
        x = left + i * slot + (slot - bar) / 2
        rects = []
        y = float(bottom)
        for value, css, name in ((d.successes, "bar-ok", "made in the dashboard"),
                                 (d.api, "bar-api", "made through the API"),
                                 (d.failures, "bar-fail", "failed in the dashboard")):
            if value:
                height = plot * value / scale_max
                y -= height
                rects.append(Rect(round(x, 2), round(y, 2), round(bar, 2), round(height, 2), css, value, name))
        label = short_day(d.day)
        title = (f"{label}: {plural(d.made, 'mask')} made, {number(d.successes)} in the dashboard and "
                 f"{number(d.api)} through the API; {plural(d.failures, 'failed attempt')} in the dashboard")
        last = i == len(days) - 1
        tick = "today" if last else (label if (len(days) - 1 - i) % every == 0 and i >= 2 else None)
        columns.append(Column(round(x, 2), round(x + bar / 2, 2), label, title, rects,
                              {"day": d.day.isoformat(), "successes": d.successes, "failures": d.failures,
                               "api": d.api}, tick))
    half = scale_max // 2
    gridlines = [(float(top), number(scale_max))]
    if half:
        gridlines.append((round(bottom - plot * half / scale_max, 2), number(half)))
    return ColumnChart(DAY_WIDTH, DAY_HEIGHT, top, bottom, left, right, scale_max, columns, gridlines)


@dataclass
class BarRow:
    """One labelled horizontal bar of one or more segments."""

    y: float  # baseline of the label line
    bar_y: float
    label: str
    value_text: str
    title: str
    segments: list[Rect]
    data: dict


@dataclass
class BarChart:
    width: int
    height: int
    bar_height: int
    rows: list[BarRow]
    table: list[list[str]] = field(default_factory=list)  # the same figures, for the data table


BAR_WIDTH = 400
ROW_HEIGHT = 50
BAR_HEIGHT = 16
LABEL_CHARS = 30


def _shorten(text: str, limit: int = LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bar_rows(items, scale_max: int | None = None) -> BarChart:
    """Horizontal bars. ``items``: dicts with ``label``, ``value_text``, ``title``, ``data`` and
    ``segments``: [(value, css, name)], drawn left to right against a common scale."""
    items = list(items)
    top = max((sum(v for v, _, _ in item["segments"]) for item in items), default=0)
    scale = scale_max or max(top, 1)
    rows = []
    for i, item in enumerate(items):
        y = i * ROW_HEIGHT + 18
        bar_y = y + 8
        x = 0.0
        segments = []
        for value, css, name in item["segments"]:
            width = BAR_WIDTH * value / scale
            if value:
                segments.append(Rect(round(x, 2), bar_y, round(max(width, 1.5), 2), BAR_HEIGHT, css, value, name))
            x += width
        rows.append(BarRow(y, bar_y, _shorten(item["label"]), item["value_text"], item["title"], segments,
                           item.get("data", {})))
    return BarChart(BAR_WIDTH, max(len(rows), 1) * ROW_HEIGHT + 4, BAR_HEIGHT, rows)


def failure_bars(failures) -> BarChart:
    chart = bar_rows({
        "label": c.label, "value_text": number(c.count),
        "title": f"{c.label}: {plural(c.count, 'failed attempt')}",
        "segments": [(c.count, "bar-fail", "failed")],
        "data": {"code": "none" if c.code is None else c.code, "count": c.count},
    } for c in failures)
    chart.table = [[c.label, number(c.count)] for c in failures]
    return chart


def pool_bars(pool) -> BarChart:
    chart = bar_rows(({
        "label": p.status.capitalize(), "value_text": f"{number(p.in_use)} in use · {number(p.free)} free",
        "title": f"{p.status.capitalize()} numbers: {number(p.in_use)} in use, {number(p.free)} free, "
                 f"{number(p.total)} in all",
        "segments": [(p.in_use, "bar-use", "in use"), (p.free, "bar-free", "free")],
        "data": {"status": p.status, "in-use": p.in_use, "free": p.free},
    } for p in pool), scale_max=max((p.total for p in pool), default=1))
    chart.table = [[p.status.capitalize(), number(p.in_use), number(p.free), number(p.total)] for p in pool]
    return chart


def agent_bars(agents) -> BarChart:
    chart = bar_rows({
        "label": a.username, "value_text": number(a.total) + (f" ({number(a.failures)} failed)" if a.failures else ""),
        "title": f"{a.username}: {plural(a.total, 'mask attempt')}, {number(a.successes)} succeeded, "
                 f"{number(a.failures)} failed",
        "segments": [(a.successes, "bar-ok", "succeeded"), (a.failures, "bar-fail", "failed")],
        "data": {"user": a.username, "successes": a.successes, "failures": a.failures},
    } for a in agents)
    chart.table = [[a.username, number(a.successes), number(a.failures)] for a in agents]
    return chart

"""Charts as geometry: daily stacked bars and daily lines, laid out in a fixed view box for the
templates to draw as inline SVG (no script, no library). Pure.

Each chart also keeps its numbers as rows, so the page can offer them as a table: the SVG is
``role="img"`` with a title, and the table is what a screen reader reads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from gridgate.core.times import iso_day

WIDTH = 720
HEIGHT = 240
LEFT = 64  # room for the y labels
RIGHT = 12
TOP = 12
BOTTOM = 28  # room for the x labels
SERIES_CLASSES = 6  # .series-0 … .series-5 in app.css


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: int  # the legend entry (and colour) it belongs to
    title: str


@dataclass(frozen=True, slots=True)
class Line:
    series: int
    points: str  # "x,y x,y …" for one unbroken stretch


@dataclass(frozen=True, slots=True)
class Dot:
    x: float
    y: float
    series: int
    title: str


@dataclass(frozen=True, slots=True)
class Tick:
    at: float
    label: str


@dataclass
class Chart:
    title: str
    width: int = WIDTH
    height: int = HEIGHT
    bars: list[Bar] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    dots: list[Dot] = field(default_factory=list)  # every point of the lines
    y_ticks: list[Tick] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    legend: list[tuple[int, str]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)  # the numbers, as a table
    empty: bool = True
    baseline: float = HEIGHT - BOTTOM
    left: int = LEFT
    right: int = WIDTH - RIGHT


def _nice_max(value: float) -> float:
    """The smallest 1, 2 or 5 × 10^k at or above ``value`` (a round top for the axis)."""
    if value <= 0:
        return 1.0
    scale = 1.0
    while scale * 10 <= value:
        scale *= 10
    while scale > value:
        scale /= 10
    for step in (1, 2, 5, 10):
        if step * scale >= value:
            return step * scale
    return 10 * scale  # pragma: no cover


def _x_ticks(days: Sequence[int], x_of: Callable[[int], float]) -> list[Tick]:
    every = max(1, len(days) // 6)
    return [Tick(x_of(i), iso_day(d)[5:]) for i, d in enumerate(days) if i % every == 0]


def stacked_bars(
    title: str,
    days: Sequence[int],
    series: Sequence[str],
    values: Mapping[tuple[int, str], int],
    *,
    label: Callable[[float], str],
) -> Chart:
    """One bar per day, stacked by series (``values[(day, series)]``)."""
    chart = Chart(title=title)
    chart.legend = [(i % SERIES_CLASSES, name) for i, name in enumerate(series)]
    totals = [sum(values.get((d, s), 0) for s in series) for d in days]
    top = _nice_max(max(totals, default=0))
    plot_h = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(1, len(days))
    width = max(1.0, slot * 0.7)
    for i, day in enumerate(days):
        y = float(HEIGHT - BOTTOM)
        for j, name in enumerate(series):
            value = values.get((day, name), 0)
            if value <= 0:
                continue
            h = value / top * plot_h
            y -= h
            chart.bars.append(
                Bar(
                    round(LEFT + i * slot + (slot - width) / 2, 2),
                    round(y, 2),
                    round(width, 2),
                    round(h, 2),
                    j % SERIES_CLASSES,
                    f"{iso_day(day)} {name}: {label(value)}",
                )
            )
    chart.y_ticks = [
        Tick(round(HEIGHT - BOTTOM - f * plot_h, 2), label(top * f)) for f in (0, 0.5, 1)
    ]
    chart.x_ticks = _x_ticks(days, lambda i: round(LEFT + i * slot + slot / 2, 2))
    chart.columns = ["Date", *series, "Total"]
    chart.rows = [
        [iso_day(d), *(label(values.get((d, s), 0)) for s in series), label(t)]
        for d, t in zip(days, totals, strict=True)
        if t
    ]
    chart.empty = not any(totals)
    return chart


def daily_lines(
    title: str,
    days: Sequence[int],
    series: Mapping[str, Sequence[float | None]],
    *,
    label: Callable[[float], str],
) -> Chart:
    """One line per series over the days; a day without a value breaks its line."""
    chart = Chart(title=title)
    names = list(series)
    chart.legend = [(i % SERIES_CLASSES, name) for i, name in enumerate(names)]
    present = [v for values in series.values() for v in values if v is not None]
    top = _nice_max(max(present, default=0))
    plot_h = HEIGHT - TOP - BOTTOM
    step = (WIDTH - LEFT - RIGHT) / max(1, len(days) - 1)

    def x_of(i: int) -> float:
        return round(LEFT + i * step, 2)

    for j, name in enumerate(names):
        stretch: list[str] = []
        for i, value in enumerate(series[name]):
            if value is None:
                if stretch:
                    chart.lines.append(Line(j % SERIES_CLASSES, " ".join(stretch)))
                stretch = []
                continue
            y = round(HEIGHT - BOTTOM - value / top * plot_h, 2)
            stretch.append(f"{x_of(i)},{y}")
            chart.dots.append(
                Dot(x_of(i), y, j % SERIES_CLASSES, f"{iso_day(days[i])} {name}: {label(value)}")
            )
        if stretch:
            chart.lines.append(Line(j % SERIES_CLASSES, " ".join(stretch)))
    chart.y_ticks = [
        Tick(round(HEIGHT - BOTTOM - f * plot_h, 2), label(top * f)) for f in (0, 0.5, 1)
    ]
    chart.x_ticks = _x_ticks(days, x_of)
    chart.columns = ["Date", *names]
    chart.rows = [
        [iso_day(d), *("–" if series[n][i] is None else label(series[n][i] or 0) for n in names)]
        for i, d in enumerate(days)
        if any(series[n][i] is not None for n in names)
    ]
    chart.empty = not present
    return chart

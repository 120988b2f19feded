"""The dashboard's charts (``gridgate/dashboard/charts.py``) as geometry, and as drawn by the
templates' ``chart`` macro: the axis tops out at a round number at or above the largest value,
stacked bars and lines scale to it (the largest reaching the top of the plot), a missing day
breaks a line, nothing to show draws no SVG but an empty state, every number is also in the
table, and whatever text goes in comes out escaped in well-formed markup."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import date
from typing import Any

import pytest
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from gridgate.dashboard import charts
from gridgate.dashboard.charts import Chart, _nice_max, daily_lines, stacked_bars

DAY = (date(2026, 3, 1) - date(1970, 1, 1)).days  # 2026-03-01 as a UTC day number
DAYS = [DAY, DAY + 1, DAY + 2]
PLOT_TOP = charts.TOP
BASELINE = charts.HEIGHT - charts.BOTTOM
PLOT_HEIGHT = BASELINE - PLOT_TOP
SVG = "{http://www.w3.org/2000/svg}"


def plain(value: float) -> str:
    return f"{value:g}"


def draw(chart: Chart, chart_id: str = "c") -> ET.Element:
    """The ``chart`` macro's markup for ``chart``, parsed (it must be well-formed)."""
    env = Environment(
        loader=PackageLoader("gridgate.dashboard", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    macros: Any = env.get_template("_macros.html").make_module({"csrf_token": "t"})
    html = str(macros.chart(chart, chart_id))
    # an HTML page's svg needs no namespace; give it one so that ElementTree reads it as SVG
    return ET.fromstring(html.replace("<svg ", f'<svg xmlns="{SVG[1:-1]}" ', 1))


def texts(element: ET.Element) -> list[str]:
    return [t for t in element.itertext() if t.strip()]


@pytest.mark.parametrize(
    ("value", "top"),
    [(0, 1), (-5, 1), (1, 1), (1.5, 2), (2, 2), (3, 5), (7, 10), (10, 10), (11, 20),
     (0.03, 0.05), (0.0012, 0.002), (1234, 2000), (5_000_001, 10_000_000)],
)  # fmt: skip
def test_the_axis_tops_out_at_a_round_number_at_or_above_the_largest_value(
    value: float, top: float
) -> None:
    assert _nice_max(value) == pytest.approx(top)
    assert _nice_max(value) >= value


def test_stacked_bars_scale_to_the_largest_day_and_stack_in_series_order() -> None:
    values = {(DAY, "a"): 25, (DAY, "b"): 75, (DAY + 2, "a"): 50}
    chart = stacked_bars("Spend", DAYS, ["a", "b"], values, label=plain)
    assert not chart.empty
    first_a, first_b, third_a = chart.bars
    # the largest day (100) is the top of the axis: its stack reaches the top of the plot
    assert first_a.height == pytest.approx(PLOT_HEIGHT * 0.25)
    assert first_b.height == pytest.approx(PLOT_HEIGHT * 0.75)
    assert first_a.y + first_a.height == pytest.approx(BASELINE)  # on the baseline
    assert first_b.y + first_b.height == pytest.approx(first_a.y)  # on top of the first
    assert first_b.y == pytest.approx(PLOT_TOP)
    assert third_a.height == pytest.approx(PLOT_HEIGHT * 0.5)
    assert (first_a.series, first_b.series, third_a.series) == (0, 1, 0)
    assert first_a.x == first_b.x < third_a.x  # one column per day, in order
    assert first_a.width == first_b.width == third_a.width > 0
    assert third_a.x + third_a.width <= charts.WIDTH - charts.RIGHT
    assert first_a.title == "2026-03-01 a: 25"
    assert [t.label for t in chart.y_ticks] == ["0", "50", "100"]
    assert [t.at for t in chart.y_ticks] == [BASELINE, BASELINE - PLOT_HEIGHT / 2, PLOT_TOP]
    assert chart.legend == [(0, "a"), (1, "b")]
    # the numbers as a table: a row for each day with any, zeros written out
    assert chart.columns == ["Date", "a", "b", "Total"]
    assert chart.rows == [["2026-03-01", "25", "75", "100"], ["2026-03-03", "50", "0", "50"]]


def test_a_day_below_a_round_top_stays_below_it() -> None:
    chart = stacked_bars("x", DAYS[:1], ["a"], {(DAY, "a"): 30}, label=plain)
    (bar,) = chart.bars
    assert chart.y_ticks[-1].label == "50"  # 30 rounds up to 50
    assert bar.height == pytest.approx(PLOT_HEIGHT * 30 / 50)
    assert bar.y > PLOT_TOP


def test_series_share_six_colours_in_turn() -> None:
    names = [f"s{i}" for i in range(8)]
    chart = stacked_bars("x", [DAY], names, {(DAY, n): 1 for n in names}, label=plain)
    assert [b.series for b in chart.bars] == [0, 1, 2, 3, 4, 5, 0, 1]
    assert [s for s, _ in chart.legend] == [0, 1, 2, 3, 4, 5, 0, 1]


def test_thirty_days_get_a_handful_of_date_labels() -> None:
    days = list(range(DAY, DAY + 30))
    chart = stacked_bars("x", days, ["a"], {(DAY + 29, "a"): 1}, label=plain)
    labels = [t.label for t in chart.x_ticks]
    assert 5 <= len(labels) <= 7 and labels[0] == "03-01"
    ats = [t.at for t in chart.x_ticks]
    assert ats == sorted(ats) and ats[0] > charts.LEFT and ats[-1] < charts.WIDTH - charts.RIGHT


@pytest.mark.parametrize("values", [{}, {(DAY, "a"): 0}], ids=["nothing", "zeros"])
def test_nothing_to_show_draws_an_empty_state_and_no_svg(
    values: Mapping[tuple[int, str], int],
) -> None:
    chart = stacked_bars("Spend per day", DAYS, ["a"], values, label=plain)
    assert chart.empty and chart.bars == [] and chart.rows == []
    figure = draw(chart, "spend")
    assert figure.find(f"{SVG}svg") is None and figure.find("details") is None
    assert texts(figure) == ["Spend per day", "Nothing yet in this period."]
    assert figure.get("aria-labelledby") == "spend-title"
    caption = figure.find("figcaption")
    assert caption is not None and caption.get("id") == "spend-title"


def test_no_days_at_all_is_empty_too() -> None:
    assert stacked_bars("x", [], ["a"], {}, label=plain).empty
    assert daily_lines("x", [], {"a": []}, label=plain).empty


def test_a_missing_day_breaks_a_line_and_every_value_gets_a_dot() -> None:
    chart = daily_lines(
        "Price", [DAY + i for i in range(5)], {"in": [1, 2, None, 5, 2], "out": [None] * 5},
        label=plain,
    )  # fmt: skip
    assert not chart.empty
    first, second = chart.lines
    assert (first.series, second.series) == (0, 0)
    assert len(first.points.split()) == 2 and len(second.points.split()) == 2
    assert [d.title for d in chart.dots] == [
        "2026-03-01 in: 1", "2026-03-02 in: 2", "2026-03-04 in: 5", "2026-03-05 in: 2",
    ]  # fmt: skip
    top = max(chart.dots, key=lambda d: -d.y)
    assert top.title.endswith(": 5") and top.y == pytest.approx(PLOT_TOP)  # 5 is the axis top
    x0, y0 = (float(v) for v in first.points.split()[0].split(","))
    assert x0 == pytest.approx(charts.LEFT)
    assert y0 == pytest.approx(BASELINE - PLOT_HEIGHT / 5)
    assert chart.dots[-1].x == pytest.approx(charts.WIDTH - charts.RIGHT)  # the last day: the end
    assert chart.columns == ["Date", "in", "out"]
    assert chart.rows[0] == ["2026-03-01", "1", "–"]
    assert len(chart.rows) == 4  # the day with no value at all has no row


def test_lines_without_any_value_are_empty() -> None:
    chart = daily_lines("Price", DAYS, {"in": [None] * 3}, label=plain)
    assert chart.empty and chart.lines == [] and chart.dots == []
    assert "Nothing yet in this period." in texts(draw(chart))


def test_the_drawn_chart_is_well_formed_svg_with_a_table_of_its_numbers() -> None:
    values = {(DAY, "text-prime"): 1500, (DAY + 1, "text-max"): 400}
    chart = stacked_bars("Tokens", DAYS, ["text-prime", "text-max"], values, label=plain)
    figure = draw(chart, "tokens")
    svg = figure.find(f"{SVG}svg")
    assert svg is not None
    assert svg.get("viewBox") == f"0 0 {charts.WIDTH} {charts.HEIGHT}"
    assert svg.get("role") == "img" and svg.get("aria-labelledby") == "tokens-title"
    rects = svg.findall(f"{SVG}rect")
    assert len(rects) == len(chart.bars) == 2
    for rect, bar in zip(rects, chart.bars, strict=True):
        x, y, w, h = (float(rect.get(a) or "nan") for a in ("x", "y", "width", "height"))
        assert (x, y, w, h) == (bar.x, bar.y, bar.width, bar.height)
        assert x >= 0 and x + w <= charts.WIDTH and y >= 0 and y + h <= charts.HEIGHT + 0.01
        assert rect.get("class") == f"series-{bar.series}"
        title = rect.find(f"{SVG}title")
        assert title is not None and title.text == bar.title
    assert len(svg.findall(f"{SVG}line")) == len(chart.y_ticks) == 3
    ticks = [t.text for t in svg.findall(f"{SVG}text")]
    assert ticks == [t.label for t in chart.y_ticks] + [t.label for t in chart.x_ticks]
    legend = [texts(li) for li in figure.iter("li")]
    assert legend == [["text-prime"], ["text-max"]]
    header = [th.text for th in figure.iter("th")]
    assert header == ["Date", "text-prime", "text-max", "Total"]
    body = figure.find("details/div/table/tbody")
    assert body is not None
    assert [[td.text for td in tr] for tr in body] == chart.rows


def test_lines_are_drawn_as_polylines_with_dots() -> None:
    chart = daily_lines("Price", DAYS, {"in": [1, None, 3], "out": [2, 2, 2]}, label=plain)
    svg = draw(chart).find(f"{SVG}svg")
    assert svg is not None
    polylines = svg.findall(f"{SVG}polyline")
    assert [p.get("points") for p in polylines] == [line.points for line in chart.lines]
    assert [p.get("class") for p in polylines] == ["line series-0"] * 2 + ["line series-1"]
    assert len(svg.findall(f"{SVG}circle")) == len(chart.dots) == 5


def test_text_going_in_comes_out_escaped() -> None:
    nasty = '<script>alert("x")</script> & <b>'
    chart = stacked_bars(
        f"Spend of {nasty}", [DAY], [nasty], {(DAY, nasty): 7}, label=lambda v: f"{v:g} <&>"
    )
    figure = draw(chart, "nasty")
    html = ET.tostring(figure, encoding="unicode")
    assert "<script" not in html and "<b>" not in html
    caption = figure.find("figcaption")
    assert caption is not None and caption.text == f"Spend of {nasty}"
    svg = figure.find(f"{SVG}svg")
    assert svg is not None
    rect_title = svg.find(f"{SVG}rect/{SVG}title")
    assert rect_title is not None and rect_title.text == f"2026-03-01 {nasty}: 7 <&>"
    assert [t.text for t in svg.findall(f"{SVG}text")][:3] == ["0 <&>", "5 <&>", "10 <&>"]
    assert [texts(li) for li in figure.iter("li")] == [[nasty]]
    assert [th.text for th in figure.iter("th")][1] == nasty
    assert list(figure.iter("script")) == [] and list(figure.iter("b")) == []

"""Small inline SVG charts for the HTML report: no script, no font, no file to fetch.

Each chart is drawn in a 400 by 150 view box that scales with its container (the report's
cards are about that wide on a desktop and a phone alike, so the text stays legible).
Colours come from CSS classes the report's stylesheet defines, so print and screen can
differ. Every mark has a `<title>`, which browsers show on hover, without a script.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from loader.markup import Markup, element

WIDTH, HEIGHT = 400, 150
LEFT, RIGHT, TOP, BOTTOM = 46, 10, 10, 24

Format = Callable[[float], str]


@dataclass(frozen=True)
class Point:
    """One mark of a scatter chart: when, how much, its CSS class and its tooltip."""

    at: datetime
    value: float
    kind: str
    title: str


def duration(seconds: float) -> str:
    """Format seconds for a person: `42 s`, `12.5 min`, `3.2 h`."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min".replace(".0 ", " ")
    return f"{seconds / 3600:.1f} h".replace(".0 ", " ")


def count(value: float) -> str:
    """Format a count compactly: `950`, `12k`, `1.2M`."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            scaled = value / size
            return (
                f"{scaled:.1f}{suffix}".replace(".0", "")
                if scaled < 10
                else (f"{scaled:.0f}{suffix}")
            )
    return f"{value:.0f}"


def percent(value: float) -> str:
    """Format a rate in [0, 1] as a whole percentage."""
    return f"{value * 100:.0f}%"


def duration_ticks(top: float) -> list[float]:
    """Return round ticks for durations: whole seconds, minutes or hours."""
    unit = 1 if top < 120 else 60 if top < 3 * 3600 else 3600
    return [tick * unit for tick in nice_ticks(top / unit)]


def nice_ticks(top: float, *, count_: int = 4) -> list[float]:
    """Return round tick values from 0 to at least `top` (about `count_` + 1 of them)."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count_
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    steps = math.ceil(top / step - 1e-9)
    return [i * step for i in range(steps + 1)]


def _frame(label: str, *children: object) -> Markup:
    return element(
        "svg",
        element("title", label),
        *children,
        class_="chart",
        viewBox=f"0 0 {WIDTH} {HEIGHT}",
        role="img",
        aria_label=label,
        xmlns="http://www.w3.org/2000/svg",
    )


class _Days:
    """The x axis: one slot per UTC day from `first` to `last`, both included."""

    def __init__(self, first: date, last: date) -> None:
        self.first, self.days = first, (last - first).days + 1
        self.slot = (WIDTH - LEFT - RIGHT) / self.days

    def x(self, day: date) -> float:
        return LEFT + ((day - self.first).days + 0.5) * self.slot

    def at(self, moment: datetime) -> float:
        start = datetime(self.first.year, self.first.month, self.first.day, tzinfo=moment.tzinfo)
        return LEFT + (moment - start) / timedelta(days=1) * self.slot

    def labels(self) -> Markup:
        """A label on the first day, the last day and every 7 days back from the last."""
        marks = []
        for back in range(0, self.days, 7):
            day = self.first + timedelta(days=self.days - 1 - back)
            if back and (day - self.first).days < 3:
                continue
            marks.append(day)
        marks.append(self.first)
        return Markup(
            "".join(
                element(
                    "text",
                    f"{day:%b %-d}",
                    x=self.x(day),
                    y=HEIGHT - 6,
                    class_="axis",
                    text_anchor="middle",
                )
                for day in sorted(set(marks))
            )
        )


def _y_axis(ticks: Sequence[float], scale: Callable[[float], float], fmt: Format) -> Markup:
    return Markup(
        "".join(
            element("line", x1=LEFT, x2=WIDTH - RIGHT, y1=scale(t), y2=scale(t), class_="grid")
            + element("text", fmt(t), x=LEFT - 5, y=scale(t) + 4, class_="axis", text_anchor="end")
            for t in ticks
        )
    )


def _scale(top: float) -> Callable[[float], float]:
    return lambda value: HEIGHT - BOTTOM - value / top * (HEIGHT - BOTTOM - TOP)


def daily_rate_bars(
    rates: Mapping[date, tuple[float | None, str]], first: date, last: date, *, label: str
) -> Markup:
    """Bars of a daily rate in [0, 1]; `rates` maps a day to (rate, tooltip).

    A bar's class says how good the day was (`good` ≥ 0.9, `fair` ≥ 0.5, `bad` below);
    a day without finished runs has no bar.
    """
    days = _Days(first, last)
    scale = _scale(1.0)
    bars = []
    for day, (rate, title) in sorted(rates.items()):
        if rate is None or not first <= day <= last:
            continue
        kind = "good" if rate >= 0.9 else "fair" if rate >= 0.5 else "bad"
        height = max(scale(0) - scale(rate), 1.5)
        bars.append(
            element(
                "rect",
                element("title", title),
                x=days.x(day) - days.slot * 0.36,
                y=scale(0) - height,
                width=days.slot * 0.72,
                height=height,
                class_=f"bar {kind}",
            )
        )
    return _frame(label, _y_axis([0, 0.5, 1], scale, percent), *bars, days.labels())


def daily_lines(
    series: Mapping[str, Mapping[date, float]],
    first: date,
    last: date,
    *,
    label: str,
    fmt: Format,
    ticks: Callable[[float], list[float]] = nice_ticks,
    titles: Mapping[date, str] | None = None,
) -> Markup:
    """One line per series (its name is its CSS class), a dot on each day with a value."""
    days = _Days(first, last)
    values = [v for points in series.values() for v in points.values()]
    marks_at = ticks(max(values, default=0) * 1.05)
    scale = _scale(marks_at[-1])
    marks = []
    for name, points in series.items():
        ordered = [(d, v) for d, v in sorted(points.items()) if first <= d <= last]
        if len(ordered) > 1:
            path = " ".join(f"{days.x(d):.1f},{scale(v):.1f}" for d, v in ordered)
            marks.append(element("polyline", points=path, class_=f"line {name}"))
        for day, value in ordered:
            title = f"{day:%Y-%m-%d} {name}: {fmt(value)}"
            if titles and day in titles:
                title += f" ({titles[day]})"
            marks.append(
                element(
                    "circle",
                    element("title", title),
                    cx=days.x(day),
                    cy=scale(value),
                    r=2.2,
                    class_=f"dot {name}",
                )
            )
    return _frame(label, _y_axis(marks_at, scale, fmt), *marks, days.labels())


def scatter(points: Sequence[Point], first: date, last: date, *, label: str, fmt: Format) -> Markup:
    """Dots over time; each point's `kind` is its CSS class (e.g. `completed`, `anomaly`)."""
    days = _Days(first, last)
    ticks = nice_ticks(max((p.value for p in points), default=0) * 1.05)
    scale = _scale(ticks[-1])
    # Anomalies last, so that their rings are drawn over the other dots.
    ordered = sorted(points, key=lambda p: (p.kind == "anomaly", p.at))
    marks = [
        element(
            "circle",
            element("title", point.title),
            cx=days.at(point.at),
            cy=scale(point.value),
            r=4 if point.kind == "anomaly" else 2.6,
            class_=f"dot {point.kind}",
        )
        for point in ordered
    ]
    return _frame(label, _y_axis(ticks, scale, fmt), *marks, days.labels())

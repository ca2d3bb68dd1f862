"""The overview's charts, drawn on the server as SVG: nothing to load, nothing to run, and
they read the same with JavaScript off. Each day is a bar stacked by series (a platform, a
model); the numbers behind it are also given as a table for screen readers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

WIDTH = 600
HEIGHT = 180
GAP = 2
PALETTE = 6
"""Series colours (`s0`...`s5` in the stylesheet); more series share the last."""


@dataclass(frozen=True)
class Segment:
    x: float
    y: float
    width: float
    height: float
    series: int
    title: str


@dataclass(frozen=True)
class Chart:
    title: str
    days: tuple[str, ...]
    series: tuple[str, ...]
    values: dict[tuple[str, str], int]
    """By (day, series)."""
    segments: tuple[Segment, ...]
    peak: int
    width: int = WIDTH
    height: int = HEIGHT

    def total(self, day: str) -> int:
        return sum(self.values.get((day, name), 0) for name in self.series)

    def value(self, day: str, name: str) -> int:
        return self.values.get((day, name), 0)


def stacked(title: str, days: Sequence[str], points: Iterable[tuple[str, str, int]]) -> Chart:
    """A chart of `points` (day, series, value) over `days`, oldest first; the biggest series
    are stacked lowest and listed first."""
    values: dict[tuple[str, str], int] = defaultdict(int)
    sizes: dict[str, int] = defaultdict(int)
    for day, name, value in points:
        values[day, name] += value
        sizes[name] += value
    series = tuple(sorted(sizes, key=lambda name: (-sizes[name], name)))
    peak = max((sum(values[day, name] for name in series) for day in days), default=0)
    step = WIDTH / max(1, len(days))
    segments: list[Segment] = []
    for index, day in enumerate(days):
        bottom = float(HEIGHT)
        for number, name in enumerate(series):
            value = values.get((day, name), 0)
            if not value or not peak:
                continue
            height = HEIGHT * value / peak
            bottom -= height
            segments.append(
                Segment(
                    x=round(index * step + GAP / 2, 2),
                    y=round(bottom, 2),
                    width=round(step - GAP, 2),
                    height=round(height, 2),
                    series=min(number, PALETTE - 1),
                    title=f"{day} · {name or 'unknown'}: {value:,}",
                )
            )
    return Chart(title, tuple(days), series, dict(values), tuple(segments), peak)

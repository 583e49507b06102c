"""The /usage chart's geometry: stacked bars per UTC day by provider, drawn as SVG by the template.

Drawn on the server (no chart library, no CDN, nothing for the strict CSP to block). It charts
dollars; when nothing cost anything (only the offline renderer), it charts images instead.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

from ..spending import dollars

COLOURS = {"stability": "#6d28d9", "replicate": "#0f766e", "openai": "#b45309",
           "offline": "#64748b"}
OTHER_COLOUR = "#be123c"
WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 12, 36


def _nice_ceiling(value: float) -> float:
    """1, 2 or 5 times a power of ten, at least `value`."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value - 1e-12)


def usage_chart(first: date, rows: list[tuple[str, str, int, float]], days: int) -> dict:
    """Bars, axis ticks and legend for rows of (day, provider, images, cost)."""
    by_cost = any(cost > 0 for *_, cost in rows)
    label = dollars if by_cost else (lambda n: f"{n:g}")
    value = {(day, provider): (cost if by_cost else images) for day, provider, images, cost in rows}
    providers = sorted({provider for _, provider, _, _ in rows},
                       key=lambda p: (p not in COLOURS, list(COLOURS).index(p)
                                      if p in COLOURS else 0, p))
    day_names = [(first + timedelta(days=n)).isoformat() for n in range(days)]
    totals = [sum(value.get((day, p), 0) for p in providers) for day in day_names]
    top = _nice_ceiling(max(totals, default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / days
    bars = []
    for index, day in enumerate(day_names):
        base = 0.0
        for provider in providers:
            amount = value.get((day, provider), 0)
            if not amount:
                continue
            y1 = TOP + plot_h * (1 - (base + amount) / top)
            y0 = TOP + plot_h * (1 - base / top)
            bars.append({"x": round(LEFT + index * slot + slot * 0.15, 2), "y": round(y1, 2),
                         "width": round(slot * 0.7, 2), "height": round(max(y0 - y1, 0.5), 2),
                         "colour": COLOURS.get(provider, OTHER_COLOUR),
                         "title": f"{day} · {provider}: {label(amount)}"})
            base += amount
    ticks = [{"y": round(TOP + plot_h * (1 - n / 4), 2), "label": label(top * n / 4)}
             for n in range(5)]
    x_labels = [{"x": round(LEFT + index * slot + slot / 2, 2), "label": day[5:]}
                for index, day in enumerate(day_names) if index % 5 == 0 or index == days - 1]
    legend = [{"provider": p, "colour": COLOURS.get(p, OTHER_COLOUR),
               "total": label(sum(value.get((d, p), 0) for d in day_names))} for p in providers]
    return {"width": WIDTH, "height": HEIGHT, "left": LEFT, "right": WIDTH - RIGHT, "top": TOP,
            "bottom": HEIGHT - BOTTOM, "bars": bars, "ticks": ticks, "x_labels": x_labels,
            "legend": legend, "metric": "cost" if by_cost else "images",
            "total": label(sum(totals)), "empty": not rows}

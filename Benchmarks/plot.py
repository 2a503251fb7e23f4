#!/usr/bin/env python3
"""Draws BENCHMARKS.md's pictures from the benchmark output, as plain SVG (no packages).

    python3 Benchmarks/plot.py RESULTS_DIR

RESULTS_DIR holds what the runs wrote (see BENCHMARKS.md, "Reproducing"):
  - `*.jmh.json`: ordo-one's export of the concurrent durable creates
    (`swift package --disable-sandbox benchmark --filter "durable creates" --format jmh --path DIR`);
  - `scale.jsonl`: the `Scale` executable's standard output, and `scale-noreadahead.jsonl`
    the same with `SCALE_READAHEAD=0` (its cold LMDB series are drawn dotted).
It writes `writes-per-callers.svg` and `get-latency-per-size.svg` into the same directory.
"""

import glob
import json
import math
import os
import re
import sys

WIDTH, HEIGHT = 780, 440
LEFT, RIGHT, TOP, BOTTOM = 80, 250, 40, 60
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"]


def log_scale(low, high, size, flip):
    lo, hi = math.log10(low), math.log10(high)

    def scale(value):
        fraction = (math.log10(value) - lo) / (hi - lo)
        return (1 - fraction) * size if flip else fraction * size

    return scale


def decades(low, high):
    values = []
    exponent = math.floor(math.log10(low))
    while 10 ** exponent <= high * 1.0001:
        for mantissa in (1, 2, 5):
            value = mantissa * 10 ** exponent
            if low * 0.9999 <= value <= high * 1.0001:
                values.append(value)
        exponent += 1
    return values


def label(value):
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1_000:
        return f"{value / 1_000:g}k"
    return f"{value:g}"


def chart(path, title, x_title, y_title, series, x_ticks):
    """series: [(name, [(x, y)], style)], style "solid", "dashed" or "dotted", each
    subject (the name up to its first comma) in a colour of its own; both axes logarithmic."""
    xs = [x for _, points, _ in series for x, _ in points]
    ys = [y for _, points, _ in series for _, y in points]
    subjects = []
    for name, _, _ in series:
        if name.split(",")[0] not in subjects:
            subjects.append(name.split(",")[0])
    if not xs:
        print(f"no data for {path}", file=sys.stderr)
        return
    x_low, x_high = min(xs), max(xs)
    y_low = 10 ** math.floor(math.log10(min(ys)))
    y_high = 10 ** math.ceil(math.log10(max(ys)))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    sx = log_scale(x_low, x_high, plot_w, False)
    sy = log_scale(y_low, y_high, plot_h, True)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="22" text-anchor="middle" font-size="15">{title}</text>',
    ]
    for y in decades(y_low, y_high):
        py = TOP + sy(y)
        out.append(f'<line x1="{LEFT}" y1="{py:.1f}" x2="{LEFT + plot_w}" y2="{py:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 6}" y="{py + 4:.1f}" text-anchor="end">{label(y)}</text>')
    for x in x_ticks:
        px = LEFT + sx(x)
        out.append(f'<line x1="{px:.1f}" y1="{TOP}" x2="{px:.1f}" y2="{TOP + plot_h}" stroke="#eee"/>')
        out.append(f'<text x="{px:.1f}" y="{TOP + plot_h + 18}" text-anchor="middle">{label(x)}</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>')
    out.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 18}" text-anchor="middle">{x_title}</text>')
    out.append(
        f'<text x="18" y="{TOP + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 18 {TOP + plot_h / 2})">{y_title}</text>')
    for index, (name, points, style) in enumerate(series):
        colour = COLOURS[subjects.index(name.split(",")[0]) % len(COLOURS)]
        points = sorted(points)
        path_points = " ".join(f"{LEFT + sx(x):.1f},{TOP + sy(y):.1f}" for x, y in points)
        dash = {"dashed": ' stroke-dasharray="6 4"', "dotted": ' stroke-dasharray="2 3"'}.get(style, "")
        out.append(f'<polyline points="{path_points}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
        for x, y in points:
            out.append(f'<circle cx="{LEFT + sx(x):.1f}" cy="{TOP + sy(y):.1f}" r="3" fill="{colour}"/>')
        ly = TOP + 14 + index * 18
        out.append(f'<line x1="{LEFT + plot_w + 12}" y1="{ly - 4}" x2="{LEFT + plot_w + 36}" y2="{ly - 4}" '
                   f'stroke="{colour}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{LEFT + plot_w + 42}" y="{ly}">{name}</text>')
    out.append("</svg>")
    with open(path, "w") as file:
        file.write("\n".join(out) + "\n")
    print(f"wrote {path}")


def writes_per_callers(directory):
    """Creates per second against callers, from ordo-one's JMH export."""
    series = {}
    pattern = re.compile(r"(\d+)_durable_creates,_(\d+)_callers:_(.+)$")
    for path in glob.glob(os.path.join(directory, "*.jmh.json")):
        with open(path) as file:
            for element in json.load(file):
                match = pattern.search(element["benchmark"])
                if not match:
                    continue
                creates, callers, subject = int(match[1]), int(match[2]), match[3].replace("_", " ")
                # The median wall-clock time of an iteration (in microseconds), which makes
                # `creates` creates. (The throughput metric is rounded to whole iterations.)
                wall = element["secondaryMetrics"]["Time (wall clock)"]["scorePercentiles"]["50.0"]
                per_second = creates / (wall / 1e6)
                series.setdefault(subject, []).append((callers, per_second))
    order = ["store sync", "store async", "sqlite", "grdb", "postgres"]
    named = [(name.replace(" ", ", ", 1) if name.startswith("store ") else name, series[name],
              "dashed" if name.endswith("async") else "solid") for name in order if name in series]
    named += [(name, points, "solid") for name, points in series.items() if name not in order]
    callers = sorted({x for _, points, _ in named for x, _ in points})
    chart(os.path.join(directory, "writes-per-callers.svg"),
          "Durable creates per second against concurrent callers",
          "callers (threads for sync, tasks for async)", "creates per second", named, callers)


def get_latency_per_size(directory):
    """Median get-by-id latency against store size, warm and cold, from Scale's output."""
    def read(name):
        warm, cold = {}, {}
        path = os.path.join(directory, name)
        if not os.path.exists(path):
            return warm, cold
        with open(path) as file:
            for line in file:
                line = line.strip()
                if not line.startswith("{"):
                    continue
                row = json.loads(line)
                if row.get("kind") != "size":
                    continue
                warm.setdefault(row["subject"], []).append((row["sessions"], row["get_warm_ns"] / 1000))
                cold.setdefault(row["subject"], []).append((row["sessions"], row["get_cold_ns"] / 1000))
        return warm, cold

    warm, cold = read("scale.jsonl")
    if not warm:
        print(f"no {os.path.join(directory, 'scale.jsonl')}", file=sys.stderr)
        return
    _, cold_without_read_ahead = read("scale-noreadahead.jsonl")
    series = [(f"{name}, warm", points, "solid") for name, points in warm.items()]
    series += [(f"{name}, cold", points, "dashed") for name, points in cold.items()]
    series += [(f"{name}, cold, no read-ahead", points, "dotted")
               for name, points in cold_without_read_ahead.items() if name != "sqlite"]
    sizes = sorted({x for _, points, _ in series for x, _ in points})
    chart(os.path.join(directory, "get-latency-per-size.svg"),
          "Get by id: median latency against store size",
          "sessions in the store", "microseconds per get", series, sizes)


if __name__ == "__main__":
    results = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "results")
    writes_per_callers(results)
    get_latency_per_size(results)

"""The growth chart: seconds per drill step, and copy throughput, against the table's row count.

PNG through matplotlib when it is installed (bench/requirements.txt), else a plain SVG written
here, so the benchmark never needs more than the harness's own requirements.
"""

from __future__ import annotations

import math
from pathlib import Path

SERIES = (  # key in a growth row, label, colour
    ("backup_seconds", "backup", "#1f77b4"),
    ("recovery_seconds", "recovery (recover + start + reach target)", "#d62728"),
    ("cp_seconds", "cp -a of the backup dir", "#7f7f7f"),
    ("total_drill_seconds", "total drill", "#2ca02c"),
)
THROUGHPUT = (  # key, label, colour; MiB/s of the backup dir from a growth row
    ("recovery_seconds", "recovery (harness)", "#d62728"),
    ("bare_barman_recover_seconds", "bare barman recover", "#ff7f0e"),
    ("rsync_seconds", "rsync -a (barman's copy tool)", "#9467bd"),
    ("cp_seconds", "cp -a", "#7f7f7f"),
)


def write_chart(growth: list[dict], reports: Path) -> Path:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return _write_svg(growth, reports / "bench-growth.svg")
    rows = [item["rows"] for item in growth]
    figure, (seconds_axis, rate_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, label, colour in SERIES:
        seconds_axis.plot(rows, [item[key] for item in growth], marker="o", label=label, color=colour)
    seconds_axis.set(xscale="log", yscale="log", xlabel="rows in books", ylabel="seconds",
                     title="Drill steps as the table grows")
    for key, label, colour in THROUGHPUT:
        shown = [item for item in growth if item.get(key)]
        rate_axis.plot([item["rows"] for item in shown], [item["backup_bytes"] / 2**20 / item[key] for item in shown],
                       marker="o", label=label, color=colour)
    rate_axis.set(xscale="log", xlabel="rows in books", ylabel="MiB/s of the backup dir",
                  title="Recovery throughput vs cp -a")
    for axis in (seconds_axis, rate_axis):
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    path = reports / "bench-growth.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _write_svg(growth: list[dict], path: Path) -> Path:
    """Seconds per step against rows, both axes logarithmic."""
    width, height, left, right, top, bottom = 860, 420, 70, 330, 40, 50
    rows = [item["rows"] for item in growth]
    values = [item[key] for item in growth for key, _, _ in SERIES if item[key] > 0]
    x_low, x_high = _log_range(rows)
    y_low, y_high = _log_range(values)

    def x(value):
        return left + (math.log10(value) - x_low) / (x_high - x_low) * (width - left - right)

    def y(value):
        return height - bottom - (math.log10(max(value, 10 ** y_low)) - y_low) / (y_high - y_low) * (height - top - bottom)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             'font-size="12">', f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{left}" y="24" font-size="15">Drill steps as the table grows (log-log)</text>']
    for exponent in range(int(x_low), int(x_high) + 1):
        px = x(10 ** exponent)
        parts += [f'<line x1="{px:.1f}" y1="{top}" x2="{px:.1f}" y2="{height - bottom}" stroke="#ddd"/>',
                  f'<text x="{px:.1f}" y="{height - bottom + 18}" text-anchor="middle">{10 ** exponent:,}</text>']
    for exponent in range(int(y_low), int(y_high) + 1):
        py = y(10 ** exponent)
        parts += [f'<line x1="{left}" y1="{py:.1f}" x2="{width - right}" y2="{py:.1f}" stroke="#ddd"/>',
                  f'<text x="{left - 8}" y="{py + 4:.1f}" text-anchor="end">{10.0 ** exponent:g} s</text>']
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - 12}" text-anchor="middle">rows in books</text>')
    for index, (key, label, colour) in enumerate(SERIES):
        points = " ".join(f"{x(item['rows']):.1f},{y(item[key]):.1f}" for item in growth)
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts += [f'<circle cx="{x(item["rows"]):.1f}" cy="{y(item[key]):.1f}" r="3.5" fill="{colour}"/>'
                  for item in growth]
        legend_y = top + 10 + index * 22
        parts += [f'<line x1="{width - right + 15}" y1="{legend_y}" x2="{width - right + 40}" y2="{legend_y}" '
                  f'stroke="{colour}" stroke-width="3"/>',
                  f'<text x="{width - right + 46}" y="{legend_y + 4}">{label}</text>']
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n")
    return path


def _log_range(values) -> tuple[float, float]:
    logs = [math.log10(value) for value in values if value > 0] or [0.0]
    low, high = math.floor(min(logs)), math.ceil(max(logs))
    return (low, high) if high > low else (low, low + 1)

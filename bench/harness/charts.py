"""Charts as small SVG files, drawn from a results file (no plotting library: grouped bars and text).

    bench/run.py --report bench/results/<run>.json --charts docs/charts
    bench/cluster_cost.py ... --charts docs/charts

Each chart is a set of groups (e.g. scenarios) of bars (e.g. servers), one value per bar, with the value
written on it: enough to see the standing at a glance; the tables hold the exact figures.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from bench.harness.servers import LABELS, TARGETS

COLOURS = ["#4e79a7", "#f28e2b", "#76b7b2", "#e15759", "#59a14f", "#b07aa1", "#9c755f"]
WIDTH, BAR_AREA, TOP, BOTTOM, LEFT = 760, 260, 50, 90, 60


def bar_chart(path: Path, title: str, unit: str, groups: list[tuple[str, list[tuple[str, float | None]]]],
              note: str = "") -> None:
    """groups: [(group label, [(series label, value or None), ...]), ...]; series in the same order."""
    series = [name for name, _ in groups[0][1]] if groups else []
    values = [v for _, bars in groups for _, v in bars if v is not None]
    top = max(values) if values else 1.0
    n_bars = max(1, len(series))
    group_w = (WIDTH - LEFT - 20) / max(1, len(groups))
    bar_w = min(48.0, group_w * 0.8 / n_bars)
    height = TOP + BAR_AREA + BOTTOM + 18 * ((len(series) + 2) // 3)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
           f'<text x="{LEFT}" y="22" font-size="15" font-weight="bold">{escape(title)}</text>',
           f'<text x="{LEFT}" y="38" fill="#555">{escape(unit)}</text>',
           f'<line x1="{LEFT}" y1="{TOP + BAR_AREA}" x2="{WIDTH - 10}" y2="{TOP + BAR_AREA}" stroke="#333"/>']
    for g, (label, bars) in enumerate(groups):
        x0 = LEFT + g * group_w + (group_w - bar_w * n_bars) / 2
        for b, (_, value) in enumerate(bars):
            x = x0 + b * bar_w
            if value is None:
                out.append(f'<text x="{x + bar_w / 2:.1f}" y="{TOP + BAR_AREA - 4}" text-anchor="middle" '
                           f'fill="#999">n/a</text>')
                continue
            h = BAR_AREA * value / top if top else 0
            out.append(f'<rect x="{x:.1f}" y="{TOP + BAR_AREA - h:.1f}" width="{bar_w - 3:.1f}" height="{h:.1f}" '
                       f'fill="{COLOURS[b % len(COLOURS)]}"/>')
            text = f"{value:,.0f}" if value >= 10 else f"{value:.2f}"
            out.append(f'<text x="{x + (bar_w - 3) / 2:.1f}" y="{TOP + BAR_AREA - h - 3:.1f}" '
                       f'text-anchor="middle">{text}</text>')
        out.append(f'<text x="{LEFT + g * group_w + group_w / 2:.1f}" y="{TOP + BAR_AREA + 16}" '
                   f'text-anchor="middle" font-weight="bold">{escape(label)}</text>')
    for b, name in enumerate(series):
        x = LEFT + (b % 3) * 230
        y = TOP + BAR_AREA + 40 + 18 * (b // 3)
        out.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{COLOURS[b % len(COLOURS)]}"/>')
        out.append(f'<text x="{x + 18}" y="{y}">{escape(name)}</text>')
    if note:
        out.append(f'<text x="{LEFT}" y="{height - 8}" fill="#555">{escape(note)}</text>')
    out.append("</svg>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out) + "\n")


def _cell(summary: dict[str, Any], scenario: str, target: str, key: str) -> float | None:
    for row in summary["rows"]:
        if row["scenario"] == scenario and target in row["targets"]:
            return row["targets"][target]["median"].get(key)
    return None


def suite_charts(document: dict[str, Any], out_dir: Path) -> list[Path]:
    """Throughput and p99 per baseline, CPU per message by load, connects after a restart."""
    summary = document["summary"]
    present = [t for t in TARGETS if any(t in r["targets"] for r in summary["rows"])]
    machine = document.get("machine", {})
    note = (f"bench/run.py, {document.get('mode')} run {document.get('started')}, medians; load average "
            f"{' '.join(machine.get('loadavg_start', []))} on {machine.get('nproc')} cores")

    def groups(specs: list[tuple[str, str, str]]) -> list[tuple[str, list[tuple[str, float | None]]]]:
        return [(label, [(LABELS[t], _cell(summary, scenario, t, key)) for t in present])
                for label, scenario, key in specs]

    written = []
    charts = [
        ("throughput.svg", "Throughput", "acked msg/s (S1 pairs, saturation); higher is better",
         [("S1 acked msg/s", "s1", "acked_per_s")]),
        ("p99.svg", "Delivery p99 at 1,000 msg/s (S4)", "milliseconds; lower is better",
         [("S4 delivery p99", "s4", "delivery_p99_ms")]),
        ("cpu_per_message.svg", "Server CPU per message, by load",
         "µs of server CPU per acked message; lower is better",
         [("S1 (saturation)", "s1", "server_cpu_us_per_ack"), ("S4 (1,000 msg/s)", "s4", "server_cpu_us_per_ack"),
          ("S4 incl. PostgreSQL", "s4", "server_db_cpu_us_per_ack")]),
        ("reconnect_storm.svg", "Reconnect storm (S6)", "connects/s after the server restarted; higher is better",
         [("S6 connects/s", "s6", "connects_per_s")]),
    ]
    for name, title, unit, specs in charts:
        data = groups(specs)
        if any(v is not None for _, bars in data for _, v in bars):
            bar_chart(out_dir / name, title, unit, data, note)
            written.append(out_dir / name)
    return written


def cluster_chart(summary: dict[str, Any], out_dir: Path) -> Path:
    cost = summary["a_cpu_us_per_ack"]
    groups = [
        ("A: own traffic", [("N = 1, no Redis", cost.get("single")), ("N = 1, Redis", cost.get("redis1")),
                            ("N = 2, Redis", cost.get("redis2")),
                            ("N = 2, every room on both", cost.get("span"))]),
        ("B: foreign traffic", [("N = 1, no Redis", None), ("N = 1, Redis", None),
                                ("N = 2, Redis", summary.get("b_cpu_us_per_foreign_msg")),
                                ("N = 2, every room on both", None)]),
    ]
    path = out_dir / "cluster_cost.svg"
    bar_chart(path, "CPU per message and process, by N", "µs of CPU per message of A's S1 traffic; lower is better",
              groups, f"bench/cluster_cost.py; load average {summary.get('loadavg', [['?']])[0]}")
    return path

"""A saved timeline (Chrome trace JSON, as `minray.timeline(path)` writes) as a Gantt chart: a
self-contained HTML page (inline SVG and CSS, nothing fetched) that a teacher can put on a
slide or open offline. One row per process (the driver, each worker, each env prepared, the
waits), spans coloured by kind, a tooltip per span.

`layout()` is shared with the PNG renderer (minray.cli.gantt_png)."""

from __future__ import annotations

import html
import math

from minray.named_tuple import Record

MAX_LANES = 8  # a row shows at most this many lanes; later lanes are drawn in the last one
COLOURS = {"task": "#4e79a7", "actor_task": "#59a14f", "actor_creation": "#8cd17d",
           "worker_start": "#bab0ac", "env": "#f28e2b", "env_step": "#ffbe7d",
           "wait_args": "#d4a6c8", "wait_cpu": "#edc948", "wait_actor": "#f1ce63",
           "get": "#b07aa1", "failed": "#e15759"}
LEGEND = {"task": "task", "actor_creation": "actor creation", "actor_task": "actor call",
          "worker_start": "worker start", "env": "env preparation", "env_step": "env step",
          "wait_args": "waiting for arguments", "wait_cpu": "waiting for a CPU / worker",
          "wait_actor": "waiting for the actor", "get": "blocked in get/wait",
          "failed": "failed"}
OTHER = "#76b7b2"


class Bar(Record):
    start: float  # seconds from the first span
    duration: float
    kind: str  # a key of COLOURS (or anything: drawn in OTHER)
    name: str
    tip: str
    nested: bool  # drawn inside its lane's other span (a get inside its task)


class Row(Record):
    name: str
    kind: str  # driver, worker, env, wait, other
    lanes: list[list[Bar]]
    hidden_lanes: int  # lanes beyond MAX_LANES, folded into the last


class Chart(Record):
    rows: list[Row]
    seconds: float  # from the first span's start to the last span's end


def trace_events(trace) -> list[dict]:
    """The events of a trace: a list, or Chrome's {"traceEvents": [...]} object; ValueError
    for anything else."""
    if isinstance(trace, dict) and isinstance(trace.get("traceEvents"), list):
        trace = trace["traceEvents"]
    if not isinstance(trace, list) or not all(isinstance(e, dict) for e in trace):
        raise ValueError("not a Chrome trace: expected a list of events (as minray.timeline() "
                         "writes) or an object with 'traceEvents'")
    return trace


def layout(events: list[dict]) -> Chart:
    spans = [e for e in events if e.get("ph") == "X" and _number(e.get("ts"))]
    names, order = {}, {}
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "process_name":
            names[e.get("pid")] = str((e.get("args") or {}).get("name", e.get("pid")))
        elif e.get("ph") == "M" and e.get("name") == "process_sort_index":
            order[e.get("pid")] = (e.get("args") or {}).get("sort_index", 0)
    if not spans:
        return Chart([], 0.0)
    t0 = min(e["ts"] for e in spans)
    t1 = max(e["ts"] + (e.get("dur") or 0) for e in spans)
    by_pid: dict = {}
    for e in spans:
        by_pid.setdefault(e.get("pid"), {}).setdefault(e.get("tid", 0), []).append(e)
    rows = []
    for pid in sorted(by_pid, key=lambda p: (order.get(p, 0), str(p))):
        name = names.get(pid, f"process {pid}")
        lanes = []
        for tid in sorted(by_pid[pid], key=str):
            lane = [_bar(e, t0) for e in sorted(by_pid[pid][tid], key=lambda e: e["ts"])]
            lanes.append(_mark_nested(lane))
        hidden = max(len(lanes) - MAX_LANES, 0)
        if hidden:
            lanes = lanes[:MAX_LANES - 1] + [[b for lane in lanes[MAX_LANES - 1:] for b in lane]]
        rows.append(Row(name, _kind(name), lanes, hidden))
    return Chart(rows, (t1 - t0) / 1e6)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(
        value)


def _bar(e: dict, t0: float) -> Bar:
    args = e.get("args") or {}
    kind = "failed" if args.get("state") == "FAILED" else str(e.get("cat", ""))
    duration = max(float(e.get("dur") or 0), 0.0) / 1e6
    details = ", ".join(f"{k}={v}" for k, v in args.items() if v is not None)
    tip = f"{e.get('name', '')}: {_seconds(duration)}" + (f" ({details})" if details else "")
    return Bar((e["ts"] - t0) / 1e6, duration, kind, str(e.get("name", "")), tip, False)


def _mark_nested(lane: list[Bar]) -> list[Bar]:
    """Spans inside an earlier span of the same lane (a get inside its task) are nested."""
    out, outer_end = [], -1.0
    for bar in lane:
        if bar.start + bar.duration <= outer_end + 1e-6 and out:
            out.append(bar._replace(nested=True))
        else:
            out.append(bar)
            outer_end = bar.start + bar.duration
    return out


def _kind(name: str) -> str:
    for prefix, kind in (("driver", "driver"), ("worker", "worker"), ("runtime env", "env"),
                         ("waiting", "wait")):
        if name.startswith(prefix):
            return kind
    return "other"


def _seconds(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.0f} µs"


def ticks(seconds: float, count: int = 8) -> list[float]:
    """Round tick positions (1, 2 or 5 times a power of ten) across [0, seconds]."""
    if seconds <= 0:
        return [0.0]
    raw = seconds / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [i * step for i in range(int(seconds / step) + 1)]


# ---------------------------------------------------------------------- HTML
LABEL_W, CHART_W, LANE_H, GAP, AXIS_H = 300, 900, 16, 8, 28
CSS = """
body { font: 13px system-ui, sans-serif; margin: 16px; color: #222; }
h1 { font-size: 18px; margin: 0 0 4px; }
p.sub { color: #666; margin: 0 0 12px; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
.row-bg { fill: #f6f6f6; }
.tick { stroke: #ddd; }
.bar { stroke: #fff; stroke-width: 0.5; }
.bar.nested { stroke: #333; stroke-width: 0.5; }
.legend span { display: inline-block; margin: 0 14px 6px 0; }
.legend i { display: inline-block; width: 12px; height: 12px; margin-right: 4px;
            vertical-align: -2px; }
"""


def render_html(chart: Chart, title: str) -> str:
    height = AXIS_H + sum(len(r.lanes) * LANE_H + GAP for r in chart.rows) + GAP
    width = LABEL_W + CHART_W + 20
    scale = CHART_W / chart.seconds if chart.seconds > 0 else 0.0
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="{html.escape(title)}">']
    for t in ticks(chart.seconds):
        x = LABEL_W + t * scale
        parts.append(f'<line class="tick" x1="{x:.1f}" y1="{AXIS_H - 6}" x2="{x:.1f}" '
                     f'y2="{height}"/><text x="{x:.1f}" y="{AXIS_H - 10}" '
                     f'text-anchor="middle">{_seconds(t) if t else "0"}</text>')
    y = AXIS_H
    for row in chart.rows:
        rows_h = len(row.lanes) * LANE_H
        label = row.name + (f" (+{row.hidden_lanes} lanes folded)" if row.hidden_lanes else "")
        parts.append(f'<g class="row" data-kind="{row.kind}" data-name="{html.escape(row.name)}">'
                     f'<rect class="row-bg" x="0" y="{y}" width="{width}" height="{rows_h}"/>'
                     f'<text x="4" y="{y + 12}">{html.escape(_clip(label, 46))}'
                     f'<title>{html.escape(label)}</title></text>')
        for i, lane in enumerate(row.lanes):
            for bar in lane:
                parts.append(_svg_bar(bar, LABEL_W + bar.start * scale, y + i * LANE_H,
                                      bar.duration * scale))
        parts.append("</g>")
        y += rows_h + GAP
    parts.append("</svg>")
    kinds = [k for k in LEGEND if any(b.kind == k for r in chart.rows for lane in r.lanes
                                      for b in lane)]
    legend = "".join(f'<span><i style="background:{COLOURS[k]}"></i>{LEGEND[k]}</span>'
                     for k in kinds)
    summary = (f"{sum(r.kind == 'worker' for r in chart.rows)} worker process(es), "
               f"{_seconds(chart.seconds)} from the first span to the last")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p class=\"sub\">{summary}</p>"
            f"<div class=\"legend\">{legend}</div>{''.join(parts)}</body></html>\n")


def _svg_bar(bar: Bar, x: float, y: float, w: float) -> str:
    colour = COLOURS.get(bar.kind, OTHER)
    inset = 4 if bar.nested else 1
    nested = " nested" if bar.nested else ""
    return (f'<rect class="bar{nested}" data-kind="{html.escape(bar.kind)}" x="{x:.2f}" '
            f'y="{y + inset}" width="{max(w, 1.0):.2f}" height="{LANE_H - 2 * inset}" '
            f'fill="{colour}"><title>{html.escape(bar.tip)}</title></rect>')


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n - 1] + "…"

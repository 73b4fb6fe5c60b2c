"""Turn runs into medians, ratios and target checks; print the table, write JSON and a chart."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from benchmarks.scenarios import PROCESS_START_FLOORS, SCENARIOS, Scenario

RESULTS = Path(__file__).resolve().parent / "results"
SYSTEMS = ("minray", "ray")


def _figure(runs: list[dict], key: str) -> dict:
    values = [r[key] for r in runs if isinstance(r.get(key), (int, float))
              and not isinstance(r.get(key), bool)]
    errors = sorted({r["error"] for r in runs if "error" in r})
    return {"median": statistics.median(values) if values else None, "runs": values,
            "errors": errors}


def summarise(runs: dict[str, dict[str, list[dict]]], floor_runs: list[dict]) -> dict:
    """Per scenario: the median of each system and of its floor, the ratios, the targets."""
    out = {}
    for s in SCENARIOS:
        if not any(s.group in runs.get(system, {}) for system in SYSTEMS):
            continue
        row: dict = {"label": s.label, "unit": s.unit}
        for system in SYSTEMS:
            if s.group in runs.get(system, {}):
                row[system] = _figure(runs[system][s.group], s.key)
        if s.floor and any(s.floor in r for r in floor_runs):
            row["floor"] = {**_figure(floor_runs, s.floor), "what": s.floor}
        m, r, f = (row.get(k, {}).get("median") for k in ("minray", "ray", "floor"))
        row["ray_over_minray"] = r / m if m and r else None
        row["minray_over_floor"] = m / f if m and f else None
        row["targets"] = _targets(s, row)
        out[s.key] = row
    return out


def _targets(s: Scenario, row: dict) -> list[dict]:
    checks = []
    m = row.get("minray", {}).get("median")
    if s.target is not None and s.unit == "MB":
        checks.append({"goal": f"<= {fmt(s.target, 'MB')}",
                       "met": None if m is None else m <= s.target})
    elif s.target is not None:
        checks.append({"goal": f"< {fmt(s.target)}", "met": None if m is None else m < s.target})
    if s.vs_ray is not None and row.get("ray"):
        r = row["ray_over_minray"]
        checks.append({"goal": f">= {s.vs_ray}x Ray", "met": None if r is None else r >= s.vs_ray})
    ratio = s.floor_ratio or (3 if s.floor in PROCESS_START_FLOORS else None)
    if ratio is not None and "floor" in row:
        f = row["minray_over_floor"]
        checks.append({"goal": f"<= {ratio:g}x floor", "met": None if f is None else f <= ratio})
    return checks


def fmt(seconds: float | None, unit: str = "s") -> str:
    if seconds is None:
        return "n/a"
    if unit == "MB":
        return f"{seconds:.0f} MB"
    if seconds < 0.001:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.0f} ms" if seconds >= 0.01 else f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def _ratio(x: float | None) -> str:
    return "" if x is None else f"{x:.1f}x" if x < 100 else f"{x:.0f}x"


def _cell(fig: dict | None, unit: str = "s") -> str:
    if not fig:
        return ""
    return fmt(fig["median"], unit) if fig["median"] is not None else "n/a (error)"


def table(summary: dict, ray_version: str = "2.60") -> str:
    """A Markdown table, the same text on the console and in docs/benchmarks.md."""
    lines = [f"| scenario | minray | Ray {ray_version} | floor | Ray/minray | minray/floor "
             f"| targets |", "|---|---:|---:|---:|---:|---:|---|"]
    verdict = {None: "n/a", True: "met", False: "MISSED"}
    for row in summary.values():
        targets = "; ".join(f"{t['goal']}: {verdict[t['met']]}" for t in row["targets"])
        unit = row.get("unit", "s")
        lines.append(f"| {row['label']} | {_cell(row.get('minray'), unit)} "
                     f"| {_cell(row.get('ray'), unit)} "
                     f"| {_cell(row.get('floor'))} | {_ratio(row['ray_over_minray'])} "
                     f"| {_ratio(row['minray_over_floor'])} | {targets} |")
    return "\n".join(lines)


def errors(summary: dict) -> list[str]:
    return [f"{row['label']} [{system}]: {e}" for row in summary.values()
            for system in (*SYSTEMS, "floor") for e in row.get(system, {}).get("errors", [])]


def write_json(summary: dict, meta: dict, extras: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"meta": meta, "scenarios": summary, "extras": extras},
                              indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)


def chart(summary: dict, path: Path, title: str, floor_labels: dict[str, str]) -> None:
    """Horizontal bars on a log scale, minray, Ray and the floor per scenario: seconds, and
    below them the memory rows (MB) when there are any."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [row for row in summary.values()
             if any(row.get(k, {}).get("median") is not None for k in ("minray", "ray", "floor"))]
    panels = [(unit, [r for r in shown if r.get("unit", "s") == unit]) for unit in ("s", "MB")]
    panels = [(unit, rows) for unit, rows in panels if rows]
    if not panels:
        return
    sizes = [0.62 * len(rows) + 0.8 for _, rows in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, sum(sizes) + 0.8), squeeze=False,
                             gridspec_kw={"height_ratios": sizes})
    for ax, (unit, rows) in zip(axes[:, 0], panels, strict=True):
        _panel(ax, rows, unit, floor_labels)
    axes[0, 0].set_title(title, fontsize=11, pad=28)
    axes[0, 0].legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def _panel(ax, shown: list[dict], unit: str, floor_labels: dict[str, str]) -> None:
    height = 0.27
    shown = list(reversed(shown))  # the first scenario at the top
    rows = [(row["label"], *(row.get(k, {}).get("median") for k in ("minray", "ray", "floor")))
            for row in shown]
    notes: list[dict[int, str]] = [{}, {}, {}]  # per series: row -> text after the value
    for y, row in enumerate(shown):
        speedup = row["ray_over_minray"]
        if speedup:
            more = "more" if unit == "MB" else "slower"
            less = "less" if unit == "MB" else "faster"
            notes[1][y] = (f"  ({_ratio(speedup)} {more} than minray)" if speedup >= 1 else
                           f"  ({_ratio(1 / speedup)} {less} than minray)")
        if row.get("floor", {}).get("median"):
            notes[2][y] = f"  ({floor_labels.get(row['floor']['what'], '')})"
    series = [("minray", "#1f77b4"), ("Ray 2.60", "#ff7f0e"), ("floor", "#9e9e9e")]
    for i, (name, color) in enumerate(series):
        bars = [(n, n + (1 - i) * height, r[i + 1]) for n, r in enumerate(rows)
                if r[i + 1] and r[i + 1] > 0]  # a log scale: 0 MB kept has no bar
        ax.barh([y for _, y, _ in bars], [v for _, _, v in bars], height=height, color=color,
                label=name)
        for n, y, v in bars:
            ax.text(v * 1.08, y, fmt(v, unit) + notes[i].get(n, ""), va="center", fontsize=7)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=9)
    ax.set_xscale("log")
    ax.set_xlabel("seconds (log scale, lower is better; median of runs)" if unit == "s" else
                  "MB (log scale, lower is better; median of runs)")
    ax.grid(axis="x", which="major", alpha=0.3)
    values = [v for r in rows for v in r[1:] if v and v > 0]
    if values:
        ax.set_xlim(min(values) / 2, max(values) * 60)  # room for the labels right of the bars


def curve_chart(summary: dict, path: Path, title: str, prefix: str = "new_actors_") -> bool:
    """How a cost grows with N (rows `<prefix>N`): minray, Ray and the floor against N, on
    log-log axes. False (and no file) when the run had no such rows."""
    rows = sorted((int(key[len(prefix):]), row) for key, row in summary.items()
                  if key.startswith(prefix))
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    series = [("minray", "minray", "#1f77b4"), ("ray", "Ray 2.60", "#ff7f0e"),
              ("floor", "floor: N x python -c pass at once", "#9e9e9e")]
    for key, name, color in series:
        points = [(n, row[key]["median"]) for n, row in rows
                  if row.get(key, {}).get("median") is not None]
        if points:
            ax.plot([n for n, _ in points], [v for _, v in points], "o-", color=color,
                    label=name)
            for n, v in points:
                ax.annotate(fmt(v), (n, v), textcoords="offset points", xytext=(4, 4),
                            fontsize=7)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks([n for n, _ in rows], [str(n) for n, _ in rows])
    ax.set_xlabel("new actors created at once")
    ax.set_ylabel("seconds to every first call (median)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return True

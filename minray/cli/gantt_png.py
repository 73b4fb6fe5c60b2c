"""A saved timeline as a PNG Gantt chart, drawn with matplotlib (the `bench` extra): the
same rows, lanes and colours as the HTML page (minray.cli.gantt)."""

from __future__ import annotations

from minray.cli.gantt import COLOURS, LEGEND, OTHER, Chart


def render_png(chart: Chart, title: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    from matplotlib import pyplot as plt
    from matplotlib.patches import Patch

    lanes = sum(len(r.lanes) for r in chart.rows)
    fig, ax = plt.subplots(figsize=(12, 1.2 + 0.25 * lanes + 0.1 * len(chart.rows)))
    y, labels = 0.0, []
    for row in chart.rows:
        labels.append((y + len(row.lanes) / 2, row.name if len(row.name) <= 50
                       else row.name[:49] + "…"))
        for lane in row.lanes:
            for bar in lane:
                inset = 0.25 if bar.nested else 0.05
                ax.broken_barh([(bar.start, max(bar.duration, chart.seconds / 2000))],
                               (y + inset, 1 - 2 * inset),
                               facecolors=COLOURS.get(bar.kind, OTHER),
                               edgecolors="white", linewidth=0.6)
            y += 1
        y += 0.4
    ax.set_ylim(y, -0.2)
    ax.set_yticks([pos for pos, _ in labels], [name for _, name in labels], fontsize=8)
    ax.set_xlabel("seconds")
    ax.set_title(title)
    used = {b.kind for r in chart.rows for lane in r.lanes for b in lane}
    ax.legend(handles=[Patch(color=COLOURS[k], label=LEGEND[k]) for k in LEGEND if k in used],
              loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=5, fontsize=8,
              frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

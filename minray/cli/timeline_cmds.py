"""`minray timeline TRACE --html OUT [--png OUT]`: a saved timeline (what
`minray.timeline(path)` writes) as a picture without a browser's trace viewer."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from minray.cli.common import CliError, say


def add_parser(sub) -> None:
    p = sub.add_parser("timeline", help="draw a saved timeline as an HTML page or PNG",
                       description="Draw a trace written by minray.timeline(path) as a Gantt "
                                   "chart: one row per worker process, spans coloured by kind. "
                                   "The HTML page is self-contained (nothing fetched); --png "
                                   "needs matplotlib (pip install 'minray[bench]').")
    p.add_argument("trace", metavar="TRACE", help="the trace JSON file")
    p.add_argument("--html", metavar="FILE", help="write the chart as an HTML page here")
    p.add_argument("--png", metavar="FILE", help="write the chart as a PNG image here")
    p.add_argument("--title", help="the chart's title (default: the trace's file name)")
    p.set_defaults(run=timeline)


def timeline(args: argparse.Namespace) -> int:
    from minray.cli import gantt

    if not args.html and not args.png:
        raise CliError("say where to draw the timeline: --html FILE and/or --png FILE")
    path = Path(args.trace)
    try:
        events = gantt.trace_events(json.loads(path.read_text()))
    except OSError as e:
        raise CliError(f"cannot read {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise CliError(f"{path} is not JSON ({e.msg}, line {e.lineno}); "
                       f"write one with minray.timeline({str(path)!r})") from None
    except ValueError as e:
        raise CliError(f"{path}: {e}") from None
    chart = gantt.layout(events)
    title = args.title or f"minray timeline: {path.name}"
    if args.png:
        try:
            import matplotlib  # noqa: F401 - only to say what is missing
        except ImportError:
            raise CliError("--png needs matplotlib: pip install 'minray[bench]' "
                           "(or use --html)") from None
        from minray.cli.gantt_png import render_png

        render_png(chart, title, args.png)
        say(f"wrote {args.png}")
    if args.html:
        Path(args.html).write_text(gantt.render_html(chart, title))
        say(f"wrote {args.html}")
    return 0

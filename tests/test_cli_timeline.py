"""`minray timeline TRACE --html/--png`: a saved trace drawn as a self-contained page."""

import json
import os
import subprocess
import sys
from html.parser import HTMLParser

import pytest

import minray
from minray.chrome_trace import PSEUDO_PID
from minray.cli import main

CLI = [sys.executable, "-m", "minray.cli"]


class Rows(HTMLParser):
    """The chart's rows (<g class="row">) and bars (<rect class="bar ...">) per row."""

    def __init__(self):
        super().__init__()
        self.rows: list[dict] = []
        self.fetches: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "g" and a.get("class") == "row":
            self.rows.append({"kind": a["data-kind"], "name": a["data-name"], "bars": []})
        elif tag == "rect" and a.get("class", "").startswith("bar"):
            self.rows[-1]["bars"].append(a["data-kind"])
        for key in ("src", "href"):
            if key in a:
                self.fetches.append(a[key])


@pytest.fixture
def trace(tmp_path):
    minray.init(num_cpus=2)

    @minray.remote
    def f(i):
        return os.getpid()

    @minray.remote
    def boom():
        raise ValueError("no")

    pids = set(minray.get([f.remote(i) for i in range(6)]))
    with pytest.raises(Exception):  # noqa: B017
        minray.get(boom.remote())
    path = tmp_path / "trace.json"
    minray.timeline(str(path))
    minray.shutdown()
    return path, pids


def test_html_has_one_row_per_worker_and_fetches_nothing(trace, tmp_path):
    path, pids = trace
    out = tmp_path / "out.html"
    proc = subprocess.run([*CLI, "timeline", str(path), "--html", str(out)],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=os.getcwd()))
    assert proc.returncode == 0, proc.stderr
    page = Rows()
    page.feed(out.read_text())
    events = json.loads(path.read_text())
    worker_pids = {e["pid"] for e in events if e["ph"] == "M" and e["name"] == "process_name"
                   and e["args"]["name"].startswith("worker")}
    workers = [r for r in page.rows if r["kind"] == "worker"]
    assert len(workers) == len(worker_pids) and pids <= worker_pids
    # a worker still starting when the trace was taken (the second, asked for while the fork
    # server loads the API) has no pid yet: a pseudo pid in the trace, "?" on its row
    assert {r["name"].split()[1] for r in workers} == {
        str(p) if p < PSEUDO_PID else "?" for p in worker_pids}
    bars = [b for r in workers for b in r["bars"]]
    assert bars.count("task") == 6 and bars.count("failed") == 1
    assert page.rows[0]["kind"] == "driver" and any(r["kind"] == "env" for r in page.rows)
    assert page.fetches == []  # self-contained: no link, script or image to load


def test_png_with_matplotlib(trace, tmp_path):
    path, _ = trace
    out = tmp_path / "out.png"
    assert main(["timeline", str(path), "--png", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("content, words", [
    (None, "cannot read"),
    ("{not json", "is not JSON"),
    ('{"a": 1}', "not a Chrome trace"),
])
def test_bad_input_is_named(tmp_path, capsys, content, words):
    path = tmp_path / "trace.json"
    if content is not None:
        path.write_text(content)
    assert main(["timeline", str(path), "--html", str(tmp_path / "o.html")]) == 2
    assert words in capsys.readouterr().err and not (tmp_path / "o.html").exists()


def test_an_output_is_required(tmp_path, capsys):
    (tmp_path / "t.json").write_text("[]")
    assert main(["timeline", str(tmp_path / "t.json")]) == 2
    assert "--html" in capsys.readouterr().err

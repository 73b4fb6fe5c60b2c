"""scripts/check_on_ray.py: what it compares, and a whole run against a stand-in for Ray (a
`ray` module that is minray), so the script is tested without installing Ray; CI runs it
against the real one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
from check_on_ray import Run, differences, labelled_lines  # noqa: E402


def test_labelled_lines_leave_out_ray_output_and_notes():
    stdout = "\n".join([
        "2026-01-01 12:00:00,000 INFO worker.py:2029 -- Started a local Ray instance.",
        "(use_package pid=123) a line a worker printed",
        "Job 'raysubmit_x' submitted successfully",
        "sum of squares: 332833500",
        "rows the task read: ['apple,3', 'pear,5']",
        "pip env built, first task: hi  # took 4.52 s",
        "${PATH} appended to: {'PATH': '/bin'}",
        "a line without a label",
    ])
    assert labelled_lines(stdout) == [
        "sum of squares: 332833500",
        "rows the task read: ['apple,3', 'pear,5']",
        "pip env built, first task: hi",
        "${PATH} appended to: {'PATH': '/bin'}",
    ]


def test_differences_name_the_exit_codes_and_the_lines_that_differ():
    mine = Run(0, 1.0, ["a: 1", "b: 2"], "", "")
    assert differences(mine, Run(0, 9.0, ["a: 1", "b: 2"], "", "")) == []
    found = "\n".join(differences(mine, Run(1, 9.0, ["a: 1", "b: 3"], "", "")))
    assert "exit code: minray 0, Ray 1" in found
    assert "! minray: b: 2\n!    Ray: b: 3" in found
    assert "  minray: a: 1" in found
    assert differences(Run(0, 1.0, [], "", ""), Run(0, 1.0, [], "", "")) == [
        "minray printed no labelled line: nothing was compared"]


def test_a_whole_run_against_a_stand_in_for_ray(tmp_path):
    """With a `ray` that is minray, every compared example behaves the same: exit 0."""
    stand_in = tmp_path / "fake_ray"
    stand_in.mkdir()
    (stand_in / "ray.py").write_text("import sys\nimport minray\nsys.modules['ray'] = minray\n")
    python = tmp_path / "bin" / "python"
    python.parent.mkdir()
    python.write_text(f"#!/bin/sh\nPYTHONPATH={stand_in}:{REPO} exec {sys.executable} \"$@\"\n")
    python.chmod(0o755)
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "check_on_ray.py"), "--ray-python", str(python),
         "--only", "env_vars,inheritance"],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 of 2 examples behave the same on minray and on Ray" in proc.stdout
    assert "inheritance" in proc.stdout and "env_vars" in proc.stdout


def test_an_unknown_example_is_refused():
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "check_on_ray.py"),
                           "--ray-python", sys.executable, "--only", "no_such_example"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "no such example: no_such_example" in proc.stderr

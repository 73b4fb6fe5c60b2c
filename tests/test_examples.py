"""Every script in examples/ runs on minray and prints what it promises, and each is portable:
it names minray only in its line `import minray as ray` (scripts/check_on_ray.py runs the same
scripts on real Ray)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
from check_on_ray import example_names, labelled_lines  # noqa: E402

# What each example prints (its labelled lines, timings removed): the same on Ray 2.60.
EXPECTED = {
    "conflicting_versions": [
        "task with version 1: shapes 1.0 says area(3, 4) = 12",
        "task with version 2: shapes 2.0 says area(3, 4) = 6.0",
        "the driver itself: shapes is not installed here",
    ],
    "env_vars": [
        "a plain value: {'MODE': 'training'}",
        "${PLUGIN_PATH} appended to: {'PLUGIN_PATH': '/usr/lib/plugins:/opt/extra/plugins'}",
        "an unset ${VAR} becomes empty: {'MAYBE': '[]'}",
        "a task's own variable, plus the job's: {'MODE': 'training', 'LOG_LEVEL': 'debug'}",
    ],
    "excludes_and_gitignore": [
        "files on the worker: ['.gitignore', 'data/small.csv', 'notes.md', 'train.py']",
        "run.log left out by .gitignore: True",
        "checkpoints/ and data/huge.bin left out by excludes: True",
    ],
    "inheritance": [
        "task with the job's env: {'LEVEL': 'job', 'OWNER': 'job', 'STEP': None}",
        "nested task, inheriting its parent's env: "
        "{'LEVEL': 'task', 'OWNER': 'job', 'STEP': 'parent'}",
        "nested task, with an env of its own: "
        "{'LEVEL': 'task', 'OWNER': 'job', 'STEP': 'nested'}",
    ],
    "job_submit": [
        "submitting: job submit --runtime-env env.yaml -- python job_submit.py job",
        "job: the entrypoint runs in the working_dir: True",
        "job: a task sees STAGE and settings.txt: ('nightly', 'batch_size=32')",
        "submitter: the job exited with code 0",
    ],
    "local_files": [
        "rows the task read: ['apple,3', 'pear,5', 'plum,2']",
        "total from helper.total(): 10",
        "total after editing the local file: 10",
    ],
    "per_actor_env": [
        "first actor's REGION: eu-west",
        "second actor's REGION: us-east",
        "each actor has a process of its own: True",
        "a task started by the first actor sees: eu-west",
        "a task started by the driver sees: None",
    ],
    "py_modules_library": [
        "library as first written: HELLO",
        "library after the edit: HELLO!!!",
    ],
    "quickstart": [
        "sum of 1000 squares: 332833500",
        "counter after 5 calls: 5",
        "job env (GREETING, DATA_DIR expanded): ('hello', True)",
        "pip env built, first task: hi from a pip env",
        "same pip env, second task: hi from a pip env",
        "both tasks ran in the same virtualenv: True",
    ],
    "setup_errors": [
        "task: caught RuntimeEnvSetupError",
        "task: the message names the package: True",
        "actor: caught RuntimeEnvSetupError",
        "actor: the message names the package: True",
        "the same task without the broken env: ran",
        "the same actor without the broken env: answered",
    ],
    "timeline": [
        "plain tasks: ['plain', 'plain', 'plain', 'plain']",
        "tasks in an env_vars env, from a task: ['etl', 'etl', 'etl']",
        "a task in a pip env: hello from pip",
        "the trace is a list of events: True",
        "trace written to timeline.json: open it in https://ui.perfetto.dev or chrome://tracing",
    ],
    "uv_run_driver": [
        "starting: uv run --with uv_hello-1.0-py3-none-any.whl python uv_run_driver.py",
        "driver started by uv run: True",
        "a task imports the uv package: hello from uv run",
        "an actor imports it too: hello from uv run",
    ],
}


def test_every_example_is_checked_and_there_are_ten_or_more():
    assert example_names() == sorted(EXPECTED)
    assert len(EXPECTED) >= 10


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_is_portable(name):
    """Changing its one import line is all it takes to run the example on Ray."""
    text = (REPO / "examples" / f"{name}.py").read_text()
    code = text.split('"""', 2)[2].lstrip().splitlines()
    assert code[0] == "import minray as ray", "the first line after the docstring"
    assert text.count("minray") == 1


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_on_minray(name, tmp_path):
    folder = shutil.copytree(REPO / "examples", tmp_path / "examples")
    # The folders and wheels an example makes in the temp dir go to this test's tmp_path.
    (tmp_path / "tmp").mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO), TMPDIR=str(tmp_path / "tmp"))
    # As in an activated venv: this interpreter's scripts (`minray`, `uv`) come first.
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    proc = subprocess.run([sys.executable, f"{name}.py"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert labelled_lines(proc.stdout) == EXPECTED[name], proc.stdout + proc.stderr


def _readme_section(title: str) -> str:
    readme = (REPO / "README.md").read_text()
    start = readme.index(f"\n## {title}\n")
    return readme[start:readme.index("\n## ", start + 1)]


def test_the_readmes_first_command_runs_the_quickstart():
    """The README's first command block starts by installing minray and running the quickstart
    (which test_example_runs_on_minray runs)."""
    readme = (REPO / "README.md").read_text()
    first_block = readme.split("```bash\n", 1)[1].split("```", 1)[0]
    assert first_block.splitlines()[0].split("#")[0].strip() == (
        "python -m pip install -e . && python examples/quickstart.py")


def test_the_readme_describes_every_example():
    section = _readme_section("Examples")
    missing = [name for name in example_names() if f"| `{name}.py` |" not in section]
    assert missing == [], "examples without a row in the README's Examples table"

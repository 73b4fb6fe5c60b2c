"""A driver started with `uv run`: the workers get the same uv environment as the driver.

Start a driver as `uv run --with emoji my_script.py` (or `uv run my_script.py` in a project
with a pyproject.toml) and every task and actor can import what uv provided: no runtime env
needed. Run this file plainly (`python uv_run_driver.py`): it builds a small wheel and starts
itself again as `uv run --with <the wheel> python uv_run_driver.py driver`.
"""

import minray as ray

import os
import subprocess
import sys
import tempfile

from _make_wheel import make_wheel

if sys.argv[1:] != ["driver"]:
    wheel = make_wheel(tempfile.mkdtemp(), "uv_hello", "1.0", "WORD = 'hello from uv run'")
    # --no-project: ignore any pyproject.toml around; --python: this same interpreter.
    command = ["uv", "run", "--no-project", "--python", sys.executable, "--with", wheel,
               "python", __file__, "driver"]
    print("starting: uv run --with uv_hello-1.0-py3-none-any.whl python uv_run_driver.py",
          flush=True)
    sys.exit(subprocess.call(command))

# From here on this is the driver, started by `uv run`.
print("driver started by uv run:", "UV_RUN_RECURSION_DEPTH" in os.environ)


@ray.remote
def use_uv_package():
    import uv_hello  # provided by `uv run --with`, not by a runtime env

    return uv_hello.WORD


@ray.remote
class Greeter:
    def greet(self):
        import uv_hello

        return uv_hello.WORD


print("a task imports the uv package:", ray.get(use_uv_package.remote()))
print("an actor imports it too:", ray.get(Greeter.remote().greet.remote()))
ray.shutdown()

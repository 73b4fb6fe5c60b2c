"""Two versions of one package, side by side: each task gets its own pip env.

Version 1 and version 2 of `shapes` disagree on what `area()` means; each task imports the
version its runtime env asks for, at the same time, in the same job. (The wheels are built
here, so no package index is needed; with real packages write e.g. "requests==2.31.0".)
"""

import minray as ray

import tempfile

from _make_wheel import make_wheel

wheels = tempfile.mkdtemp()
v1 = make_wheel(wheels, "shapes", "1.0", "def area(w, h):\n    return w * h")
v2 = make_wheel(wheels, "shapes", "2.0", "def area(w, h):\n    return round(w * h / 2, 1)")


@ray.remote
def area_with_installed_shapes(w, h):
    import shapes

    return f"shapes {shapes.__version__} says area(3, 4) = {shapes.area(w, h)}"


old = area_with_installed_shapes.options(runtime_env={"pip": [v1]}).remote(3, 4)
new = area_with_installed_shapes.options(runtime_env={"pip": [v2]}).remote(3, 4)
print("task with version 1:", ray.get(old))
print("task with version 2:", ray.get(new))

try:
    import shapes  # noqa: F401
except ImportError:
    print("the driver itself: shapes is not installed here")

ray.shutdown()

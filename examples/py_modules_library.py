"""Develop a library next to your script and ship it with `py_modules`.

You edit `textkit/` on your machine; `py_modules=[textkit]` packages the module's folder and
makes it importable on every worker. Edit, start the job again, and the workers see the edit.
"""

import minray as ray

import sys
import tempfile
from pathlib import Path

# The library under development: a package folder next to the script.
workspace = Path(tempfile.mkdtemp())
(workspace / "textkit").mkdir()
init_py = workspace / "textkit" / "__init__.py"
init_py.write_text("def shout(text):\n    return text.upper()\n")
sys.path.insert(0, str(workspace))

import textkit  # the driver imports it; py_modules ships it to the workers


@ray.remote
def shout_remotely(text):
    return textkit.shout(text)  # no import needed: the module is on the workers' path


ray.init(runtime_env={"py_modules": [textkit]})
print("library as first written:", ray.get(shout_remotely.remote("hello")))
ray.shutdown()

# Change the library and start the job again: its new content is shipped.
init_py.write_text("def shout(text):\n    return text.upper() + '!!!'\n")
ray.init(runtime_env={"py_modules": [textkit]})
print("library after the edit:", ray.get(shout_remotely.remote("hello")))
ray.shutdown()

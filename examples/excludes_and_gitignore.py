"""Leave files out of `working_dir`: `excludes` patterns and the folder's `.gitignore`.

Big data, logs and checkpoints rarely belong on workers. `excludes` takes gitignore-style
patterns relative to the folder; a `.gitignore` inside the folder is honoured too.
"""

import minray as ray

import os
import tempfile
from pathlib import Path

project = Path(tempfile.mkdtemp())
for name in ["train.py", "notes.md", "run.log", "data/small.csv", "data/huge.bin",
             "checkpoints/epoch1.ckpt"]:
    (project / name).parent.mkdir(parents=True, exist_ok=True)
    (project / name).write_text("x")
(project / ".gitignore").write_text("*.log\n")  # git would ignore the logs: so does packaging

ray.init(runtime_env={
    "working_dir": str(project),
    "excludes": ["checkpoints/", "data/huge.bin"],
})


@ray.remote
def shipped_files():
    """Every file in the worker's copy of the folder, as paths relative to it."""
    found = []
    for root, _, files in os.walk("."):
        found += [os.path.relpath(os.path.join(root, f)) for f in files]
    return sorted(found)


files = ray.get(shipped_files.remote())
print("files on the worker:", files)
print("run.log left out by .gitignore:", "run.log" not in files)
print("checkpoints/ and data/huge.bin left out by excludes:",
      not any(f.startswith("checkpoints") or f.endswith("huge.bin") for f in files))

ray.shutdown()

"""Local files with `working_dir`: ship a folder (a data file and a helper module) to workers.

Each worker starts inside its own copy of the folder, so relative paths and `import helper`
work in tasks exactly as they do on your machine.
"""

import minray as ray

import tempfile
from pathlib import Path

# The project folder we ship: a data file and a helper module.
project = Path(tempfile.mkdtemp())
(project / "prices.csv").write_text("apple,3\npear,5\nplum,2\n")
(project / "helper.py").write_text(
    "def total(path):\n"
    "    return sum(int(line.split(',')[1]) for line in open(path))\n"
)

ray.init(runtime_env={"working_dir": str(project)})


@ray.remote
def read_data():
    return open("prices.csv").read().splitlines()  # a path relative to the working_dir


@ray.remote
def use_helper():
    import helper  # the helper module travels with the folder

    return helper.total("prices.csv")


print("rows the task read:", ray.get(read_data.remote()))
print("total from helper.total():", ray.get(use_helper.remote()))

# The task works on a copy: changing the folder now does not change the shipped files.
(project / "prices.csv").write_text("apple,100\n")
print("total after editing the local file:", ray.get(use_helper.remote()))

ray.shutdown()

"""Entry point of a worker process, run as `<env's python> <this file>`.

A file rather than `-m minray.worker`: the env's interpreter may not have minray installed,
and wrappers such as `uv run` take a script path. Its folder holds nothing else, so becoming
sys.path[0] shadows nothing; minray's own paths go after the env's packages.
"""

import os
import sys

sys.path.pop(0)
for _path in os.environ.pop("MINRAY_WORKER_PATH", "").split(os.pathsep):
    if _path and _path not in sys.path:
        sys.path.append(_path)

from minray.worker import main  # noqa: E402

main()

"""Entry point of a worker process, run as `<env's python> <this file>`.

A file rather than `-m minray.worker`: the env's interpreter may not have minray installed,
and wrappers such as `uv run` take a script path. Its folder holds nothing else, so becoming
sys.path[0] shadows nothing; minray's own paths go after the env's packages.
Started with MINRAY_FORK_SERVER_FD set, the process is a fork server (minray/forkserver.py).
"""

import os
import sys

sys.path.pop(0)
for _path in os.environ.pop("MINRAY_WORKER_PATH", "").split(os.pathsep):
    if _path and _path not in sys.path:
        sys.path.append(_path)

if "MINRAY_FORK_SERVER_FD" in os.environ:  # minray/node/launch.py's FD_VAR
    from minray.forkserver import serve

    serve(int(os.environ.pop("MINRAY_FORK_SERVER_FD")))
else:
    from minray.worker_start import main

    main()

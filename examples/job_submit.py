"""Submit a job with a runtime env file: `ray job submit --runtime-env env.yaml -- python ...`.

The env is given at submission, not in the script: it is prepared before the entrypoint
starts, and the script's tasks inherit it. Run this file plainly: it writes `env.yaml` and a
small project, then submits itself as the job (`python job_submit.py job`).
"""

import minray as ray

import os
import subprocess
import sys
import tempfile
from pathlib import Path

if sys.argv[1:] == ["job"]:
    # The job: it runs inside the submitted env (its working_dir and env_vars).
    @ray.remote
    def read_settings():
        return os.environ["STAGE"], open("settings.txt").read()

    print("job: the entrypoint runs in the working_dir:", os.path.exists("settings.txt"))
    print("job: a task sees STAGE and settings.txt:", ray.get(read_settings.remote()))
    sys.exit(0)

# The submitter: a project folder and a runtime env file, as you would keep them in a repo.
project = Path(tempfile.mkdtemp())
(project / "settings.txt").write_text("batch_size=32")
env_file = project / "env.yaml"
env_file.write_text(f"working_dir: {project}\nenv_vars:\n  STAGE: nightly\n")

# Jobs are submitted to a running node or cluster; on a laptop, init() here starts one.
ray.init()

# `ray job submit` (the command is named like the package imported above).
command = [ray.__name__, "job", "submit", "--runtime-env", str(env_file), "--",
           "python", os.path.abspath(__file__), "job"]
print("submitting: job submit --runtime-env env.yaml -- python job_submit.py job", flush=True)
exit_code = subprocess.call(command)
print("submitter: the job exited with code", exit_code)

ray.shutdown()
sys.exit(exit_code)

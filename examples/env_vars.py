"""Environment variables with `env_vars`, and `${VAR}` to build on the node's own values.

`${VAR}` is replaced by the variable's value on the node when the worker starts (appending
to a PATH-like variable is the usual use); a variable that is not set becomes "".
"""

import minray as ray

import os

# The node's environment. Here the node starts with this script, so it inherits these.
os.environ["PLUGIN_PATH"] = "/usr/lib/plugins"
os.environ.pop("NOT_SET_ANYWHERE", None)

ray.init(runtime_env={"env_vars": {
    "MODE": "training",
    "PLUGIN_PATH": "${PLUGIN_PATH}:/opt/extra/plugins",
    "MAYBE": "[${NOT_SET_ANYWHERE}]",
}})


@ray.remote
def read(*names):
    return {name: os.environ.get(name) for name in names}


print("a plain value:", ray.get(read.remote("MODE")))
print("${PLUGIN_PATH} appended to:", ray.get(read.remote("PLUGIN_PATH")))
print("an unset ${VAR} becomes empty:", ray.get(read.remote("MAYBE")))

# A task adds its own variables; the job's are kept (env_vars merge key by key).
verbose = read.options(runtime_env={"env_vars": {"LOG_LEVEL": "debug"}})
print("a task's own variable, plus the job's:", ray.get(verbose.remote("MODE", "LOG_LEVEL")))

ray.shutdown()

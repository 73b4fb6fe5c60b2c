"""minray's benchmark suite: `python -m benchmarks [--ray-python PATH] [--repeat N]
[--only NAME,...] [--quick]`.

Cold and cached startup of tasks, actors and runtime environments, measured for minray, for
real Ray 2.60 (given an interpreter that has `ray[default]==2.60.0`, made with
`python -m venv /path/rayvenv && /path/rayvenv/bin/pip install "ray[default]==2.60.0"`) and for
the floor (process start, uv, multiprocessing). Each system runs in its own fresh processes.
"""

"""A task's arguments and results on the worker's side: loading the arguments, turning return
values and errors into results (large values written to shared memory, see minray.values).

Shared by the plain call path (minray/worker.py) and concurrent actors
(minray/actor_concurrency.py).
"""

from __future__ import annotations

import _pickle as pickle  # the C module: a worker starts ~1 ms sooner without pickle.py

from minray import core, values
from minray import exceptions as exc
from minray.objects import Arg
from minray.task import Result


def load_args(args: bytes, deps: dict[str, values.Data]) -> tuple[list, dict]:
    if not args:
        return [], {}
    call_args, call_kwargs = pickle.loads(args)
    if deps:
        call_args = [values.loads(deps[a.id]) if type(a) is Arg else a for a in call_args]
        call_kwargs = {k: values.loads(deps[v.id]) if type(v) is Arg else v
                       for k, v in call_kwargs.items()}
    return call_args, call_kwargs


def dumps(value) -> values.Data:
    """pickle when it can (fast), cloudpickle for what only it can (lambdas, local classes);
    a large value is written to a segment here, and only its name goes to the node."""
    folder = core.current().object_dir
    try:
        return values.dumps(value, folder)
    except exc.ObjectStoreFullError:
        raise
    except Exception:  # noqa: BLE001 - any pickling failure: try the thorough way
        import cloudpickle  # on use: a worker that never needs it does not load it

        return values.dumps(value, folder, cloudpickle.dumps)


def dump_results(value, n: int, name: str) -> list[Result]:
    if n == 1:
        return [(True, dumps(value))]
    parts = list(value) if isinstance(value, (tuple, list)) else None
    if parts is None or len(parts) != n:
        raise ValueError(f"{name} declared num_returns={n} but returned {value!r}")
    results: list[Result] = []
    try:
        for part in parts:
            results.append((True, dumps(part)))
    except BaseException:
        for _ok, data in results:  # the task fails: its other segments would never be freed
            values.free(data)
        raise
    return results


def task_error(name: str, error: BaseException) -> exc.RayError:
    if isinstance(error, exc.RayActorError):
        return error
    import traceback  # on use: a worker whose tasks never fail does not load it

    tb = error.__traceback__  # the user's frames only, as Ray shows them: not minray's calls
    while tb is not None and tb.tb_frame.f_globals.get("__name__", "").startswith("minray."):
        tb = tb.tb_next
    lines = traceback.format_exception(type(error), error, tb)
    return exc.RayTaskError(name, "".join(lines), error)


def dump_error(error: BaseException) -> Result:
    """The error as a result. A RayTaskError always pickles (its cause travels apart, see
    RayTaskError.__reduce__); another error that cannot travel keeps its text."""
    import cloudpickle  # on use: a worker whose tasks never fail does not load it

    try:
        return False, cloudpickle.dumps(error)
    except Exception:  # noqa: BLE001 - any pickling failure
        return False, cloudpickle.dumps(exc.RayError(str(error)))

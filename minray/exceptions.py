"""Exceptions, with Ray's names so `except ray.exceptions.X` keeps working after a switch."""

from __future__ import annotations

import _pickle as pickle  # the C module: a worker starts ~1 ms sooner without pickle.py


class RayError(Exception):
    """Base of every minray error."""


class RayTaskError(RayError):
    """A task or actor method raised. The message holds the remote traceback.

    `get` raises `as_instanceof_cause()`, an instance that is also of the user's exception
    type, so `except ValueError` catches a ValueError raised in a task. When the driver cannot
    rebuild that exception (its class is not importable here, or its `__init__` wants other
    arguments), `cause` is None and `cause_type` and `cause_message` still say what it was.
    """

    def __init__(self, function_name: str, traceback_str: str,
                 cause: BaseException | None = None, *, cause_type: str | None = None,
                 cause_message: str | None = None):
        self.function_name = function_name
        self.traceback_str = traceback_str
        self.cause = cause
        self.cause_type = cause_type or (type(cause).__name__ if cause is not None else None)
        self.cause_message = str(cause) if cause_message is None and cause is not None \
            else cause_message
        super().__init__(str(self))

    def __reduce__(self):
        # The cause travels as bytes of its own, so a cause that cannot be rebuilt on the
        # other side costs only itself, never the error.
        import cloudpickle  # on use: a worker whose tasks never fail does not load it

        try:
            cause = cloudpickle.dumps(self.cause)
        except Exception:  # noqa: BLE001 - an exception that cannot be pickled: keep its text
            cause = None
        return _rebuild_task_error, (self.function_name, self.traceback_str, cause,
                                     self.cause_type, self.cause_message)

    def __str__(self) -> str:
        return f"{self.function_name} failed:\n{self.traceback_str.rstrip()}"

    def as_instanceof_cause(self) -> RayTaskError:
        cause_cls = type(self.cause)
        if self.cause is None or isinstance(self, cause_cls):
            return self
        try:
            cls = type(f"RayTaskError({cause_cls.__name__})", (RayTaskError, cause_cls),
                       {"__module__": RayTaskError.__module__})
        except TypeError:  # a final class, or a layout that cannot be combined
            return self
        err = _bare_instance(cls)
        if err is None:
            return self
        RayTaskError.__init__(err, self.function_name, self.traceback_str, self.cause)
        err.args = (str(err),)
        return err


def _bare_instance(cls: type) -> BaseException | None:
    """An instance made without calling __init__. The __new__ that MRO finds first may refuse
    (MemoryError's does, for a class whose layout comes from another base), so try the base's."""
    for new in (cls.__new__, BaseException.__new__):
        try:
            return new(cls)
        except TypeError:
            continue
    return None


def _rebuild_task_error(function_name: str, traceback_str: str, cause_bytes: bytes | None,
                        cause_type: str | None, cause_message: str | None) -> RayTaskError:
    try:
        cause = pickle.loads(cause_bytes) if cause_bytes is not None else None
    except Exception:  # noqa: BLE001 - not importable here, or not rebuildable from its args
        cause = None
    return RayTaskError(function_name, traceback_str, cause, cause_type=cause_type,
                        cause_message=cause_message)


class GetTimeoutError(RayError, TimeoutError):
    """`get` did not see the result within its timeout."""


class WorkerCrashedError(RayError):
    """The worker running a task died, and the task had no retries left."""


class RayActorError(RayError):
    """An actor cannot run a method: it died, was killed or failed to start."""


class ActorDiedError(RayActorError):
    """The actor's process died (or its constructor raised) and it will not be restarted."""


class RuntimeEnvSetupError(RayError):
    """The runtime_env of a task or actor could not be prepared; the message says why, with
    passwords in URLs masked (it may quote a command, an index URL, a py_executable)."""

    def __init__(self, *args):
        from runtime_env.masking import mask  # on use: most processes never make one

        super().__init__(*(mask(a) if isinstance(a, str) else a for a in args))


class ActorEnvSetupError(ActorDiedError, RuntimeEnvSetupError):
    """An actor's runtime_env could not be set up: `except RuntimeEnvSetupError`, as Ray's guide
    writes it, and `except ActorDiedError` both catch it."""


class ObjectLostError(RayError):
    """The object's value is no longer stored (its ref is from a session that was shut down)."""


class TaskPlacementGroupRemoved(RayError):
    """The placement group the task was scheduled into was removed (before or while it ran)."""


class ActorPlacementGroupRemoved(ActorDiedError):
    """The actor's placement group was removed, which killed it. An ActorDiedError too, as the
    error its calls raise in Ray."""


class TaskUnschedulableError(RayError):
    """The task can never run here: its NodeAffinitySchedulingStrategy names another node with
    soft=False."""


class ActorUnschedulableError(RayError):
    """The actor can never run here: its NodeAffinitySchedulingStrategy names another node with
    soft=False."""


class ActorClassInheritanceException(TypeError):
    """A class tried to inherit from an actor class (as Ray, this is not supported)."""


class ActorExit(SystemExit):
    """Raised by `exit_actor()` to end the actor once the current call returns. A SystemExit,
    so an `except Exception` in the method does not swallow it."""


class TaskCancelledError(RayError):
    """The task was cancelled with `cancel()` before or while it ran."""


class RemoteDecoratorError(TypeError, AssertionError):
    """`@remote()` with empty parentheses. Ray raises an AssertionError here; a TypeError is
    what it means, so it is both."""


class ObjectStoreFullError(RayError):
    """A large value does not fit in the free space of the object folder (shared memory)."""

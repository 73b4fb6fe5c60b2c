"""Exceptions, with Ray's names so `except ray.exceptions.X` keeps working after a switch."""

from __future__ import annotations


class RayError(Exception):
    """Base of every minray error."""


class RayTaskError(RayError):
    """A task or actor method raised. The message holds the remote traceback.

    `get` raises `as_instanceof_cause()`, an instance that is also of the user's exception
    type, so `except ValueError` catches a ValueError raised in a task.
    """

    def __init__(self, function_name: str, traceback_str: str, cause: BaseException | None = None):
        self.function_name = function_name
        self.traceback_str = traceback_str
        self.cause = cause
        super().__init__(f"{function_name} failed:\n{traceback_str.rstrip()}")

    def __reduce__(self):
        return RayTaskError, (self.function_name, self.traceback_str, self.cause)

    def __str__(self) -> str:
        return f"{self.function_name} failed:\n{self.traceback_str.rstrip()}"

    def as_instanceof_cause(self) -> RayTaskError:
        cause_cls = type(self.cause)
        if self.cause is None or isinstance(self, cause_cls):
            return self
        if not issubclass(cause_cls, Exception):
            return self
        try:
            cls = type(f"RayTaskError({cause_cls.__name__})", (RayTaskError, cause_cls),
                       {"__module__": RayTaskError.__module__})
            err = cause_cls.__new__(cls)
        except TypeError:  # a final class, or one whose __new__ insists on arguments
            return self
        RayTaskError.__init__(err, self.function_name, self.traceback_str, self.cause)
        err.args = (str(err),)
        return err


class GetTimeoutError(RayError, TimeoutError):
    """`get` did not see the result within its timeout."""


class WorkerCrashedError(RayError):
    """The worker running a task died, and the task had no retries left."""


class RayActorError(RayError):
    """An actor cannot run a method: it died, was killed or failed to start."""


class ActorDiedError(RayActorError):
    """The actor's process died (or its constructor raised) and it will not be restarted."""


class RuntimeEnvSetupError(RayError):
    """The runtime_env of a task or actor could not be prepared; the message says why."""


class ObjectLostError(RayError):
    """The object's value is no longer stored."""

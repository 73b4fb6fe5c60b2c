"""`@remote` functions and classes, their `.options()`, actor handles and methods."""

from __future__ import annotations

import hashlib
import inspect
from typing import Any

import cloudpickle

from minray import core, values
from minray.objects import Arg, ObjectRef
from minray.task import ACTOR, CALL, TASK, TaskSpec

# Options with a meaning here; a few more are accepted because they are harmless on one node.
_TASK_OPTIONS = {"num_cpus", "num_gpus", "max_retries", "runtime_env", "num_returns", "name",
                 "retry_exceptions", "resources", "memory", "scheduling_strategy"}
_ACTOR_OPTIONS = {"num_cpus", "num_gpus", "max_restarts", "max_task_retries", "runtime_env",
                  "name", "namespace", "lifetime", "max_concurrency", "resources", "memory",
                  "scheduling_strategy", "get_if_exists"}
DEFAULT_MAX_RETRIES = 3  # as Ray, for tasks whose worker dies


def validate_options(options: dict, *, actor: bool) -> dict:
    """Check options where they are given, naming the option and what is wrong with it."""
    known = _ACTOR_OPTIONS if actor else _TASK_OPTIONS
    unknown = sorted(set(options) - known)
    if unknown:
        what = "actor" if actor else "task"
        raise ValueError(f"unknown {what} option(s) {unknown}; known options are {sorted(known)}")
    out = dict(options)
    for key in ("num_cpus", "memory"):
        if key in out and out[key] is not None:
            _number(key, out[key])
    if out.get("num_gpus"):
        raise ValueError("num_gpus: a minray node has no GPUs; use real Ray for GPU tasks")
    if out.get("resources"):
        raise ValueError(f"resources: a minray node has no custom resources, got "
                         f"{out['resources']!r}")
    for key in ("max_retries", "max_restarts", "max_task_retries"):
        if key in out and (not isinstance(out[key], int) or isinstance(out[key], bool)
                           or out[key] < -1):
            raise ValueError(f"{key} must be an int >= -1 (-1: no limit), got {out[key]!r}")
    if "num_returns" in out and (not isinstance(out["num_returns"], int)
                                 or isinstance(out["num_returns"], bool)
                                 or out["num_returns"] < 1):
        raise ValueError(f"num_returns must be an int >= 1, got {out['num_returns']!r}")
    if out.get("max_concurrency", 1) != 1:
        raise ValueError("max_concurrency: minray actors run one method at a time")
    if "runtime_env" in out:
        from runtime_env import parse  # not at import: workers start faster without it

        # parse(None) and parse({}) are empty, hence None; "", 0 or [] are a TypeError
        out["runtime_env"] = parse(out["runtime_env"]) or None
    return out


def _number(key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{key} must be a non-negative number, got {value!r}")


def _export(obj: Any) -> tuple[str, bytes]:
    """Pickle a function or class once; its id is the hash of its bytes."""
    data = cloudpickle.dumps(obj, protocol=5)
    return hashlib.sha1(data).hexdigest(), data


def _pack_args(c: core.Core, args: tuple, kwargs: dict) -> tuple[bytes, list[str]]:
    """Serialise arguments; top-level ObjectRefs become dependencies, resolved before the
    task runs (refs nested in containers stay refs, as in Ray). Large arguments are stored
    apart, as Ray does, so the task message stays small; they are freed when the task ends."""
    if not args and not kwargs:
        return b"", []
    deps = [a.id for a in args if type(a) is ObjectRef]
    deps += [v.id for v in kwargs.values() if type(v) is ObjectRef]
    if deps:
        args = tuple(Arg(a.id) if type(a) is ObjectRef else a for a in args)
        kwargs = {k: Arg(v.id) if type(v) is ObjectRef else v for k, v in kwargs.items()}
    if c.object_dir is None:
        return cloudpickle.dumps((args, kwargs), protocol=5), deps
    if not any(values.is_large_raw(a) for a in (*args, *kwargs.values())):
        buffers: list = []
        data = cloudpickle.dumps((args, kwargs), protocol=5, buffer_callback=buffers.append)
        if not buffers and len(data) < values.THRESHOLD:
            return data, deps
        if len(data) + sum(b.raw().nbytes for b in buffers) < values.THRESHOLD:
            return cloudpickle.dumps((args, kwargs), protocol=5), deps  # small arrays in-band
    return _pack_large(c, args, kwargs, deps)


def _pack_large(c: core.Core, args: tuple, kwargs: dict,
                deps: list[str]) -> tuple[bytes, list[str]]:
    """Each top-level argument that is large on its own is stored apart and passed by id;
    the rest travel with the task (a small numpy array in-band)."""
    stored: dict[int, values.Segment] = {}  # by id(): an object passed twice is stored once
    try:
        for a in (*args, *kwargs.values()):
            if type(a) is not Arg and id(a) not in stored:
                data = values.dumps(a, c.object_dir, cloudpickle.dumps)
                if type(data) is values.Segment:
                    stored[id(a)] = data
    except BaseException:
        for data in stored.values():
            values.free(data)
        raise
    placed: dict[int, Arg] = {}

    def by_id(a):
        if id(a) not in stored:
            return a
        if id(a) not in placed:
            placed[id(a)] = Arg(c.new_id())
            c.put(placed[id(a)].id, stored[id(a)], for_task=True)
        deps.append(placed[id(a)].id)
        return placed[id(a)]

    args = tuple(by_id(a) for a in args)
    kwargs = {k: by_id(v) for k, v in kwargs.items()}
    return cloudpickle.dumps((args, kwargs), protocol=5), deps


class _Remote:
    """What functions and classes share: options, export once, a clear error if called."""

    _actor = False

    def __init__(self, target: Any, options: dict):
        self._target = target
        self._default_options = validate_options(options, actor=self._actor)
        self._exported: tuple[str, bytes] | None = None
        self.__name__ = getattr(target, "__name__", "remote")
        self.__qualname__ = getattr(target, "__qualname__", self.__name__)
        self.__doc__ = getattr(target, "__doc__", None)

    def _exported_target(self) -> tuple[str, bytes]:
        if self._exported is None:
            self._exported = _export(self._target)
        return self._exported

    def __reduce__(self):
        # As target + options: cloudpickle then handles a function that refers to itself.
        return type(self), (self._target, self._default_options)

    def __call__(self, *args, **kwargs):
        kind = "Actor classes" if self._actor else "Remote functions"
        raise TypeError(f"{kind} cannot be called directly; use {self.__name__}.remote(...) "
                        f"instead of {self.__name__}(...)")

    def options(self, **options) -> _WithOptions:
        return _WithOptions(self, {**self._default_options,
                                   **validate_options(options, actor=self._actor)})

    def remote(self, *args, **kwargs):
        return self._remote(args, kwargs, self._default_options)


class _WithOptions:
    """The result of `.options(...)`: `.remote()` with those options, or more `.options()`."""

    def __init__(self, remote: _Remote, options: dict):
        self._remote_obj = remote
        self._options = options

    def options(self, **options) -> _WithOptions:
        extra = validate_options(options, actor=self._remote_obj._actor)
        return _WithOptions(self._remote_obj, {**self._options, **extra})

    def remote(self, *args, **kwargs):
        return self._remote_obj._remote(args, kwargs, self._options)


class RemoteFunction(_Remote):
    def _remote(self, args: tuple, kwargs: dict, options: dict):
        c = core.current()
        c.check_cpus(options.get("num_cpus", 1))
        func_id, func_bytes = self._exported_target()
        task_id = c.new_id()
        n = options.get("num_returns", 1)
        return_ids = [task_id] if n == 1 else [f"{task_id}.{i}" for i in range(n)]
        data, deps = _pack_args(c, args, kwargs)
        retries = options.get("max_retries")
        c.submit(TaskSpec(
            task_id=task_id, name=options.get("name") or self.__qualname__, kind=TASK,
            args=data, deps=deps, return_ids=return_ids, func_id=func_id, func_bytes=func_bytes,
            num_cpus=options.get("num_cpus", 1), runtime_env=options.get("runtime_env"),
            max_retries=DEFAULT_MAX_RETRIES if retries is None else retries))
        refs = [ObjectRef(i) for i in return_ids]
        return refs[0] if n == 1 else refs


class ActorClass(_Remote):
    _actor = True

    def _remote(self, args: tuple, kwargs: dict, options: dict) -> ActorHandle:
        c = core.current()
        func_id, func_bytes = self._exported_target()
        actor_id = c.new_id()
        data, deps = _pack_args(c, args, kwargs)
        c.submit(TaskSpec(
            task_id=actor_id, name=self.__qualname__, kind=ACTOR, args=data, deps=deps,
            return_ids=[], func_id=func_id, func_bytes=func_bytes,
            num_cpus=options.get("num_cpus") or 0, runtime_env=options.get("runtime_env"),
            max_restarts=options.get("max_restarts", 0), actor_id=actor_id))
        return ActorHandle(actor_id, self.__qualname__, self._method_names())

    def _method_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in inspect.getmembers(self._target, callable)
                     if not name.startswith("__"))


class ActorHandle:
    """A reference to a live actor; pass it to other tasks freely."""

    def __init__(self, actor_id: str, class_name: str, methods: tuple[str, ...]):
        self._actor_id = actor_id
        self._class_name = class_name
        self._methods = methods

    def __getattr__(self, name: str) -> ActorMethod:
        if name.startswith("_") or name not in self._methods:
            raise AttributeError(f"actor {self._class_name} has no method {name!r}")
        return ActorMethod(self, name, {})

    def __reduce__(self):
        return ActorHandle, (self._actor_id, self._class_name, self._methods)

    def __repr__(self) -> str:
        return f"Actor({self._class_name}, {self._actor_id})"


class ActorMethod:
    def __init__(self, handle: ActorHandle, name: str, options: dict):
        self._handle = handle
        self._name = name
        self._options = options

    def __call__(self, *args, **kwargs):
        raise TypeError(f"actor methods cannot be called directly; use "
                        f"{self._name}.remote(...)")

    def options(self, **options) -> ActorMethod:
        unknown = sorted(set(options) - {"num_returns", "name"})
        if unknown:
            raise ValueError(f"unknown actor method option(s) {unknown}; known options are "
                             f"['name', 'num_returns']")
        validate_options({k: v for k, v in options.items() if k == "num_returns"}, actor=False)
        return ActorMethod(self._handle, self._name, {**self._options, **options})

    def remote(self, *args, **kwargs):
        c = core.current()
        task_id = c.new_id()
        n = self._options.get("num_returns", 1)
        return_ids = [task_id] if n == 1 else [f"{task_id}.{i}" for i in range(n)]
        data, deps = _pack_args(c, args, kwargs)
        name = self._options.get("name") or f"{self._handle._class_name}.{self._name}"
        c.submit(TaskSpec(task_id=task_id, name=name, kind=CALL, args=data, deps=deps,
                             return_ids=return_ids, actor_id=self._handle._actor_id,
                             method=self._name))
        refs = [ObjectRef(i) for i in return_ids]
        return refs[0] if n == 1 else refs


def remote(*args, **options):
    """Make a function a task, or a class an actor: `@remote`, or `@remote(num_cpus=1)`."""
    if len(args) == 1 and not options and (inspect.isfunction(args[0])
                                           or inspect.isclass(args[0])):
        return _make(args[0], {})
    if args:
        raise TypeError("remote takes a function or class, or only keyword options: "
                        "@remote or @remote(num_cpus=1, ...)")
    return lambda target: _make(target, options)


def _make(target: Any, options: dict):
    if inspect.isclass(target):
        return ActorClass(target, options)
    if callable(target):
        return RemoteFunction(target, options)
    raise TypeError(f"remote applies to functions and classes, not {type(target).__name__}")

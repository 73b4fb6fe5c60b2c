"""`@remote` functions, their `.options()`, and what functions and actor classes share:
option checks, export once, argument packing."""

from __future__ import annotations

import collections
import functools
import hashlib
import importlib
import inspect
import io
import os
import types
import warnings
from typing import Any

import cloudpickle

from minray import core, functions, resources, strict, values
from minray.generators import DYNAMIC, STREAMING, ObjectRefGenerator, generator_returns
from minray.handles import noting_handles
from minray.objects import Arg, ObjectRef
from minray.signatures import CallCheck
from minray.task import TASK, Placement, TaskSpec

# Options with a meaning here; a few more are accepted because they are harmless on one node.
_TASK_OPTIONS = {"num_cpus", "num_gpus", "max_retries", "runtime_env", "num_returns", "name",
                 "retry_exceptions", "resources", "memory", "scheduling_strategy"}
_ACTOR_OPTIONS = {"num_cpus", "num_gpus", "max_restarts", "max_task_retries", "runtime_env",
                  "name", "namespace", "lifetime", "max_concurrency", "concurrency_groups",
                  "resources", "memory", "scheduling_strategy", "get_if_exists"}
_METHOD_OPTIONS = {"num_returns", "concurrency_group"}
DEFAULT_MAX_RETRIES = 3  # as Ray, for tasks whose worker dies
FUNCTION_SIZE_ERROR_THRESHOLD = 10**8  # Ray's limits on a pickled function or class
FUNCTION_SIZE_WARN_THRESHOLD = 10**7
_ASKS = frozenset(("num_gpus", "memory", "resources"))  # options that ask for more than CPUs


def validate_options(options: dict, *, actor: bool) -> dict:
    """Check options where they are given, naming the option and what is wrong with it."""
    known = _ACTOR_OPTIONS if actor else _TASK_OPTIONS
    unknown = sorted(set(options) - known)
    if unknown:
        what = "actor" if actor else "task"
        raise ValueError(f"unknown {what} option(s) {unknown}; known options are {sorted(known)}")
    out = dict(options)
    if out.get("num_cpus") is not None:
        _number("num_cpus", out["num_cpus"])
    resources.demand(out)  # checks num_gpus, memory and resources
    for key in ("max_retries", "max_restarts", "max_task_retries"):
        if key in out and (not isinstance(out[key], int) or isinstance(out[key], bool)
                           or out[key] < -1):
            raise ValueError(f"{key} must be an int >= -1 (-1: no limit), got {out[key]!r}")
    if "num_returns" in out:
        check_num_returns(out["num_returns"])
    if actor:
        _check_actor_naming(out)
    if out.get("max_concurrency") is not None and not _count(out["max_concurrency"]):
        raise ValueError(f"max_concurrency must be an int >= 1, got {out['max_concurrency']!r}")
    if out.get("concurrency_groups") is not None:
        _check_groups(out["concurrency_groups"])
    if out.get("scheduling_strategy") is not None:
        from minray.util import scheduling_strategies  # on use: workers start faster without

        scheduling_strategies.check(out["scheduling_strategy"])
    if "runtime_env" in out:
        from runtime_env import parse  # not at import: workers start faster without it

        if strict.enabled():
            strict.check_runtime_env(out["runtime_env"], task_level=True)
        # parse(None) and parse({}) are empty, hence None; "", 0 or [] are a TypeError
        out["runtime_env"] = parse(out["runtime_env"]) or None
    return out


_LIFETIMES = (None, "detached", "non_detached")


def check_num_returns(n) -> None:
    if n in (STREAMING, DYNAMIC):
        return
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"num_returns must be an int >= 1, 'streaming' or 'dynamic', got {n!r}")


def _check_actor_naming(options: dict) -> None:
    for key in ("name", "namespace"):
        value = options.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise ValueError(f"{key} must be a non-empty string, got {value!r}")
    if options.get("lifetime") not in _LIFETIMES:
        raise ValueError(f"lifetime must be 'detached', 'non_detached' or None, got "
                         f"{options['lifetime']!r}")


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_groups(groups: Any) -> None:
    if not isinstance(groups, dict):
        raise TypeError(f"concurrency_groups must be a dict of group name -> max concurrent "
                        f"calls, e.g. {{'io': 2}}, got {type(groups).__name__}")
    for name, size in groups.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"concurrency_groups: group names must be non-empty strings, got "
                             f"{name!r}")
        if not _count(size):
            raise ValueError(f"concurrency_groups[{name!r}] must be an int >= 1 (calls at "
                             f"once), got {size!r}")




def _number(key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{key} must be a non-negative number, got {value!r}")


def _code_keeping_its_file(code):
    """cloudpickle names every code object it pickles by value `<dynamic-code>`; keep its
    file instead, so a task's traceback and its pdb (`breakpoint()`, `l`) show its source."""
    rebuild, args = _CLOUDPICKLE_CODE(code)
    return rebuild, tuple(code.co_filename if a == "<dynamic-code>" else a for a in args)


def _module_by_name(module: types.ModuleType):
    """An importable module as `importlib.import_module(name)`, which a worker has at hand,
    rather than cloudpickle's own importer."""
    rebuild, args = _CLOUDPICKLE_MODULE(module)
    return (importlib.import_module, args) if rebuild is _SUBIMPORT else (rebuild, args)


# cloudpickle's own rebuilders, to recognise its reductions (None if a version renames them:
# its reductions are then kept as they are)
_SUBIMPORT = getattr(cloudpickle.cloudpickle, "subimport", None)
_MAKE_FUNCTION = getattr(cloudpickle.cloudpickle, "_make_function", None)
_FUNCTION_SETSTATE = getattr(cloudpickle.cloudpickle, "_function_setstate", None)
_CLOUDPICKLE_CODE = cloudpickle.Pickler.dispatch_table.get(types.CodeType)
_CLOUDPICKLE_MODULE = cloudpickle.Pickler.dispatch_table.get(types.ModuleType)
# Reducers a cloudpickle without its own (for code, for modules) does not need
_REDUCERS = {kind: reducer for kind, reducer, own in (
    (types.ModuleType, _module_by_name, _CLOUDPICKLE_MODULE),
    (types.CodeType, _code_keeping_its_file, _CLOUDPICKLE_CODE)) if own is not None}


class _Exporter(cloudpickle.Pickler):
    """cloudpickle, with script functions and modules in forms a worker loads without it
    (minray/functions.py)."""

    dispatch_table = collections.ChainMap(_REDUCERS, cloudpickle.Pickler.dispatch_table)

    def reducer_override(self, obj):
        reduced = super().reducer_override(obj)
        if type(obj) is types.FunctionType and reduced is not NotImplemented:
            return functions.plain(reduced, _MAKE_FUNCTION, _FUNCTION_SETSTATE) or \
                reduced
        return reduced


def _export(obj: Any, kind: str) -> tuple[str, bytes]:
    """Pickle a function or class once; its id is the hash of its bytes. One that pickles
    over Ray's limit fails as it would on Ray (a large value it captures belongs in put)."""
    buffer = io.BytesIO()
    _Exporter(buffer, protocol=5).dump(obj)
    data = buffer.getvalue()
    limit = int(os.environ.get("FUNCTION_SIZE_ERROR_THRESHOLD", FUNCTION_SIZE_ERROR_THRESHOLD))
    if len(data) > limit:
        raise ValueError(
            f"the {kind} {getattr(obj, '__qualname__', obj)} pickles to {len(data) >> 20} MiB, "
            f"more than Ray allows (FUNCTION_SIZE_ERROR_THRESHOLD={limit >> 20} MiB): it "
            f"probably captures a large object from its scope; put that with put() and pass "
            f"the ref instead")
    if len(data) > FUNCTION_SIZE_WARN_THRESHOLD:
        warnings.warn(f"the {kind} {getattr(obj, '__qualname__', obj)} pickles to "
                      f"{len(data) >> 20} MiB: does it capture a large object from its scope? "
                      f"put() it and pass the ref instead", stacklevel=4)
    return hashlib.sha1(data).hexdigest(), data


def pack_args(c: core.Core, args: tuple,
              kwargs: dict) -> tuple[bytes, list[str], list[str] | None]:
    """Serialise arguments; top-level ObjectRefs become dependencies, resolved before the
    task runs (refs nested in containers stay refs, as in Ray). Large arguments are stored
    apart, as Ray does, so the task message stays small; they are freed when the task ends.
    Also the ids of the actors whose handles the arguments hold: the task keeps those actors
    alive until it ends."""
    if not args and not kwargs:
        return b"", [], None
    deps = [a.id for a in args if type(a) is ObjectRef]
    deps += [v.id for v in kwargs.values() if type(v) is ObjectRef]
    if deps:
        args = tuple(Arg(a.id) if type(a) is ObjectRef else a for a in args)
        kwargs = {k: Arg(v.id) if type(v) is ObjectRef else v for k, v in kwargs.items()}
    (data, deps), held = noting_handles(lambda: _serialise(c, args, kwargs, deps))
    return data, deps, held or None


def _serialise(c: core.Core, args: tuple, kwargs: dict,
               deps: list[str]) -> tuple[bytes, list[str]]:
    """The arguments' bytes: in-band when small, large ones stored apart."""
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


def placement(options: dict, c: core.Core, cpus: float, name: str, *,
              actor: bool) -> Placement | None:
    """Where in a placement group a task or actor runs (None: anywhere on the node): where its
    `scheduling_strategy` says, else in its caller's group if that captures child tasks."""
    from minray.util.scheduling_strategies import placement_of  # on use, as above

    return placement_of(options.get("scheduling_strategy"), c.placement, cpus, name=name,
                        actor=actor)


def return_ids(task_id: str, n: int) -> list[str]:
    return [task_id] if n == 1 else [f"{task_id}.{i}" for i in range(n)]


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
            self._exported = _export(self._target,
                                     "actor class" if self._actor else "remote function")
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

    def bind(self, *args, **kwargs):
        """A lazy node of a DAG (`minray.dag`): runs when the DAG is executed."""
        return _bind(self, args, kwargs, self._default_options)


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

    def bind(self, *args, **kwargs):
        return _bind(self._remote_obj, args, kwargs, self._options)


def _bind(target: _Remote, args: tuple, kwargs: dict, options: dict):
    from minray import dag  # on use: workers start faster without it

    node = dag.ClassNode if target._actor else dag.FunctionNode
    return node(target, args, kwargs, options)


class RemoteFunction(_Remote):
    _check: CallCheck | None = None

    @functools.cached_property
    def _default_returns(self):
        """A generator function streams its values by default, as in Ray."""
        return STREAMING if inspect.isgeneratorfunction(self._target) else 1

    def _remote(self, args: tuple, kwargs: dict, options: dict):
        check = self._check
        if check is None:
            check = self._check = CallCheck.of(self._target) or _accept_any
        check(self.__qualname__, None, args, kwargs)
        c = core.current()
        asked = resources.demand(options) if _ASKS.intersection(options) else None
        num_cpus = options.get("num_cpus", 1)
        c.check_resources(num_cpus, asked)
        placed = None
        if c.placement is not None or options.get("scheduling_strategy") is not None:
            placed = placement(options, c, num_cpus, self.__qualname__, actor=False)
        func_id, func_bytes = self._exported_target()
        task_id = c.new_id()
        n = options.get("num_returns", self._default_returns)
        streams = n in (STREAMING, DYNAMIC)
        if streams:
            generator_returns(n, self._target, f"{self.__qualname__}.remote()")
        ids = [task_id] if streams else return_ids(task_id, n)
        data, deps, held = pack_args(c, args, kwargs)
        retries = options.get("max_retries")
        c.submit(TaskSpec(
            task_id=task_id, name=options.get("name") or self.__qualname__, kind=TASK,
            args=data, deps=deps, return_ids=ids, func_id=func_id, func_bytes=func_bytes,
            num_cpus=num_cpus, runtime_env=options.get("runtime_env"),
            max_retries=DEFAULT_MAX_RETRIES if retries is None else retries, handles=held,
            resources=asked, generator=n if streams else None, placement=placed))
        if n == STREAMING:
            return ObjectRefGenerator(task_id)
        refs = [ObjectRef(i) for i in ids]
        return refs[0] if len(refs) == 1 else refs


def _accept_any(owner: str, method: str | None, args: tuple, kwargs: dict) -> None:
    """For a callable whose signature Python cannot tell: the worker finds out."""

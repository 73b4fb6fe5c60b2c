"""Actors as Ray has them: `@remote` classes, their handles and methods, `method`, `exit_actor`.

A handle knows its actor's id and what the class looks like (each method's signature, so a wrong
call fails at `.remote()`, and its `num_returns`); it pickles with that, so a handle passed to a
task or found with `get_actor` works the same anywhere. Handles report where they are
(`minray.handles`), so an actor stops once none is left.
"""

from __future__ import annotations

import inspect
from typing import Any

from minray import core, handles, resources
from minray import exceptions as exc
from minray.generators import DYNAMIC, STREAMING, ObjectRefGenerator
from minray.named_tuple import Record
from minray.objects import ObjectRef
from minray.remote_function import (
    _ASKS,
    _Remote,
    check_num_returns,
    pack_args,
    placement,
    return_ids,
)
from minray.signatures import CallCheck
from minray.task import ACTOR, CALL, ActorCreation, Concurrency, TaskSpec

TERMINATE = "__ray_terminate__"  # the method that ends an actor once its earlier calls ran
ASYNC_MAX_CONCURRENCY = 1000  # as Ray: an async actor's default group runs this many at once
_METHOD_OPTIONS = {"num_returns", "name", "concurrency_group"}


def method(*args, **options):
    """`@method(num_returns=2, concurrency_group="io")` on an actor's method: the default
    options of its calls, as Ray's `@ray.method`."""
    if args:
        raise TypeError("method takes only keyword options: @method(concurrency_group='io')")
    _check_method_options(options)
    group = options.get("concurrency_group")
    if group is not None and (not isinstance(group, str) or not group):
        raise ValueError(f"concurrency_group must be a group's name, got {group!r}")

    def decorate(fn):
        if not callable(fn):
            raise TypeError(f"@method applies to an actor's methods, not {type(fn).__name__}")
        fn.__minray_method_options__ = {**getattr(fn, "__minray_method_options__", {}),
                                        **options}
        return fn

    return decorate


def exit_actor() -> None:
    """End the actor this is called in, once the current call returns: its `atexit` handlers
    and `__ray_shutdown__` run, the caller of this call and of every later one gets
    ActorDiedError, and the actor is not restarted."""
    c = core.get_current()
    if c is None or c.is_driver or c.actor_id is None:
        raise TypeError("exit_actor() can only be called inside an actor's method")
    raise exc.ActorExit("exit_actor() was called")


class MethodMeta(Record):
    check: CallCheck | None  # None when Python cannot tell the signature
    num_returns: int | str = 1  # a generator method streams by default, as in Ray
    generator: bool = False


class ClassMeta(Record):
    """What a handle knows of its actor's class."""

    name: str
    methods: dict[str, MethodMeta]
    groups: tuple[str, ...] = ()  # its concurrency_groups, to check `.options()` against


_TERMINATE_META = MethodMeta(CallCheck(inspect.Signature()))


def _check_method_options(options: dict) -> None:
    unknown = sorted(set(options) - _METHOD_OPTIONS)
    if unknown:
        raise ValueError(f"unknown method option(s) {unknown}; known options are "
                         f"{sorted(_METHOD_OPTIONS)}")
    check_num_returns(options.get("num_returns", 1))


class ActorClass(_Remote):
    """A class made an actor by `@remote`: `.remote(...)` starts one. Its class and static
    attributes are reachable through it, as in Ray (`Counter.LIMIT` inside a method)."""

    _actor = True

    def __init__(self, target: type, options: dict):
        super().__init__(target, options)
        self._meta: ClassMeta | None = None
        self._init_check: CallCheck | None = None
        self._async_and_groups: tuple[bool, dict[str, str]] | None = None

    def __getattr__(self, name: str) -> Any:
        target = self.__dict__.get("_target")
        if target is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(target, name)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(dir(self._target)))

    def __mro_entries__(self, bases):
        raise exc.ActorClassInheritanceException(
            f"cannot inherit from actor class {self.__qualname__!r}: inheriting from an actor "
            f"class is not supported. Inherit from a plain class and put @remote on the "
            f"subclass")

    def _class_meta(self) -> ClassMeta:
        if self._meta is None:
            self._meta = ClassMeta(self.__qualname__, _methods(self._target))
            self._init_check = CallCheck.of(self._target)
        return self._meta

    def _remote(self, args: tuple, kwargs: dict, options: dict) -> ActorHandle:
        meta = self._class_meta()
        concurrency = self._concurrency(options)
        if concurrency is not None and concurrency.groups:
            meta = meta._replace(groups=tuple(concurrency.groups))
        if self._init_check is not None:
            self._init_check(self.__qualname__, None, args, kwargs)
        c = core.current()
        asked = resources.demand(options) if _ASKS.intersection(options) else None
        c.check_resources(options.get("num_cpus") or 0, asked)
        placed = None
        if c.placement is not None or options.get("scheduling_strategy") is not None:
            # to be placed in a bundle it needs its num_cpus, by default 1 (as Ray)
            cpus = options.get("num_cpus")
            placed = placement(options, c, 1 if cpus is None else cpus, self.__qualname__,
                               actor=True)
        func_id, func_bytes = self._exported_target()
        actor_id = c.new_id()
        data, deps, held = pack_args(c, args, kwargs)
        name = options.get("name")
        if name is None and options.get("get_if_exists"):
            raise ValueError("get_if_exists=True needs a name=: only named actors can be found")
        creation = ActorCreation(
            meta, name, options.get("namespace") or c.namespace,
            options.get("lifetime") == "detached", options.get("max_task_retries", 0),
            bool(options.get("get_if_exists")))
        spec = TaskSpec(
            task_id=actor_id, name=self.__qualname__, kind=ACTOR, args=data, deps=deps,
            return_ids=[], func_id=func_id, func_bytes=func_bytes,
            num_cpus=options.get("num_cpus") or 0, runtime_env=options.get("runtime_env"),
            max_restarts=options.get("max_restarts", 0), actor_id=actor_id, handles=held,
            actor=creation, resources=asked, concurrency=concurrency, placement=placed)
        if name is None:
            c.submit(spec)
        else:
            actor_id = c.submit_named(spec)  # another's id, for get_if_exists
        return ActorHandle(actor_id, meta)


    def _concurrency(self, options: dict) -> Concurrency | None:
        """How the actor runs its calls; None for one at a time (the plain path). A method
        placed in a group the actor does not define is an error here, at creation."""
        is_async, method_groups = self._async_and_method_groups()
        groups = options.get("concurrency_groups") or {}
        for name, group in method_groups.items():
            if group not in groups:
                raise ValueError(f"{self.__qualname__}.{name} is in concurrency_group "
                                 f"{group!r}, which the actor does not define; its "
                                 f"concurrency_groups are {sorted(groups)}")
        limit = options.get("max_concurrency") or (ASYNC_MAX_CONCURRENCY if is_async else 1)
        if not is_async and limit == 1 and not groups:
            return None
        return Concurrency(is_async, limit, dict(groups), method_groups)

    def _async_and_method_groups(self) -> tuple[bool, dict[str, str]]:
        """Whether any method is `async def` (then the actor is an async actor, as in Ray),
        and the methods `@method` placed in a concurrency group."""
        if self._async_and_groups is None:
            is_async, groups = False, {}
            for name, member in inspect.getmembers(self._target, callable):
                if inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member):
                    is_async = True
                group = getattr(member, "__minray_method_options__", {}).get("concurrency_group")
                if group is not None:
                    groups[name] = group
            self._async_and_groups = is_async, groups
        return self._async_and_groups


def _methods(cls: type) -> dict[str, MethodMeta]:
    """Each public method's signature check and default options."""
    methods = {}
    for name, _ in inspect.getmembers(cls, callable):
        if name.startswith("__"):
            continue
        raw = inspect.getattr_static(cls, name)
        if isinstance(raw, staticmethod):
            check = CallCheck.of(raw.__func__)
        elif isinstance(raw, classmethod):
            check = CallCheck.of(raw.__func__, drop_first=True)
        elif inspect.isfunction(raw):
            check = CallCheck.of(raw, drop_first=True)
        else:
            check = None
        fn = raw.__func__ if isinstance(raw, (staticmethod, classmethod)) else raw
        options = getattr(fn, "__minray_method_options__", {})
        generator = inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)
        methods[name] = MethodMeta(check, options.get("num_returns",
                                                      STREAMING if generator else 1), generator)
    return methods


class ActorHandle:
    """A reference to a live actor; pass it to other tasks freely. The actor stops once no
    handle to it is left anywhere (unless it is detached)."""

    def __init__(self, actor_id: str, meta: ClassMeta):
        self._actor_id = actor_id
        self._meta = meta
        handles.born(actor_id)

    def __del__(self):
        actor_id = self.__dict__.get("_actor_id")
        if actor_id is not None:
            handles.died(actor_id)

    def __getattr__(self, name: str) -> ActorMethod:
        meta = self.__dict__.get("_meta")
        if meta is None:
            raise AttributeError(name)
        if name == TERMINATE:
            return ActorMethod(self, name, _TERMINATE_META, {})
        method_meta = None if name.startswith("__") else meta.methods.get(name)
        if method_meta is None:
            raise AttributeError(f"actor {meta.name} has no method {name!r}")
        return ActorMethod(self, name, method_meta, {})

    def __reduce__(self):
        handles.pickled(self._actor_id)
        return ActorHandle, (self._actor_id, self._meta)

    def __eq__(self, other) -> bool:
        return isinstance(other, ActorHandle) and other._actor_id == self._actor_id

    def __hash__(self) -> int:
        return hash(self._actor_id)

    def __repr__(self) -> str:
        return f"Actor({self._meta.name}, {self._actor_id})"


class ActorMethod:
    def __init__(self, handle: ActorHandle, name: str, meta: MethodMeta, options: dict):
        self._handle = handle
        self._name = name
        self._meta = meta
        self._options = options

    def __call__(self, *args, **kwargs):
        raise TypeError(f"actor methods cannot be called directly; use "
                        f"{self._name}.remote(...)")

    def options(self, **options) -> ActorMethod:
        _check_method_options(options)
        group = options.get("concurrency_group")
        groups = self._handle._meta.groups
        if group is not None and group not in groups:
            raise ValueError(f"concurrency_group {group!r} is not a group of actor "
                             f"{self._handle._meta.name}; its concurrency_groups are "
                             f"{sorted(groups)}")
        return ActorMethod(self._handle, self._name, self._meta, {**self._options, **options})

    def bind(self, *args, **kwargs):
        """A lazy call of this method in a DAG (`minray.dag`)."""
        from minray.dag import ClassMethodNode  # on use: workers start faster without it

        return ClassMethodNode(self._handle, self._name, args, kwargs, self._options)

    def remote(self, *args, **kwargs):
        handle, meta = self._handle, self._meta
        if meta.check is not None:
            meta.check(handle._meta.name, self._name, args, kwargs)
        n = self._options.get("num_returns", meta.num_returns)
        streams = n in (STREAMING, DYNAMIC)
        if streams and not meta.generator:
            raise ValueError(f"{handle._meta.name}.{self._name}.remote(): num_returns={n!r} "
                             f"needs a generator method (one that uses yield); this one is not")
        c = core.current()
        task_id = c.new_id()
        ids = [task_id] if streams else return_ids(task_id, n)
        data, deps, held = pack_args(c, args, kwargs)
        name = self._options.get("name") or f"{handle._meta.name}.{self._name}"
        c.submit(TaskSpec(task_id=task_id, name=name, kind=CALL, args=data, deps=deps,
                          return_ids=ids, actor_id=handle._actor_id, method=self._name,
                          handles=held, generator=n if streams else None,
                          concurrency_group=self._options.get("concurrency_group")))
        if n == STREAMING:
            return ObjectRefGenerator(task_id)
        refs = [ObjectRef(i) for i in ids]
        return refs[0] if len(refs) == 1 else refs

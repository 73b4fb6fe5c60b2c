"""The lazy DAG API, as Ray's `ray.dag`: `f.bind(...)`, `A.bind(...)`, `node.method.bind(...)`
build a graph without running anything; `dag.execute(*args)` submits it and returns what the
last node's `.remote()` returns (an ObjectRef, a list of them for a `MultiOutputNode`).

Each `execute` runs every node once, however many nodes use it, and creates the actors of its
`A.bind(...)` nodes anew, as Ray does. A node given as a top-level argument reaches the task as
its value; one inside a list, tuple or dict arrives as its ObjectRef (Ray's rule for refs).
`InputNode` stands for `execute`'s arguments: with one argument it is that argument, with
several `inp[0]`, `inp[1]` and `inp.name` pick them; on a single argument `inp[key]` indexes it
and `inp.attr` reads its attribute.
"""

from __future__ import annotations

from typing import Any


class DAGNode:
    """A step of the graph: what to call with which arguments, some of them other nodes."""

    def __init__(self, args: tuple = (), kwargs: dict | None = None):
        self._bound_args = args
        self._bound_kwargs = kwargs or {}

    def execute(self, *args, **kwargs):
        """Submit this node and everything it depends on; return its result."""
        return _Execution(args, kwargs).run(self)

    def _upstream(self) -> list[DAGNode]:
        """The nodes this one needs first."""
        return _nodes_in((self._bound_args, self._bound_kwargs))

    def _run(self, execution: _Execution) -> Any:
        raise NotImplementedError

    def _resolved(self, execution: _Execution) -> tuple[tuple, dict]:
        return (execution.substitute(self._bound_args),
                execution.substitute(self._bound_kwargs))


class FunctionNode(DAGNode):
    """`f.bind(...)`: a task."""

    def __init__(self, function, args: tuple, kwargs: dict, options: dict):
        super().__init__(args, kwargs)
        self._body = function
        self._options = options

    def _run(self, execution: _Execution):
        args, kwargs = self._resolved(execution)
        return self._body._remote(args, kwargs, self._options)

    def __repr__(self) -> str:
        return f"FunctionNode({self._body.__qualname__})"


class ClassNode(DAGNode):
    """`A.bind(...)`: an actor, created by each execution; `node.method.bind(...)` calls it."""

    def __init__(self, actor_class, args: tuple, kwargs: dict, options: dict):
        super().__init__(args, kwargs)
        self._body = actor_class
        self._options = options

    def __getattr__(self, name: str) -> _UnboundMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        body = self.__dict__.get("_body")
        if body is None or name not in body._class_meta().methods:
            raise AttributeError(f"actor class {getattr(body, '__qualname__', '?')} has no "
                                 f"method {name!r}")
        return _UnboundMethod(self, name, {})

    def _run(self, execution: _Execution):
        args, kwargs = self._resolved(execution)
        return self._body._remote(args, kwargs, self._options)

    def __repr__(self) -> str:
        return f"ClassNode({self._body.__qualname__})"


class _UnboundMethod:
    """`class_node.method`: `.bind(...)` makes a call node, `.options(...)` sets its options."""

    def __init__(self, parent: ClassNode, name: str, options: dict):
        self._parent = parent
        self._name = name
        self._options = options

    def options(self, **options) -> _UnboundMethod:
        return _UnboundMethod(self._parent, self._name, {**self._options, **options})

    def bind(self, *args, **kwargs) -> ClassMethodNode:
        return ClassMethodNode(self._parent, self._name, args, kwargs, self._options)


class ClassMethodNode(DAGNode):
    """`actor_node.method.bind(...)` or `handle.method.bind(...)`: an actor method call."""

    def __init__(self, actor, method: str, args: tuple, kwargs: dict, options: dict):
        super().__init__(args, kwargs)
        self._actor = actor  # a ClassNode, or an ActorHandle of a live actor
        self._method = method
        self._options = options

    def _upstream(self) -> list[DAGNode]:
        parent = [self._actor] if isinstance(self._actor, DAGNode) else []
        return parent + super()._upstream()

    def _run(self, execution: _Execution):
        handle = execution.substitute(self._actor)
        args, kwargs = self._resolved(execution)
        method = getattr(handle, self._method)
        if self._options:
            method = method.options(**self._options)
        return method.remote(*args, **kwargs)

    def __repr__(self) -> str:
        return f"ClassMethodNode({self._actor!r}.{self._method})"


class MultiOutputNode(DAGNode):
    """Several nodes' results at once: `execute` returns a list."""

    def __init__(self, outputs: list | tuple):
        if not isinstance(outputs, (list, tuple)) or not all(
                isinstance(o, DAGNode) for o in outputs):
            raise TypeError("MultiOutputNode takes a list of DAG nodes, e.g. "
                            "MultiOutputNode([f.bind(inp), g.bind(inp)])")
        super().__init__((list(outputs),))

    def _run(self, execution: _Execution) -> list:
        return execution.substitute(self._bound_args[0])


class DAGInputData:
    """What an InputNode stands for when `execute` got several arguments."""

    def __init__(self, *args, **kwargs):
        self._args = list(args)
        self._kwargs = kwargs

    def __getitem__(self, key: int | str):
        if isinstance(key, int):
            return self._args[key]
        if isinstance(key, str):
            return self._kwargs[key]
        raise ValueError(f"the DAG's input is indexed by an int (a positional argument of "
                         f"execute) or a str (a keyword argument), not {key!r}")

    def __repr__(self) -> str:
        return f"DAGInputData(args={self._args!r}, kwargs={self._kwargs!r})"


class InputNode(DAGNode):
    """`with InputNode() as inp:` the arguments that `execute` will get."""

    def __init__(self, *args, **kwargs):
        if args or kwargs:
            raise ValueError("InputNode takes no arguments: give the input to "
                             "dag.execute(...)")
        super().__init__()
        self._entered = False
        self._attributes: dict[tuple[str, int | str], InputAttributeNode] = {}

    def __enter__(self) -> InputNode:
        self._entered = True
        return self

    def __exit__(self, *exc_info) -> None:
        pass

    def __getitem__(self, key: int | str) -> InputAttributeNode:
        if not isinstance(key, (int, str)) or isinstance(key, bool):
            raise TypeError(f"the DAG's input is indexed by an int or a str, not {key!r}")
        return self._attribute(key, "item")

    def __getattr__(self, name: str) -> InputAttributeNode:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._attribute(name, "attr")

    def _attribute(self, key: int | str, how: str) -> InputAttributeNode:
        node = self._attributes.get((how, key))
        if node is None:
            node = self._attributes[(how, key)] = InputAttributeNode(self, key, how)
        return node

    def _run(self, execution: _Execution):
        if not self._entered:
            raise RuntimeError("an InputNode must be created with `with InputNode() as inp:` "
                               "and the DAG built inside that block")
        args, kwargs = execution.args, execution.kwargs
        if len(args) == 1 and not kwargs:
            return args[0]
        return DAGInputData(*args, **kwargs)

    def __repr__(self) -> str:
        return "InputNode()"


class InputAttributeNode(DAGNode):
    """`inp[0]`, `inp["key"]` or `inp.name`: a part of the DAG's input."""

    def __init__(self, input_node: InputNode, key: int | str, how: str):
        super().__init__((input_node,))
        self._key = key
        self._how = how

    @property
    def key(self) -> int | str:
        return self._key

    def _run(self, execution: _Execution):
        value = execution.substitute(self._bound_args[0])
        if isinstance(value, DAGInputData) or self._how == "item":
            return value[self._key]
        return getattr(value, self._key)

    def __repr__(self) -> str:
        how = f"[{self._key!r}]" if self._how == "item" else f".{self._key}"
        return f"InputNode(){how}"


class _Execution:
    """One `execute`: each node runs once, after the nodes it needs, without recursion (a long
    chain of nodes does not hit Python's recursion limit)."""

    def __init__(self, args: tuple, kwargs: dict):
        self.args = args
        self.kwargs = kwargs
        self._results: dict[int, Any] = {}

    def run(self, root: DAGNode):
        for node in _in_dependency_order(root):
            self._results[id(node)] = node._run(self)
        return self._results[id(root)]

    def substitute(self, value):
        """`value` with every node in it replaced by its result."""
        if isinstance(value, DAGNode):
            return self._results[id(value)]
        if isinstance(value, list):
            return [self.substitute(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.substitute(v) for v in value)
        if isinstance(value, dict):
            return {k: self.substitute(v) for k, v in value.items()}
        return value


def _nodes_in(value) -> list[DAGNode]:
    """The DAG nodes in a value, looking into lists, tuples and dicts."""
    found, stack = [], [value]
    while stack:
        v = stack.pop()
        if isinstance(v, DAGNode):
            found.append(v)
        elif isinstance(v, (list, tuple)):
            stack.extend(reversed(v))
        elif isinstance(v, dict):
            stack.extend(reversed(list(v.values())))
    return found


def _in_dependency_order(root: DAGNode) -> list[DAGNode]:
    """Every node the root needs, each after the nodes it needs, each once (depth first, so the
    calls on one actor are made in the order its method nodes are reached)."""
    order, done, stack = [], set(), [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if id(node) in done:
            continue
        if expanded:
            done.add(id(node))
            order.append(node)
            continue
        stack.append((node, True))
        stack.extend((n, False) for n in reversed(node._upstream()) if id(n) not in done)
    return order


__all__ = ["ClassMethodNode", "ClassNode", "DAGInputData", "DAGNode", "FunctionNode",
           "InputAttributeNode", "InputNode", "MultiOutputNode"]

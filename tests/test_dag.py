"""The lazy DAG API (Ray's `ray.dag`): bind, execute, InputNode, MultiOutputNode, actors in a
DAG. Every `get` has a timeout, so a failure fails instead of hanging."""

import types

import pytest

from minray.dag import InputNode, MultiOutputNode

T = 60


def arithmetic(ray):
    @ray.remote
    def add(a, b):
        return a + b

    @ray.remote
    def mul(a, b):
        return a * b

    return add, mul


def test_a_function_dag_runs_on_each_execute_with_its_input(ray):
    add, mul = arithmetic(ray)
    with InputNode() as inp:
        dag = add.bind(mul.bind(inp, 2), 1)
    assert ray.get(dag.execute(3), timeout=T) == 7
    assert ray.get(dag.execute(10), timeout=T) == 21
    assert ray.get(add.bind(1, 2).execute(), timeout=T) == 3  # no input at all


def test_input_parts_by_index_key_and_attribute(ray):
    add, _ = arithmetic(ray)
    with InputNode() as inp:
        by_position = add.bind(inp[0], inp[1])
        by_keyword = add.bind(inp[0], inp.y)
    assert ray.get(by_position.execute(2, 3), timeout=T) == 5
    assert ray.get(by_position.execute([20, 30]), timeout=T) == 50  # one argument, indexed
    assert ray.get(by_keyword.execute(1, y=2), timeout=T) == 3
    with InputNode() as inp:
        by_key = add.bind(inp["a"], inp["b"])
    with InputNode() as inp:
        by_attr = add.bind(inp.a, inp.b)
    assert ray.get(by_key.execute({"a": 1, "b": 2}), timeout=T) == 3
    assert ray.get(by_attr.execute(types.SimpleNamespace(a=4, b=5)), timeout=T) == 9
    assert ray.get(by_key.execute(a=6, b=7), timeout=T) == 13  # keywords, read as keys


def test_multi_output_node_returns_a_ref_per_output(ray):
    add, mul = arithmetic(ray)
    with InputNode() as inp:
        dag = MultiOutputNode([add.bind(inp, 1), mul.bind(inp, 10)])
    refs = dag.execute(4)
    assert isinstance(refs, list) and len(refs) == 2
    assert ray.get(refs, timeout=T) == [5, 40]


def test_a_node_used_twice_runs_once_per_execute(ray):
    @ray.remote
    def token():
        import uuid

        return uuid.uuid4().hex

    @ray.remote
    def pair(a, b):
        return a, b

    shared = token.bind()
    dag = pair.bind(shared, shared)
    first_a, first_b = ray.get(dag.execute(), timeout=T)
    second_a, _ = ray.get(dag.execute(), timeout=T)
    assert first_a == first_b  # one run for both uses
    assert second_a != first_a  # a new run per execute


def test_nodes_nested_in_containers_arrive_as_refs(ray):
    @ray.remote
    def five():
        return 5

    @ray.remote
    def describe(items, mapping):
        return [type(items[0]).__name__, items[1], ray.get(items[0]), ray.get(mapping["k"])]

    dag = describe.bind([five.bind(), 3], {"k": five.bind()})
    assert ray.get(dag.execute(), timeout=T) == ["ObjectRef", 3, 5, 5]


def test_actor_nodes_make_a_new_actor_per_execute_and_handles_bind_to_a_live_one(ray):
    @ray.remote
    class Counter:
        def __init__(self, start):
            self.n = start

        def add(self, k):
            self.n += k
            return self.n

    with InputNode() as inp:
        counter = Counter.bind(10)
        dag = counter.add.bind(inp)
    assert ray.get(dag.execute(1), timeout=T) == 11
    assert ray.get(dag.execute(1), timeout=T) == 11  # a fresh actor each time

    live = Counter.remote(100)
    with InputNode() as inp:
        on_live = live.add.bind(inp)
    assert ray.get(on_live.execute(1), timeout=T) == 101
    assert ray.get(on_live.execute(1), timeout=T) == 102  # the same actor, its state kept

    both = MultiOutputNode([counter.add.bind(1), counter.add.bind(2)])
    assert ray.get(both.execute(), timeout=T) == [11, 13]  # one actor within one execute


def test_options_carry_into_the_dag(ray):
    @ray.remote
    def split(x):
        return x, -x

    @ray.remote
    class Pairs:
        def two(self, x):
            return x, x

    assert ray.get(split.options(num_returns=2).bind(3).execute(), timeout=T) == [3, -3]
    pairs = Pairs.bind()
    assert ray.get(pairs.two.options(num_returns=2).bind(7).execute(), timeout=T) == [7, 7]
    live = Pairs.remote()
    assert ray.get(live.two.options(num_returns=2).bind(8).execute(), timeout=T) == [8, 8]
    handle = Pairs.options(name="pairs").bind().execute()  # a ClassNode gives the handle
    assert ray.get_actor("pairs") == handle


def test_an_upstream_error_reaches_the_result(ray):
    @ray.remote
    def boom(_x):
        raise KeyError("upstream")

    @ray.remote
    def after(x):
        return x

    with InputNode() as inp:
        dag = after.bind(boom.bind(inp))
    with pytest.raises(KeyError, match="upstream"):
        ray.get(dag.execute(1), timeout=T)


def test_a_long_chain_executes(ray):
    @ray.remote
    def inc(x):
        return x + 1

    node = inc.bind(0)
    for _ in range(1499):  # deeper than Python's recursion limit
        node = inc.bind(node)
    assert ray.get(node.execute(), timeout=T) == 1500


def test_a_dag_built_and_executed_inside_a_task(ray):
    add, mul = arithmetic(ray)

    @ray.remote
    def inner(x):
        with InputNode() as inp:
            dag = add.bind(mul.bind(inp, 3), 1)
        return ray.get(dag.execute(x), timeout=T)

    assert ray.get(inner.remote(2), timeout=T) == 7


def test_mistakes_are_clear(ray):
    add, _ = arithmetic(ray)
    loose = InputNode()
    with pytest.raises(RuntimeError, match="with InputNode"):
        add.bind(loose, 1).execute(1)
    with pytest.raises(ValueError, match="no arguments"):
        InputNode(1)
    with pytest.raises(TypeError, match="list of DAG nodes"):
        MultiOutputNode([1, 2])
    with pytest.raises(TypeError, match="missing a required argument"):
        add.bind(1).execute()

    @ray.remote
    class Thing:
        def real(self):
            return 1

    with pytest.raises(AttributeError, match="no method 'imaginary'"):
        Thing.bind().imaginary  # noqa: B018


def test_minray_dag_is_where_ray_dag_is(ray):
    assert ray.dag.InputNode is InputNode and ray.dag.MultiOutputNode is MultiOutputNode

"""Compiled gradients: ``sg.value_and_grad(f, compile=True)`` records ``f`` once per signature and replays it.

The oracles: the engine's own eager ``value_and_grad`` on the same call (the replay must give
its numbers) and the complex-step gradient of plain evaluations (``conftest.numeric_gradient``),
always on a call that replays the graph with values other than those it was recorded with.
"""
from __future__ import annotations

import operator
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import symgrad as sg
from conftest import numeric_gradient

settings.register_profile("compile", max_examples=40, deadline=None)
PROPERTY = settings(settings.get_profile("compile"))


def counted(f):
    """``f`` with a count of its calls in ``.calls``: a replay does not call it."""
    def wrapper(*args, **kwargs):
        wrapper.calls += 1
        return f(*args, **kwargs)
    wrapper.calls = 0
    return wrapper


def mlp_loss(w1, b1, w2, b2, x, y):
    return sg.cross_entropy(sg.tanh(x @ w1 + b1) @ w2 + b2, y)


def mlp_arrays(seed, batch=5, dtype=np.float32):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s).astype(dtype) for s in ((4, 3), (3,), (3, 2), (2,))]
    return params, rng.standard_normal((batch, 4)).astype(dtype), rng.integers(0, 2, size=batch)


def test_replays_give_the_eager_values_and_gradients_on_new_weights_and_data():
    loss = counted(mlp_loss)
    compiled = sg.value_and_grad(loss, argnums=(0, 1, 2, 3), compile=True)
    eager = sg.value_and_grad(mlp_loss, argnums=(0, 1, 2, 3))
    for seed in range(4):
        params, x, y = mlp_arrays(seed)
        value, grads = compiled(*params, x, y)
        expected_value, expected = eager(*params, x, y)
        assert value.dtype == np.float32 and value.shape == ()
        np.testing.assert_allclose(value, expected_value, rtol=1e-6)
        for g, e, p in zip(grads, expected, params):
            assert g.dtype == np.float32 and g.shape == p.shape
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-7)
    assert loss.calls == 1                                # recorded once, replayed three times


def test_a_replay_matches_complex_step_differences():
    rng = np.random.default_rng(3)
    x, t = rng.standard_normal((6, 3)), rng.standard_normal(6)
    f = lambda w, x, t: sg.mean((sg.sigmoid(x @ w) - t) ** 2) + sg.sum(sg.sin(w) * w)   # noqa: E731
    compiled = sg.grad(f, compile=True)
    compiled(np.zeros(3), x, t)                            # records
    w = rng.standard_normal(3)
    np.testing.assert_allclose(compiled(w, x, t), numeric_gradient(lambda v: f(v, x, t), w), rtol=1e-10)


UNARY = {"tanh": sg.tanh, "sin": sg.sin, "sigmoid": sg.sigmoid, "neg": operator.neg, "square": lambda v: v * v,
         "sum0": lambda v: sg.sum(v, axis=0, keepdims=True) if v.ndim else v}
BINARY = {"+": operator.add, "-": operator.sub, "*": operator.mul}


@st.composite
def programs(draw):
    """Two operand shapes that broadcast together and a short random program over them."""
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3)).input_shapes
    ops = st.tuples(st.sampled_from(sorted(UNARY) + sorted(BINARY)), st.integers(0, 20), st.integers(0, 20))
    return shapes, draw(st.lists(ops, min_size=1, max_size=8))


def run(program, a, b):
    """The program's loss: every step applies an op to earlier values (a value may be used many times)."""
    values = [a, b]
    for name, i, j in program:
        x = values[i % len(values)]
        values.append(UNARY[name](x) if name in UNARY else BINARY[name](x, values[j % len(values)]))
    return sg.sum(values[-1]) + sg.mean(values[len(values) // 2])


@PROPERTY
@given(programs(), st.data())
def test_random_programs_replay_as_the_engine_computes_them(drawn, data):
    shapes, program = drawn
    draw = lambda shape: data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-2, 2)))   # noqa: E731
    compiled = sg.value_and_grad(lambda a, b: run(program, a, b), argnums=(0, 1), compile=True)
    compiled(draw(shapes[0]), draw(shapes[1]))            # records
    a, b = draw(shapes[0]), draw(shapes[1])
    value, (ga, gb) = compiled(a, b)
    expected_value, (ea, eb) = sg.value_and_grad(lambda a, b: run(program, a, b), argnums=(0, 1))(a, b)
    np.testing.assert_allclose(value, expected_value, rtol=1e-12)
    np.testing.assert_allclose(ga, ea, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(gb, eb, rtol=1e-12, atol=1e-14)
    oracle = numeric_gradient(lambda v: run(program, v, b), a)
    np.testing.assert_allclose(ga, oracle, rtol=1e-9, atol=1e-12)


def test_a_new_shape_dtype_or_constant_argument_records_again():
    f = counted(lambda w, scale: sg.sum(w * w) * scale)
    compiled = sg.grad(f, compile=True)
    compiled(np.ones(2), 2.0)
    compiled(np.full(2, 3.0), 2.0)
    assert f.calls == 1
    np.testing.assert_array_equal(compiled(np.ones(3), 2.0), [4.0] * 3)                      # new shape
    np.testing.assert_array_equal(compiled(np.ones(3, np.float32), 2.0), np.full(3, 4, np.float32))   # dtype
    np.testing.assert_array_equal(compiled(np.ones(3), 5.0), [10.0] * 3)                     # constant
    assert f.calls == 4


def test_labels_given_as_an_argument_are_replayed_and_checked_on_every_call():
    compiled = sg.value_and_grad(mlp_loss, argnums=(0, 1, 2, 3), compile=True)
    params, x, y = mlp_arrays(0)
    compiled(*params, x, y)
    value, _ = compiled(*params, x, 1 - y)                # other labels, same graph
    np.testing.assert_allclose(value, sg.value_and_grad(mlp_loss)(*params, x, 1 - y)[0], rtol=1e-6)
    with pytest.raises(ValueError, match=r"class labels must lie in \[0, 1\], got -1\.\.1"):
        compiled(*params, x, np.where(y == 0, -1, y))


def test_arguments_may_be_tensors_keywords_lists_or_integers():
    f = lambda w, x, power=2: sg.sum((w * x) ** power)   # noqa: E731
    compiled = sg.value_and_grad(f, argnums=(0, 1), compile=True)
    value, (gw, gx) = compiled(sg.tensor([1.0, 2.0]), [3, 4], power=2)
    assert float(value) == 73.0
    np.testing.assert_array_equal(gw, [18.0, 64.0])
    np.testing.assert_array_equal(gx, [6.0, 32.0])
    assert gx.dtype == np.float64                         # integers are differentiated as float64
    value, _ = compiled(np.array([1.0, 1.0]), np.array([1.0, 1.0]), power=3)
    assert float(value) == 2.0


def test_repeated_argnums_get_their_own_copies_and_an_unused_argument_a_zero_gradient():
    compiled = sg.value_and_grad(lambda a, b: sg.sum(a * 3.0), argnums=(0, 0, 1), compile=True)
    for _ in range(2):
        _, (g1, g2, gb) = compiled(np.ones(2), np.ones(3))
        np.testing.assert_array_equal(g1, [3.0, 3.0])
        assert g1 is not g2 and not np.shares_memory(g1, g2)
        np.testing.assert_array_equal(gb, np.zeros(3))


@pytest.mark.parametrize("f, x, expected", [
    (lambda x: x, np.array(2.0), 1.0),                    # the gradient is the seed itself
    (lambda x: sg.sum(x), np.ones(3), 1.0),               # a read-only view of the seed
    (lambda x: sg.sum(x + x), np.ones(3), 2.0),
    (lambda x: sg.sum(x * x), np.ones(3, np.float32), 2.0),
    (lambda x: sg.sum(x * np.ones(3)), np.ones(3, np.float32), 1.0),      # a float64 gradient, cast back
])
def test_every_replay_hands_back_gradients_the_caller_may_modify(f, x, expected):
    compiled = sg.value_and_grad(f, argnums=(0, 0), compile=True)
    for _ in range(3):                                    # the first replay and the ones after it
        value, (g, again) = compiled(x)
        assert g.dtype == again.dtype == x.dtype and g.flags.writeable and not np.shares_memory(g, again)
        g += 10                                           # must change neither its twin nor later replays
        again *= -1
        np.testing.assert_array_equal(g, 10 + expected * np.ones_like(x))
        assert float(np.sum(value)) == float(np.sum(f(x)))


def test_a_constant_tensor_is_read_afresh_and_a_closure_array_is_kept():
    scale = sg.tensor(2.0)
    offset = np.array(1.0)
    compiled = sg.value_and_grad(lambda w: sg.sum(w * scale + offset), compile=True)
    assert float(compiled(np.ones(2))[0]) == 6.0
    scale.data = np.array(3.0)                            # the engine reads a tensor's data at each call...
    offset = np.array(100.0)                              # ...but a rebound closure variable is not seen again
    assert float(compiled(np.ones(2))[0]) == 8.0


@pytest.mark.parametrize("data, now", [(np.array(3.0, np.float32), "shape () and dtype float32"),
                                       (np.full(2, 3.0), "shape (2,) and dtype float64")])
def test_a_constant_tensor_that_changed_shape_or_dtype_is_refused(data, now):
    scale = sg.tensor(2.0)
    compiled = sg.grad(lambda w: sg.sum(w * scale), compile=True)
    compiled(np.ones(2, np.float32))
    scale.data = data                                     # every step of the replay was chosen for a float64 ()
    with pytest.raises(RuntimeError, match=r"^grad\(compile=True\): a tensor that the function takes from outside "
                                           rf"its arguments held a ndarray of shape \(\) and dtype float64 when the "
                                           rf"function was recorded, and now a ndarray of {re.escape(now)}; pass it"):
        compiled(np.ones(2, np.float32))


def test_a_rule_whose_vjps_sum_their_own_broadcasting_replays_as_the_engine_runs_it():
    from symgrad.rules import RULES, defrule, unbroadcast
    from symgrad.tensor import apply

    def hypot_vjp(position):            # the documented contract allows a VJP that undoes broadcasting itself
        return lambda g, out, a, b: unbroadcast(g * (a, b)[position] / out, np.shape((a, b)[position]))

    defrule("hypot_test", np.hypot, hypot_vjp(0), hypot_vjp(1))
    try:
        f = lambda a, b: sg.sum(apply(RULES["hypot_test"], a, b))     # noqa: E731
        eager, compiled = sg.value_and_grad(f, (0, 1)), sg.value_and_grad(f, (0, 1), compile=True)
        rng = np.random.default_rng(3)
        for _ in range(3):
            a, b = rng.standard_normal((2, 3)), rng.standard_normal(3)
            for got, expected in zip(compiled(a, b)[1], eager(a, b)[1]):
                np.testing.assert_allclose(got, expected, rtol=1e-14)
            np.testing.assert_allclose(compiled(a, b)[1][1], numeric_gradient(lambda v: f(a, v), b, "central"),
                                       rtol=1e-7)
    finally:
        del RULES["hypot_test"]


@pytest.mark.parametrize("body, what", [
    (lambda w: w * 2.0 if float(sg.sum(w)) > 0 else w, r"item\(\) or float\(\)"),
    (lambda w: w * 2.0 if sg.sum(w) > 0 else w, "a comparison"),
    (lambda w: sg.where(w > 0, w, 0.0), "a comparison"),
    (lambda w: sg.tensor(w), r"sg\.tensor\(\)"),
    (lambda w: w.detach() * w, r"detach\(\)"),
    (lambda w: sg.tensor([1.0, 2.0])[w.sum() * 0], "indexing with a tensor"),
])
def test_reading_a_traced_value_in_python_is_refused(body, what):
    compiled = sg.grad(lambda w: sg.sum(body(w)), compile=True)
    with pytest.raises(TypeError, match=f"^{what} reads the values of a tensor that a compiled gradient is tracing"):
        compiled(np.ones(2))
    assert sg.grad(lambda w: sg.sum(w * 2.0))(np.ones(2)).tolist() == [2.0, 2.0]   # tracing ended with the error


def test_misuse_gets_one_clear_error():
    weight = sg.tensor(1.0, requires_grad=True)
    with pytest.raises(TypeError, match=r"value_and_grad\(compile=True\): the function uses a tensor that requires "
                                        "grad but is not a differentiated argument"):
        sg.value_and_grad(lambda w: w * weight, compile=True)(1.0)
    with pytest.raises(TypeError, match=r"argument 1 is a tensor that requires grad but is not in argnums"):
        sg.value_and_grad(lambda w, v: w * v, compile=True)(1.0, weight)
    with pytest.raises(TypeError, match=r"argument 1 is a list, which a compiled gradient cannot trace"):
        sg.grad(lambda w, v: w, compile=True)(1.0, [1.0])
    with pytest.raises(TypeError, match=r"grad\(compile=True\): the result does not depend on the differentiated"):
        sg.grad(lambda w, v: sg.sum(v * 2.0), compile=True)(1.0, np.ones(2))
    with pytest.raises(ValueError, match=r"grad\(compile=True\): the function must return a scalar"):
        sg.grad(lambda w: w * 2.0, compile=True)(np.ones(2))
    with pytest.raises(ValueError, match=r"argnums 3 is out of range"):
        sg.grad(lambda w: w, argnums=3, compile=True)(1.0)


def test_the_replay_source_reads_as_the_recorded_ops():
    from symgrad.tensor import Tensor
    from symgrad.trace import replay_program

    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    replay = replay_program(sg.sum(sg.tanh(w)), [w], [0], "test")
    assert replay.source.splitlines()[:3] == ["def replay(a0):", "    v0 = f0(a0)", "    v1 = f1(v0, **p1)"]
    value, (g,) = replay(np.array([0.0, 1.0]))
    np.testing.assert_allclose(g, 1 - np.tanh([0.0, 1.0]) ** 2, rtol=1e-15)


def test_a_replay_writes_over_a_spent_array_only():
    from symgrad.tensor import Tensor
    from symgrad.trace import replay_program

    w, b = (Tensor(np.ones((2, 3)), requires_grad=True) for _ in range(2))
    h = w * 2.0
    spent = sg.sum(sg.tanh(h + b))                        # h + b over h, tanh over h + b
    kept = sg.sum(sg.tanh(h + b) * h)                     # h is read again: nothing written over it
    assert replay_program(spent, [w, b], [0, 1], "test").source.count("out=") == 2
    replay = replay_program(kept, [w, b], [0, 1], "test")
    assert "out=v0" not in replay.source
    w0, b0 = np.linspace(-1, 1, 6).reshape(2, 3), np.full((2, 3), 0.5)
    _, (gw, gb) = replay(w0, b0)
    _, (ew, eb) = sg.value_and_grad(lambda w, b: sg.sum(sg.tanh(w * 2.0 + b) * (w * 2.0)), argnums=(0, 1))(w0, b0)
    np.testing.assert_allclose(gw, ew, rtol=1e-14)
    np.testing.assert_allclose(gb, eb, rtol=1e-14)

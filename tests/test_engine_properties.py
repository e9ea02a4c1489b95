"""Property tests of the reverse-mode engine: hypothesis draws shapes, axes, indices and values.

Gradients are compared with the complex-step oracle of ``conftest.py`` (plain NumPy
evaluations, no backward rule involved).
"""
from __future__ import annotations

import operator

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import symgrad as sg

settings.register_profile("engine", max_examples=40, deadline=None)
PROPERTY = settings(settings.get_profile("engine"))

FINITE = st.floats(-3.0, 3.0, allow_nan=False, width=64)
POSITIVE = st.floats(0.25, 3.0, allow_nan=False, width=64)
NONZERO = st.one_of(st.floats(0.25, 3.0), st.floats(-3.0, -0.25))


def arrays(shape, elements=FINITE, dtype=np.float64):
    return hnp.arrays(dtype, shape, elements=elements)


@st.composite
def binary_operands(draw):
    """An operator and two operands of mutually broadcastable shapes, valid for it."""
    symbol = draw(st.sampled_from(["+", "-", "*", "/", "**", "maximum", "minimum"]))
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3)).input_shapes
    a = draw(arrays(shapes[0], POSITIVE if symbol == "**" else FINITE))
    b = draw(arrays(shapes[1], NONZERO if symbol == "/" else FINITE))
    if symbol in ("maximum", "minimum"):
        b = b + 0.1234567                     # off the grid hypothesis favours, so ties are rare
        assume(np.all(a != b))                # a tie is a kink: its gradient is a convention, tested apart
    return symbol, a, b


FUNCTIONS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv, "**": operator.pow,
             "maximum": sg.maximum, "minimum": sg.minimum}


@PROPERTY
@given(binary_operands(), st.sampled_from([(0, 1), (0,), (1,)]))
def test_binary_ops_with_broadcasting_match_complex_step(gradcheck, drawn, wrt):
    symbol, a, b = drawn
    gradcheck(FUNCTIONS[symbol], a, b, wrt=wrt)


UNARY_DOMAINS = {"exp": FINITE, "log": POSITIVE, "tanh": FINITE, "sigmoid": FINITE, "relu": NONZERO,
                 "sin": FINITE, "cos": FINITE, "sqrt": POSITIVE, "abs": NONZERO}


@PROPERTY
@given(st.sampled_from(sorted(UNARY_DOMAINS)), hnp.array_shapes(min_dims=0, max_dims=3, max_side=4), st.data())
def test_unary_functions_on_any_shape(gradcheck, name, shape, data):
    x = data.draw(arrays(shape, UNARY_DOMAINS[name]))
    gradcheck(getattr(sg, name), x)


@st.composite
def reduction_cases(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=4))
    axes = draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1),
                          st.lists(st.integers(0, len(shape) - 1), unique=True, max_size=len(shape)).map(tuple)))
    x = draw(arrays(shape, FINITE))
    return x, axes, draw(st.booleans()), draw(st.sampled_from(["sum", "mean", "max"]))


@PROPERTY
@given(reduction_cases())
def test_reductions_over_any_axes(gradcheck, case):
    x, axis, keepdims, name = case
    if name == "max":
        x = x + np.arange(x.size).reshape(x.shape) * 1e-3   # distinct entries: the maximum is unique
    gradcheck(lambda v: getattr(sg, name)(v, axis=axis, keepdims=keepdims), x)


@st.composite
def matmul_operands(draw):
    shapes = draw(hnp.mutually_broadcastable_shapes(signature=np.matmul.signature, max_dims=3, max_side=3))
    return draw(arrays(shapes.input_shapes[0])), draw(arrays(shapes.input_shapes[1]))


@PROPERTY
@given(matmul_operands(), st.sampled_from([(0, 1), (0,), (1,)]))
def test_matmul_of_any_batched_shapes(gradcheck, operands, wrt):
    gradcheck(operator.matmul, *operands, wrt=wrt)


@PROPERTY
@given(hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), st.data())
def test_integer_array_indices_accumulate(gradcheck, shape, data):
    x = data.draw(arrays(shape))
    index = data.draw(hnp.arrays(np.intp, st.integers(1, 6), elements=st.integers(-shape[0], shape[0] - 1)))
    grads = gradcheck(lambda v: v[index], x)
    t = sg.tensor(x, requires_grad=True)
    t[index].sum().backward()
    counts = np.bincount(index % shape[0], minlength=shape[0]).astype(float)
    np.testing.assert_array_equal(t.grad, np.broadcast_to(counts.reshape((-1,) + (1,) * (len(shape) - 1)), shape))
    assert grads[0].shape == shape


@PROPERTY
@given(hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), st.data())
def test_boolean_masks_and_slices(gradcheck, shape, data):
    x = data.draw(arrays(shape))
    mask = data.draw(hnp.arrays(np.bool_, shape))
    start = data.draw(st.integers(-shape[0], shape[0]))
    step = data.draw(st.sampled_from([1, 2, -1]))
    gradcheck(lambda v: v[mask], x)
    gradcheck(lambda v: v[start::step], x)


@PROPERTY
@given(hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), st.data())
def test_reshape_and_transpose_any_permutation(gradcheck, shape, data):
    x = data.draw(arrays(shape))
    axes = data.draw(st.permutations(range(len(shape))))
    negative = [a - len(shape) if data.draw(st.booleans()) else a for a in axes]
    gradcheck(lambda v: v.transpose(*negative), x)
    gradcheck(lambda v: v.reshape(-1, 1), x)


@PROPERTY
@given(hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), st.integers(1, 3), st.data())
def test_concatenate_and_stack_any_axis(gradcheck, shape, count, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    parts = [data.draw(arrays(shape)) for _ in range(count)]
    gradcheck(lambda *vs: sg.concatenate(list(vs), axis=axis), *parts)
    gradcheck(lambda *vs: sg.stack(list(vs), axis=axis), *parts)


@PROPERTY
@given(hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), st.floats(-1e4, 1e4), st.data())
def test_softmax_is_shift_invariant(shape, shift, data):
    x = data.draw(arrays(shape))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    cotangent = data.draw(arrays(shape))
    for name in ("softmax", "log_softmax"):
        plain, shifted = sg.tensor(x, requires_grad=True), sg.tensor(x + shift, requires_grad=True)
        out_plain = getattr(sg, name)(plain, axis=axis)
        out_shifted = getattr(sg, name)(shifted, axis=axis)
        out_plain.backward(cotangent)
        out_shifted.backward(cotangent)
        np.testing.assert_allclose(out_shifted.data, out_plain.data, atol=1e-9)
        np.testing.assert_allclose(shifted.grad, plain.grad, atol=1e-9)


@PROPERTY
@given(hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), st.data())
def test_cross_entropy_with_labels_on_any_batch_shape(gradcheck, shape, data):
    logits = data.draw(arrays(shape))
    labels = data.draw(hnp.arrays(np.int64, shape[:-1], elements=st.integers(0, shape[-1] - 1)))
    reduction = data.draw(st.sampled_from(["mean", "sum", "none"]))
    gradcheck(lambda z: sg.cross_entropy(z, labels, reduction=reduction), logits)


CHAIN_STEPS = {
    "tanh": sg.tanh, "sigmoid": sg.sigmoid, "sin": sg.sin, "exp-shrink": lambda v: sg.exp(v * 0.1),
    "square": lambda v: v * v, "affine": lambda v: 0.5 * v + 0.25, "softmax": sg.softmax,
    "sum-keep": lambda v: v.sum(axis=-1, keepdims=True) + v, "log1p-ish": lambda v: sg.log(v * v + 1.0),
    "relu": lambda v: sg.relu(v) + 0.1 * v, "max-mix": lambda v: v - v.max(axis=-1, keepdims=True),
}


@PROPERTY
@given(st.lists(st.sampled_from(sorted(CHAIN_STEPS)), min_size=1, max_size=6),
       hnp.array_shapes(min_dims=1, max_dims=2, max_side=4), st.data())
def test_random_compositions_keep_float32_and_match_float64(steps, shape, data):
    x = data.draw(arrays(shape, st.one_of(st.floats(0.25, 3.0, width=32), st.floats(-3.0, -0.25, width=32))))

    def f(v):
        for step in steps:
            v = CHAIN_STEPS[step](v)
        return v

    t32 = sg.tensor(x.astype(np.float32), requires_grad=True)
    out32 = f(t32)
    assert out32.dtype == np.float32
    out32.sum().backward()
    assert t32.grad.dtype == np.float32
    t64 = sg.tensor(x, requires_grad=True)
    f(t64).sum().backward()
    scale = max(1.0, float(np.max(np.abs(t64.grad))))
    np.testing.assert_allclose(t32.grad, t64.grad, rtol=1e-3, atol=1e-3 * scale)


@pytest.mark.parametrize("uses", [2, 3])
@PROPERTY
@given(hnp.array_shapes(min_dims=0, max_dims=2, max_side=3), st.data())
def test_a_node_used_several_times(gradcheck, uses, shape, data):
    x = data.draw(arrays(shape))

    def f(v):
        h = sg.tanh(v)
        total = h
        for k in range(1, uses):
            total = total + h * float(k)
        return total * h

    gradcheck(f, x)

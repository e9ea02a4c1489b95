"""The public API on awkward and bad input: right answers where there is one, else one clear error.

Each test names the problem it guards against. Gradients are compared with
independent oracles (closed forms, or the complex-step differences of plain NumPy
code from ``conftest.py``), never with values taken from the engine itself.
"""
from __future__ import annotations

import math

import re
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import symgrad as sg

RNG = np.random.default_rng(20240917)
X, Y, Z = RNG.uniform(-1, 1, 3), RNG.uniform(-1, 1, 3), RNG.uniform(-1, 1, 3)


def three(x, y, z):
    """A scalar function of three array arguments, for the engine and for plain (complex) NumPy alike."""
    return sg.sum(sg.tanh(x * y) + z ** 2 * x)


def one_argument_of(position: int):
    """``three`` as a function of its argument at ``position`` alone, the others fixed at X, Y, Z."""
    def f(v):
        args = [X, Y, Z]
        args[position] = v
        return three(*args)
    return f


# --- 1. argnums: permutations, negative positions and repeats ---------------------------------------------


@given(st.lists(st.integers(-3, 2), min_size=1, max_size=5))
def test_every_argnums_tuple_gives_each_positions_gradient(numgrad, argnums):
    """Repeated positions used to get a zero gradient; each entry is ∂f/∂(its argument), as torch.autograd.grad."""
    value, grads = sg.value_and_grad(three, argnums=tuple(argnums))(X, Y, Z)
    np.testing.assert_allclose(value, np.sum(np.tanh(X * Y) + Z ** 2 * X), rtol=1e-14)
    assert len(grads) == len(argnums)
    for n, g in zip(argnums, grads):
        np.testing.assert_allclose(g, numgrad(one_argument_of(n % 3), [X, Y, Z][n]), rtol=1e-12, atol=1e-14)
    assert sg.grad(three, argnums=list(argnums))(X, Y, Z)[0].shape == (3,)


def test_a_repeated_position_gets_its_own_array():
    first, again = sg.grad(lambda x, y: sg.sum(x * y ** 2), argnums=(0, 0))(X, Y)
    np.testing.assert_allclose(first, Y ** 2, rtol=1e-15)
    np.testing.assert_allclose(again, Y ** 2, rtol=1e-15)
    first[:] = 0.0
    np.testing.assert_allclose(again, Y ** 2, rtol=1e-15)


def test_grad_y_with_one_and_minus_one_agree_with_the_closed_form():
    grads = sg.grad(lambda x, y: sg.sum(x * y ** 2), argnums=(1, -1))(X, Y)
    for g in grads:
        np.testing.assert_allclose(g, 2 * X * Y, rtol=1e-15)


# --- 2. argnums that are not positions ----------------------------------------------------------------------


@pytest.mark.parametrize("argnums, error, message", [
    ("x", TypeError, r"^grad: argnums must be an int or a tuple of ints .*not 'x'$"),
    (1.0, TypeError, r"^grad: argnums must be an int or a tuple of ints .*not 1\.0$"),
    (None, TypeError, r"^grad: argnums must be an int or a tuple of ints .*not None$"),
    (True, TypeError, r"^grad: argnums must be an int or a tuple of ints .*not True$"),
    ((0, "a"), TypeError, r"^grad: argnums must be an int or a tuple of ints .*not \(0, 'a'\)$"),
    ((), ValueError, r"^grad: argnums is empty"),
])
def test_argnums_of_the_wrong_kind_are_refused_when_the_transform_is_made(argnums, error, message):
    with pytest.raises(error, match=message):
        sg.grad(three, argnums=argnums)


@pytest.mark.parametrize("argnums", [3, -4, (0, 3)])
@pytest.mark.parametrize("transform", [sg.grad, sg.value_and_grad])
def test_argnums_out_of_range_say_what_range_is_allowed(transform, argnums):
    with pytest.raises(ValueError, match=r"argnums -?\d is out of range: the function got 3 positional "
                                         r"argument\(s\), so argnums must lie in \[-3, 2\]$"):
        transform(three, argnums=argnums)(X, Y, Z)


def test_numpy_integers_are_positions():
    np.testing.assert_allclose(sg.grad(three, argnums=np.int64(2))(X, Y, Z), 2 * Z * X, rtol=1e-15)


# --- 3. gradients with respect to arguments the result does not use -----------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_an_unused_argument_has_zero_gradient_of_its_shape_and_dtype(dtype):
    unused = np.array([[np.inf, np.nan, 1.0]], dtype=dtype)      # zeros, not unused * 0
    _, g = sg.value_and_gradients(lambda x, y: sg.sum(y), {"x": unused}, {"y": np.ones(2)})
    assert g["x"].dtype == dtype and g["x"].shape == (1, 3)
    np.testing.assert_array_equal(g["x"], 0.0)
    value, (gx, gy) = sg.value_and_grad(lambda x, y: sg.sum(y * 3.0), argnums=(0, 1))(unused, [1.0, 2.0])
    assert float(value) == 9.0
    np.testing.assert_array_equal(gx, 0.0)
    np.testing.assert_array_equal(gy, [3.0, 3.0])


@pytest.mark.parametrize("escaped", [lambda a: 1.0, lambda a: math.sin(a), lambda a: np.sin(a.data),
                                     lambda a, b=np.ones(2): sg.sum(b)])
def test_a_result_the_engine_sees_no_path_to_is_refused_by_grad(escaped):
    with pytest.raises(TypeError, match="does not depend on the differentiated argument"):
        sg.grad(escaped)(2.0)
    with pytest.raises(TypeError, match="does not depend on the differentiated argument"):
        sg.value_and_grad(escaped)(2.0)


def test_value_and_gradients_and_check_with_unused_params():
    value, grads = sg.value_and_gradients(lambda w, b, x: sg.sum(w * x), {"w": 2.0, "b": np.ones(2)}, {"x": 3.0})
    assert float(value) == 6.0 and float(grads["w"]) == 3.0
    np.testing.assert_array_equal(grads["b"], [0.0, 0.0])
    value, grads = sg.value_and_gradients(lambda w, x: sg.sum(x), {"w": np.ones(3)}, {"x": np.ones(2)})
    assert float(value) == 2.0
    np.testing.assert_array_equal(grads["w"], [0.0, 0.0, 0.0])
    report = sg.check(lambda w, x: x * 2.0, {"w": 2.0}, {"x": 3.0})    # the three methods agree on 0
    assert report.ok and report.rows[0].backprop == 0.0 and report.rows[0].finite_diff == 0.0


@pytest.mark.parametrize("result, error, message", [
    (None, TypeError, "must return a number.*returned None"),
    ("1.0", TypeError, "must return a number.*returned str"),
    ([1.0, 2.0], ValueError, r"must return a scalar; it returned shape \(2,\)"),
])
def test_a_result_that_is_not_a_scalar_number_is_still_refused(result, error, message):
    with pytest.raises(error, match=f"^value_and_grad: the function {message}"):
        sg.value_and_grad(lambda a: result)(1.0)


def test_an_argument_that_is_not_numbers_is_named():
    with pytest.raises(TypeError, match=r"^grad: argument 1: .*numbers.*not str$"):
        sg.grad(three, argnums=(0, 1))(X, "y", Z)


# --- 4. tensor() of things that are not numbers --------------------------------------------------------------


@pytest.mark.parametrize("data, error, message", [
    (None, TypeError, "not None$"),
    ("1.5", TypeError, "not str$"),
    (b"1", TypeError, "not bytes$"),
    ({"a": 1}, TypeError, "not dict$"),
    (object(), TypeError, "not object$"),
    ([1.0, None], TypeError, "not None in a list$"),
    ([1.0, "2"], TypeError, "not str in a list$"),
    ([[1.0, {}]], TypeError, "not dict in a list$"),
    ([[1.0, 2.0], [3.0]], ValueError, "rectangular.*different lengths$"),
])
def test_tensor_refuses_what_is_not_numbers_in_one_line(data, error, message):
    with pytest.raises(error, match=f"^tensor\\(\\) .*{message}") as caught:
        sg.tensor(data)
    assert "\n" not in str(caught.value)


def test_tensor_still_takes_numbers_numpy_keeps_as_objects():
    assert sg.tensor([Fraction(1, 2), 3]).data.tolist() == [0.5, 3.0]
    assert sg.tensor([sg.tensor(1.0), sg.tensor(2.0)]).data.tolist() == [1.0, 2.0]
    assert sg.tensor([True, 2]).dtype == np.float64
    complex_data = sg.tensor([1j, 2])                      # the imaginary part is kept, not dropped
    assert complex_data.dtype == np.complex128 and complex_data.data.tolist() == [1j, 2]


# --- 5. operators and functions with an operand that is not numbers --------------------------------------------

OPERATORS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
             "/": lambda a, b: a / b, "**": lambda a, b: a ** b, "@": lambda a, b: a @ b}


@pytest.mark.parametrize("bad, name", [("x", "str"), (None, "None"), ({}, "dict"), (object(), "object"),
                                       (["a"], "list"), ([1.0, None], "list"),
                                       (np.array(["a", "b"]), "ndarray of dtype <U1")])
@pytest.mark.parametrize("symbol", OPERATORS)
def test_operators_name_the_operand_that_is_not_numbers(symbol, bad, name):
    t = sg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match=rf"^unsupported operand for {re.escape(symbol)}: Tensor and {name} "):
        OPERATORS[symbol](t, bad)
    with pytest.raises(TypeError, match=rf"^unsupported operand for {re.escape(symbol)}: {name} and Tensor "):
        OPERATORS[symbol](bad, t)


@pytest.mark.parametrize("call, message", [
    (lambda t: sg.maximum(t, "x"), "maximum: Tensor and str"),
    (lambda t: sg.where(t > 0, t, None), "where: ndarray and Tensor and None"),
    (lambda t: sg.exp("x"), "exp: str"),
    (lambda t: sg.minimum(t.data, np.array(["a", "b"])), "minimum: ndarray and ndarray of dtype <U1"),
])
def test_functions_name_the_operand_that_is_not_numbers(call, message):
    with pytest.raises(TypeError, match=f"^unsupported operand for {re.escape(message)} "):
        call(sg.tensor([1.0, -2.0], requires_grad=True))


@pytest.mark.parametrize("constant", [True, np.float32(2.0), [2.0, 3.0], (2.0, 3.0)])
def test_numeric_constants_of_other_types_still_work(constant):
    t = sg.tensor([1.0, 2.0], requires_grad=True)
    (t * constant).sum().backward()
    np.testing.assert_array_equal(t.grad, np.broadcast_to(np.asarray(constant, dtype=float), (2,)))
    np.testing.assert_array_equal((t * 1j).data, [1j, 2j])


# --- 6. truth values ---------------------------------------------------------------------------------------


@given(st.floats(allow_nan=True), st.sampled_from([(), (1,), (1, 1)]))
def test_bool_of_a_one_element_tensor_is_numpys(value, shape):
    assert bool(sg.tensor(np.full(shape, value))) is bool(np.full(shape, value))


@pytest.mark.parametrize("shape", [(2,), (0,), (2, 3)])
def test_bool_of_other_sizes_is_ambiguous(shape):
    with pytest.raises(ValueError, match=rf"^the truth value of a tensor of shape \({shape[0]},.*ambiguous"):
        bool(sg.tensor(np.ones(shape)))


# --- 7. cross_entropy with float labels -----------------------------------------------------------------------


@pytest.mark.parametrize("as_logits", [np.asarray, lambda z: sg.tensor(z, requires_grad=True)],
                         ids=["ndarray", "tensor"])
@pytest.mark.parametrize("labels", [sg.tensor([0, 1]), np.array([0.0, 1.0])], ids=["tensor", "ndarray"])
def test_float_labels_are_told_to_be_integers(as_logits, labels):
    message = (r"^cross_entropy: class labels must be integers, got float64 of shape \(2,\); "
               r"pass np\.array\(\[\.\.\.\]\) of ints, or probabilities of the logits' shape \(2, 3\)$")
    with pytest.raises(ValueError, match=message):
        sg.cross_entropy(as_logits(RNG.normal(size=(2, 3))), labels)


def test_float_labels_are_told_to_be_integers_on_the_symbolic_path_too():
    sympy = pytest.importorskip("sympy")
    logits = np.array(sympy.symbols("a:6"), dtype=object).reshape(2, 3)
    with pytest.raises(ValueError, match=r"^cross_entropy: class labels must be integers, got float64 of shape"):
        sg.cross_entropy(logits, np.array([0.0, 1.0]))
    a0, a1, a2, a3, a4, a5 = logits.ravel()
    expected = (sympy.log(sympy.exp(a0) + sympy.exp(a1) + sympy.exp(a2)) - a0
                + sympy.log(sympy.exp(a3) + sympy.exp(a4) + sympy.exp(a5)) - a4) / 2
    assert sympy.simplify(sg.cross_entropy(logits, [0, 1]) - expected) == 0        # a list of ints: labels


def test_integer_labels_and_probabilities_still_agree_with_the_closed_form():
    z = RNG.normal(size=(2, 3))
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    expected = -(log_p[0, 2] + log_p[1, 0]) / 2
    np.testing.assert_allclose(float(sg.cross_entropy(z, np.array([2, 0]))), expected, rtol=1e-14)
    np.testing.assert_allclose(float(sg.cross_entropy(z, np.eye(3)[[2, 0]])), expected, rtol=1e-14)


# --- 8. mse_loss shapes that would compare every pair -----------------------------------------------------------


def symbols(shape):
    sympy = pytest.importorskip("sympy")
    return np.array(sympy.symbols(f"p:{int(np.prod(shape))}"), dtype=object).reshape(shape)


@pytest.mark.parametrize("kind", ["ndarray", "tensor", "sympy"])
@pytest.mark.parametrize("pred_shape, target_shape, broadcast", [
    ((3, 1), (3,), (3, 3)), ((3,), (3, 1), (3, 3)), ((2, 1, 4), (3, 1), (2, 3, 4)),
])
def test_mse_loss_refuses_shapes_that_compare_every_pair(kind, pred_shape, target_shape, broadcast):
    pred = {"ndarray": np.ones, "tensor": lambda s: sg.tensor(np.ones(s), requires_grad=True),
            "sympy": symbols}[kind](pred_shape)
    message = (f"mse_loss: target of shape {target_shape} broadcasts against predictions of shape {pred_shape} "
               f"to {broadcast}, comparing every pair; reshape one of them")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        sg.mse_loss(pred, np.ones(target_shape))


def test_mse_loss_of_the_reported_case_now_refuses_instead_of_answering_4_over_3():
    with pytest.raises(ValueError, match="comparing every pair"):
        sg.mse_loss(np.array([[1.0], [2.0], [3.0]]), np.array([1.0, 2.0, 3.0]))
    assert float(sg.mse_loss(np.array([[1.0], [2.0], [3.0]]), np.array([[1.0], [2.0], [3.0]]))) == 0.0


@pytest.mark.parametrize("pred_shape, target_shape", [((3, 4), (4,)), ((), (5,)), ((4,), (3, 4)), ((3, 1), (1,))])
def test_mse_loss_broadcasting_within_one_operand_is_allowed(numgrad, pred_shape, target_shape):
    pred, target = RNG.normal(size=pred_shape), RNG.normal(size=target_shape)
    p = sg.tensor(pred, requires_grad=True)
    loss = sg.mse_loss(p, target)
    np.testing.assert_allclose(loss.data, np.mean(np.subtract(*np.broadcast_arrays(pred, target)) ** 2), rtol=1e-14)
    loss.backward()
    np.testing.assert_allclose(p.grad, numgrad(lambda v: np.mean((v - target) ** 2), pred), rtol=1e-13)


def test_a_constant_prediction_against_many_targets_descends_to_their_mean():
    y = RNG.normal(size=6)
    g = sg.grad(lambda b: sg.mse_loss(b, y))(0.25)
    np.testing.assert_allclose(g, 2 * (0.25 - y.mean()), rtol=1e-13)


# --- 9. the public namespace -------------------------------------------------------------------------------------


def test_namespace_shows_no_helpers_and_every_listed_name_resolves():
    public = [n for n in dir(sg) if not n.startswith("__")]
    assert not {"Any", "annotations", "importlib"} & set(public)
    assert all(not n.startswith("_") for n in public)
    assert {"parse", "derive", "fd_gradient", "tensor", "grad"} <= set(public)
    for name in ("Any", "annotations", "importlib"):
        assert not hasattr(sg, name)
    for name in public:                                   # lazy ones load on first use
        getattr(sg, name)


def test_listing_the_namespace_loads_nothing_lazy():
    code = ("import sys, symgrad\ndir(symgrad)\n"
            "print(sorted(m for m in ('sympy', 'matplotlib', 'click') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# --- 10. NumPy's reductions on a tensor ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sum", "mean", "max"])
def test_numpy_reductions_point_to_the_recording_ones(name):
    t = sg.tensor([1.0, 4.0], requires_grad=True)
    with pytest.raises(TypeError, match=rf"^Tensor\.{name}\(\) takes axis and keepdims only, not .*out.*: "
                                        rf"np\.{name}\(t\) cannot record the gradient; use sg\.{name}\(t\) "
                                        rf"or t\.{name}\(\)$"):
        getattr(np, name)(t)
    getattr(t, name)(axis=0, keepdims=True).sum().backward()
    expected = {"sum": [1.0, 1.0], "mean": [0.5, 0.5], "max": [0.0, 1.0]}[name]
    np.testing.assert_array_equal(t.grad, expected)


@pytest.mark.parametrize("argnums", [range(2), np.array([0, 1]), [0, 1]])
def test_argnums_may_be_any_sequence_of_positions(argnums):
    gx, gy = sg.grad(lambda x, y: x * y ** 2, argnums=argnums)(3.0, 2.0)
    assert (float(gx), float(gy)) == (4.0, 12.0)                   # d/dx = y**2, d/dy = 2xy


class _ArrayLike:
    """An object NumPy reads through __array__ only (no dtype attribute)."""

    def __array__(self, dtype=None, copy=None):
        return np.array([1.0, 2.0])


def test_an_operand_numpy_reads_through_array_is_accepted():
    t = sg.tensor([1.0, 2.0], requires_grad=True)
    (t * _ArrayLike()).sum().backward()
    np.testing.assert_array_equal(t.grad, [1.0, 2.0])

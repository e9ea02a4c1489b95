"""Finite differences (symgrad.finite_diff) and the PerturbedRows batches behind them.

Oracles: closed-form gradients, the exact difference formulas, and dense NumPy arrays.
"""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import symgrad as sg
from symgrad.finite_diff import (
    METHODS, FDErrorCurve, FDResult, NonDifferentiableError, UnresolvedError, default_step, fd_error_curve,
    fd_gradient,
)
from symgrad.perturbed_rows import Materializations, PerturbedRows, TooLargeToMaterialize

EPS = np.finfo(float).eps

# Smooth functions with closed-form gradients (NumPy ufuncs, so they also run in long double),
# written once for a point or a batch of points (axis=-1).
SMOOTH = {
    "sin(x)*x^2": (lambda x: sg.sum(sg.sin(x) * x ** 2, axis=-1),
                   lambda x: 2 * x * np.sin(x) + x ** 2 * np.cos(x)),
    "exp(tanh(x))": (lambda x: sg.sum(sg.exp(sg.tanh(x)), axis=-1),
                     lambda x: np.exp(np.tanh(x)) / np.cosh(x) ** 2),
    "logsumexp": (lambda x: sg.log(sg.sum(sg.exp(x), axis=-1)),
                  lambda x: np.exp(x) / np.exp(x).sum()),
    "sigmoid(x)*x": (lambda x: sg.sum(sg.sigmoid(x) * x, axis=-1),
                     lambda x: (1 + x / (1 + np.exp(x))) / (1 + np.exp(-x))),
}
POSITIVE_GRADIENT = ["exp(tanh(x))", "logsumexp"]      # a product of positive factors: no cancellation
points = hnp.arrays(np.float64, st.integers(1, 12), elements=st.floats(-3, 3))


def sum_sin_x2(x):
    return SMOOTH["sin(x)*x^2"][0](x)


def exact_sin_x2(x):
    return SMOOTH["sin(x)*x^2"][1](x)


def max_rel_error(g, exact):
    return np.max(np.abs(g - exact)) / np.max(np.abs(exact))


# --- the formulas -------------------------------------------------------------------------------


def test_forward_is_the_course_formula_exactly():
    f = lambda x: x ** 3 - 2 * x  # noqa: E731
    for x, h in [(0.5, 1e-3), (2.0, 0.1), (-1.5, 1e-6)]:
        assert fd_gradient(f, x, "forward", h=h) == (f(x + h) - f(x)) / h


def test_backward_and_central_are_their_formulas_exactly():
    f = lambda x: np.exp(x) * x  # noqa: E731
    x, h = 0.3, 1e-4
    assert fd_gradient(f, x, "backward", h=h) == (f(x) - f(x - h)) / h
    assert fd_gradient(f, x, "central", h=h) == (f(x + h) - f(x - h)) / (2 * h)


def test_array_formula_moves_one_element_at_a_time():
    x = np.array([0.5, -1.0, 2.0])
    f = lambda v: float(v[0] * v[1] ** 2 + np.sin(v[2]))  # noqa: E731
    h = 1e-3
    expected = [(f(x + h * e) - f(x)) / h for e in np.eye(3)]
    np.testing.assert_array_equal(fd_gradient(f, x, "forward", h=h), expected)


def test_forward_error_shrinks_linearly_and_central_quadratically():
    f, x = (lambda t: sg.exp(sg.sin(t))), 0.7
    exact = math.exp(math.sin(x)) * math.cos(x)
    hs = 1e-2 / 2.0 ** np.arange(6)
    for method, order in (("forward", 1), ("central", 2)):
        errors = np.array([abs(fd_gradient(f, x, method, h=h) - exact) for h in hs])
        ratios = errors[:-1] / errors[1:]
        assert np.all(np.abs(ratios / 2 ** order - 1) < 0.15), (method, ratios)


@settings(max_examples=40, deadline=None)
@given(x=points, name=st.sampled_from(POSITIVE_GRADIENT))
def test_complex_step_is_exact_to_rounding(x, name):
    f, grad = SMOOTH[name]
    exact = grad(x.astype(np.longdouble))              # an oracle with 11 more bits
    assert np.all(np.abs(fd_gradient(f, x, "complex") - exact) <= 4 * EPS * exact)


def test_complex_step_reaches_1e_15_relative():
    x = np.random.default_rng(0).uniform(-2, 2, 200)
    for name, (f, grad) in SMOOTH.items():
        assert max_rel_error(fd_gradient(f, x, "complex"), grad(x.astype(np.longdouble))) < 1e-15, name


@settings(max_examples=60, deadline=None)
@given(x=points, name=st.sampled_from(POSITIVE_GRADIENT))
def test_default_central_step_gives_relative_error_below_1e_6(x, name):
    f, grad = SMOOTH[name]
    g = fd_gradient(f, x)
    assert np.all(np.abs(g - grad(x)) < 1e-6 * grad(x))


def test_default_central_step_on_every_smooth_function():
    x = np.random.default_rng(4).uniform(-3, 3, 100)
    for name, (f, grad) in SMOOTH.items():
        assert max_rel_error(fd_gradient(f, x), grad(x)) < 1e-8, name


def test_richardson_is_accurate_and_its_error_estimate_bounds_the_error():
    x = np.random.default_rng(1).uniform(-2, 2, 300)
    for name, (f, grad) in SMOOTH.items():
        r = fd_gradient(f, x, "richardson", full_output=True)
        actual = np.abs(r.gradient - grad(x))
        assert actual.max() < 1e-10, name
        assert np.all(actual <= r.error) and r.error.max() < 1e-8, name


@pytest.mark.parametrize("method", ["forward", "backward", "central"])
def test_one_sided_and_central_error_estimates_bound_the_error(method):
    x = np.random.default_rng(5).uniform(-2, 2, 300)
    for name, (f, grad) in SMOOTH.items():
        r = fd_gradient(f, x, method, full_output=True)
        actual = np.abs(r.gradient - grad(x))
        assert np.all(actual <= r.error) and r.error.max() < 100 * actual.max(), name


def test_central_error_estimate_is_the_truncation_error_where_it_dominates():
    r = fd_gradient(sg.exp, 700.0, h=2.0 ** -8, full_output=True)  # (sinh(h) / h - 1) exp(700) is the error
    h = r.step
    truncation = math.exp(700.0) * (math.sinh(h) / h - 1)
    assert r.gradient - math.exp(700.0) == pytest.approx(truncation, rel=1e-2)
    assert truncation <= r.error < 1.05 * truncation


def test_forward_error_estimate_where_the_other_side_is_undefined():
    h = 2.0 ** -20
    r = fd_gradient(lambda x: x ** 2 + 0 * sg.sqrt(x), 1e-9, "forward", h=h, full_output=True)  # nan left of 0
    assert r.unresolved == [] and r.gradient == pytest.approx(2e-9 + h, rel=1e-9)   # (x + h)² - x² over h
    assert r.error == pytest.approx(h, rel=1e-6)


def test_complex_step_reports_no_error_estimate():
    assert fd_gradient(sum_sin_x2, np.array([0.5, 1.0]), "complex", full_output=True).error is None


# --- steps ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("method, power", [("forward", 1 / 2), ("backward", 1 / 2), ("central", 1 / 3),
                                           ("richardson", 1 / 7), ("complex", 2)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_default_steps_depend_on_method_dtype_and_scale_with_x(method, power, dtype):
    x = np.array([0.0, 0.5, -3.0, 1000.0], dtype=dtype)
    step = default_step(x, method)
    assert step.dtype == dtype
    ideal = float(np.finfo(dtype).eps) ** power * np.maximum(1, np.abs(x.astype(float)))
    assert np.all((step >= ideal / math.sqrt(2)) & (step <= ideal * math.sqrt(2)))
    assert np.all(np.log2(step.astype(float)) % 1 == 0)          # powers of two: x ± h is exact
    r = fd_gradient(lambda v: sg.sum(v * v, axis=-1), x, method, full_output=True)
    np.testing.assert_array_equal(r.step, step)
    assert r.gradient.dtype == dtype


def test_float32_gets_float32_steps_and_float32_accuracy():
    x = np.random.default_rng(2).uniform(-2, 2, 50)
    g32 = fd_gradient(sum_sin_x2, x.astype(np.float32))
    assert g32.dtype == np.float32
    assert max_rel_error(g32, exact_sin_x2(x)) < 1e-3
    assert np.all(default_step(x.astype(np.float32)) > 100 * default_step(x))


def test_given_step_is_reported_and_used_per_element():
    x = np.array([1.0, 2.0])
    r = fd_gradient(lambda v: sg.sum(v ** 2), x, "forward", h=np.array([0.5, 0.25]), full_output=True)
    np.testing.assert_array_equal(r.step, [0.5, 0.25])
    np.testing.assert_allclose(r.gradient, 2 * x + r.step)
    assert fd_gradient(lambda v: v ** 2, 1.0, "forward", h=0.5, full_output=True).step == 0.5


# --- structures and batching -----------------------------------------------------------------------


def test_gradient_has_the_structure_of_x():
    loss = lambda w, b: sg.sum((w * np.array([1.0, 2.0]) + b - 1.0) ** 2)  # noqa: E731
    g = fd_gradient(loss, {"w": np.array([0.5, -0.5]), "b": 0.25})
    assert set(g) == {"w", "b"} and g["w"].shape == (2,) and type(g["b"]) is float
    np.testing.assert_allclose(g["w"], [2 * (0.5 + 0.25 - 1), 2 * (-1 + 0.25 - 1) * 2], rtol=1e-8)
    np.testing.assert_allclose(g["b"], 2 * (0.5 + 0.25 - 1) + 2 * (-1 + 0.25 - 1), rtol=1e-8)
    assert type(fd_gradient(lambda t: t ** 2, 3.0)) is float
    assert fd_gradient(lambda t: t ** 2, np.array(3.0)).shape == ()
    assert fd_gradient(lambda t: sg.sum(t ** 2), np.ones((2, 3))).shape == (2, 3)


def test_dict_with_mixed_dtypes():
    x = {"a": np.array([1.0, 2.0], dtype=np.float32), "b": np.array([[0.5]])}
    g = fd_gradient(lambda a, b: sg.sum(a ** 2) * sg.sum(b), x)
    assert g["a"].dtype == np.float32 and g["b"].dtype == np.float64 and g["b"].shape == (1, 1)
    np.testing.assert_allclose(g["a"], [1.0, 2.0], rtol=1e-3)
    np.testing.assert_allclose(g["b"], [[5.0]], rtol=1e-8)


def test_2000_dimensional_x_batched_and_unbatched_give_the_same_answer():
    x = np.random.default_rng(3).uniform(-2, 2, 2000)
    exact = exact_sin_x2(x)
    dense_f = lambda v: sg.sum(sg.sin(np.asarray(v)) * np.asarray(v) ** 2, axis=-1)  # noqa: E731
    runs = {"structured": fd_gradient(sum_sin_x2, x, batched=True, full_output=True),
            "dense": fd_gradient(dense_f, x, batched=True, full_output=True),
            "none": fd_gradient(sum_sin_x2, x, batched=False, full_output=True)}
    for batching, r in runs.items():
        assert r.batching == batching
        assert np.abs(r.gradient - exact).max() < 1e-8
        assert np.abs(r.gradient - runs["none"].gradient).max() < 1e-8


@pytest.mark.parametrize("f, batching", [
    (lambda x: sg.sum(sg.tanh(x) ** 2, axis=-1), "structured"),           # elementwise + reduction
    (lambda x: sg.sum(sg.tanh(x @ np.ones((8, 2))), axis=-1), "dense"),   # matmul needs dense rows
    (lambda x: sg.sum(sg.tanh(x) ** 2), "none"),                           # sums the batch axis too
    (lambda x: float(np.sum(x ** 2)), "none"),                             # a plain scalar function
    (lambda x: x[0] ** 2 + x[1] + sg.sum(x ** 3, axis=-1), "none"),        # indexes the point, not the batch
])
def test_batched_none_detects_what_f_accepts(f, batching):
    x = np.linspace(-1, 1, 8)
    r = fd_gradient(f, x, full_output=True)
    assert r.batching == batching
    np.testing.assert_allclose(r.gradient, fd_gradient(f, x, batched=False), atol=1e-9)


@pytest.mark.parametrize("f, batching", [
    (lambda w, v, b: sg.sum(w ** 2, axis=-1) + sg.sum(sg.sin(v), axis=-1) + b ** 2, "structured"),
    (lambda w, v, b: sg.sum(w * v, axis=-1) + b ** 2, "dense"),          # two entries combined elementwise
])
def test_a_dict_batch_gives_each_entry_the_leading_axis(f, batching):
    x = {"w": np.linspace(-1, 1, 6), "v": np.linspace(0, 2, 6), "b": 0.5}
    r = fd_gradient(f, x, batched=True, full_output=True)
    assert r.batching == batching
    expected = fd_gradient(f, x, batched=False)
    for name in x:
        np.testing.assert_allclose(r.gradient[name], expected[name], atol=1e-9)


def test_batched_true_on_an_f_without_a_batch_axis_is_a_clear_error():
    with pytest.raises(ValueError, match="batched=True, but f does not evaluate a batch"):
        fd_gradient(lambda x: sg.sum(x ** 2), np.ones(10), batched=True)


def test_batched_runs_in_few_calls_and_evaluates_f_at_x_once():
    calls = []

    def f(x):
        calls.append(np.shape(x))
        return sg.sum(sg.sin(x), axis=-1)

    x = np.linspace(0, 1, 500)
    r = fd_gradient(f, x, batched=True, full_output=True)
    assert len(calls) < 12 and calls.count((500,)) <= 4        # f(x) once, plus the three probe points
    np.testing.assert_allclose(r.gradient, np.cos(x), atol=1e-9)


@pytest.mark.parametrize("size", [2, 3, 5])
def test_batch_detection_is_not_fooled_by_an_axis_of_the_probe_size(size):
    def f(w, b):                    # reduces its last axis, so it also maps a stack of points... but divides by len(w)
        return np.sum(w ** 2, axis=-1) / w.shape[0] + np.sum(b ** 3, axis=-1)

    x = {"w": np.arange(1.0, size + 1), "b": np.array([0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5])}
    g = fd_gradient(f, x)
    np.testing.assert_allclose(g["w"], 2 * x["w"] / size, rtol=1e-8)
    np.testing.assert_allclose(g["b"], 3 * x["b"] ** 2, rtol=1e-8)


def test_structured_batches_fall_back_to_dense_when_f_does_more():
    x = np.linspace(-1, 1, 1000)

    def f(v):                                  # densifies only big batches: the probe cannot see it
        v = np.asarray(v) if np.ndim(v) == 2 and len(v) > 100 else v
        return sg.sum(v ** 2, axis=-1)

    r = fd_gradient(f, x, batched=True, full_output=True)
    assert r.batching == "dense"               # switched when the dense rows grew past the size limit
    np.testing.assert_allclose(r.gradient, 2 * x, atol=1e-8)


# --- kinks --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_kinks_are_reported_with_nan_and_names(method):
    def f(x):
        return sg.sum(sg.relu(x), axis=-1) + sg.max(x[..., 2:], axis=-1) + sg.sum(sg.abs(x[..., :1]), axis=-1)

    x = np.array([0.0, 0.0, 1.0, 1.0, -2.0, 0.5])      # abs & relu at 0, relu at 0, max tie at 1, 1
    r = fd_gradient(f, x, method, full_output=True)
    assert r.kinks == [(0,), (1,), (2,), (3,)]
    assert np.all(np.isnan(r.gradient[:4]))
    np.testing.assert_allclose(r.gradient[4:], [0.0, 1.0], atol=1e-7)
    with pytest.raises(NonDifferentiableError, match=r"not differentiable at x\[0\] \(and 3 more"):
        fd_gradient(f, x, method)


def test_kinks_in_a_dict_are_named_like_derive_names_elements():
    loss = lambda w, b: sg.sum(sg.relu(w * np.array([1.0, -1.0]) + b))  # noqa: E731
    x = {"w": np.array([[1.0, 0.5]]), "b": -1.0}                   # pre-activations 0 (a kink) and -1.5
    r = fd_gradient(loss, x, full_output=True)
    assert r.kinks == ["w[0, 0]", "b"]
    assert np.isnan(r.gradient["w"][0, 0]) and r.gradient["w"][0, 1] == 0 and np.isnan(r.gradient["b"])
    with pytest.raises(NonDifferentiableError) as info:
        fd_gradient(loss, x)
    assert isinstance(info.value, ValueError) and info.value.kinks == r.kinks
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("method", METHODS)
def test_a_small_change_of_slope_is_a_kink(method):
    r = fd_gradient(lambda x: x + 1e-4 * sg.relu(x), 0.0, method, full_output=True)    # slopes 1 and 1.0001
    assert r.kinks == [()] and np.isnan(r.gradient)
    left, right = r.one_sided[()]
    assert left == pytest.approx(1.0, abs=1e-9) and right == pytest.approx(1.0001, abs=1e-9)


def test_one_sided_slopes_of_each_kink():
    x = {"w": np.array([0.0, 2.0, 0.0]), "b": 1.0}
    r = fd_gradient(lambda w, b: sg.sum(sg.abs(3 * w)) + sg.relu(b - 1), x, full_output=True)
    assert r.kinks == ["w[0]", "w[2]", "b"]
    assert r.one_sided == {"w[0]": (-3.0, 3.0), "w[2]": (-3.0, 3.0), "b": (0.0, 1.0)}


@pytest.mark.parametrize("f, x", [
    (lambda x: sg.sum(sg.sin(x), axis=-1), np.array([np.pi / 2, -np.pi / 2])),   # stationary points
    (lambda x: sg.sum(x ** 4, axis=-1), np.array([0.0, 1e-3])),                 # flat at 0
    (lambda x: sg.sum(sg.cos(1000 * x), axis=-1), np.array([0.0, np.pi / 1000, 1e-3])),  # high curvature
    (lambda x: sg.sum(sg.relu(x), axis=-1), np.array([0.05, -0.05])),            # near a kink, not at it
    (lambda x: sg.sum((x + 1e6) - 1e6, axis=-1), np.array([0.5, 1.0])),          # cancellation noise
])
def test_smooth_points_are_not_kinks(f, x):
    for method in METHODS:
        assert fd_gradient(f, x, method, full_output=True).kinks == []


@settings(max_examples=30, deadline=None)
@given(x=points, name=st.sampled_from(sorted(SMOOTH)))
def test_smooth_functions_have_no_kinks(x, name):
    assert fd_gradient(SMOOTH[name][0], x, full_output=True).kinks == []


def test_a_kink_the_step_reaches_is_reported():
    f = lambda v: sg.sum(sg.relu(v), axis=-1)  # noqa: E731
    x = np.array([1e-3, 5e-3, 0.5])                             # relu's kink 1e-3 and 5e-3 away
    assert fd_gradient(f, x, full_output=True).kinks == []      # central: h = 7.6e-6
    assert fd_gradient(f, x, h=2e-3, full_output=True).kinks == [(0,)]    # steps over the kink at 1e-3
    r = fd_gradient(f, x, "richardson", h=2.0 ** -7, full_output=True)   # h = 7.8e-3, h/2, h/4
    assert r.kinks == [(1,)]                                    # steps over the kink at 5e-3
    assert r.unresolved == [(0,)] and np.isnan(r.gradient[0])   # even h/4 steps over the kink at 1e-3


def test_a_default_step_that_reaches_a_kink_near_x_is_made_smaller():
    f = lambda v: sg.sum(sg.relu(v), axis=-1)  # noqa: E731
    x = np.array([1e-3, 5e-3, 0.5])
    r = fd_gradient(f, x, "richardson", full_output=True)      # 7.8e-3 reaches both kinks; 7.8e-3 / 16 neither
    assert (r.kinks, r.unresolved) == ([], []) and np.array_equal(r.gradient, [1.0, 1.0, 1.0])
    assert np.array_equal(r.step, [2.0 ** -11, 2.0 ** -11, 2.0 ** -7])


def test_one_sided_method_works_at_the_edge_of_the_domain():
    g = fd_gradient(sg.sqrt, 1e-3, "forward")
    assert abs(g - 0.5 / math.sqrt(1e-3)) < 1e-3
    with pytest.raises(ValueError, match=r"f is not finite \(nan\) at x - "):
        fd_gradient(sg.sqrt, 1e-9, "central", h=1e-6)


# --- unresolved: f changes on a scale smaller than the step ------------------------------------------

NEAR_POLES = [                                   # (f, x, method): the exact derivative is huge or infinite
    (lambda x: 1 / x, 1e-6, "central"),          # the step 7.6e-6 straddles the pole at 0
    (lambda x: 1 / x, 1e-10, "central"),
    (lambda x: 1 / x, -1e-8, "forward"),
    (lambda x: 1 / x, 1e-6, "richardson"),
    (np.tan, np.pi / 2 - 1e-7, "central"),
    (np.tan, np.pi / 2 + 1e-9, "backward"),
    (np.tan, np.pi / 2 - 1e-7, "richardson"),
    (sg.log, 1e-9, "forward"),                   # log(x - h) is nan: only the forward side is defined
    (sg.log, 1e-12, "forward"),
    (sg.sqrt, 0.0, "forward"),                   # an infinite slope
    (lambda x: -sg.sqrt(-x), 0.0, "backward"),
]


@pytest.mark.parametrize("f, x, method", NEAR_POLES)
def test_a_pole_or_an_infinite_slope_within_the_step_is_unresolved(f, x, method):
    r = fd_gradient(f, x, method, full_output=True)
    assert r.unresolved == [()] and r.kinks == []
    assert np.isnan(r.gradient) and np.isnan(r.error)
    with pytest.raises(UnresolvedError, match=rf"do not settle at x={x:g}: the \w+ estimate is ") as info:
        fd_gradient(f, x, method)
    assert isinstance(info.value, ValueError) and info.value.unresolved == [()]
    assert "\n" not in str(info.value)


def test_a_smaller_step_resolves_the_pole():
    x = 1e-6
    assert fd_gradient(lambda t: 1 / t, x, h=2.0 ** -30) == pytest.approx(-1 / x ** 2, rel=1e-6)
    assert fd_gradient(lambda t: 1 / t, x, "complex") == pytest.approx(-1 / x ** 2, rel=1e-15)


def test_unresolved_elements_are_named_and_the_others_kept():
    x = {"w": np.array([2.0, 1e-7, -0.5]), "b": 3e-7}
    r = fd_gradient(lambda w, b: sg.sum(1 / w) + 1 / b, x, full_output=True)
    assert r.unresolved == ["w[1]", "b"] and r.kinks == []
    np.testing.assert_allclose(r.gradient["w"][[0, 2]], -1 / x["w"][[0, 2]] ** 2, rtol=1e-8)
    assert np.isnan(r.gradient["w"][1]) and np.isnan(r.gradient["b"])
    with pytest.raises(UnresolvedError, match=r"do not settle at w\[1\]=1e-07 \(and 1 more elements\)"):
        fd_gradient(lambda w, b: sg.sum(1 / w) + 1 / b, x)


@pytest.mark.parametrize("c, kinks, unresolved", [
    (0.02, [()], []),          # as good as at x: a kink
    (0.15, [], [()]),          # inside h/4 but not at x: unresolved
    (0.5, [()], []),           # between h/4 and h: a kink the step straddles
    (3.0, [], []),             # out of reach
])
def test_relu_with_its_kink_at_a_fraction_of_the_step(c, kinks, unresolved):
    r = fd_gradient(sg.relu, c * default_step(0.0), h=default_step(0.0), full_output=True)
    assert (r.kinks, r.unresolved) == (kinks, unresolved)
    if not kinks + unresolved:
        assert r.gradient == 1.0


def test_a_step_longer_than_the_period_is_unresolved():
    f = lambda x: sg.cos(1000 * x)  # noqa: E731         # period 6.3e-3; Richardson's default h is 7.8e-3
    assert fd_gradient(f, 1e-3, "richardson", h=2.0 ** -7, full_output=True).unresolved == [()]
    assert fd_gradient(f, 1e-3, "central") == pytest.approx(-1000 * math.sin(1.0), rel=1e-4)
    r = fd_gradient(f, 1e-3, "richardson", full_output=True)    # the default step is made 16 times smaller
    assert r.step < 2.0 ** -11 and r.gradient == pytest.approx(-1000 * math.sin(1.0), rel=1e-12)
    assert abs(r.gradient + 1000 * math.sin(1.0)) <= r.error


@pytest.mark.parametrize("c", [0.15, 0.5, 2.0])
def test_a_kink_near_x_is_stepped_around_with_the_default_step(c):
    r = fd_gradient(sg.relu, c * default_step(0.0), full_output=True)
    assert (r.kinks, r.unresolved, r.gradient) == ([], [], 1.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x", [1.5, -1.5])
def test_a_default_step_too_long_for_f_is_made_smaller(dtype, x):
    f = lambda v: sg.sin(v ** 5)  # noqa: E731   # float32 Richardson: h = 0.125 is half a period of sin(x^5) at 1.5
    exact = 5 * x ** 4 * math.cos(x ** 5)
    r = fd_gradient(f, dtype(x), "richardson", full_output=True)
    assert r.unresolved == [] and r.gradient == pytest.approx(exact, rel=1e-4 if dtype == np.float32 else 1e-8)
    assert abs(r.gradient - exact) <= r.error
    assert (r.step < default_step(dtype(x), "richardson")) == (dtype == np.float32)


@pytest.mark.parametrize("f, x, method", [
    (lambda x: 1 / x, 3e-7, "central"),         # 10 steps from the pole after two retries: 1 % off, not kept
    (lambda x: 1 / x, 1e-6, "central"),
    (np.tan, np.pi / 2 - 1e-7, "central"),
])
def test_a_smaller_step_that_converges_near_a_pole_is_not_kept(f, x, method):
    r = fd_gradient(f, x, method, full_output=True)
    assert r.unresolved == [()] and np.isnan(r.gradient)
    assert r.step < default_step(x, method)                     # it was tried


@pytest.mark.parametrize("distance", [1.2, 1.4, 2.0, 3.0, 10.0])
def test_a_pole_a_few_default_steps_away_is_reached_with_a_shorter_step(distance):
    # 1/x with its pole `distance` default steps away: the default step's estimate is off by up to 100 %
    # (with an error estimate that says so); 256 times shorter steps put the pole hundreds of steps away.
    x = distance * default_step(1e-5)
    r = fd_gradient(lambda t: 1 / t, x, full_output=True)
    exact = -1 / x ** 2
    assert r.unresolved == [] and r.step <= default_step(1e-5) / 16
    assert abs(r.gradient - exact) <= r.error <= 2e-5 * abs(exact)
    # forward differences, first order, still err by h / distance there: kept only with an honest estimate
    r = fd_gradient(lambda t: 1 / t, distance * default_step(1e-5, "forward"), "forward", full_output=True)
    assert r.unresolved == [()] or abs(r.gradient + 1 / (distance * default_step(1e-5, "forward")) ** 2) <= r.error


def test_log_near_zero_is_checked_without_blaming_the_step():
    report = sg.check(sg.log, {"x": 1e-5})                  # the default step 7.6e-6 nearly reaches 0
    assert report.ok and report.rows[0].rel_error["finite_diff"] < 1e-5, str(report)


@pytest.mark.parametrize("f, x, method, kink", [
    (lambda x: 1 + sg.relu(x), np.float32(0.0), "central", ()),
    (lambda x: 1 + sg.relu(x), np.float32(0.0), "forward", ()),
    (lambda x: 1 + 1e-6 * sg.relu(x), 0.0, "central", ()),       # a gap of 1e-6 over |f| = 1
    (lambda x: 1e4 + sg.relu(x), 0.0, "forward", ()),
    (lambda w: sg.exp(5 * w[1]) + sg.relu(w[0]), np.array([0.0, 2.0]), "forward", (0,)),
    (lambda x: sg.sum(sg.abs(x), axis=-1), np.array([0.0, 1.0]), "central", (0,)),
])
def test_a_kink_at_x_stays_one_where_a_shorter_step_would_hide_it_in_rounding(f, x, method, kink):
    # a kink at x is not retried: at h/16 its gap could fall below the rounding allowance
    r = fd_gradient(f, x, method, full_output=True)
    assert (r.kinks, r.unresolved) == ([kink], [])
    with pytest.raises(NonDifferentiableError):
        fd_gradient(f, x, method)


def test_hidden_cancellation_does_not_shorten_the_step():
    # the naive variance mean((d w)^2) - mean(d w)^2 cancels 1e6 against 1e6: |f| hides that rounding,
    # and a shorter step would multiply it; the default step stays, with an honest error estimate
    d = 1000 + np.random.default_rng(0).normal(size=50)
    f = lambda w: sg.mean((d * w) ** 2) - sg.mean(d * w) ** 2  # noqa: E731
    r = fd_gradient(f, 1.0, full_output=True)
    assert r.step == default_step(1.0) and r.gradient == fd_gradient(f, 1.0, h=default_step(1.0))
    assert abs(r.gradient - 2 * np.var(d)) < 1e-4


@pytest.mark.parametrize("f, x, method", [
    (lambda x: sg.sin(100 * x), 1e4, "richardson"),                # h, h/2, h/4 alias at h = 0.3
    (lambda x: sg.sin(100 * x), np.float32(100.0), "richardson"),
    (lambda x: 1 / x, 3e-5, "richardson"),                          # once taken for a kink
    (lambda x: sg.sqrt(x * x - 2.5e-13), 7.5e-7, "central"),         # undefined within h / 16
])
def test_a_shorter_step_that_settles_is_trusted_only_when_a_shorter_one_agrees(f, x, method):
    r = fd_gradient(f, x, method, full_output=True)
    exact = fd_gradient(f, np.float64(x), "complex") if method != "central" else x / math.sqrt(x * x - 2.5e-13)
    assert r.kinks == [] and (r.unresolved == [()] or abs(r.gradient - exact) <= r.error)


@pytest.mark.parametrize("f, x, method", [
    (lambda w: ((w + 1e9) - (1e9 + 1.0)) ** 2, 0.3, "forward"),    # f does not change over w +- h/16
    (lambda x: (1e10 + sg.sin(x)) - 1e10, 0.5, "central"),
])
def test_a_shorter_step_below_the_rounding_inside_f_is_not_trusted(f, x, method):
    # |f| is small but f is computed next to 1e9: a step 16 times shorter sees no change, slope 0
    r = fd_gradient(f, x, method, full_output=True)
    assert r.unresolved == [()] and np.isnan(r.gradient)


def test_a_central_step_is_shortened_only_where_the_estimates_converge_as_truncation_would():
    # sin(30 x) computed next to 1e8: the estimates at h and h/4 differ by rounding, not truncation
    f = lambda x: (1e8 + sg.sin(30 * x)) - 1e8  # noqa: E731
    r = fd_gradient(f, 1.0, full_output=True)
    assert r.step == default_step(1.0) and abs(r.gradient - 30 * math.cos(30.0)) <= r.error


def test_f_failing_at_a_shorter_step_leaves_the_longer_steps_finding():
    f = lambda x: 1 / (float(x) - 0.5)  # noqa: E731   # Python floats: a ZeroDivisionError at x - h / 16
    r = fd_gradient(f, 0.5 + 2.0 ** -21, full_output=True)
    assert r.unresolved == [()] and np.isnan(r.gradient)


def test_the_message_names_the_two_steps_that_disagree():
    with pytest.raises(UnresolvedError, match=r"estimate is \S+ at h=[\d.e-]+ and \S+ at h=[\d.e-]+; ") as info:
        fd_gradient(lambda x: 1 / x, 1e-6)
    assert "h/4" not in str(info.value)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_smooth_points_keep_their_default_steps(dtype):
    # the cost of a retry is paid only where the default step is too long for f: not for an ordinary sum
    x = np.random.default_rng(0).uniform(-2, 2, 1000).astype(dtype)
    f = lambda v: sg.sum(sg.sin(v) * v ** 2, axis=-1)  # noqa: E731
    for method in ("forward", "backward", "central", "richardson"):
        r = fd_gradient(f, x, method, full_output=True)
        assert np.array_equal(r.step, default_step(x, method)), method


def test_a_retry_evaluates_only_the_elements_retried():
    x = np.linspace(1.0, 2.0, 100)
    f = lambda v: sg.sum(sg.log(v), axis=-1)  # noqa: E731
    plain = fd_gradient(f, x, batched=False, full_output=True).evaluations
    x[37] = 1e-5                                            # one element near the pole of log
    r = fd_gradient(f, x, batched=False, full_output=True)
    assert r.step[37] < default_step(1e-5) and r.evaluations <= plain + 16
    np.testing.assert_allclose(r.gradient, 1 / x, rtol=1e-5)


@pytest.mark.parametrize("f, x, methods", [
    (lambda x: sg.sum(sg.sin(x), axis=-1), np.array([np.pi / 2, -np.pi / 2]), METHODS),  # rounding only
    (lambda x: sg.sum(x ** 3, axis=-1), np.array([0.0, 1e-9, -2e-12]), METHODS),          # gradient ~ 0
    (lambda x: sg.sum(x ** 3 + 1e-10 * x ** 2, axis=-1), np.array([0.0]), METHODS),
    (lambda x: sg.sum(x ** 5, axis=-1), np.array([1e-9, 1e-3]), METHODS),
    (lambda x: sg.sum(x ** 2, axis=-1), np.array([1e-9, 1e-12]), METHODS),                 # curvature >> gradient
    (lambda x: sg.sum(sg.cos(1000 * x), axis=-1), np.array([0.0, np.pi / 1000, 1e-3]),
     ("forward", "backward", "central", "complex")),
    (lambda x: sg.sum(sg.exp(x), axis=-1), np.array([700.0, -700.0]), ("forward", "backward", "central")),
    (lambda x: sg.sum((x + 1e6) - 1e6, axis=-1), np.array([0.3, 1.7]), METHODS),         # cancellation noise
    (lambda x: sg.sum((np.array([0.3, 1.7, -2.2]) * x - np.array([0.03, 1.19, -2.86])) ** 2, axis=-1),
     np.array([0.1, 0.7, 1.3]), METHODS),                                         # a least-squares fit at its minimum
    (lambda x: sg.sum(sg.sin(x) * x ** 2, axis=-1), np.linspace(-3, 3, 7, dtype=np.float32), METHODS),
])
def test_smooth_points_are_resolved(f, x, methods):
    for method in methods:
        r = fd_gradient(f, x, method, full_output=True)
        assert (r.unresolved, r.kinks) == ([], []), method


def poly_value(coefficients, x):
    return sum(c * x ** k for k, c in enumerate(coefficients))


OUTER = {"identity": lambda u: u, "exp": sg.exp, "sin": sg.sin, "tanh": sg.tanh, "sigmoid": sg.sigmoid}


@settings(max_examples=150, deadline=None)
@given(coefficients=st.lists(st.floats(-1, 1), min_size=1, max_size=6), outer=st.sampled_from(sorted(OUTER)),
       x=hnp.arrays(np.float64, st.integers(1, 4), elements=st.floats(-1.5, 1.5)),
       method=st.sampled_from(METHODS), dtype=st.sampled_from([np.float64, np.float32]))
def test_random_smooth_functions_are_never_unresolved(coefficients, outer, x, method, dtype):
    f = lambda v: sg.sum(OUTER[outer](poly_value(coefficients, v)), axis=-1)  # noqa: E731
    if outer in ("tanh", "sigmoid"):      # not where they saturate in the dtype: tanh(8) in float32 is
        level = np.abs(OUTER[outer](poly_value(coefficients, x)))       # 1 - 1e-7, flat to any difference
        assume(np.all(1 - level > 256 * np.finfo(dtype).eps))
    assert fd_gradient(f, x.astype(dtype), method, full_output=True).unresolved == []


@pytest.mark.parametrize("method", METHODS)
def test_where_float32_saturates_an_estimate_holds_the_slope_within_its_error_or_is_unresolved(method):
    f = lambda v: sg.sum(sg.tanh(poly_value([0.0, -0.5, 1.0, 0.0, 1.0], v)), axis=-1)  # noqa: E731  tanh(8.06)
    exact = sg.grad(f)(np.array([-1.5]))                                              # -6.75e-6
    r = fd_gradient(f, np.array([-1.5], np.float32), method, full_output=True)
    if r.unresolved != [(0,)]:                # complex step has no rounding to lose the slope in
        allowed = 1e-5 * abs(exact[0]) if r.error is None else float(r.error[0])
        assert r.unresolved == [] and abs(float(r.gradient[0]) - exact[0]) <= allowed, method


# --- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(h=0.0), ValueError, "h must be positive and finite, got 0"),
    (dict(h=-1e-3), ValueError, "h must be positive and finite, got -0.001"),
    (dict(h=float("nan")), ValueError, "h must be positive and finite, got nan"),
    (dict(h=float("inf")), ValueError, "h must be positive and finite, got inf"),
    (dict(h=np.array([1e-3, -1.0])), ValueError, r"got -1 for x\[1\]"),
    (dict(h="small"), ValueError, "h must be a positive number"),
    (dict(h=1e-30), ValueError, r"too small for x\[0\]=1.0: x \+ h == x"),
    (dict(method="secant"), ValueError, "method must be one of forward, backward"),
    (dict(batched="yes"), TypeError, "batched must be None"),
])
def test_bad_options(kwargs, error, message):
    with pytest.raises(error, match=message):
        fd_gradient(lambda x: sg.sum(x ** 2), np.array([1.0, 2.0]), **kwargs)


@pytest.mark.parametrize("f, x, kwargs, error, message", [
    (lambda x: x * 2, np.array([1.0, 2.0]), {}, ValueError, r"f must return a scalar, got an array of shape"),
    (lambda x: "high", 1.0, {}, TypeError, "f must return a number, got str"),
    (lambda x: np.log(x - 1), 1.0, {}, ValueError, r"f\(x\) is not finite \(-inf\)"),
    (lambda x: sg.sum(np.log(x)), np.array([1.0, 1e-9]), {}, ValueError, r"f is not finite \(nan\) at x\[1\] -"),
    (lambda x: 1j * x, 1.0, {}, TypeError, "complex value at a real point"),
    (lambda x: math.sin(x), 1.0, dict(method="complex"), TypeError, "needs an f that accepts complex numbers"),
    (lambda x: sg.sum(np.abs(x)), np.array([1.0, 2.0]), dict(method="complex"), TypeError,
     "dropping the imaginary part"),
    (lambda x: x, 1, {}, TypeError, "x has dtype int64; finite differences need floating-point"),
    (lambda x: sg.sum(x), np.arange(3), {}, TypeError, "x has dtype int64"),
    (lambda w: w, {"w": 2}, {}, TypeError, r"x\['w'\] has dtype int64"),
    (lambda x: x, True, {}, TypeError, "x has dtype bool"),
    (lambda x: x, 1 + 2j, {}, TypeError, "x is complex"),
    (lambda x: x, "1.0", {}, TypeError, "x must be a float or an array of floats, got str"),
    (lambda x: x, float("nan"), {}, ValueError, "x has non-finite values"),
    (lambda x: x, {}, {}, ValueError, "x is an empty dict"),
    ("not a function", 1.0, {}, TypeError, "f must be callable"),
])
def test_bad_input_is_a_clear_one_line_error(f, x, kwargs, error, message):
    with pytest.raises(error, match=message) as info:
        fd_gradient(f, x, **kwargs)
    assert "\n" not in str(info.value)


def test_x_is_never_modified():
    x = {"w": np.array([1.0, 2.0]), "b": np.array(0.5)}
    before = {k: v.copy() for k, v in x.items()}
    for method in METHODS:
        fd_gradient(lambda w, b: sg.sum(w * b, axis=-1), x, method)
    assert all(np.array_equal(x[k], before[k]) for k in x)


# --- error curve ----------------------------------------------------------------------------------------


def test_error_curve_has_the_v_shape_and_the_best_steps():
    curve = fd_error_curve(np.sin, 1.0, exact=math.cos(1.0))
    assert isinstance(curve, FDErrorCurve) and curve.reference_source == "exact"
    assert curve.hs[0] < 1e-15 and curve.hs[-1] == 1.0
    assert 1e-10 < curve.best_h["forward"] < 1e-6 < curve.best_h["central"] < 1e-3 < curve.best_h["richardson"]
    assert curve.best_error["forward"] < 1e-7 and curve.best_error["central"] < 1e-10
    assert curve.best_error["complex"] < 1e-15 and curve.best_error["richardson"] < 1e-13
    for method in ("forward", "central"):                  # rounding on the left, truncation on the right
        errors, best = curve.errors[method], np.argmin(curve.errors[method])
        assert errors[0] > 1e3 * errors[best] and errors[-1] > 1e3 * errors[best]
    moderate = (curve.hs > 1e-4) & (curve.hs < 0.1)
    np.testing.assert_allclose(curve.estimates["central"][moderate], math.cos(1.0), rtol=1e-2)


def test_error_curve_reference_falls_back_to_complex_step(monkeypatch):
    curve = fd_error_curve(np.exp, 0.5, hs=[1e-3, 1e-6])           # np.exp cannot be traced by SymPy
    assert curve.reference_source == "complex" and abs(curve.reference - math.exp(0.5)) < 1e-15
    monkeypatch.setitem(sys.modules, "symgrad.symbolic.derive", None)  # symbolic derivation unavailable
    curve = fd_error_curve(lambda t: sg.exp(t), np.array([0.5]), methods=("central",))
    assert curve.reference_source == "complex" and abs(curve.reference - math.exp(0.5)) < 1e-15


def test_error_curve_reference_is_symbolic_when_derive_traces_f():
    pytest.importorskip("symgrad.symbolic.derive")
    curve = fd_error_curve(lambda t: sg.tanh(t) * t, 0.5, hs=[1e-4])
    assert curve.reference_source == "symbolic"
    assert abs(curve.reference - (math.tanh(0.5) + 0.5 * (1 - math.tanh(0.5) ** 2))) < 1e-14


def test_error_curve_keeps_nan_where_f_is_undefined():
    curve = fd_error_curve(np.log, 1e-3, hs=[1e-2, 1e-5], methods=("forward", "central"), exact=1e3)
    assert np.isnan(curve.errors["central"][0]) and curve.best_h["central"] == 1e-5


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(x=np.array([1.0, 2.0])), ValueError, r"needs a scalar x .* got shape \(2,\)"),
    (dict(x={"w": 1.0}), ValueError, "needs a scalar x"),
    (dict(hs=[1e-3, -1e-3]), ValueError, "hs must be a non-empty sequence of positive"),
    (dict(hs=[]), ValueError, "hs must be a non-empty"),
    (dict(methods=("central", "five-point")), ValueError, "method must be one of"),
    (dict(methods=()), ValueError, "methods is empty"),
    (dict(exact=float("inf")), ValueError, "exact must be a finite number"),
    (dict(f=lambda x: math.sin(x)), ValueError, "has no reference: SymPy cannot trace f"),
])
def test_error_curve_bad_input(kwargs, error, message):
    arguments = dict(f=np.sin, x=1.0)
    arguments.update(kwargs)
    with pytest.raises(error, match=message):
        fd_error_curve(**arguments)


def test_importing_finite_differences_does_not_load_sympy():
    code = "import sys, symgrad.finite_diff as fd; fd.fd_gradient(abs, 1.0); print('sympy' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"


def test_full_output_result():
    r = fd_gradient(lambda x: sg.sum(x ** 2), np.array([1.0, -1.0]), full_output=True)
    assert isinstance(r, FDResult) and r.method == "central" and r.kinks == [] and r.evaluations >= 5


# --- PerturbedRows: the same as the dense array ---------------------------------------------------------

UNARY = [np.sin, np.tanh, np.abs, np.negative, lambda a: np.exp(np.tanh(a)), lambda a: a * a / (1 + a * a),
         lambda a: sg.sigmoid(a), lambda a: sg.relu(a), lambda a: np.where(a > 0, a, 0.5 * a),
         lambda a: np.clip(a, -0.5, 0.5), lambda a: a.real]
BINARY = [np.add, np.multiply, np.maximum, np.subtract, lambda a, b: sg.minimum(a, b)]


@st.composite
def rows_and_ops(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4).filter(
        lambda s: math.prod(s) >= 2))
    m = draw(st.integers(1, 6))
    base = draw(hnp.arrays(np.float64, shape, elements=st.floats(-2, 2)))
    pos = np.array(draw(st.lists(st.integers(0, math.prod(shape) - 1), min_size=m, max_size=m)))
    val = np.array(draw(st.lists(st.floats(-2, 2), min_size=m, max_size=m)))
    trailing = shape[draw(st.integers(0, len(shape))):]                  # broadcasts into the point shape
    constant_shape = tuple(draw(st.sampled_from([1, n])) for n in trailing)
    constant = draw(hnp.arrays(np.float64, constant_shape, elements=st.floats(-2, 2)))
    ops = draw(st.lists(st.tuples(st.integers(0, 100), st.integers(0, 100)), min_size=1, max_size=4))
    axes = draw(st.lists(st.integers(1, len(shape)), min_size=1, max_size=len(shape), unique=True))
    reduction = draw(st.sampled_from(["sum", "mean", "max", "min"]))
    return base, pos, val, constant, ops, tuple(axes), reduction, draw(st.booleans())


def apply_chain(a, constant, ops):
    for unary, binary in ops:
        a = UNARY[unary % len(UNARY)](a)
        other = constant if binary % 3 == 0 else (a if binary % 3 == 1 else 0.5)
        a = BINARY[binary % len(BINARY)](a, other)
    return a


@settings(max_examples=150, deadline=None)
@given(rows_and_ops())
def test_perturbed_rows_compute_what_the_dense_array_computes(case):
    base, pos, val, constant, ops, axes, reduction, keepdims = case
    log = Materializations()
    rows = PerturbedRows(base, pos, val, log)
    dense = np.asarray(rows)
    log.reasons.clear()
    chained = apply_chain(dense, constant, ops)
    structured = getattr(apply_chain(rows, constant, ops), reduction)(axis=axes, keepdims=keepdims)
    expected = getattr(chained, reduction)(axis=axes, keepdims=keepdims)
    assert log.reasons == []
    result = np.asarray(structured)
    assert result.shape == expected.shape and result.dtype == expected.dtype
    rounding = 1e-13 * chained.size * max(1.0, np.abs(chained).max())  # corrected sums round differently
    np.testing.assert_allclose(result, expected, rtol=1e-13, atol=rounding)


def test_perturbed_rows_keep_dtypes_and_complex_values():
    rows = PerturbedRows(np.array([1.0, 2.0]), np.array([1]), np.array([2.0 + 1e-20j]), Materializations())
    assert (rows.real.astype(np.float32) * 2).dtype == np.float32
    np.testing.assert_allclose(np.asarray(np.sin(rows).sum(axis=1)).imag, np.cos(2.0) * 1e-20, rtol=1e-15)
    assert rows.imag.max(axis=1)[0] == 1e-20 and rows.real.dtype == np.float64


def test_perturbed_rows_fall_back_to_dense_and_say_why():
    base = np.arange(6.0).reshape(2, 3)
    log = Materializations()
    rows = PerturbedRows(base, np.array([0, 5]), np.array([10.0, -1.0]), log)
    dense = np.array([[[10.0, 1, 2], [3, 4, 5]], [[0, 1, 2], [3, 4, -1]]])
    np.testing.assert_array_equal(rows @ np.ones(3), dense @ np.ones(3))
    np.testing.assert_array_equal(rows[1], dense[1])
    np.testing.assert_array_equal(rows.reshape(2, 6), dense.reshape(2, 6))
    np.testing.assert_array_equal(rows.sum(), dense.sum())                         # includes the batch axis
    np.testing.assert_array_equal(np.linalg.norm(rows, axis=-1), np.linalg.norm(dense, axis=-1))
    assert log.reasons == ["matmul", "indexing", "reshape", "sum", "norm"]


def test_perturbed_rows_of_different_positions_combine_densely():
    log = Materializations()
    first = PerturbedRows(np.zeros(3), np.array([0, 1]), np.array([1.0, 2.0]), log)
    second = PerturbedRows(np.ones(3), np.array([2, 2]), np.array([5.0, 6.0]), log)
    np.testing.assert_array_equal(first + second, [[2, 1, 5], [1, 3, 6]])
    assert log.reasons == ["add", "add"]


def test_perturbed_rows_metadata_needs_no_dense_array():
    log = Materializations()
    rows = PerturbedRows(np.zeros((3, 4)), np.array([1, 2]), np.array([1.0, 2.0]), log)
    assert np.shape(rows) == (2, 3, 4) and np.ndim(rows) == 3 and len(rows) == 2 and rows.size == 24
    assert not np.iscomplexobj(rows) and np.iscomplexobj(rows + 1j)
    assert log.reasons == []


def test_perturbed_rows_are_read_only_and_bounded():
    rows = PerturbedRows(np.zeros(1000), np.arange(1000), np.ones(1000), Materializations(limit_bytes=1000))
    with pytest.raises(TypeError, match="read-only"):
        rows[0, 0] = 1.0
    with pytest.raises(TooLargeToMaterialize):
        np.asarray(rows)
    assert rows.log.exceeded


def test_unresolved_error_is_public_and_caught_as_a_value_error():
    import symgrad as sg

    with pytest.raises(sg.UnresolvedError) as info:
        sg.fd_gradient(lambda x: 1.0 / x, 1e-6)
    assert isinstance(info.value, ValueError) and info.value.unresolved == [()]

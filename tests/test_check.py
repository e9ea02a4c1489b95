"""sg.check, sg.assert_gradients_close and sg.check_backward: the report, its verdicts, its tolerances.

The oracles are closed-form derivatives written in the tests and SymPy's exact
partials; wrong gradients are planted on purpose (a backward rule missing a
factor, a model that differs from the code, a bad finite-difference step) and the
report must name the entries and say which side is wrong.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symgrad as sg
from symgrad.functions import is_symbolic
from symgrad.rules import RULES, defrule
from symgrad.tensor import Tensor, apply

RNG = np.random.default_rng(1234)


def mlp_loss(W1, b1, W2, b2, X, y):
    hidden = sg.tanh(X @ W1 + b1)
    return sg.sum((hidden @ W2 + b2 - y) ** 2) / X.shape[0]


def mlp_params(dtype=np.float64, hidden=3, samples=5):
    rng = np.random.default_rng(0)
    params = {"W1": rng.normal(size=(2, hidden)), "b1": rng.normal(size=hidden),
              "W2": rng.normal(size=(hidden, 1)), "b2": rng.normal(size=1)}
    data = {"X": rng.normal(size=(samples, 2)), "y": rng.normal(size=(samples, 1))}
    return {k: v.astype(dtype) for k, v in params.items()}, {k: v.astype(dtype) for k, v in data.items()}


def mlp_gradient(W1, b1, W2, b2, X, y):
    """The MLP's gradient by hand (chain rule in matrix form), in float64."""
    h = np.tanh(X @ W1 + b1)
    r = 2 * (h @ W2 + b2 - y) / X.shape[0]
    dh = (r @ W2.T) * (1 - h ** 2)
    return {"W1": X.T @ dh, "b1": dh.sum(0), "W2": h.T @ r, "b2": r.sum(0)}


# --- sg.check --------------------------------------------------------------------------------------------


def test_check_agrees_three_ways_with_the_closed_form():
    params, data = mlp_params()
    report = sg.check(mlp_loss, params, data)
    assert report.ok, str(report)
    assert report.methods == ["symbolic", "finite_diff", "backprop"]
    assert report.reference == "symbolic"
    assert set(report.timings) == {"symbolic", "finite_diff", "backprop"}
    assert all(t >= 0 for t in report.timings.values())
    assert len(report.rows) == sum(np.size(v) for v in params.values())       # one row per weight element
    expected = mlp_gradient(**params, **data)
    for row in report.rows:
        want = expected[row.name][row.index]
        assert row.symbolic == pytest.approx(want, rel=1e-12, abs=1e-14)
        assert row.backprop == pytest.approx(want, rel=1e-10, abs=1e-12)
        assert row.finite_diff == pytest.approx(want, rel=1e-6, abs=1e-8)
        assert set(row.abs_error) == {"finite_diff", "backprop"}
        assert row.abs_error["backprop"] == pytest.approx(abs(row.backprop - row.symbolic))
        base = report.atol + report.rtol * abs(row.symbolic)          # plus the FD's own error estimate (rounding)
        assert base <= row.tolerance <= 1.1 * base
    assert {(r.name, r.index) for r in report.rows} == {
        (n, i) for n, v in params.items() for i in np.ndindex(np.shape(v))}


def test_rows_are_worst_first_and_name_their_element():
    def loss(w):
        return sg.sum(w ** 3)

    report = sg.check(loss, {"w": np.array([[1.0, 2.0], [3.0, 4.0]])}, fd_method="forward", rtol=0, atol=1e-3)
    errors = [max(r.abs_error.values()) / r.tolerance for r in report.rows]
    failing = [r for r in report.rows if not r.ok]
    assert report.rows[:len(failing)] == failing
    assert errors[len(failing):] == sorted(errors[len(failing):], reverse=True)
    assert errors[:len(failing)] == sorted(errors[:len(failing)], reverse=True)
    assert report.rows[0].element == "w[1, 1]"               # forward differences err most where w is largest
    assert report.rows[0].index == (1, 1) and report.rows[0].name == "w"


@pytest.fixture
def halved_square():
    """A primitive x**2 whose backward forgets the factor 2, used through a polymorphic loss."""
    rule = defrule("halved_square_test", lambda x: x * x, lambda g, out, x: g * x)
    yield rule
    del RULES[rule.name]


def test_backprop_wrong_is_named(halved_square):
    def loss(w, v):
        square = apply(halved_square, w) if isinstance(w, Tensor) else w * w
        return sg.sum(square) + sg.sum(sg.tanh(v))

    report = sg.check(loss, {"w": np.array([1.0, -2.0, 0.5]), "v": np.array([0.3, 0.1])})
    assert not report.ok
    wrong = {r.element: r for r in report.failures}
    assert set(wrong) == {"w[0]", "w[1]", "w[2]"}
    assert {r.verdict for r in wrong.values()} == {"backprop wrong"}
    assert report.rows[0].element == "w[1]"                  # the largest error (2 * |-2| - |-2|) first
    assert wrong["w[1]"].symbolic == pytest.approx(-4.0) and wrong["w[1]"].backprop == pytest.approx(-2.0)
    assert "a bug in the backward pass" in str(report)


def test_finite_difference_off_is_blamed_on_the_step():
    report = sg.check(lambda x: sg.exp(x), {"x": 1.0}, fd_method="forward", h=0.1)
    (row,) = report.rows
    assert row.verdict == "fd off" and not report.ok
    assert row.backprop == pytest.approx(np.e) and row.symbolic == pytest.approx(np.e)
    assert row.finite_diff == pytest.approx((np.exp(1.1) - np.e) / 0.1)


def test_symbolic_model_differs_from_the_code():
    def loss(x):
        return x ** 3 if is_symbolic(x) else x ** 2                 # the formula is not what runs

    (row,) = sg.check(loss, {"x": 2.0}).rows
    assert row.verdict == "model differs"
    assert (row.symbolic, row.backprop) == (pytest.approx(12.0), pytest.approx(4.0))


def test_all_three_differ(halved_square):
    def loss(x):
        if is_symbolic(x):
            return x ** 3
        return apply(halved_square, x) if isinstance(x, Tensor) else x * x

    (row,) = sg.check(loss, {"x": 2.0}).rows
    assert row.verdict == "all differ"


def test_untraceable_function_is_judged_by_finite_differences():
    def loss(w):
        if w > 0:                                   # SymPy cannot decide the sign of a symbol
            return w ** 2
        return -w

    report = sg.check(loss, {"w": 1.5})
    assert report.ok, str(report)
    assert report.methods == ["finite_diff", "backprop"] and report.reference == "finite_diff"
    assert "symbolic" not in report.timings
    assert any("exact does not apply" in n and "SymPy" in n for n in report.notes)
    assert report.rows[0].symbolic is None and report.rows[0].backprop == pytest.approx(3.0)
    assert "exact does not apply" in str(report)


def test_a_kink_is_reported_not_failed():
    report = sg.check(lambda w: sg.sum(sg.relu(w)), {"w": np.array([0.0, 2.0])})
    rows = {r.element: r for r in report.rows}
    assert rows["w[0]"].verdict == "kink" and rows["w[1]"].verdict == "ok"
    assert report.ok
    assert any("kink" in n for n in report.notes)


def test_complex_step_on_non_analytic_code_falls_back_to_central():
    def loss(w):
        if isinstance(w, np.ndarray) and np.iscomplexobj(w):
            return np.sum(np.abs(w) ** 2)               # the modulus drops the imaginary part
        return sg.sum(w * w)

    report = sg.check(loss, {"w": np.array([1.0, -3.0])}, fd_method="complex")
    assert report.ok and report.fd_method == "central"
    assert any("complex step does not apply" in n for n in report.notes)


def test_complex_step_is_used_where_it_applies():
    report = sg.check(lambda w: sg.sum(sg.sin(w) * sg.exp(w)), {"w": np.linspace(-1, 1, 4)}, fd_method="complex")
    assert report.ok and report.fd_method == "complex"
    assert report.rtol <= 1e-8
    assert report.max_abs_error < 1e-12


def test_float32_model_passes_with_float32_tolerances():
    params32, data32 = mlp_params(np.float32, hidden=4, samples=20)
    report = sg.check(mlp_loss, params32, data32)
    report64 = sg.check(mlp_loss, *mlp_params(np.float64, hidden=4, samples=20))
    assert report.ok, str(report)
    assert report.dtype == "float32" and report64.dtype == "float64"
    assert report.rtol > report64.rtol and report.atol > report64.atol
    assert "float32" in str(report)
    expected = mlp_gradient(**{k: v.astype(np.float64) for k, v in {**params32, **data32}.items()})
    for row in report.rows:
        assert row.backprop == pytest.approx(expected[row.name][row.index], rel=1e-3, abs=1e-4)


def test_float32_bug_is_still_caught(halved_square):
    def loss(w):
        return sg.sum(apply(halved_square, w) if isinstance(w, Tensor) else w * w)

    report = sg.check(loss, {"w": np.array([0.5, 1.5], dtype=np.float32)})
    assert [r.verdict for r in report.rows] == ["backprop wrong", "backprop wrong"]


def test_explicit_tolerances_are_used_and_printed():
    report = sg.check(lambda x: x ** 2, {"x": 3.0}, rtol=1e-3, atol=1e-4)
    assert (report.rtol, report.atol) == (1e-3, 1e-4)
    assert report.rows[0].tolerance == pytest.approx(1e-4 + 1e-3 * 6)
    assert "rtol=0.001, atol=0.0001" in str(report)


def test_report_forms():
    report = sg.check(lambda w, b, x: sg.tanh(w * x + b), {"w": 0.5, "b": 0.1}, {"x": 2.0})
    text = str(report)
    for word in ("OK", "exact", "finite diff", "backprop", "tolerance", "verdict", "time:"):
        assert word in text
    table = report.to_table()
    assert table.splitlines()[0].split()[:4] == ["weight", "exact", "finite", "diff"]
    assert len(table.splitlines()) == 3
    payload = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert payload["ok"] is True and payload["counts"] == {"entries": 2, "agree": 2, "disagree": 0}
    assert {r["element"] for r in payload["rows"]} == {"w", "b"}
    assert payload["rows"][0]["symbolic"] == pytest.approx(report.rows[0].symbolic)
    assert set(payload["timings"]) == {"symbolic", "finite_diff", "backprop"}
    markdown = report._repr_markdown_()
    assert "| weight |" in markdown and "|---|" in markdown
    assert report.max_abs_error >= 0 and report.max_rel_error >= 0
    assert "CheckReport" in repr(report)


def test_float32_params_with_python_scalars_and_ints():
    report = sg.check(lambda w, n: w * n, {"w": 2}, {"n": 3})
    assert report.ok and report.rows[0].backprop == 3.0


@pytest.mark.parametrize("params, error", [
    ({}, ValueError), ([1.0], TypeError), ({"w": "a"}, TypeError), ({"w": np.array([np.nan])}, ValueError),
    ({"w": 1j}, TypeError),
])
def test_bad_params_are_named(params, error):
    with pytest.raises(error):
        sg.check(lambda w: w * 2, params)


def test_bad_options_and_outputs():
    with pytest.raises(ValueError, match="scalar"):
        sg.check(lambda w: w * 2, {"w": np.ones(3)})
    with pytest.raises(ValueError, match="finite-difference method"):
        sg.check(lambda w: w * 2, {"w": 1.0}, fd_method="sideways")
    with pytest.raises(ValueError, match="unknown method"):
        sg.check(lambda w: w * 2, {"w": 1.0}, methods=("psychic",))
    with pytest.raises(ValueError, match="non-negative"):
        sg.check(lambda w: w * 2, {"w": 1.0}, rtol=-1)
    with pytest.raises(TypeError):
        sg.check(lambda w: w * 2, {"v": 1.0})


def test_only_one_method_leaves_entries_unchecked():
    report = sg.check(lambda w: w ** 2, {"w": 1.0}, methods=("backprop",))
    assert not report.ok and report.rows[0].verdict == "unchecked"


# --- assert_gradients_close -----------------------------------------------------------------------------


def test_assert_gradients_close_passes_and_returns_the_report():
    params, data = mlp_params()
    report = sg.assert_gradients_close(mlp_loss, params, data)
    assert report.ok and report.methods == ["finite_diff", "backprop"]
    assert "symbolic" not in report.timings


def test_assert_gradients_close_message_lists_only_the_disagreeing_entries(halved_square):
    def loss(w, v):
        return sg.sum(apply(halved_square, w) if isinstance(w, Tensor) else w * w) + sg.sum(v ** 3)

    w = np.array([3.0, 0.0, -1.0])
    with pytest.raises(AssertionError) as caught:
        sg.assert_gradients_close(loss, {"w": w, "v": np.array([1.0, 2.0])})
    message = str(caught.value)
    lines = message.splitlines()
    assert lines[0] == "gradients disagree: 2 of 5 entries differ, 3 agree"
    table = [line for line in lines if line.startswith(("w[", "v["))]
    assert [line.split()[0] for line in table] == ["w[0]", "w[2]"]      # worst first; w[1] = 0 agrees
    assert "v[" not in message and "rtol=" in lines[1]


def test_assert_gradients_close_with_the_exact_judge():
    def loss(x):
        return x ** 3 if is_symbolic(x) else x ** 2

    sg.assert_gradients_close(loss, {"x": 2.0})                       # FD and backprop agree with each other
    with pytest.raises(AssertionError, match="model differs"):
        sg.assert_gradients_close(loss, {"x": 2.0}, methods=("symbolic", "finite_diff", "backprop"))


def test_assert_gradients_close_caps_the_table():
    def loss(w):
        return sg.sum(w ** 2) if isinstance(w, Tensor) else sg.sum(w ** 2) * 1.5

    with pytest.raises(AssertionError) as caught:
        sg.assert_gradients_close(loss, {"w": np.arange(1.0, 51.0)})
    message = str(caught.value)
    assert "50 of 50 entries differ" in message and "... and 20 more" in message
    assert message.splitlines()[3].startswith("w[49]")


# --- check_backward -------------------------------------------------------------------------------------


def mse(pred, target):
    return ((pred - target) ** 2).mean()


def mse_backward(grad, pred, target):
    diff = 2 * grad * (pred - target) / pred.size
    return diff, -diff


def mse_backward_missing_two(grad, pred, target):
    diff = grad * (pred - target) / pred.size
    return diff, -diff


def linear(X, W, b):
    return X @ W + b


def linear_backward(grad, X, W, b):
    return grad @ W.T, X.T @ grad, grad.sum(axis=0)


def linear_backward_transposed(grad, X, W, b):
    return grad @ W, X.T @ grad, grad.sum(axis=0)           # W instead of W.T (the same shape when W is square)


def linear_backward_no_broadcast_sum(grad, X, W, b):
    return grad @ W.T, X.T @ grad, grad                     # forgets to sum over the batch


def linear_inputs(n=3, p=3, q=4, dtype=np.float64):
    rng = np.random.default_rng(5)
    return tuple(a.astype(dtype) for a in (rng.normal(size=(q, n)), rng.normal(size=(n, p)), rng.normal(size=p)))


def test_correct_backwards_pass():
    pred, target = RNG.normal(size=(3, 2)), RNG.normal(size=(3, 2))
    report = sg.check_backward(mse, mse_backward, (pred, target))
    assert report.ok, str(report)
    assert report.methods == ["symbolic", "finite_diff", "backprop"] and report.reference == "symbolic"
    assert {r.name for r in report.rows} == {"pred", "target"} and len(report.rows) == 12
    assert report.labels["backprop"] == "backward" and "backward" in str(report)
    report = sg.check_backward(linear, linear_backward, linear_inputs(n=3, p=2))
    assert report.ok, str(report)


def test_missing_factor_two_in_mse_is_caught():
    pred, target = RNG.normal(size=(3, 2)), RNG.normal(size=(3, 2))
    report = sg.check_backward(mse, mse_backward_missing_two, (pred, target), grad_output=1.0)
    assert not report.ok
    assert len(report.failures) == 12 and {r.verdict for r in report.failures} == {"backward wrong"}
    worst = report.rows[0]
    assert worst.backprop == pytest.approx(worst.symbolic / 2)
    assert worst.finite_diff == pytest.approx(worst.symbolic, rel=1e-6)
    residual = np.abs(pred - target)                          # the largest error sits at the largest residual
    assert worst.index == np.unravel_index(np.argmax(residual), residual.shape)
    assert "backward wrong" in str(report) and "a bug in the backward pass" in str(report)


def test_transposed_matmul_gradient_points_at_the_wrong_entries():
    inputs = linear_inputs(n=3, p=3)
    grad = np.random.default_rng(9).standard_normal((4, 3))
    report = sg.check_backward(linear, linear_backward_transposed, inputs, grad_output=grad)
    right, transposed = grad @ inputs[1].T, grad @ inputs[1]
    differs = {("X", i) for i in np.ndindex(right.shape) if abs(right[i] - transposed[i]) > 1e-6}
    assert differs and {(r.name, r.index) for r in report.failures} == differs
    assert all(r.verdict == "backward wrong" for r in report.failures)


def test_transposed_gradient_of_a_non_square_weight_has_the_wrong_shape():
    def backward(grad, X, W, b):
        return grad @ W.T, grad.T @ X, grad.sum(axis=0)       # (p, n) instead of (n, p)

    report = sg.check_backward(linear, backward, linear_inputs(n=3, p=2))
    assert {r.name for r in report.failures} == {"W"}
    assert {r.verdict for r in report.failures} == {"wrong shape"}
    assert any("shape (2, 3) for W, whose shape is (3, 2)" in n for n in report.notes)


def test_dropped_broadcast_sum_is_caught_and_explained():
    report = sg.check_backward(linear, linear_backward_no_broadcast_sum, linear_inputs(n=3, p=2))
    assert {(r.name, r.index) for r in report.failures} == {("b", (0,)), ("b", (1,))}
    assert all(r.verdict == "wrong shape" for r in report.failures)
    note = next(n for n in report.notes if "for b" in n)
    assert "shape (4, 2)" in note and "sum over the broadcast axes (0,) is missing" in note


def test_float32_backward_passes_with_float32_tolerances():
    inputs = linear_inputs(n=3, p=2, dtype=np.float32)
    report = sg.check_backward(linear, linear_backward, inputs)
    assert report.ok, str(report)
    assert report.dtype == "float32"


def test_check_backward_without_a_traceable_forward():
    def tanh_forward(x):
        return np.tanh(x)                                    # plain NumPy: SymPy cannot trace it

    def tanh_backward(grad, x):
        return (grad * (1 - np.tanh(x) ** 2),)

    report = sg.check_backward(tanh_forward, tanh_backward, np.linspace(-2, 2, 5))
    assert report.ok and report.reference == "finite_diff"
    assert report.rows[0].name == "x"
    assert any("exact does not apply" in n for n in report.notes)


def test_check_backward_names_dict_inputs_and_skips_none():
    def backward(grad, pred, target):
        return 2 * grad * (pred - target) / pred.size, None

    report = sg.check_backward(mse, backward, {"prediction": np.ones(3), "label": np.zeros(3)})
    assert report.ok and {r.name for r in report.rows} == {"prediction"}
    assert any("None for label" in n for n in report.notes)


def test_check_backward_bad_usage():
    pred = np.ones(3)
    with pytest.raises(ValueError, match="1 gradient"):
        sg.check_backward(mse, lambda g, p, t: 2 * g * (p - t) / 3, (pred, pred))
    with pytest.raises(ValueError, match="grad_output has shape"):
        sg.check_backward(mse, mse_backward, (pred, pred), grad_output=np.ones(3))
    with pytest.raises(ValueError, match="nothing to check"):
        sg.check_backward(mse, lambda g, p, t: (None, None), (pred, pred))


@settings(max_examples=25, deadline=None)
@given(q=st.integers(1, 4), n=st.integers(1, 3), p=st.integers(1, 3), data=st.data())
def test_one_corrupted_entry_is_exactly_the_one_reported(q, n, p, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 16)))
    inputs = (rng.normal(size=(q, n)), rng.normal(size=(n, p)), rng.normal(size=p))
    which = data.draw(st.sampled_from(["X", "W", "b"]))
    shape = {"X": (q, n), "W": (n, p), "b": (p,)}[which]
    index = tuple(data.draw(st.integers(0, s - 1)) for s in shape)
    delta = data.draw(st.sampled_from([-1.0, 1.0])) * data.draw(st.floats(1e-3, 10.0))

    def corrupted(grad, X, W, b):
        grads = dict(zip("XWb", linear_backward(grad, X, W, b)))
        grads[which] = grads[which].copy()
        grads[which][index] += delta
        return grads["X"], grads["W"], grads["b"]

    report = sg.check_backward(linear, corrupted, inputs, exact=False)
    assert [(r.name, r.index) for r in report.failures] == [(which, index)]
    assert report.failures[0].verdict == "disagree"
    assert report.failures[0].backprop - report.failures[0].finite_diff == pytest.approx(delta, rel=1e-5)


# --- the exact value of a loss over many samples --------------------------------------------------------


def test_a_mean_over_samples_is_derived_for_one_sample():
    params, data = mlp_params(samples=40)
    report = sg.check(mlp_loss, params, data)
    assert report.ok
    assert "exact value derived for one sample and averaged over the 40 samples of X, y" in report.notes
    expected = mlp_gradient(**params, **data)
    for row in report.rows:
        assert row.symbolic == pytest.approx(expected[row.name][row.index], rel=1e-12, abs=1e-14)


def test_a_sum_over_samples_with_a_constant_matrix():
    rng = np.random.default_rng(3)
    A, X = rng.normal(size=(2, 2)), rng.normal(size=(6, 2))

    def loss(w, A, X):
        return sg.sum(sg.tanh(X @ A @ w) ** 2) / 100.0              # a hard-coded scale: still a sum of samples

    w = np.array([0.3, -0.7])
    report = sg.check(loss, {"w": w}, {"A": A, "X": X})
    t = np.tanh(X @ A @ w)
    expected = (2 * t * (1 - t ** 2)) @ (X @ A) / 100.0
    assert report.ok and any("summed over the 6 samples of X" in n for n in report.notes)
    assert [r.symbolic for r in sorted(report.rows, key=lambda r: r.index)] == pytest.approx(expected, rel=1e-12)


def test_a_loss_that_mixes_samples_is_derived_whole():
    def normalized(w, x):
        z = x * w
        centered = z - sg.mean(z)                                    # every sample depends on every other
        return sg.sum(centered ** 4)

    x = np.array([0.5, -1.0, 2.0, 0.25])
    report = sg.check(normalized, {"w": 1.5}, {"x": x})
    c = x - x.mean()
    assert report.ok and not any("one sample" in n for n in report.notes)
    assert report.rows[0].symbolic == pytest.approx(float(np.sum(4 * (1.5 * c) ** 3 * c)), rel=1e-12)


@settings(max_examples=20, deadline=None)
@given(scale=st.floats(1e-6, 1e6), dtype=st.sampled_from([np.float32, np.float64]))
def test_verdicts_do_not_depend_on_the_scale_of_the_loss(scale, dtype):
    def right(w, x):
        return scale * sg.sum(sg.tanh(w * x) ** 2)

    def wrong(w, x):                                   # the formula SymPy sees is twice what runs
        return right(w, x) * (2 if is_symbolic(w) else 1)

    params, data = {"w": np.array([0.3, -1.2, 0.7], dtype=dtype)}, {"x": np.array([0.5, 1.0, -2.0], dtype=dtype)}
    assert sg.check(right, params, data).ok
    assert {r.verdict for r in sg.check(wrong, params, data).rows} == {"model differs"}


# --- kinks judged by the one-sided slopes, tight tolerances against the exact value -------------------------


@pytest.mark.parametrize("slope, verdict", [(5.0, "backward off kink"), (-1.5, "backward off kink"),
                                            (0.3, "kink"), (-1.0, "kink")])
def test_a_backward_at_a_kink_must_lie_between_the_one_sided_slopes(slope, verdict):
    report = sg.check_backward(lambda x: sg.abs(x), lambda g, x: (slope * g,), (np.array([0.0]),),
                               grad_output=np.array([1.0]))
    assert report.rows[0].verdict == verdict and report.ok == (verdict == "kink")


def test_a_smooth_function_that_looks_like_a_kink_is_judged_by_its_exact_value():
    d = 1e-9
    forward = lambda x: sg.sqrt(x * x + d * d)      # noqa: E731  (smooth; at x = d its slope is 1/sqrt(2))
    wrong = sg.check_backward(forward, lambda g, x: (0.0 * g,), (np.array([d]),), grad_output=np.array([1.0]))
    assert not wrong.ok and wrong.rows[0].verdict == "disagree"
    right = sg.check(forward, {"x": d})
    assert right.ok and right.rows[0].verdict == "ok" and right.rows[0].backprop == pytest.approx(2 ** -0.5)


def test_a_small_change_of_slope_is_a_kink_not_a_failure():
    report = sg.check(lambda x: x + 1e-4 * sg.relu(x), {"x": 0.0})
    assert report.ok and report.rows[0].verdict == "kink"


@pytest.mark.parametrize("forward, derivative, x, error", [
    (lambda x: x ** 2 + 1e8, lambda x: 2 * x, np.array([1.0, 2.0, 3.0]), 1.01),         # a large |L|
    (sg.tanh, lambda x: 1 - np.tanh(x) ** 2, np.linspace(-1, 1, 4).astype(np.float32), 1.05),
])
def test_backprop_is_judged_against_the_exact_value_without_finite_difference_tolerance(forward, derivative, x,
                                                                                        error):
    right = sg.check_backward(forward, lambda g, x: (g * derivative(x),), (x,))
    wrong = sg.check_backward(forward, lambda g, x: (g * error * derivative(x),), (x,))
    assert right.ok, str(right)
    assert right.dtype == x.dtype.name and all(r.verdict == "backward wrong" for r in wrong.rows), str(wrong)


def test_a_small_gradient_is_not_hidden_by_a_large_one():
    def forward(a, b):
        return 1e6 * a + 1e-3 * b ** 2

    report = sg.check_backward(forward, lambda g, a, b: (g * 1e6, g * 0.0), (np.array([1.0]), np.array([1.0])),
                               grad_output=np.array([1.0]))
    assert {r.name: r.verdict for r in report.rows} == {"a": "ok", "b": "backward wrong"}


def test_float32_weights_with_float64_data_get_float32_tolerances():
    w = np.array([0.5, -1.2, 2.0], dtype=np.float32)
    report = sg.check(lambda w, x: sg.sum(sg.tanh(w * x) ** 3), {"w": w}, {"x": np.linspace(-1, 1, 3)})
    assert report.ok and report.dtype == "float32", str(report)


def test_disagree_says_which_two_methods_differ():
    report = sg.check_backward(lambda x: sg.log(1 + sg.exp(1e8 * x)) / 1e8, lambda g, x: (0.9 * g,),
                               (np.array([0.0]),), grad_output=np.array([1.0]))
    assert report.rows[0].verdict == "disagree"
    assert "disagree: exact and backward differ (no finite diff value to tell which one is wrong)" in str(report)


# --- the exact value of a batch loss ------------------------------------------------------------------------


def test_a_loss_over_some_of_the_samples_gets_its_exact_gradient():
    x, y = np.linspace(-1, 1, 50), np.linspace(0, 1, 50)
    report = sg.check(lambda w, x, y: sg.mean((w * x[:10] - y[:10]) ** 2), {"w": 0.5}, {"x": x, "y": y})
    assert report.ok and report.reference == "symbolic", str(report)
    assert report.rows[0].symbolic == pytest.approx(np.mean(2 * (0.5 * x[:10] - y[:10]) * x[:10]), rel=1e-12)


@pytest.mark.parametrize("loss, gradient", [
    (lambda w, x, y: (w * x[1] - y[1]) ** 2 + sg.mean((w * x - y) ** 2), 0.5),          # indexes a sample
    (lambda w, x, y: sg.sum((w * x - y) ** 2) * (1 / (len(x) - 1)), 0.0),               # divides by n - 1
])
def test_a_loss_that_is_not_a_mean_of_samples_is_derived_whole(loss, gradient):
    x, y = np.linspace(-1, 1, 5), np.linspace(0, 1, 5)
    report = sg.check(loss, {"w": 0.5}, {"x": x, "y": y})
    assert report.ok and report.reference == "symbolic" and not report.notes, str(report)
    assert report.rows[0].symbolic == pytest.approx(gradient, abs=1e-12)


# --- inputs the check must refuse, and dict inputs in any order ----------------------------------------------


@pytest.mark.parametrize("loss, point", [(lambda w: sg.log(w), -1.0), (lambda w: sg.sqrt(w), -2.0), (lambda w: sg.log(w) - sg.log(w), 0.0)])
def test_a_loss_that_is_nan_at_the_point_is_refused(loss, point):
    with pytest.raises(ValueError, match="loss is nan"):
        sg.check(loss, {"w": point})


def test_an_empty_weight_is_refused():
    with pytest.raises(ValueError, match="'w' is an empty array"):
        sg.check(lambda w: sg.sum(w), {"w": np.array([])})


@pytest.mark.parametrize("tolerance", [{"rtol": np.inf}, {"atol": np.inf}, {"rtol": np.nan}, {"atol": -1.0}])
def test_tolerances_must_be_finite_and_non_negative(tolerance):
    with pytest.raises(ValueError, match="finite non-negative"):
        sg.check(lambda w: w ** 2, {"w": 1.0}, **tolerance)


@settings(max_examples=10, deadline=None)
@given(st.permutations(["a", "b", "c"]))
def test_check_backward_takes_a_dict_keyed_by_forward_parameters_in_any_order(order):
    values = {"a": np.array([1.0, 2.0]), "b": np.array([5.0, 7.0]), "c": np.array([-1.0, 0.5])}
    inputs = {name: values[name] for name in order}

    def forward(a, b, c):
        return 2 * a + 3 * b + a * c

    right = sg.check_backward(forward, lambda g, a, b, c: (g * (2 + c), 3 * g, g * a), inputs)
    assert right.ok, str(right)
    assert {r.name: r.backprop for r in right.rows if r.index == (1,)} == pytest.approx(
        {"a": (2 + 0.5) * right_cotangent(forward, values)[1], "b": 3 * right_cotangent(forward, values)[1],
         "c": 2.0 * right_cotangent(forward, values)[1]})
    swapped = sg.check_backward(forward, lambda g, a, b, c: (3 * g, g * (2 + c), g * a), inputs)
    assert {r.name for r in swapped.failures} == {"a", "b"}


def right_cotangent(forward, values):
    """The cotangent check_backward draws by default (a fixed random array of the output's shape)."""
    return np.random.default_rng(0).standard_normal(np.shape(forward(**values)))


def test_check_backward_refuses_a_dict_mixing_parameter_names_and_labels():
    with pytest.raises(ValueError, match="key them all"):
        sg.check_backward(lambda a, b: a * b, lambda g, a, b: (g * b, g * a), {"b": np.ones(2), "x": np.ones(2)})


# --- an exact value whose float64 evaluation loses digits ------------------------------------------------------


def sinc_backward(g, x):
    return g * (np.cos(x) / x - np.sin(x) / x ** 2)


@pytest.mark.parametrize("fd_method", ["central", "complex"])
def test_rounding_in_the_exact_formula_is_not_blamed_on_the_model(fd_method):
    # d/dx sin(x)/x = (x cos x - sin x)/x**2 = -x/3 + x**3/30 - ...: in float64 its formula (and backprop, which
    # evaluates the same terms) cancels ~1e5 to ~3e-6 and keeps only 5 or 6 digits.
    report = sg.check(lambda x: sg.sin(x) / x, {"x": 1e-5}, fd_method=fd_method)
    assert report.ok, str(report)
    assert report.rows[0].symbolic == pytest.approx(-1e-5 / 3 + 1e-15 / 30, rel=1e-12)
    assert any("loses digits" in note for note in report.notes)


def test_a_real_error_near_the_rounding_of_the_exact_formula_still_fails():
    x = np.array([1e-5, 0.5])
    right = sg.check_backward(lambda x: sg.sin(x) / x, sinc_backward, (x,))
    assert right.ok, str(right)
    wrong = sg.check_backward(lambda x: sg.sin(x) / x, lambda g, x: sinc_backward(g, x) * (1 + 1e-4), (x,))
    assert {r.element for r in wrong.failures} == {"x[0]", "x[1]"}


# --- finite differences that know their own error ------------------------------------------------------------


def test_the_default_check_allows_the_finite_differences_their_own_error_estimate():
    # sin(3e5 x) turns 2.3 radians over the default central step 7.6e-6: the step is made 256 times
    # smaller, where its truncation error (h k)**2 / 6 is still ~1.3e-5: a sound estimate, not a
    # disagreement, as long as the step and tolerances are the defaults.
    k = 3e5
    report = sg.check(lambda x: sg.sin(k * x), {"x": 0.3})
    (row,) = report.rows
    assert report.ok and row.verdict == "ok", str(report)
    assert row.symbolic == pytest.approx(k * math.cos(k * 0.3), rel=1e-9)
    h = 2.0 ** -25
    assert row.rel_error["finite_diff"] == pytest.approx((h * k) ** 2 / 6, rel=0.05)
    assert "own error estimate" in report.tolerance_text()
    strict = sg.check(lambda x: sg.sin(k * x), {"x": 0.3}, rtol=1e-7)
    assert strict.rows[0].verdict == "fd off" and "own error estimate" not in strict.tolerance_text()


def test_a_float32_relu_net_with_a_pre_activation_at_zero_is_checked_with_its_kinks():
    w = np.array([[1.0, -0.5], [0.5, 0.25]], np.float32)
    b, v = np.array([0.0, 0.1], np.float32), np.array([0.7, -1.3], np.float32)
    x = np.array([1.0, 2.0], np.float32)                  # W[0] @ x + b[0] is exactly 0
    report = sg.check(lambda w, b: sg.sum(v * sg.relu(w @ x + b)) + 1, {"w": w, "b": b})
    assert report.ok, str(report)
    assert any("kink" in note for note in report.notes), report.notes


def test_a_sound_truncation_error_is_allowed_without_shortening_the_step():
    # At x = 700 the default central step is 4e-3 and its truncation error h**2/6 ~ 2.5e-6 of e**700:
    # below 1e-5, a shorter step is not worth it; the estimate is allowed its own error estimate.
    report = sg.check(lambda x: sg.exp(x), {"x": 700.0})
    (row,) = report.rows
    assert report.ok and row.verdict == "ok", str(report)
    assert 1e-7 < row.rel_error["finite_diff"] < 1e-5


def test_finite_differences_that_do_not_settle_near_a_pole_are_left_out_not_trusted():
    report = sg.check(lambda x: 1.0 / x, {"x": 1e-6})
    (row,) = report.rows
    assert report.ok and row.backprop == pytest.approx(-1e12, rel=1e-12)
    assert math.isnan(row.finite_diff) and "finite_diff" not in row.abs_error
    assert any("do not settle at x" in note for note in report.notes)


def test_a_derivative_float64_cannot_resolve_is_not_passed_on_agreement_of_two_float64_values():
    # d/dw (1 - cos w)/w**2 = -w/12 + ... ~ -8.3e-7 at 1e-5, but its float64 formula (and backprop) give ~ -8e-3
    report = sg.check(lambda w: (1 - sg.cos(w)) / w ** 2, {"w": 1e-5})
    (row,) = report.rows
    assert not report.ok and row.symbolic == pytest.approx(-1e-5 / 12, rel=1e-9)
    assert any("cannot resolve" in note for note in report.notes)
    zero = sg.check_backward(lambda w: (1 - sg.cos(w)) / w ** 2, lambda g, w: (g * 0.0,), np.array([1e-5]))
    assert not zero.ok


def test_coarse_finite_differences_do_not_pass_a_wrong_gradient_through_their_error_estimate():
    c = 0.9999                       # a pole 1e-4 from x = 1: the default step's estimate is ~0.6 % off
    def backward(scale):
        return lambda g, x: (g * (-1 / (x - c) ** 2) * scale,)
    wrong = sg.check_backward(lambda x: 1 / (x - c), backward(1.01), np.array([1.0]), exact=False)
    assert not wrong.ok

"""sg.descend and Trajectory: closed-form paths, the notes' regressions, mini-batches, optimizers, divergence."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symgrad as sg
from symgrad.descent import DIVERGENCE_FACTOR, METHODS, OPTIMIZERS, Trajectory, descend

X = np.linspace(-1.0, 1.0, 8)
Y = 2.0 * X + 1.0 + 0.1 * np.cos(5.0 * X)


def regression(w, b, x, y):
    """The notes' linear regression ŷ = x·w + b with the mean squared error."""
    return sg.mean((x * w + b - y) ** 2)


def regression_gradient(w: float, b: float, x: np.ndarray, y: np.ndarray) -> tuple:
    """Hand-derived: dC/dw = 2/q Σ (ŷ - y) x, dC/db = 2/q Σ (ŷ - y)."""
    residual = x * w + b - y
    return 2 * np.mean(residual * x), 2 * np.mean(residual)


# --- the notes' examples --------------------------------------------------------------------------------


def test_notes_linear_regression_follows_the_closed_form_and_converges():
    # L = (w·x - y)² at x = 1, y = 2: w(k) - 2 = (1 - 2·lr)^k (w(0) - 2); the first gradient is the notes' -2.
    example = sg.examples.get("linear_regression")
    traj = descend(example.loss, example.params, example.data, lr=0.1, steps=60)
    k = np.arange(61)
    np.testing.assert_allclose(traj.path("w"), 2 + 0.8 ** k * (1.0 - 2.0), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(traj.losses, (0.8 ** k) ** 2, rtol=1e-12, atol=1e-14)
    assert traj.grad_norms[0] == pytest.approx(2.0)          # |dL/dw| = |-2| at the notes' start
    assert traj.final["w"] == pytest.approx(2.0, abs=1e-5)
    assert traj.stopped is None and traj.steps == 60 and traj.method == "reverse"


def test_two_weight_regression_reaches_least_squares():
    traj = descend(regression, {"w": 0.0, "b": 0.0}, {"x": X, "y": Y}, lr=0.4, steps=400)
    slope, intercept = np.polyfit(X, Y, 1)
    assert traj.final["w"] == pytest.approx(slope, abs=1e-8)
    assert traj.final["b"] == pytest.approx(intercept, abs=1e-8)
    assert np.all(np.diff(traj.losses) <= 1e-15)              # a good learning rate only goes down


def test_each_step_is_the_notes_update_with_the_hand_derived_gradient():
    traj = descend(regression, {"w": -1.0, "b": 0.5}, {"x": X, "y": Y}, lr=0.3, steps=5)
    for before, after, norm in zip(traj.params, traj.params[1:], traj.grad_norms):
        gw, gb = regression_gradient(before["w"], before["b"], X, Y)
        assert after["w"] == pytest.approx(before["w"] - 0.3 * gw, rel=1e-13)
        assert after["b"] == pytest.approx(before["b"] - 0.3 * gb, rel=1e-13)
        assert norm == pytest.approx(math.hypot(gw, gb), rel=1e-13)


@pytest.mark.parametrize("method", ["symbolic", "finite_diff"])
def test_every_gradient_source_gives_the_backprop_path(method):
    reference = descend(regression, {"w": -1.0, "b": -1.0}, {"x": X, "y": Y}, lr=0.4, steps=15)
    traj = descend(regression, {"w": -1.0, "b": -1.0}, {"x": X, "y": Y}, lr=0.4, steps=15, method=method)
    assert traj.method == method
    for name in ("w", "b"):
        np.testing.assert_allclose(traj.path(name), reference.path(name), rtol=1e-7, atol=1e-9)


def test_a_coarse_forward_difference_drifts_from_the_exact_path():
    reference = descend(regression, {"w": -1.0, "b": -1.0}, {"x": X, "y": Y}, lr=0.4, steps=15)
    coarse = descend(regression, {"w": -1.0, "b": -1.0}, {"x": X, "y": Y}, lr=0.4, steps=15,
                     method="finite_diff", fd_method="forward", h=0.5)
    assert abs(coarse.final["w"] - reference.final["w"]) > 1e-2


# --- mini-batches ---------------------------------------------------------------------------------------


def test_mini_batches_use_the_gradient_of_each_batch_in_order_and_cycle():
    traj = descend(regression, {"w": 0.0, "b": 0.0}, {"x": X, "y": Y}, lr=0.2, steps=6, batch_size=3)
    w, b = 0.0, 0.0
    batches = [slice(0, 3), slice(3, 6), slice(6, 8)]          # 8 rows: 3 + 3 + 2, then again from the start
    for step in range(6):
        rows = batches[step % 3]
        gw, gb = regression_gradient(w, b, X[rows], Y[rows])
        w, b = w - 0.2 * gw, b - 0.2 * gb
        assert traj.params[step + 1]["w"] == pytest.approx(w, rel=1e-13)
        assert traj.params[step + 1]["b"] == pytest.approx(b, rel=1e-13)
    # the recorded loss is the loss on all the data at each point
    assert traj.losses[3] == pytest.approx(float(regression(traj.params[3]["w"], traj.params[3]["b"], X, Y)))


def test_the_notes_mini_batch_of_two_sums_the_per_sample_gradients():
    example = sg.examples.get("mini_batch")
    traj = descend(example.loss, example.params, example.data, lr=0.01, steps=1, batch_size=2)
    for name in ("w", "b"):
        expected = np.asarray(example.params[name]) - 0.01 * np.asarray(example.expected[name])
        np.testing.assert_allclose(traj.final[name], expected, rtol=1e-12)


def test_batch_size_errors_name_the_problem():
    with pytest.raises(ValueError, match="batch_size must be an integer between 1 and 8"):
        descend(regression, {"w": 0.0, "b": 0.0}, {"x": X, "y": Y}, batch_size=9)
    with pytest.raises(ValueError, match="same number of rows"):
        descend(regression, {"w": 0.0, "b": 0.0}, {"x": X, "y": Y[:5]}, batch_size=2)
    with pytest.raises(ValueError, match="needs data arrays"):
        descend(lambda w: w ** 2, {"w": 1.0}, batch_size=2)


# --- optimizers -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_optimizers_match_torch(optimizer):
    torch = pytest.importorskip("torch")
    start = np.array([1.5, -0.5])
    target = np.array([0.3, 0.7])
    lr = 0.05
    traj = descend(lambda w: sg.sum((w - target) ** 4 + w ** 2), {"w": start}, lr=lr, steps=25, optimizer=optimizer)
    w = torch.tensor(start, requires_grad=True, dtype=torch.float64)
    make = {"sgd": lambda p: torch.optim.SGD(p, lr=lr), "momentum": lambda p: torch.optim.SGD(p, lr=lr, momentum=0.9),
            "adam": lambda p: torch.optim.Adam(p, lr=lr, betas=(0.9, 0.999), eps=1e-8)}[optimizer]
    opt = make([w])
    for step in range(25):
        opt.zero_grad()
        (((w - torch.tensor(target)) ** 4 + w ** 2).sum()).backward()
        opt.step()
        np.testing.assert_allclose(traj.params[step + 1]["w"], w.detach().numpy(), rtol=1e-12, atol=1e-14)
    assert traj.optimizer == optimizer


def test_momentum_converges_where_plain_descent_crawls():
    loss = lambda w, b: 0.01 * w ** 2 + b ** 2  # noqa: E731  (badly conditioned)
    slow = descend(loss, {"w": 5.0, "b": 1.0}, lr=0.4, steps=100)
    fast = descend(loss, {"w": 5.0, "b": 1.0}, lr=0.4, steps=100, optimizer="momentum")
    assert fast.losses[-1] < 1e-3 * slow.losses[-1]


# --- divergence -----------------------------------------------------------------------------------------


def first_runaway_step(loss0: float, q: float) -> int:
    """SGD on a·(x - c)² multiplies x - c by q = 1 - 2a·lr, so L(k) = L0·q^(2k). With |q| > 1 the loss only
    rises, L(1) = L0·q² is the scale, and the documented rule stops at the first k with
    L(k) - L0 > DIVERGENCE_FACTOR·L(1)."""
    k = 2
    while loss0 * q ** (2 * k) - loss0 <= DIVERGENCE_FACTOR * loss0 * q ** 2:
        k += 1
    return k


@pytest.mark.parametrize("a, c, start, lr", [
    (1.0, 0.0, 5.0, 1.5),          # x ← -2x
    (1.0, 2.0, 0.0, 10.0),         # the notes' (w·1 - 2)², lr 10: w - 2 ← -19 (w - 2)
    (1.0, 0.0, 5.0, 1.05),         # just past the limit lr = 1: |q| = 1.1, a slow divergence
])
def test_divergence_stops_long_before_overflow_at_the_closed_form_step(a, c, start, lr):
    steps = 2000
    traj = descend(lambda x: a * (x - c) ** 2, {"x": start}, lr=lr, steps=steps)
    q = 1 - 2 * a * lr
    loss0 = a * (start - c) ** 2
    k = first_runaway_step(loss0, q)
    assert traj.steps == k - 1
    assert traj.stopped == (f"stopped at step {k} of {steps}: the loss rose from {loss0:.3g} to "
                            f"{loss0 * q ** (2 * k):.3g}, the descent diverged; "
                            f"try a learning rate smaller than {lr:g}")
    np.testing.assert_allclose(traj.path("x"), c + q ** np.arange(k) * (start - c), rtol=1e-12)
    assert np.all(np.isfinite(traj.losses)) and traj.losses.max() < 1e20
    assert len(traj.losses) == len(traj.params) == len(traj.grad_norms) + 1


def test_the_cli_example_with_lr_10_stops_at_step_4():
    # (w - 2)² from w = 0: L(k) = 4·361^k; the scale is L(1) = 1444 and 4·361^4 - 4 > 1e6·1444 > 4·361^3 - 4
    traj = descend(lambda w, x, y: (w * x - y) ** 2, {"w": 0.0}, {"x": 1.0, "y": 2.0}, lr=10.0, steps=50)
    assert traj.steps == 3 and traj.stopped.startswith("stopped at step 4 of 50: the loss rose from 4 to 6.79e+10")


@pytest.mark.parametrize("optimizer", ["sgd", "momentum"])
def test_divergence_with_momentum_is_caught_too(optimizer):
    traj = descend(lambda x: x ** 2, {"x": 5.0}, lr=2.5, steps=1000, optimizer=optimizer)
    assert traj.stopped and "the loss rose from 25 to" in traj.stopped and "smaller than 2.5" in traj.stopped
    assert traj.steps < 20 and np.all(np.isfinite(traj.losses))


def test_a_loss_that_starts_negative_or_at_zero_still_diverges_with_a_message():
    negative = descend(lambda w: w ** 2 - 1, {"w": 0.5}, lr=1.5, steps=100)     # w ← -2w, L0 = -0.75
    assert negative.stopped and "the loss rose from -0.75 to" in negative.stopped and negative.steps < 20
    zero = descend(lambda w: w ** 2 - 1, {"w": 1.0}, lr=5.0, steps=100)          # w ← -9w, L0 = 0
    assert zero.stopped and "the loss rose from 0 to" in zero.stopped and zero.steps < 20


@pytest.mark.parametrize("loss, start, lr, optimizer", [
    # Adam's first step moves w by lr whatever the gradient: from 1e-4 off the minimum the loss jumps
    # 2.5e7-fold at step 1 (L0 = 1e-8, L1 ≈ 0.25), then converges
    (lambda w: (w - 1) ** 2, {"w": 1.0001}, 0.5, "adam"),
    # starts at L = 0 by chance and goes negative, towards the minimum -1, oscillating with momentum
    (lambda w: w ** 2 - 1, {"w": 1.0}, 0.5, "momentum"),
    # lr just below the limit 1/a = 1: x ← -0.98x flips sign at every step and shrinks slowly
    (lambda w: w ** 2, {"w": 3.0}, 0.99, "sgd"),
    # already at the minimum, loss 0 and gradient 0: nothing moves
    (lambda w: (w - 2) ** 2, {"w": 2.0}, 0.5, "sgd"),
])
def test_converging_descents_with_rises_or_a_zero_start_are_not_stopped(loss, start, lr, optimizer):
    traj = descend(loss, start, lr=lr, steps=3000, optimizer=optimizer)
    assert traj.stopped is None and traj.steps == 3000
    assert traj.losses[-1] <= traj.losses[0]


def test_the_adam_case_does_rise_far_above_its_start():
    traj = descend(lambda w: (w - 1) ** 2, {"w": 1.0001}, lr=0.5, steps=3, optimizer="adam")
    g = 2 * 1e-4                                                               # dL/dw at the start
    assert traj.path("w")[1] == pytest.approx(1.0001 - 0.5 * g / (g + 1e-8), rel=1e-12)   # m̂ = g, v̂ = g²
    assert traj.losses[1] > DIVERGENCE_FACTOR * traj.losses[0]


def test_the_notes_too_large_learning_rate_oscillates_without_being_stopped():
    traj = descend(regression, {"w": -1.0, "b": -1.0}, {"x": X, "y": Y}, lr=0.95, steps=100)
    assert traj.stopped is None and traj.losses[-1] < traj.losses[0]
    moves = np.sign(np.diff(traj.path("b")))
    assert np.all(moves[1:] == -moves[:-1])                     # b zigzags across the valley at every step


@pytest.mark.parametrize("loss, start, reason", [
    (lambda x: sg.log(x), -1.0, "is nan: outside the domain of the loss"),
    (lambda x: 1 / x, 0.0, "is inf: the loss is infinite there"),
    (lambda x: x ** 2, 1e200, "is inf: the loss is infinite there"),      # the gradient 2e200 is finite
])
def test_a_non_finite_start_is_refused_with_the_reason(loss, start, reason):
    with pytest.raises(ValueError, match=f"the loss at the starting point {reason}"):
        descend(loss, {"x": start})


# --- dtypes ---------------------------------------------------------------------------------------------


def batch_loss(w, x):
    """L = Σ (x·w)²; with x all ones (2 × 3) it is 2 s², s = Σ w, and dL/dw_i = 4 s."""
    return sg.sum((x @ w) ** 2)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("method", METHODS)
def test_float32_weights_stay_float32_at_every_step(method, optimizer):
    w0 = np.array([0.5, -0.25, 1.0], np.float32)
    traj = descend(batch_loss, {"w": w0}, {"x": np.ones((2, 3), np.float32)}, lr=0.01, steps=3, method=method,
                   optimizer=optimizer)
    assert traj.stopped is None and traj.steps == 3
    assert [p["w"].dtype for p in traj.params] == [np.float32] * 4
    assert traj.path("w").dtype == np.float32 and traj.losses.dtype == np.float32
    assert traj.grad_norms.dtype == np.float64                        # the norm is summed in float64
    assert traj.losses[0] == pytest.approx(2 * 1.25 ** 2)
    g = 4 * 1.25                                                      # dL/dw_i at the start
    first = w0 - 0.01 * g if optimizer != "adam" else w0 - 0.01 * g / (abs(g) + 1e-8)
    np.testing.assert_allclose(traj.params[1]["w"], first, rtol=1e-5)   # momentum's first step is sgd's


@pytest.mark.parametrize("method", METHODS)
def test_a_float32_scalar_and_float64_data_keep_the_weight_float32(method):
    traj = descend(lambda w, x, y: (w * x - y) ** 2, {"w": np.float32(0.0)}, {"x": 1.0, "y": 2.0}, lr=0.1,
                   steps=2, method=method)
    assert [type(p["w"]) for p in traj.params] == [np.float32] * 3
    np.testing.assert_allclose(traj.path("w"), [0.0, 0.4, 0.72], rtol=1e-5)   # w ← w - 0.1·2(w - 2)


def test_python_numbers_and_lists_become_float64_and_complex_is_refused():
    traj = descend(lambda w, v: w ** 2 + sg.sum(v ** 2), {"w": 3, "v": [1, 2]}, lr=0.25, steps=1)
    assert type(traj.final["w"]) is float and traj.final["w"] == 1.5
    assert traj.final["v"].dtype == np.float64 and traj.final["v"].tolist() == [0.5, 1.0]
    assert descend(lambda w: sg.sum(w ** 2), {"w": np.ones(2)}, steps=1).final["w"].dtype == np.float64
    with pytest.raises(TypeError, match="param 'w' must be real, not complex"):
        descend(lambda w: w ** 2, {"w": np.array([1 + 1j])})


# --- properties -----------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(a=st.floats(0.1, 10), c=st.floats(-5, 5), start=st.floats(-5, 5), fraction=st.floats(0.01, 0.99))
def test_sgd_on_a_parabola_is_geometric(a, c, start, fraction):
    lr = fraction / a                                          # 0 < lr < 1/a: monotone convergence
    traj = descend(lambda x: a * (x - c) ** 2, {"x": start}, lr=lr, steps=12)
    k = np.arange(13)
    np.testing.assert_allclose(traj.path("x"), c + (1 - 2 * a * lr) ** k * (start - c), rtol=1e-10, atol=1e-10)
    assert traj.stopped is None


@settings(max_examples=25, deadline=None)
@given(shape=st.sampled_from([(2,), (3,), (2, 2)]), steps=st.integers(0, 4))
def test_array_weights_keep_their_shape(shape, steps):
    w0 = np.arange(np.prod(shape), dtype=float).reshape(shape)
    traj = descend(lambda w: sg.sum(w ** 2), {"w": w0}, lr=0.25, steps=steps)
    assert all(p["w"].shape == shape for p in traj.params)
    np.testing.assert_allclose(traj.final["w"], w0 * 0.5 ** steps)
    assert traj.path("w").shape == (steps + 1,) + shape
    assert np.shares_memory(traj.params[0]["w"], w0) is False


# --- inputs and outputs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, error, message", [
    ({"lr": 0.0}, ValueError, "lr must be a positive"),
    ({"lr": float("nan")}, ValueError, "lr must be a positive"),
    ({"lr": "fast"}, TypeError, "lr must be a number"),
    ({"steps": -1}, ValueError, "steps must be a non-negative integer"),
    ({"steps": 2.5}, ValueError, "steps must be a non-negative integer"),
    ({"method": "magic"}, ValueError, "method must be one of reverse, symbolic, finite_diff"),
    ({"optimizer": "rmsprop"}, ValueError, "optimizer must be one of sgd, momentum, adam"),
])
def test_bad_settings_get_one_clear_error(kwargs, error, message):
    with pytest.raises(error, match=message):
        descend(lambda x: x ** 2, {"x": 1.0}, **kwargs)


def test_bad_params_and_data_get_clear_errors():
    with pytest.raises(TypeError, match="non-empty dict"):
        descend(lambda x: x ** 2, {})
    with pytest.raises(TypeError, match="param 'x' must be a number"):
        descend(lambda x: x ** 2, {"x": "one"})
    with pytest.raises(ValueError, match="x given both as a param and as data"):
        descend(lambda x: x ** 2, {"x": 1.0}, {"x": 2.0})
    with pytest.raises(TypeError, match="f must be a function"):
        descend("x**2", {"x": 1.0})
    with pytest.raises(ValueError, match="loss must be a scalar"):
        descend(lambda x: x * np.ones(3), {"x": 1.0}, steps=0)


def test_trajectory_exports():
    traj = descend(lambda w, x, y: (w * x - y) ** 2, {"w": 1.0}, {"x": 1.0, "y": 2.0}, lr=0.1, steps=10)
    assert isinstance(traj, Trajectory) and isinstance(sg.Trajectory, type)
    payload = json.loads(json.dumps(traj.to_dict()))
    assert payload["losses"][0] == 1.0 and len(payload["params"]) == 11 and payload["stopped"] is None
    table = traj.to_table(every=5).splitlines()
    assert table[0].split() == ["step", "loss", "|grad|", "w"]
    assert [line.split()[0] for line in table[1:]] == ["0", "5", "10"]
    with pytest.raises(KeyError, match="no param 'b'"):
        traj.path("b")


# --- kinks under finite differences ----------------------------------------------------------------------


def test_finite_diff_descent_takes_the_average_slope_at_a_kink_and_notes_it():
    traj = descend(lambda w: sg.abs(w), {"w": 1.0}, lr=0.5, steps=4, method="finite_diff")
    exact = descend(lambda w: sg.abs(w), {"w": 1.0}, lr=0.5, steps=4, method="reverse")
    assert traj.stopped is None and traj.steps == 4
    assert traj.path("w").tolist() == exact.path("w").tolist() == [1.0, 0.5, 0.0, 0.0, 0.0]
    assert traj.grad_norms[2:].tolist() == [0.0, 0.0]          # the subgradient of |w| at 0: (-1 + 1) / 2
    assert len(traj.notes) == 2 and traj.notes[0].startswith("step 3: w is at a kink")
    assert "-1 and 1" in traj.notes[0]
    assert traj.to_dict()["notes"] == traj.notes


def test_finite_diff_subgradient_of_an_array_param_is_the_mean_of_the_one_sided_slopes():
    traj = descend(lambda w: sg.sum(sg.relu(w)), {"w": np.array([0.0, 1.0])}, lr=0.5, steps=1, method="finite_diff")
    np.testing.assert_allclose(traj.final["w"], [-0.25, 0.5], atol=1e-9)    # relu slopes 0 and 1 at 0: 0.5
    assert traj.notes == ["step 1: w[0] is at a kink of the loss (one-sided slopes 0 and 1): used their average 0.5"]
    assert descend(lambda w: sg.sum(w ** 2), {"w": np.array([1.0])}, steps=3, method="finite_diff").notes == []


def test_finite_differences_that_do_not_settle_stop_the_descent_with_a_clear_error():
    # 1/w at 1e-6: the default step 7.6e-6 straddles the pole, so no finite-difference gradient exists
    with pytest.raises(ValueError, match="do not settle at w"):
        sg.descend(lambda w: 1.0 / w, {"w": 1e-6}, method="finite_diff", steps=2)

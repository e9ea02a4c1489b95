"""The reverse-mode engine's graph bookkeeping, ordering and cross-entropy.

Every expected gradient comes from an oracle that does not touch the engine's
backward rules: a closed form derived by hand in the test, or central finite
differences (float64) of the same computation written in plain NumPy here.

Covered: leaves created after other ops (the creation-order heap), requires_grad_
and the requires_grad setter, backward twice with and without retain_graph
(no partial accumulation on failure), retain_grad on intermediates, diamonds and
heavily shared nodes, the rewritten cross_entropy, and unbroadcast on many shape
pairs, plus hypothesis properties on broadcasting and on random graphs in which
leaves are created in between the ops.
"""
from __future__ import annotations

import operator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import symgrad as sg

RNG = np.random.default_rng(314159)
FAST = settings(max_examples=30, deadline=None)


def rand(*shape, low=-1.5, high=1.5):
    return RNG.uniform(low, high, size=shape)


def central_diff(f, x, rel_step=1e-6):
    """Central-difference gradient of the real scalar ``f`` at ``x`` (float64), coordinate by coordinate."""
    x = np.array(x, dtype=np.float64)
    grad = np.empty(x.shape)
    for i in np.ndindex(x.shape):
        h = rel_step * max(1.0, abs(x[i]))
        up, down = x.copy(), x.copy()
        up[i] += h
        down[i] -= h
        grad[i] = (float(f(up)) - float(f(down))) / (2 * h)
    return grad


def assert_fd(got, f, x, rtol=1e-6, atol=1e-8, msg=""):
    assert got is not None, f"no gradient: {msg}"
    x = np.asarray(x, dtype=np.float64)
    assert np.shape(got) == x.shape, f"gradient shape {np.shape(got)} != {x.shape}: {msg}"
    np.testing.assert_allclose(got, central_diff(f, x), rtol=rtol, atol=atol, err_msg=msg)


# ---------------------------------------------------------------------------------------------
# 1. Leaves created after other ops
# ---------------------------------------------------------------------------------------------

def test_leaf_created_after_ops_gets_correct_gradient():
    xv, wv = np.array([1.0, -2.0, 3.0]), np.array([0.5, -1.0, 4.0])
    x = sg.tensor(xv, requires_grad=True)
    a = x * 2
    w = sg.tensor(wv, requires_grad=True)        # created after a
    loss = (a * w).sum()
    loss.backward()
    np.testing.assert_allclose(x.grad, 2 * wv, rtol=0, atol=1e-15)
    np.testing.assert_allclose(w.grad, 2 * xv, rtol=0, atol=1e-15)


def test_late_leaf_with_intermediate_consumed_before_and_after_it():
    # a feeds b (built before w) and a*w (built after w); a's gradient must collect both
    # before it is propagated to x.
    xv, wv = rand(4), rand(4)
    x = sg.tensor(xv, requires_grad=True)
    a = sg.tanh(x) * x
    b = a * 3.0
    w = sg.tensor(wv, requires_grad=True)
    c = a * w
    d = c + a * a
    loss = (b + d).sum() + (w * w * a).sum()
    loss.backward()

    def f_x(v):
        av = np.tanh(v) * v
        return np.sum(3 * av + av * wv + av * av + wv * wv * av)

    def f_w(v):
        av = np.tanh(xv) * xv
        return np.sum(3 * av + av * v + av * av + v * v * av)

    assert_fd(x.grad, f_x, xv, msg="x")
    assert_fd(w.grad, f_w, wv, msg="w")


def test_several_leaves_created_at_different_times_in_a_chain():
    # x0 -> h1 ; x1 created ; h2 = h1 * x1 ; x2 created ; h3 = sin(h2 + x2) * x0
    v0, v1, v2 = rand(3), rand(3), rand(3)
    x0 = sg.tensor(v0, requires_grad=True)
    h1 = sg.exp(x0 * 0.5)
    x1 = sg.tensor(v1, requires_grad=True)
    h2 = h1 * x1
    x2 = sg.tensor(v2, requires_grad=True)
    h3 = sg.sin(h2 + x2) * x0
    h3.sum().backward()

    def f(a, b, c):
        return np.sum(np.sin(np.exp(a * 0.5) * b + c) * a)

    assert_fd(x0.grad, lambda v: f(v, v1, v2), v0, msg="x0")
    assert_fd(x1.grad, lambda v: f(v0, v, v2), v1, msg="x1")
    assert_fd(x2.grad, lambda v: f(v0, v1, v), v2, msg="x2")


# ---------------------------------------------------------------------------------------------
# 2. requires_grad_() on a result computed without grad
# ---------------------------------------------------------------------------------------------

def test_requires_grad_on_a_no_grad_result_makes_it_a_leaf():
    xv = rand(3)
    x = sg.tensor(xv)                       # no grad
    y = sg.exp(x) * 2.0
    assert not y.requires_grad and y.is_leaf and y.op is None
    assert y.requires_grad_() is y
    assert y.requires_grad and y.is_leaf
    yv = 2 * np.exp(xv)
    loss = (y * y).sum() + y.sum()
    loss.backward()
    np.testing.assert_allclose(y.grad, 2 * yv + 1, rtol=1e-14)
    assert x.grad is None


def test_requires_grad_on_a_detached_result_stops_gradient_upstream():
    xv = rand(3)
    x = sg.tensor(xv, requires_grad=True)
    y = (x * x).detach()
    assert not y.requires_grad and y.is_leaf
    y.requires_grad_()
    loss = (y * x).sum()                    # y is now a leaf created after x
    loss.backward()
    np.testing.assert_allclose(y.grad, xv, rtol=0, atol=0)
    np.testing.assert_allclose(x.grad, xv * xv, rtol=1e-15)   # only the direct path: y is a constant w.r.t. x


def test_requires_grad_no_grad_result_mixed_into_an_older_graph():
    xv, zv = rand(2, 3), rand(2, 3)
    x = sg.tensor(xv, requires_grad=True)
    h = sg.tanh(x)                          # recorded, created before z
    z = sg.tensor(zv) * 1.5                 # computed without grad ...
    z.requires_grad = True                  # ... then turned into a leaf (setter)
    loss = (h * z + z * z).sum()
    loss.backward()
    np.testing.assert_allclose(x.grad, (1 - np.tanh(xv) ** 2) * 1.5 * zv, rtol=1e-13)
    np.testing.assert_allclose(z.grad, np.tanh(xv) + 2 * 1.5 * zv, rtol=1e-13)


# ---------------------------------------------------------------------------------------------
# 3. The requires_grad setter
# ---------------------------------------------------------------------------------------------

def test_requires_grad_setter_turns_recording_on():
    tv = np.array([1.0, -2.0, 0.5])
    t = sg.tensor(tv)
    assert t.requires_grad is False
    t.requires_grad = True
    assert t.requires_grad is True and t.is_leaf
    out = (t * t).sum()
    assert out.requires_grad and out.op == "sum"
    out.backward()
    np.testing.assert_array_equal(t.grad, 2 * tv)


def test_requires_grad_setter_and_method_are_equivalent():
    tv = rand(4)
    a, b = sg.tensor(tv), sg.tensor(tv)
    a.requires_grad = True
    b.requires_grad_(True)
    (sg.sin(a) * a).sum().backward()
    (sg.sin(b) * b).sum().backward()
    np.testing.assert_array_equal(a.grad, b.grad)
    np.testing.assert_allclose(a.grad, np.cos(tv) * tv + np.sin(tv), rtol=1e-14)


def test_requires_grad_false_on_a_leaf_stops_recording():
    t = sg.tensor([1.0, 2.0], requires_grad=True)
    t.requires_grad = False
    assert t.requires_grad is False
    out = (t * 3.0).sum()
    assert not out.requires_grad and out.is_leaf and out.op is None and out.inputs == ()
    with pytest.raises(RuntimeError):
        out.backward()
    assert t.grad is None
    # and the method form, then back on: recording resumes with correct gradients
    t.requires_grad_(False)
    assert not (t * 2.0).requires_grad
    t.requires_grad_(True)
    (t * t * t).sum().backward()
    np.testing.assert_array_equal(t.grad, 3 * np.array([1.0, 4.0]))


def test_requires_grad_false_leaves_other_operands_recorded():
    tv, uv = rand(3), rand(3)
    t = sg.tensor(tv, requires_grad=True)
    u = sg.tensor(uv, requires_grad=True)
    t.requires_grad = False
    (t * u).sum().backward()
    assert t.grad is None
    np.testing.assert_array_equal(u.grad, tv)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.bool_])
def test_integer_and_boolean_tensors_refuse_requires_grad(dtype):
    t = sg.tensor(np.array([1, 0, 1], dtype=dtype))
    with pytest.raises(TypeError, match="floating"):
        t.requires_grad = True
    assert t.requires_grad is False
    with pytest.raises(TypeError, match="floating"):
        t.requires_grad_()
    assert t.requires_grad is False
    with pytest.raises(TypeError):
        sg.tensor(np.array([1, 2], dtype=dtype), requires_grad=True)
    t.requires_grad = False                 # turning it off is always allowed
    assert t.requires_grad is False


def test_complex_tensors_may_require_grad():
    t = sg.tensor(np.array([1 + 2j]))
    t.requires_grad = True
    assert t.requires_grad


# ---------------------------------------------------------------------------------------------
# 4. backward twice
# ---------------------------------------------------------------------------------------------

def _two_leaf_loss(xv, yv):
    x = sg.tensor(xv, requires_grad=True)
    y = sg.tensor(yv, requires_grad=True)
    loss = (x * y + sg.tanh(x) * y * y).sum()
    gx = yv + (1 - np.tanh(xv) ** 2) * yv * yv
    gy = xv + 2 * np.tanh(xv) * yv
    return x, y, loss, gx, gy


def test_second_backward_without_retain_graph_raises_and_changes_nothing():
    xv, yv = rand(5), rand(5)
    x, y, loss, gx, gy = _two_leaf_loss(xv, yv)
    loss.backward()
    np.testing.assert_allclose(x.grad, gx, rtol=1e-13)
    np.testing.assert_allclose(y.grad, gy, rtol=1e-13)
    before = x.grad.copy(), y.grad.copy()
    with pytest.raises(RuntimeError, match="retain_graph"):
        loss.backward()
    np.testing.assert_array_equal(x.grad, before[0])
    np.testing.assert_array_equal(y.grad, before[1])


def test_failed_backward_through_a_partly_freed_graph_accumulates_nothing():
    xv, yv, zv = rand(3), rand(3), rand(3)
    x = sg.tensor(xv, requires_grad=True)
    y = sg.tensor(yv, requires_grad=True)
    a = x * y                                   # shared by two losses
    l1 = (a * 2.0).sum() + (x * 3.0).sum()
    z = sg.tensor(zv, requires_grad=True)      # created after a: reached before a is popped
    l2 = (a + z * x).sum()
    l1.backward()                               # frees a
    np.testing.assert_allclose(x.grad, 2 * yv + 3, rtol=1e-14)
    np.testing.assert_allclose(y.grad, 2 * xv, rtol=1e-14)
    gx, gy = x.grad.copy(), y.grad.copy()
    with pytest.raises(RuntimeError, match="retain_graph"):
        l2.backward()
    assert z.grad is None                       # z was reached before the failure: still nothing
    np.testing.assert_array_equal(x.grad, gx)
    np.testing.assert_array_equal(y.grad, gy)
    # nothing leaked into the next, valid pass
    (x * z).sum().backward()
    np.testing.assert_allclose(x.grad, gx + zv, rtol=1e-14)
    np.testing.assert_allclose(z.grad, xv, rtol=0)
    np.testing.assert_array_equal(y.grad, gy)


def test_retain_graph_accumulates_exactly_twice_then_frees():
    xv, yv = rand(2, 3), rand(2, 3)
    x, y, loss, gx, gy = _two_leaf_loss(xv, yv)
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_allclose(x.grad, 2 * gx, rtol=1e-13)
    np.testing.assert_allclose(y.grad, 2 * gy, rtol=1e-13)
    with pytest.raises(RuntimeError, match="retain_graph"):
        loss.backward()
    np.testing.assert_allclose(x.grad, 2 * gx, rtol=1e-13)


def test_retain_graph_three_times_with_explicit_seed():
    xv = rand(4)
    x = sg.tensor(xv, requires_grad=True)
    y = sg.sin(x) * x
    g = rand(4)
    for _ in range(3):
        y.backward(g, retain_graph=True)
    np.testing.assert_allclose(x.grad, 3 * g * (np.cos(xv) * xv + np.sin(xv)), rtol=1e-13)


# ---------------------------------------------------------------------------------------------
# 5. retain_grad, .op and .inputs
# ---------------------------------------------------------------------------------------------

def test_retain_grad_on_intermediates_including_one_used_twice():
    xv = rand(4)
    x = sg.tensor(xv, requires_grad=True)
    y = x * x
    z = y * 3.0 + y * y                         # y is used twice (three times as an operand)
    w = sg.sin(z)
    loss = w.sum()
    assert y.retain_grad() is y and z.retain_grad() is z and w.retain_grad() is w
    loss.retain_grad()
    other = y + 1.0                             # not retained
    assert y.inputs == (x, x) and y.inputs[0] is x
    loss.backward()

    yv = xv * xv
    zv = 3 * yv + yv * yv
    np.testing.assert_allclose(loss.grad, 1.0)
    np.testing.assert_allclose(w.grad, np.ones(4))
    np.testing.assert_allclose(z.grad, np.cos(zv), rtol=1e-14)
    np.testing.assert_allclose(y.grad, np.cos(zv) * (3 + 2 * yv), rtol=1e-14)
    np.testing.assert_allclose(x.grad, np.cos(zv) * (3 + 2 * yv) * 2 * xv, rtol=1e-14)
    assert other.grad is None
    for t, shape in ((y, (4,)), (z, (4,)), (w, (4,)), (loss, ())):
        assert t.grad.shape == shape and t.grad.dtype == np.float64

    # the graph survives as names after being freed
    assert (y.op, z.op, w.op, loss.op) == ("mul", "add", "sin", "sum")
    for t in (y, z, w, loss):
        assert not t.is_leaf and t.requires_grad
        assert t.inputs in ((), tuple(t.inputs))
    assert y.inputs in ((), (x, x))
    assert x.is_leaf and x.op is None and x.inputs == ()


def test_non_retained_intermediates_keep_grad_none_and_leaves_unaffected_by_retention():
    xv = rand(3)
    grads = []
    for retain in (False, True):
        x = sg.tensor(xv, requires_grad=True)
        h = sg.exp(x)
        k = h * h + h
        if retain:
            h.retain_grad()
        k.sum().backward()
        assert (h.grad is not None) == retain
        assert k.grad is None
        grads.append(x.grad)
    np.testing.assert_array_equal(grads[0], grads[1])
    np.testing.assert_allclose(grads[0], 2 * np.exp(2 * xv) + np.exp(xv), rtol=1e-14)


def test_retained_grad_accumulates_with_retain_graph():
    x = sg.tensor(np.array([0.3, -0.7]), requires_grad=True)
    y = sg.tanh(x)
    y.retain_grad()
    loss = (y * y).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_allclose(y.grad, 2 * 2 * np.tanh(x.data), rtol=1e-14)


def test_retain_grad_on_leaf_or_constant_is_harmless():
    c = sg.tensor([1.0, 2.0])
    assert c.retain_grad() is c and not c.requires_grad
    x = sg.tensor([1.0, 2.0], requires_grad=True)
    x.retain_grad()
    (x * c).sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 2.0])
    assert c.grad is None


def test_op_and_inputs_before_backward():
    x = sg.tensor(rand(2, 3), requires_grad=True)
    s = x.sum(axis=1)
    assert s.op == "sum" and s.inputs[0] is x
    m = x @ np.ones((3, 2))
    assert m.op == "matmul" and m.inputs[0] is x
    assert x.detach().op is None and x.detach().is_leaf


def test_detach_shares_data_and_cuts_the_graph():
    xv = rand(3)
    x = sg.tensor(xv, requires_grad=True)
    y = x * 2.0
    d = y.detach()
    assert not d.requires_grad and d.is_leaf and np.shares_memory(d.data, y.data)
    (d * x).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * xv, rtol=0)   # only d's value, no path through d


# ---------------------------------------------------------------------------------------------
# 6. Diamonds and shared nodes
# ---------------------------------------------------------------------------------------------

def test_diamond_with_node_used_many_times():
    xv = rand(3, 2)
    x = sg.tensor(xv, requires_grad=True)
    y = x * x
    z = y + y * y + sg.tanh(y)
    z.sum().backward()
    yv = xv * xv
    closed = (1 + 2 * yv + 1 - np.tanh(yv) ** 2) * 2 * xv
    np.testing.assert_allclose(x.grad, closed, rtol=1e-13)
    assert_fd(x.grad, lambda v: np.sum(v * v + (v * v) ** 2 + np.tanh(v * v)), xv)


def test_diamond_with_branches_of_different_depth():
    xv = rand(4)
    x = sg.tensor(xv, requires_grad=True)
    a = sg.sin(x)
    b = a * 2.0
    c = sg.exp(a)
    d = b * c + a
    e = sg.tanh(d) * a + c.sum()
    e.sum().backward()

    def f(v):
        av = np.sin(v)
        dv = 2 * av * np.exp(av) + av
        return np.sum(np.tanh(dv) * av + np.exp(av).sum())

    assert_fd(x.grad, f, xv)


def test_node_used_ten_times():
    xv = rand(5)
    x = sg.tensor(xv, requires_grad=True)
    y = sg.sigmoid(x)
    s = y
    for k in range(1, 10):
        s = s + y * float(k)
    s.sum().backward()
    sig = 1 / (1 + np.exp(-xv))
    np.testing.assert_allclose(x.grad, 46 * sig * (1 - sig), rtol=1e-13)   # 1 + (1 + ... + 9) = 46


def test_same_tensor_on_both_sides_with_broadcasting():
    xv = rand(3, 1)
    W = rand(3, 3)
    x = sg.tensor(xv, requires_grad=True)
    ((x * x.T) * W).sum().backward()               # out[i, j] = x_i x_j
    np.testing.assert_allclose(x.grad, (W + W.T) @ xv, rtol=1e-13)


def test_backward_on_a_leaf_itself():
    x = sg.tensor(2.0, requires_grad=True)
    x.backward()
    np.testing.assert_array_equal(x.grad, 1.0)
    x.backward(np.array(3.0))                     # a leaf is never freed: accumulates
    np.testing.assert_array_equal(x.grad, 4.0)
    v = sg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="one-element"):
        v.backward()
    assert v.grad is None


def test_separate_graphs_accumulate_and_zero_grad_resets():
    xv = rand(3)
    x = sg.tensor(xv, requires_grad=True)
    (x * x).sum().backward()
    sg.sin(x).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * xv + np.cos(xv), rtol=1e-14)
    x.zero_grad()
    assert x.grad is None
    (x * 4.0).sum().backward()
    np.testing.assert_array_equal(x.grad, np.full(3, 4.0))


def test_gradients_are_private_arrays():
    x = sg.tensor(rand(3), requires_grad=True)
    y = sg.tensor(rand(3), requires_grad=True)
    g = np.array([1.0, 2.0, 3.0])
    (x + y).backward(g)
    g[:] = -7.0                                      # the caller's seed must not be aliased
    np.testing.assert_array_equal(x.grad, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(y.grad, [1.0, 2.0, 3.0])
    assert not np.shares_memory(x.grad, y.grad)
    x.grad += 1.0
    np.testing.assert_array_equal(y.grad, [1.0, 2.0, 3.0])
    a = sg.tensor(rand(2, 2), requires_grad=True)
    b = sg.tensor(rand(2, 2), requires_grad=True)
    (a + b).sum().backward()                         # the sum's VJP is a broadcast view
    a.grad[0, 0] = 5.0
    np.testing.assert_array_equal(b.grad, np.ones((2, 2)))


# ---------------------------------------------------------------------------------------------
# 7. cross_entropy
# ---------------------------------------------------------------------------------------------

def ce_reference(logits, target, reduction="mean"):
    """Cross-entropy in plain NumPy with an explicit loop: log-sum-exp by hand."""
    logits = np.asarray(logits)
    target = np.asarray(target)
    batch = logits.shape[:-1]
    losses = np.empty(batch, dtype=logits.dtype)
    for idx in np.ndindex(batch):
        row = logits[idx]
        m = np.max(row.real)
        lse = m + np.log(np.sum(np.exp(row - m)))
        if target.dtype.kind in "iu":
            losses[idx] = lse - row[int(target[idx])]
        else:
            losses[idx] = -np.sum(target[idx] * (row - lse))
    if reduction == "mean":
        return losses.sum() / max(losses.size, 1)
    if reduction == "sum":
        return losses.sum()
    return losses


def softmax_reference(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_integer_labels_reduced(reduction):
    N, C = 4, 5
    zv = rand(N, C, low=-3, high=3)
    labels = np.array([0, 4, 2, 2])
    z = sg.tensor(zv, requires_grad=True)
    loss = sg.cross_entropy(z, labels, reduction=reduction)
    assert loss.shape == ()
    np.testing.assert_allclose(loss.data, ce_reference(zv, labels, reduction), rtol=1e-13)
    loss.backward()
    assert_fd(z.grad, lambda v: ce_reference(v, labels, reduction), zv)
    onehot = np.eye(C)[labels]
    closed = softmax_reference(zv) - onehot
    np.testing.assert_allclose(z.grad, closed / N if reduction == "mean" else closed, rtol=1e-12, atol=1e-15)


def test_cross_entropy_integer_labels_reduction_none_with_random_cotangent():
    N, C = 5, 3
    zv = rand(N, C, low=-3, high=3)
    labels = np.array([2, 0, 1, 1, 0])
    v = rand(N)
    z = sg.tensor(zv, requires_grad=True)
    loss = sg.cross_entropy(z, labels, reduction="none")
    assert loss.shape == (N,)
    np.testing.assert_allclose(loss.data, ce_reference(zv, labels, "none"), rtol=1e-13)
    loss.backward(v)
    assert_fd(z.grad, lambda u: np.sum(v * ce_reference(u, labels, "none")), zv)
    np.testing.assert_allclose(z.grad, v[:, None] * (softmax_reference(zv) - np.eye(C)[labels]), rtol=1e-12,
                               atol=1e-15)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_nd_logits_with_nd_labels(reduction):
    C = 4
    zv = rand(2, 3, C, low=-2, high=2)
    labels = np.array([[0, 3, 1], [2, 2, 0]])
    z = sg.tensor(zv, requires_grad=True)
    loss = sg.cross_entropy(z, labels, reduction=reduction)
    expected = ce_reference(zv, labels, reduction)
    assert loss.shape == np.shape(expected)
    np.testing.assert_allclose(loss.data, expected, rtol=1e-13)
    if reduction == "none":
        v = rand(2, 3)
        loss.backward(v)
        assert_fd(z.grad, lambda u: np.sum(v * ce_reference(u, labels, "none")), zv)
    else:
        loss.backward()
        assert_fd(z.grad, lambda u: ce_reference(u, labels, reduction), zv)


def test_cross_entropy_single_sample_1d_logits_and_list_labels():
    zv = rand(4)
    z = sg.tensor(zv, requires_grad=True)
    loss = sg.cross_entropy(z, np.array(2))
    np.testing.assert_allclose(loss.data, ce_reference(zv[None], [2]), rtol=1e-13)
    loss.backward()
    np.testing.assert_allclose(z.grad, softmax_reference(zv) - np.eye(4)[2], rtol=1e-12, atol=1e-15)

    zv2 = rand(2, 3)
    z2 = sg.tensor(zv2, requires_grad=True)
    sg.cross_entropy(z2, [1, 0], reduction="sum").backward()
    assert_fd(z2.grad, lambda u: ce_reference(u, np.array([1, 0]), "sum"), zv2)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("normalized", [True, False])
def test_cross_entropy_probability_targets_gradients_for_logits_and_target(reduction, normalized):
    shape = (3, 4)
    zv = rand(*shape, low=-2, high=2)
    tv = softmax_reference(rand(*shape)) if normalized else rand(*shape, low=0.0, high=1.0)
    z = sg.tensor(zv, requires_grad=True)
    t = sg.tensor(tv, requires_grad=True)
    loss = sg.cross_entropy(z, t, reduction=reduction)
    expected = ce_reference(zv, tv, reduction)
    np.testing.assert_allclose(loss.data, expected, rtol=1e-13)
    v = rand(*np.shape(expected)) if reduction == "none" else 1.0
    loss.backward(v if reduction == "none" else None)
    assert_fd(z.grad, lambda u: np.sum(v * ce_reference(u, tv, reduction)), zv, msg="logits")
    assert_fd(t.grad, lambda u: np.sum(v * ce_reference(zv, u, reduction)), tv, msg="target")


def test_cross_entropy_probability_targets_nd():
    zv = rand(2, 3, 4)
    tv = softmax_reference(rand(2, 3, 4))
    z = sg.tensor(zv, requires_grad=True)
    t = sg.tensor(tv, requires_grad=True)
    loss = sg.cross_entropy(z, t)
    loss.backward()
    assert_fd(z.grad, lambda u: ce_reference(u, tv), zv, msg="logits")
    assert_fd(t.grad, lambda u: ce_reference(zv, u), tv, msg="target")


def test_cross_entropy_target_without_grad_only_differentiates_logits():
    zv = rand(2, 3)
    tv = softmax_reference(rand(2, 3))
    z = sg.tensor(zv, requires_grad=True)
    t = sg.tensor(tv)
    sg.cross_entropy(z, t).backward()
    assert t.grad is None
    np.testing.assert_allclose(z.grad, (softmax_reference(zv) - tv) / 2, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_keeps_float32(reduction):
    zv = rand(3, 4).astype(np.float32)
    labels = np.array([3, 0, 1])
    z = sg.tensor(zv, requires_grad=True)
    loss = sg.cross_entropy(z, labels, reduction=reduction)
    assert loss.dtype == np.float32
    if reduction == "none":
        v = rand(3).astype(np.float32)
        loss.backward(v)
        expected = v[:, None].astype(np.float64) * (softmax_reference(zv.astype(np.float64)) - np.eye(4)[labels])
    else:
        loss.backward()
        expected = softmax_reference(zv.astype(np.float64)) - np.eye(4)[labels]
        expected = expected / 3 if reduction == "mean" else expected
    assert z.grad.dtype == np.float32
    np.testing.assert_allclose(z.grad, expected, rtol=1e-5, atol=1e-6)

    tv = softmax_reference(rand(3, 4)).astype(np.float32)
    z2 = sg.tensor(zv, requires_grad=True)
    t2 = sg.tensor(tv, requires_grad=True)
    loss2 = sg.cross_entropy(z2, t2, reduction=reduction)
    assert loss2.dtype == np.float32
    loss2.backward(np.ones(3, np.float32) if reduction == "none" else None)
    assert z2.grad.dtype == np.float32 and t2.grad.dtype == np.float32
    scale = 1 / 3 if reduction == "mean" else 1.0
    np.testing.assert_allclose(z2.grad, scale * (softmax_reference(zv.astype(np.float64)) - tv), rtol=1e-5, atol=1e-6)


def test_cross_entropy_large_logits_are_stable():
    zv = np.array([[1e4, 0.0, -1e4], [1e4, 1e4 + 1.0, 0.0]])
    labels = np.array([0, 1])
    z = sg.tensor(zv, requires_grad=True)
    loss = sg.cross_entropy(z, labels, reduction="none")
    # row 0: log(1 + e^-1e4 + e^-2e4) = 0 in float64; row 1: log(1 + e^-1 + e^-10001) = log(1 + e^-1)
    np.testing.assert_allclose(loss.data, [0.0, np.log1p(np.exp(-1.0))], rtol=1e-14, atol=1e-300)
    loss.backward(np.ones(2))
    s = 1 / (1 + np.exp(-1.0))                       # softmax weight of the largest entry of row 1
    expected = np.array([[0.0, 0.0, 0.0], [1 - s, s - 1, 0.0]])
    assert np.all(np.isfinite(z.grad))
    np.testing.assert_allclose(z.grad, expected, rtol=1e-13, atol=1e-300)

    z32 = sg.tensor(zv.astype(np.float32), requires_grad=True)
    m = sg.cross_entropy(z32, labels)
    assert np.isfinite(m.data) and m.dtype == np.float32
    m.backward()
    assert np.all(np.isfinite(z32.grad))
    np.testing.assert_allclose(z32.grad, expected / 2, atol=1e-6)


@pytest.mark.parametrize("labels, logits_shape, pattern", [
    (np.array([0, -1, 2]), (3, 4), r"cross_entropy: class labels must lie in \[0, 3\]"),
    (np.array([0, 4, 2]), (3, 4), r"cross_entropy: class labels must lie in \[0, 3\]"),
    (np.array([[0, 1, 5]]), (1, 3, 5), r"class labels must lie in \[0, 4\]"),
    (np.array([0, 1]), (3, 4), r"labels of shape \(2,\) do not match logits of shape \(3, 4\); expected \(3,\)"),
    (np.array([[0], [1], [2]]), (3, 4), r"labels of shape \(3, 1\).*expected \(3,\)"),
    (np.array([[0, 1], [1, 0], [2, 2]]), (2, 3, 4), r"labels of shape \(3, 2\).*expected \(2, 3\)"),
    (np.array([1, 2]), (4,), r"labels of shape \(2,\).*expected \(\)"),
])
def test_cross_entropy_bad_labels_raise_clear_value_errors(labels, logits_shape, pattern):
    z = sg.tensor(np.zeros(logits_shape), requires_grad=True)
    with pytest.raises(ValueError, match=pattern):
        sg.cross_entropy(z, labels)
    with pytest.raises(ValueError, match=pattern):    # the plain NumPy path checks the same
        sg.cross_entropy(np.zeros(logits_shape), labels)
    assert z.grad is None


@pytest.mark.parametrize("dtype", [np.int32, np.uint8, np.int64])
def test_cross_entropy_label_dtypes_and_tensor_labels(dtype):
    zv = rand(3, 4)
    labels = np.array([3, 1, 0], dtype=dtype)
    for labels_arg in (labels, sg.tensor(labels)):
        z = sg.tensor(zv, requires_grad=True)
        loss = sg.cross_entropy(z, labels_arg, reduction="sum")
        np.testing.assert_allclose(loss.data, ce_reference(zv, labels.astype(np.int64), "sum"), rtol=1e-13)
        loss.backward()
        np.testing.assert_allclose(z.grad, softmax_reference(zv) - np.eye(4)[labels], rtol=1e-12, atol=1e-15)


def test_cross_entropy_bad_targets_and_reduction_raise():
    z = sg.tensor(np.zeros((2, 3)), requires_grad=True)
    with pytest.raises(ValueError, match=r"target probabilities of shape \(2, 4\).*\(2, 3\)"):
        sg.cross_entropy(z, np.full((2, 4), 0.25))
    with pytest.raises(ValueError, match=r"class labels must be integers, got float64 of shape \(2,\)"):
        sg.cross_entropy(z, np.array([0.0, 1.0]))    # float "labels" of the labels' shape: said so
    with pytest.raises(ValueError, match="reduction"):
        sg.cross_entropy(z, np.array([0, 1]), reduction="avg")
    with pytest.raises(ValueError, match="scalar"):
        sg.cross_entropy(sg.tensor(1.0, requires_grad=True), np.array(0))


@pytest.mark.parametrize("target_kind", ["labels", "probabilities"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_complex_step_matches_finite_differences(target_kind, reduction):
    zv = rand(3, 4)
    target = np.array([1, 3, 0]) if target_kind == "labels" else softmax_reference(rand(3, 4))
    h = 1e-30
    cs = np.empty_like(zv)
    for i in np.ndindex(zv.shape):
        probe = zv.astype(complex)
        probe[i] += 1j * h
        out = sg.cross_entropy(probe, target, reduction=reduction)
        cs[i] = np.imag(out) / h
    expected = central_diff(lambda u: ce_reference(u, target, reduction), zv)
    np.testing.assert_allclose(cs, expected, rtol=1e-6, atol=1e-9)
    z = sg.tensor(zv, requires_grad=True)
    sg.cross_entropy(z, target, reduction=reduction).backward()
    np.testing.assert_allclose(z.grad, cs, rtol=1e-12, atol=1e-15)


def test_cross_entropy_through_value_and_grad():
    zv, labels = rand(3, 5), np.array([4, 0, 2])
    value, g = sg.value_and_grad(lambda z: sg.cross_entropy(z, labels))(zv)
    np.testing.assert_allclose(value, ce_reference(zv, labels), rtol=1e-13)
    assert_fd(g, lambda u: ce_reference(u, labels), zv)


def test_cross_entropy_inside_a_larger_graph_with_late_leaf():
    xv, Wv = rand(4, 3), rand(3, 5)
    labels = np.array([0, 4, 1, 3])
    x = sg.tensor(xv, requires_grad=True)
    h = sg.tanh(x)
    W = sg.tensor(Wv, requires_grad=True)            # created after h
    loss = sg.cross_entropy(h @ W, labels) + (h * h).mean()
    loss.backward()
    f = lambda a, b: ce_reference(np.tanh(a) @ b, labels) + np.mean(np.tanh(a) ** 2)  # noqa: E731
    assert_fd(x.grad, lambda u: f(u, Wv), xv, msg="x")
    assert_fd(W.grad, lambda u: f(xv, u), Wv, msg="W")


# ---------------------------------------------------------------------------------------------
# 8. Broadcasting
# ---------------------------------------------------------------------------------------------

BROADCAST_CASES = [
    # (op, shape a, shape b, grad of sum(W * op(a, b)) w.r.t. a and b, by hand)
    ("add", (3, 1), (1, 4),
     lambda a, b, W: W.sum(axis=1, keepdims=True), lambda a, b, W: W.sum(axis=0, keepdims=True)),
    ("mul", (2, 3, 4), (4,),
     lambda a, b, W: W * b, lambda a, b, W: (W * a).sum(axis=(0, 1))),
    ("sub", (2, 1, 4), (3, 1),
     lambda a, b, W: W.sum(axis=1, keepdims=True), lambda a, b, W: -W.sum(axis=(0, 2))[:, None]),
    ("mul", (), (3,),
     lambda a, b, W: np.sum(W * b), lambda a, b, W: W * a),
    ("add", (5, 3), (1, 1),
     lambda a, b, W: W, lambda a, b, W: W.sum().reshape(1, 1)),
    ("add", (5, 3), (3,),
     lambda a, b, W: W, lambda a, b, W: W.sum(axis=0)),
    ("mul", (5, 1), (1, 1, 3),
     lambda a, b, W: (W * b).sum(axis=(0, 2))[:, None], lambda a, b, W: (W * a).sum(axis=1, keepdims=True)),
    ("div", (2, 3), (2, 1),
     lambda a, b, W: W / b, lambda a, b, W: -(W * a / b ** 2).sum(axis=1, keepdims=True)),
]

OPS = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv}


@pytest.mark.parametrize("name, shape_a, shape_b, grad_a, grad_b", BROADCAST_CASES)
def test_broadcast_gradients_closed_form(name, shape_a, shape_b, grad_a, grad_b):
    av = rand(*shape_a)
    bv = rand(*shape_b, low=0.5, high=2.0) if name == "div" else rand(*shape_b)
    W = rand(*np.broadcast_shapes(shape_a, shape_b))
    a = sg.tensor(av, requires_grad=True)
    b = sg.tensor(bv, requires_grad=True)
    out = OPS[name](a, b)
    assert out.shape == W.shape and out.op == name
    (out * W).sum().backward()
    for leaf, value, expected in ((a, av, grad_a(av, bv, W)), (b, bv, grad_b(av, bv, W))):
        assert leaf.grad.shape == value.shape and isinstance(leaf.grad, np.ndarray)
        assert leaf.grad.dtype == np.float64
        np.testing.assert_allclose(leaf.grad, expected, rtol=1e-13, atol=1e-15)
    f = OPS[name]
    assert_fd(a.grad, lambda u: np.sum(W * f(u, bv)), av, msg="a")
    assert_fd(b.grad, lambda u: np.sum(W * f(av, u)), bv, msg="b")


def test_bias_1x1_added_to_matrix_and_python_scalar_operands():
    xv, bv = rand(5, 3), np.array([[0.25]])
    x = sg.tensor(xv, requires_grad=True)
    b = sg.tensor(bv, requires_grad=True)
    y = sg.tanh(x + b)
    y.sum().backward()
    d = 1 - np.tanh(xv + bv) ** 2
    assert b.grad.shape == (1, 1)
    np.testing.assert_allclose(b.grad, [[d.sum()]], rtol=1e-13)
    np.testing.assert_allclose(x.grad, d, rtol=1e-13)

    v = sg.tensor(rand(3), requires_grad=True)
    (2.5 * v * 3.0).sum().backward()
    np.testing.assert_array_equal(v.grad, np.full(3, 7.5))


def test_broadcast_float32_bias_keeps_dtype():
    x = sg.tensor(rand(4, 3).astype(np.float32), requires_grad=True)
    b = sg.tensor(np.zeros((1, 3), np.float32), requires_grad=True)
    ((x + b) * 2.0).sum().backward()
    assert b.grad.dtype == np.float32 and b.grad.shape == (1, 3)
    np.testing.assert_array_equal(b.grad, np.full((1, 3), 8.0, np.float32))


@FAST
@given(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3),
       st.sampled_from(["add", "sub", "mul", "div"]), st.integers(0, 2 ** 32 - 1))
def test_property_broadcast_binary_gradients_match_finite_differences(shapes, name, seed):
    shape_a, shape_b = shapes.input_shapes
    rng = np.random.default_rng(seed)
    av = rng.uniform(-2, 2, size=shape_a)
    bv = rng.uniform(0.5, 2, size=shape_b) * rng.choice([-1.0, 1.0], size=shape_b)
    W = rng.standard_normal(shapes.result_shape)
    a = sg.tensor(av, requires_grad=True)
    b = sg.tensor(bv, requires_grad=True)
    f = OPS[name]
    out = f(a, b)
    assert out.shape == shapes.result_shape
    (out * W).sum().backward()
    assert a.grad.shape == shape_a and b.grad.shape == shape_b
    assert_fd(a.grad, lambda u: np.sum(W * f(u, bv)), av, rtol=1e-6, atol=1e-7, msg="a")
    assert_fd(b.grad, lambda u: np.sum(W * f(av, u)), bv, rtol=1e-6, atol=1e-7, msg="b")


# ---------------------------------------------------------------------------------------------
# Random graphs with leaves created in between ops, retained intermediates checked too
# ---------------------------------------------------------------------------------------------

UNARY_NP = {"tanh": (sg.tanh, np.tanh), "sin": (sg.sin, np.sin), "sigmoid": (sg.sigmoid, lambda v: 1 / (1 + np.exp(-v)))}
BINARY_NP = {"add": operator.add, "sub": operator.sub, "mul": operator.mul}
# a product goes through tanh, in the engine and in NumPy alike, so that no chain of squarings can overflow
BOUNDED = {"mul": (sg.tanh, np.tanh)}
LEAF = (lambda v: sg.tensor(v, requires_grad=True), lambda v: v)


@st.composite
def programs(draw):
    """A straight-line program: ('leaf', value), ('unary', name, i) or ('binary', name, i, j)
    over earlier nodes; leaves may appear anywhere, so later leaves meet older intermediates."""
    n_steps = draw(st.integers(3, 12))
    values = st.floats(-1.5, 1.5, allow_nan=False, width=64)
    steps = [("leaf", np.array(draw(st.lists(values, min_size=3, max_size=3))))]
    for _ in range(n_steps):
        kind = draw(st.sampled_from(["leaf", "unary", "binary", "binary"]))
        k = len(steps)
        if kind == "leaf":
            steps.append(("leaf", np.array(draw(st.lists(values, min_size=3, max_size=3)))))
        elif kind == "unary":
            steps.append(("unary", draw(st.sampled_from(sorted(UNARY_NP))), draw(st.integers(0, k - 1))))
        else:
            steps.append(("binary", draw(st.sampled_from(sorted(BINARY_NP))),
                          draw(st.integers(0, k - 1)), draw(st.integers(0, k - 1))))
    return steps


def run_program(steps, leaf_values, side, perturb=None):
    """The values of every node: ``side`` 0 runs symgrad (each leaf a tensor made at its step,
    after the ops before it), 1 NumPy's own functions; ``leaf_values`` gives the leaves in
    order; ``perturb=(k, delta)`` adds delta to node k's value."""
    values = []
    leaf_iter = iter(leaf_values)
    for k, step in enumerate(steps):
        if step[0] == "leaf":
            v = LEAF[side](next(leaf_iter))
        elif step[0] == "unary":
            v = UNARY_NP[step[1]][side](values[step[2]])
        else:
            v = BINARY_NP[step[1]](values[step[2]], values[step[3]])
            if step[1] in BOUNDED:
                v = BOUNDED[step[1]][side](v)
        if perturb is not None and perturb[0] == k:
            v = v + perturb[1]
        values.append(v)
    return values


def run_numpy(steps, leaf_values, perturb=None):
    """The program's loss in NumPy: every node contributes."""
    return np.sum(np.tanh(sum(run_program(steps, leaf_values, 1, perturb))))


@FAST
@given(programs(), st.data())
def test_property_random_graphs_with_interleaved_leaves(steps, data):
    leaf_values = [s[1] for s in steps if s[0] == "leaf"]
    nodes = run_program(steps, leaf_values, 0)
    leaves = [t for t, s in zip(nodes, steps) if s[0] == "leaf"]
    retained = [k for k, s in enumerate(steps) if s[0] != "leaf" and data.draw(st.booleans())]
    for k in retained:
        nodes[k].retain_grad()
    total = nodes[0]
    for t in nodes[1:]:
        total = total + t
    loss = sg.tanh(total).sum()
    np.testing.assert_allclose(loss.data, run_numpy(steps, leaf_values), rtol=1e-13)
    loss.backward()

    for n, leaf in enumerate(leaves):
        def f(u, n=n):
            vals = list(leaf_values)
            vals[n] = u
            return run_numpy(steps, vals)
        assert_fd(leaf.grad, f, leaf_values[n], rtol=1e-5, atol=1e-7, msg=f"leaf {n}")
    for k in retained:
        assert_fd(nodes[k].grad, lambda d, k=k: run_numpy(steps, leaf_values, (k, d)), np.zeros(3),
                  rtol=1e-5, atol=1e-7, msg=f"retained node {k}")
    for k, s in enumerate(steps):
        if s[0] != "leaf" and k not in retained:
            assert nodes[k].grad is None


def test_a_recorded_result_cannot_stop_requiring_grad():
    y = sg.tensor([1.0, 2.0], requires_grad=True) * 3.0
    with pytest.raises(RuntimeError, match="only a leaf"):
        y.requires_grad_(False)
    assert y.requires_grad and y.op == "mul"


# ---------------------------------------------------------------------------------------------
# Edge cases found in review
# ---------------------------------------------------------------------------------------------

def test_masked_first_logit_gives_the_softmax_of_the_rest():
    x = np.array([[-np.inf, 0.0, 1.0]])
    e = np.e
    np.testing.assert_allclose(sg.softmax(x), [[0.0, 1 / (1 + e), e / (1 + e)]], rtol=1e-14)
    assert float(sg.cross_entropy(sg.tensor(x), [2])) == pytest.approx(np.log1p(e) - 1, rel=1e-14)


def test_nan_in_one_row_leaves_the_other_rows_alone():
    x = np.array([[np.nan, 0.0], [0.0, 1000.0]])
    out = sg.log_softmax(x)
    assert np.isnan(out[0]).all()
    np.testing.assert_allclose(out[1], [-1000.0, 0.0], atol=1e-12)


@pytest.mark.parametrize("logits, label, expected", [
    ([[0.0, 0.0, 0.0, 0.0]], [2], np.log(4)),
    ([0.0, 0.0], 1, np.log(2)),
])
def test_cross_entropy_of_plain_lists(logits, label, expected):
    assert float(sg.cross_entropy(logits, label)) == pytest.approx(expected, rel=1e-14)


def test_cross_entropy_of_scalar_logits_is_a_clear_error():
    with pytest.raises(ValueError, match="class axis"):
        sg.cross_entropy(1.0, 0)


def test_numpy_integer_scalar_label_with_tensor_logits():
    z = np.array([0.5, -1.0, 2.0])
    t = sg.tensor(z, requires_grad=True)
    loss = sg.cross_entropy(t, np.int64(2))
    loss.backward()
    p = np.exp(z) / np.exp(z).sum()
    assert float(loss) == pytest.approx(-np.log(p[2]), rel=1e-14)
    np.testing.assert_allclose(t.grad, p - np.eye(3)[2], rtol=1e-12)


def test_a_failure_while_writing_grads_leaves_every_leaf_clean():
    a = sg.tensor([1.0, 2.0], requires_grad=True)
    b = sg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    a.grad = np.zeros(5)                    # cannot take a gradient of shape (2,)
    with pytest.raises(ValueError):
        ((b * 2.0).sum() + (a * 3.0).sum()).backward()
    assert b.grad is None
    a.grad = None
    ((b * 2.0).sum() + (a * 3.0).sum()).backward()
    np.testing.assert_array_equal(a.grad, [3.0, 3.0])
    np.testing.assert_array_equal(b.grad, [2.0, 2.0, 2.0])


def test_softmax_of_a_scalar_is_one():
    assert float(sg.softmax(np.array(1.5))) == 1.0

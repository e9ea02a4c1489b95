"""The course's worked examples, reproduced with the notes' numbers by all three methods.

The numbers below are the notes' own (f'(5) = 10; L = -8 with gradients 6, -4, -2, 4;
L = 1 and dL/dw = -2); the tanh neuron, the mini-batch and the linear layer are
checked against closed forms recomputed here, index by index, independently of
the ones stored in the examples.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import symgrad as sg
from symgrad.symbolic.parse import parse_function as expression_function

ALL = sg.examples.names()
SCALAR = [n for n in ALL if sg.examples.get(n).expression is not None]


def test_the_list_of_examples():
    assert ALL == ["square", "graph", "linear_regression", "tanh_neuron", "mini_batch", "linear_layer"]
    assert SCALAR == ALL[:-1]
    for name in ALL:
        ex = sg.examples.get(name)
        assert ex.name == name and ex.title and ex.description and ex.formula
        assert set(ex.expected) == set(ex.params)


def test_unknown_example_lists_the_names():
    with pytest.raises(ValueError, match="square, graph"):
        sg.examples.get("cube")


@pytest.mark.parametrize("name", ALL)
def test_every_example_agrees_three_ways_with_the_notes(name):
    ex = sg.examples.get(name)
    assert float(ex.loss(**ex.params, **ex.data)) == pytest.approx(ex.expected_value, rel=1e-12)
    report = sg.check(ex.loss, ex.params, ex.data)
    assert report.ok, str(report)
    assert report.methods == ["symbolic", "finite_diff", "backprop"]
    assert report.value == pytest.approx(ex.expected_value, rel=1e-12)
    for row in report.rows:
        expected = float(np.asarray(ex.expected[row.name])[row.index])
        assert row.symbolic == pytest.approx(expected, rel=1e-12, abs=1e-12)
        assert row.backprop == pytest.approx(expected, rel=1e-12, abs=1e-12)
        assert row.finite_diff == pytest.approx(expected, rel=1e-7, abs=1e-8)


def test_the_notes_numbers():
    assert sg.examples.get("square").expected == {"x": 10.0}
    graph = sg.examples.get("graph")
    assert graph.expected_value == -8.0
    assert graph.expected == {"a": 6.0, "b": -4.0, "c": -2.0, "f": 4.0}
    regression = sg.examples.get("linear_regression")
    assert (regression.expected_value, regression.expected) == (1.0, {"w": -2.0})


def test_tanh_neuron_closed_form():
    ex = sg.examples.get("tanh_neuron")
    (w1, w2), b, (x1, x2), y = ex.params["w"], ex.params["b"], ex.data["x"], ex.data["y"]
    n1 = x1 * w1 + x2 * w2 + b
    o1 = math.tanh(n1)
    assert o1 == pytest.approx(1 / math.sqrt(2), rel=1e-14)
    dLdo1 = 2 * o1 - 2 * y
    do1db = 1 - math.tanh(n1) ** 2
    assert do1db == pytest.approx(0.5, rel=1e-14)
    assert ex.expected["b"] == pytest.approx(dLdo1 * do1db, rel=1e-14)
    assert ex.expected["w"] == pytest.approx([dLdo1 * x1 * do1db, dLdo1 * x2 * do1db], rel=1e-14)


def test_mini_batch_gradient_is_the_sum_of_the_per_sample_gradients():
    batch, neuron = sg.examples.get("mini_batch"), sg.examples.get("tanh_neuron")
    per_sample = [sg.check(neuron.loss, batch.params, {"x": batch.data["X"][k], "y": batch.data["y"][k]})
                  for k in range(2)]
    assert all(r.ok for r in per_sample)
    summed = {}
    for report in per_sample:
        for row in report.rows:
            summed[row.element] = summed.get(row.element, 0.0) + row.symbolic
    whole = sg.check(batch.loss, batch.params, batch.data)
    assert whole.ok
    for row in whole.rows:
        for method in ("symbolic", "finite_diff", "backprop"):
            assert row.value(method) == pytest.approx(summed[row.element], rel=1e-7)
    assert np.asarray(batch.data["X"])[0] == pytest.approx(neuron.data["x"])       # sample 1 is the neuron's


def test_linear_layer_matrix_form_entry_by_entry():
    ex = sg.examples.get("linear_layer")
    X, W, b, Y = (np.asarray(v) for v in (ex.params["X"], ex.params["W"], ex.params["b"], ex.data["Y"]))
    q, n = X.shape
    p = W.shape[1]
    assert (q, n, p) == (4, 3, 2)
    Yhat = [[sum(X[i, k] * W[k, j] for k in range(n)) + b[j] for j in range(p)] for i in range(q)]
    C = sum((Yhat[i][j] - Y[i, j]) ** 2 for i in range(q) for j in range(p)) / q
    assert ex.expected_value == pytest.approx(C, rel=1e-14)
    for k in range(n):
        for j in range(p):
            assert ex.expected["W"][k, j] == pytest.approx(
                2 / q * sum(X[i, k] * (Yhat[i][j] - Y[i, j]) for i in range(q)), rel=1e-14)
    for j in range(p):
        assert ex.expected["b"][j] == pytest.approx(2 / q * sum(Yhat[i][j] - Y[i, j] for i in range(q)), rel=1e-14)
    for i in range(q):
        for k in range(n):
            assert ex.expected["X"][i, k] == pytest.approx(
                2 / q * sum((Yhat[i][j] - Y[i, j]) * W[k, j] for j in range(p)), rel=1e-14)


@pytest.mark.parametrize("name", SCALAR)
def test_the_expression_text_is_the_same_loss(name):
    ex = sg.examples.get(name)
    f = expression_function(ex.expression)
    assert sorted(f.names) == sorted(ex.at)
    assert float(f(**ex.at)) == pytest.approx(ex.expected_value, rel=1e-12)
    exact = sg.derive(ex.expression, wrt=ex.wrt).at(**ex.at)
    assert set(exact) == set(ex.expected_flat)
    for weight, value in ex.expected_flat.items():
        assert exact[weight] == pytest.approx(value, rel=1e-12, abs=1e-12)


def test_flat_names_and_command():
    ex = sg.examples.get("mini_batch")
    assert list(ex.at)[:3] == ["w1", "w2", "b"] and "X21" in ex.at and "y2" in ex.at
    assert sg.examples.get("linear_layer").command is None
    assert sg.examples.get("linear_regression").command == 'symgrad check "(w*x - y)**2" --at w=1,x=1,y=2 --wrt w'
    assert "b=7.881373587019543" in sg.examples.get("tanh_neuron").command        # exact, not rounded


def test_the_examples_numbers_cannot_be_changed_by_accident():
    ex = sg.examples.get("linear_layer")
    with pytest.raises(ValueError):
        ex.params["W"][0, 0] = 99.0
    with pytest.raises(AttributeError):
        ex.expected_value = 0.0


def test_graph_of_the_manual_example():
    g = sg.examples.get("graph").graph()
    values = {label: (g[label].value_text, g[label].grad_text) for label in ("a", "b", "c", "f", "L")}
    assert values == {"a": ("2", "6"), "b": ("-3", "-4"), "c": ("10", "-2"), "f": ("-2", "4"), "L": ("-8", "1")}

"""The worked examples of the backpropagation course, with the numbers the notes give.

Each :class:`Example` holds a loss written once over the ``sg.*`` functions, its
weights (``params``) and inputs (``data``), the loss value and the gradient the
notes compute by hand. The expected gradients come from the notes' closed forms,
evaluated here with plain NumPy, independently of symgrad's three methods, so that
:func:`symgrad.check` can be judged against them.

Example:
    >>> import symgrad as sg
    >>> names()
    ['square', 'graph', 'linear_regression', 'tanh_neuron', 'mini_batch', 'linear_layer']
    >>> ex = get("graph")
    >>> ex.expected_value, {k: float(v) for k, v in ex.expected.items()}
    (-8.0, {'a': 6.0, 'b': -4.0, 'c': -2.0, 'f': 4.0})
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

import numpy as np

from . import functions as sgf

if TYPE_CHECKING:
    from .graph import Graph

__all__ = ["Example", "names", "get", "flat_values"]


@dataclass(frozen=True)
class Example:
    """One worked example: a loss, the point where it is evaluated and the expected answer.

    ``loss(**params, **data)`` computes the loss; ``expected`` maps each param to
    the gradient the notes derive, ``expected_value`` is the loss at that point.
    ``expression`` is the same loss as text over scalar names (``w1``, ``x2``...:
    a vector ``w`` is spelled ``w1, w2``), for ``symgrad check EXPR`` and
    :func:`symgrad.derive`; it is None where the example is matrix-valued.

    Example:
        >>> ex = get("linear_regression")
        >>> float(ex.loss(**ex.params, **ex.data)), float(ex.expected["w"])
        (1.0, -2.0)
        >>> ex.command
        'symgrad check "(w*x - y)**2" --at w=1,x=1,y=2 --wrt w'
    """

    name: str
    title: str
    description: str
    loss: Callable[..., Any]
    params: Mapping[str, Any]
    data: Mapping[str, Any]
    expected: Mapping[str, Any]
    expected_value: float
    formula: str
    expression: Optional[str] = None
    source: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        for name in ("params", "data", "expected"):
            object.__setattr__(self, name, {key: _read_only(value) for key, value in getattr(self, name).items()})
        object.__setattr__(self, "expected_value", float(self.expected_value))

    @property
    def at(self) -> dict:
        """Every param and data value as scalar names, the ``--at`` of :attr:`expression`.

        Example:
            >>> get("tanh_neuron").at["x2"]
            -1.0
        """
        return {**flat_values(self.params), **flat_values(self.data)}

    @property
    def wrt(self) -> list:
        """The scalar weight names of :attr:`expression` (``--wrt``).

        Example:
            >>> get("tanh_neuron").wrt
            ['w1', 'w2', 'b']
        """
        return list(flat_values(self.params))

    @property
    def expected_flat(self) -> dict:
        """The expected partial derivatives by scalar name, as :attr:`expression` spells them.

        Example:
            >>> get("square").expected_flat
            {'x': 10.0}
        """
        return flat_values(self.expected)

    @property
    def command(self) -> Optional[str]:
        """The ``symgrad check`` command line that checks :attr:`expression` (None if matrix-valued).

        Example:
            >>> get("square").command
            'symgrad check "x**2" --at x=5 --wrt x'
        """
        if self.expression is None:
            return None
        at = ",".join(f"{name}={_number_text(value)}" for name, value in self.at.items())
        return f'symgrad check "{self.expression}" --at {at} --wrt {",".join(self.wrt)}'

    def graph(self) -> "Graph":
        """The computational graph of the loss, every node with its forward value and gradient.

        Example:
            >>> g = get("graph").graph()
            >>> [(g[n].value_text, g[n].grad_text) for n in ("a", "b", "c", "f", "L")]
            [('2', '6'), ('-3', '-4'), ('10', '-2'), ('-2', '4'), ('-8', '1')]
        """
        from .graph import Graph  # noqa: PLC0415

        return Graph.from_function(self.loss, self.params, self.data, title=self.title)


def flat_values(values: Mapping[str, Any]) -> dict:
    """Scalars stay; the element ``[i, j]`` of an array ``X`` becomes ``X{i+1}{j+1}`` (1-based, as in the notes).

    Example:
        >>> flat_values({"b": 0.5, "w": np.array([1.0, 2.0])})
        {'b': 0.5, 'w1': 1.0, 'w2': 2.0}
    """
    flat: dict = {}
    for name, value in values.items():
        array = np.asarray(value, dtype=float)
        if array.ndim == 0:
            flat[name] = float(array)
            continue
        for index in np.ndindex(array.shape):
            flat[name + "".join(str(i + 1) for i in index)] = float(array[index])
    return flat


def _read_only(value: Any) -> Any:
    """A float for a scalar, else a read-only float64 copy: the course's numbers cannot be changed by accident."""
    array = np.array(value, dtype=float)
    if array.ndim == 0:
        return float(array)
    array.setflags(write=False)
    return array


def _number_text(value: float) -> str:
    """The shortest text that reads back as exactly ``value``."""
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


# --- the examples --------------------------------------------------------------------------------------------


def _square(x):
    return x ** 2


def _graph(a, b, c, f):
    e = a * b
    d = e + c
    return d * f


def _linear_regression(w, x, y):
    y_hat = x * w
    s = y_hat - y
    return s ** 2


def _tanh_neuron(w, b, x, y):
    o = sgf.tanh(x @ w + b)
    return (o - y) ** 2


def _mini_batch(w, b, X, y):
    o = sgf.tanh(X @ w + b)
    return sgf.sum((o - y) ** 2)


def _linear_layer(W, b, X, Y):
    Y_hat = X @ W + b
    return sgf.sum((Y_hat - Y) ** 2) / X.shape[0]


def _neuron_gradient(w: np.ndarray, b: float, x: np.ndarray, y: float) -> tuple:
    """The notes' closed form for o = tanh(x·w + b), L = (o - y)²: (L, dL/dw, dL/db)."""
    n = float(x @ w + b)
    o = np.tanh(n)
    dL_do = 2 * o - 2 * y                  # dL/do1 = 2*o1 - 2*y
    do_dn = 1 - np.tanh(n) ** 2            # tanh' = 1 - tanh²
    return (o - y) ** 2, dL_do * do_dn * x, dL_do * do_dn


def _build() -> dict:
    examples = []

    examples.append(Example(
        name="square", title="f(x) = x², the gradient at x = 5",
        description="The derivative gives the shape of f; at x = 5 the gradient is f'(5) = 2·5 = 10.",
        loss=_square, params={"x": 5.0}, data={}, expected={"x": 10.0}, expected_value=25.0,
        formula="f(x) = x**2,  f'(x) = 2*x", expression="x**2", source="000 (gradient descent)",
    ))

    a, b, c, f = 2.0, -3.0, 10.0, -2.0
    d = a * b + c
    examples.append(Example(
        name="graph", title="The graph e = a·b, d = e + c, L = d·f, backpropagated by hand",
        description="dL/dd = f, dL/df = d; an addition passes the gradient on (dL/de = dL/dc = f); "
                    "a product swaps its inputs (dL/da = f·b, dL/db = f·a).",
        loss=_graph, params={"a": a, "b": b, "c": c, "f": f}, data={},
        expected={"a": f * b, "b": f * a, "c": f, "f": d}, expected_value=d * f,
        formula="e = a*b;  d = e + c;  L = d*f", expression="(a*b + c)*f", source="001, 003 (manual example)",
    ))

    w, x, y = 1.0, 1.0, 2.0
    s = x * w - y
    examples.append(Example(
        name="linear_regression", title="Linear regression ŷ = x·w, L = (ŷ - y)² at x = 1, y = 2, w = 1",
        description="Forward: ŷ = 1, S = ŷ - y = -1, L = S² = 1. Backward: dL/dS = 2S, dS/dŷ = 1, dŷ/dw = x, "
                    "so dL/dw = 2S·x = -2.",
        loss=_linear_regression, params={"w": w}, data={"x": x, "y": y},
        expected={"w": 2 * s * x}, expected_value=s ** 2,
        formula="y_hat = x*w;  S = y_hat - y;  L = S**2", expression="(w*x - y)**2",
        source="002 (concrete example)",
    ))

    w_vec, b0 = np.array([-3.0, 1.0]), 7.881373587019543   # x·w + b = atanh(1/√2): o = 1/√2, 1 - o² = 1/2
    x_vec, y0 = np.array([2.0, -1.0]), 1.0
    loss0, dw0, db0 = _neuron_gradient(w_vec, b0, x_vec, y0)
    examples.append(Example(
        name="tanh_neuron", title="One neuron, two inputs, tanh: o = tanh(x·w + b), L = (o - y)²",
        description="dL/do = 2o - 2y, do/dn = 1 - tanh(n)², so dL/db = (2o - 2y)(1 - tanh(n)²) and "
                    "dL/dw_k = (2o - 2y)·x_k·(1 - tanh(n)²). Here n = atanh(1/√2), so o = 1/√2 and 1 - o² = 1/2.",
        loss=_tanh_neuron, params={"w": w_vec, "b": b0}, data={"x": x_vec, "y": y0},
        expected={"w": dw0, "b": db0}, expected_value=loss0,
        formula="n = x1*w1 + x2*w2 + b;  o = tanh(n);  L = (o - y)**2",
        expression="(tanh(w1*x1 + w2*x2 + b) - y)**2", source="003 (numerical example)",
    ))

    X2, y2 = np.array([[2.0, -1.0], [3.0, 1.0]]), np.array([1.0, 0.5])
    per_sample = [_neuron_gradient(w_vec, b0, X2[k], y2[k]) for k in range(2)]
    examples.append(Example(
        name="mini_batch", title="A mini-batch of two samples: Loss = (o1 - y1)² + (o2 - y2)²",
        description="The batch loss is the sum of the per-sample losses, so its gradient is the sum of the "
                    "per-sample gradients: dL/dw1 = dLdw11 + dLdw21, dL/dw2 = dLdw12 + dLdw22.",
        loss=_mini_batch, params={"w": w_vec, "b": b0}, data={"X": X2, "y": y2},
        expected={"w": per_sample[0][1] + per_sample[1][1], "b": per_sample[0][2] + per_sample[1][2]},
        expected_value=per_sample[0][0] + per_sample[1][0],
        formula="o_k = tanh(X_k·w + b);  L = (o_1 - y_1)**2 + (o_2 - y_2)**2",
        expression="(tanh(w1*X11 + w2*X12 + b) - y1)**2 + (tanh(w1*X21 + w2*X22 + b) - y2)**2",
        source="003 (mini-batch)",
    ))

    X = np.array([[1.0, 2.0, 0.0], [0.0, -1.0, 1.0], [2.0, 1.0, -1.0], [-1.0, 0.5, 2.0]])   # q=4, n=3
    W = np.array([[0.5, -1.0], [1.0, 0.5], [-0.5, 2.0]])                                       # n=3, p=2
    b_row = np.array([0.1, -0.2])
    Y = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, -1.0], [-1.0, 2.0]])
    q = X.shape[0]
    residual = X @ W + b_row - Y
    examples.append(Example(
        name="linear_layer", title="Linear layer Ŷ = XW + b with C = (1/q)·‖Ŷ - Y‖², in matrix form",
        description="dC/dŶ = (2/q)(Ŷ - Y); then dC/dW = (2/q) Xᵀ(Ŷ - Y), dC/db = (2/q)·column sums of (Ŷ - Y), "
                    "dC/dX = (2/q)(Ŷ - Y)Wᵀ. X is q×n (q = 4 samples, n = 3 features), W is n×p (p = 2 outputs), "
                    "b is a row of p biases added to every sample.",
        loss=_linear_layer, params={"W": W, "b": b_row, "X": X}, data={"Y": Y},
        expected={"W": 2 / q * X.T @ residual, "b": 2 / q * residual.sum(axis=0), "X": 2 / q * residual @ W.T},
        expected_value=float((residual ** 2).sum() / q),
        formula="Y_hat = X@W + b;  C = sum((Y_hat - Y)**2) / q", source="004 (matrix form)",
    ))
    return {ex.name: ex for ex in examples}


_EXAMPLES = _build()


def names() -> list:
    """The names of the built-in examples, in the order of the course.

    Example:
        >>> names()[0]
        'square'
    """
    return list(_EXAMPLES)


def get(name: str) -> Example:
    """The example called ``name``; a ValueError lists the valid names otherwise.

    Example:
        >>> get("square").expected
        {'x': 10.0}
    """
    try:
        return _EXAMPLES[name]
    except (KeyError, TypeError):
        raise ValueError(f"no example named {name!r}; choose one of: {', '.join(_EXAMPLES)}") from None

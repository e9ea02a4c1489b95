"""The computational graph as data: value and op nodes with forward values and gradients.

:class:`Graph` walks a graph recorded by the engine (``Tensor.op``, ``.inputs``,
``.params``) into value nodes (a weight, a data input, an intermediate result,
the output) and op nodes (``×``, ``+``, ``tanh``...), each value node carrying its
forward value and its gradient ``dL/dnode``, like the notes' diagrams of
``e = a·b, d = e + c, L = d·f``. The drawing lives in :mod:`symgrad.plots.graph`;
:meth:`Graph.to_dot` writes the same graph as Graphviz DOT text.

Example:
    >>> g = Graph.from_expression("(a*b + c)*f", {"a": 2, "b": -3, "c": 10, "f": -2})
    >>> [(n.label, n.value_text, n.grad_text) for n in g.values if n.label in ("a", "a·b", "L")]
    [('a', '2', '6'), ('a·b', '-6', '-2'), ('L', '-8', '1')]
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

import numpy as np

from .tensor import Tensor, tensor

__all__ = ["Graph", "Node", "format_value"]

MAX_LABEL = 12          # a longer sub-expression is replaced by a short name (n1, n2, ...)

# op name -> (symbol in the op's circle, precedence of the sub-expression it makes)
_SYMBOLS = {"add": ("+", 1), "sub": ("−", 1), "mul": ("×", 2), "div": ("÷", 2), "neg": ("−", 3), "pow": ("**", 4),
            "matmul": ("@", 2)}
_TEXT = {"add": " + ", "sub": " − ", "mul": "·", "div": "/", "matmul": " @ "}
_SUPERSCRIPTS = {2: "²", 3: "³"}


def format_value(value: Any) -> str:
    """A short text for a node's value: 4 significant digits, or the shape of a large array.

    Example:
        >>> format_value(-8.0), format_value(np.array([0.5, 1 / 3])), format_value(np.ones((3, 4)))
        ('-8', '[0.5, 0.3333]', 'array (3, 4)')
    """
    array = np.asarray(value)
    if array.ndim == 0:
        return f"{array.item():.4g}"
    if array.size <= 4:
        return "[" + ", ".join(f"{v:.4g}" for v in array.ravel().tolist()) + "]"
    return f"array {tuple(array.shape)}"


@dataclass
class Node:
    """One node of a :class:`Graph`.

    ``kind`` is "value" or "op". A value node has a ``label`` (its name or its
    sub-expression), a ``role`` ("param", "data", "intermediate", "output"), its
    forward ``value``, its ``grad`` (None where none was computed) and the
    ``expression`` that computes it from the nodes before (its label when it is
    a leaf; ``n1``, ``n2``... stand for sub-expressions too long to label). An op node
    has the engine's rule name in ``op`` and a symbol in ``label`` (``×``, ``+``,
    ``**2`` with a constant operand folded in).

    Example:
        >>> Node(0, "value", "a", role="param", value=np.array(2.0), grad=np.array(6.0)).grad_text
        '6'
    """

    id: int
    kind: str
    label: str
    role: str = "intermediate"
    op: Optional[str] = None
    value: Any = None
    grad: Any = None
    expression: str = ""

    @property
    def value_text(self) -> str:
        """The forward value as short text ("" for an op node)."""
        return "" if self.value is None else format_value(self.value)

    @property
    def grad_text(self) -> str:
        """The gradient as short text ("" when there is none)."""
        return "" if self.grad is None else format_value(self.grad)


@dataclass
class Graph:
    """Value and op nodes in topological order (inputs first), edges, and the output node.

    Build one with :meth:`from_function`, :meth:`from_expression` or :meth:`from_tensor`.

    Example:
        >>> g = Graph.from_function(lambda w, x: w * x, {"w": 3.0}, {"x": 2.0})
        >>> [n.label for n in g.nodes], g.edges
        (['w', 'x', '×', 'L'], [(0, 2), (1, 2), (2, 3)])
    """

    nodes: list
    edges: list
    root: int
    title: str = ""
    by_label: dict = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.by_label = {n.label: n for n in self.nodes if n.kind == "value"}

    @property
    def definitions(self) -> list:
        """``(label, expression)`` of every computed node whose label is a name, not its expression.

        Example:
            >>> Graph.from_expression("(a*b + c)*f", {"a": 2, "b": -3, "c": 10, "f": -2}).definitions
            [('L', '(a·b + c)·f')]
        """
        return [(n.label, n.expression) for n in self.values if n.role in ("intermediate", "output")
                and n.label != n.expression]

    @property
    def values(self) -> list:
        """The value nodes, inputs first.

        Example:
            >>> [n.label for n in Graph.from_expression("x**2", {"x": 5}).values]
            ['x', 'L']
        """
        return [n for n in self.nodes if n.kind == "value"]

    def __getitem__(self, label: str) -> Node:
        """The value node with this label.

        Example:
            >>> Graph.from_expression("x**2", {"x": 5})["x"].grad_text
            '10'
        """
        try:
            return self.by_label[label]
        except KeyError:
            raise KeyError(f"no value node labelled {label!r}; labels: {', '.join(self.by_label)}") from None

    def inputs_of(self, node_id: int) -> list:
        """The ids of the nodes with an edge into ``node_id``, in argument order."""
        return [a for a, b in self.edges if b == node_id]

    def to_dot(self) -> str:
        """The graph as Graphviz DOT text (left to right, values in boxes, ops in circles).

        Example:
            >>> print(Graph.from_expression("x**2", {"x": 5}).to_dot())  # doctest: +ELLIPSIS
            digraph symgrad {
              rankdir=LR;
            ...
              n0 [shape=box, style="rounded,filled", fillcolor="#d6e6f5", label="x\\nvalue 5\\ngrad 10"];
            ...
        """
        fill = {"param": "#d6e6f5", "data": "#e6e6e6", "intermediate": "#ffffff", "output": "#fbd9b8"}
        lines = ["digraph symgrad {", "  rankdir=LR;", '  node [fontname="Helvetica"];']
        if self.title:
            lines.append(f'  label="{_dot_text(self.title)}"; labelloc=t;')
        for n in self.nodes:
            if n.kind == "op":
                lines.append(f'  n{n.id} [shape=circle, label="{_dot_text(n.label)}"];')
                continue
            text = [n.label, f"value {n.value_text}"] + ([f"grad {n.grad_text}"] if n.grad is not None else [])
            label = "\\n".join(_dot_text(t) for t in text)
            lines.append(f'  n{n.id} [shape=box, style="rounded,filled", fillcolor="{fill[n.role]}", '
                         f'label="{label}"];')
        lines += [f"  n{a} -> n{b};" for a, b in self.edges]
        lines.append("}")
        return "\n".join(lines)

    # --- construction ---------------------------------------------------------------------
    @classmethod
    def from_tensor(cls, root: Tensor, names: Optional[Mapping[str, Tensor]] = None, title: str = "") -> "Graph":
        """The graph recorded behind ``root``, with the gradients the tensors hold.

        ``names`` labels tensors (weights, inputs, intermediates); other intermediates
        are labelled by their sub-expression. For gradients on intermediate nodes call
        ``retain_grad()`` on them and ``backward(retain_graph=True)`` before, or use
        :meth:`from_function`, which does both.

        Example:
            >>> a = tensor(2.0, requires_grad=True)
            >>> y = (a * a).retain_grad()
            >>> y.backward(retain_graph=True)
            >>> [(n.label, n.grad_text) for n in Graph.from_tensor(y, {"a": a, "y": y}).values]
            [('a', '4'), ('y', '1')]
        """
        if not isinstance(root, Tensor):
            raise TypeError(f"Graph.from_tensor needs a Tensor, not {type(root).__name__}")
        return _Walker(names or {}, root).graph(title)

    @classmethod
    def from_function(cls, f: Callable, params: Mapping[str, Any], data: Optional[Mapping[str, Any]] = None,
                      output: str = "L", title: str = "") -> "Graph":
        """Run ``f(**params, **data)`` on tensors, backpropagate, and return its graph.

        Every node gets its forward value; params and intermediates get their
        gradient (data nodes do not: they are not differentiated). The output node is
        labelled ``output``.

        Example:
            >>> g = Graph.from_function(lambda w, x, y: (w * x - y) ** 2, {"w": 1.0}, {"x": 1.0, "y": 2.0})
            >>> g["w"].grad_text, g["L"].value_text
            ('-2', '1')
        """
        leaves = {name: tensor(_floats(name, v), requires_grad=True) for name, v in params.items()}
        leaves.update({name: tensor(_floats(name, v)) for name, v in (data or {}).items()})
        root = f(**leaves)
        if not isinstance(root, Tensor) or not root.requires_grad:
            raise ValueError("the function's result does not depend on its params through sg.* operations")
        if root.size != 1:
            raise ValueError(f"the function must return a scalar to backpropagate; it returned shape {root.shape}")
        for node in _tensors_behind(root):
            if node.op is not None:
                node.retain_grad()
        root.backward(retain_graph=True)
        return cls.from_tensor(root, {**leaves, output: root}, title=title)

    @classmethod
    def from_expression(cls, text: str, values: Mapping[str, Any], output: str = "L", title: str = "") -> "Graph":
        """The graph of expression ``text`` at ``values``, every variable differentiated.

        The text is parsed safely (:func:`symgrad.symbolic.parse.parse_function`) and evaluated as
        written, so the graph has the operations in the order typed.

        Example:
            >>> g = Graph.from_expression("tanh(w*x + b)", {"w": 0.5, "x": 2.0, "b": 0.0})
            >>> g["w"].grad_text, g["L"].value_text
            ('0.8399', '0.7616')
        """
        from .symbolic.parse import parse_function  # noqa: PLC0415  (loads SymPy)

        f = parse_function(text)
        return cls.from_function(f, f.assigned(values), output=output, title=title)


def _floats(name: str, value: Any) -> np.ndarray:
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name!r} must be a number or an array of numbers, not {type(value).__name__}") from None


def _tensors_behind(root: Tensor) -> list:
    """Every tensor reachable from ``root`` through recorded inputs, inputs first (iterative)."""
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.op is not None and not node.inputs:
            raise ValueError("this graph was freed by backward(); record it again and call "
                             "backward(retain_graph=True) before drawing it")
        stack.append((node, True))
        stack.extend((a, False) for a in reversed(node.inputs) if isinstance(a, Tensor) and id(a) not in seen)
    return order


class _Walker:
    """Turns the tensors behind a root into numbered Nodes and edges."""

    def __init__(self, names: Mapping[str, Tensor], root: Tensor):
        self.root = root
        self.names = {id(t): name for name, t in names.items() if isinstance(t, Tensor)}
        self.nodes: list = []
        self.edges: list = []
        self.ids: dict = {}          # id(tensor) -> value node id
        self.texts: dict = {}        # id(tensor) -> (sub-expression text, precedence)
        self.unnamed = 0

    def graph(self, title: str) -> Graph:
        for t in _tensors_behind(self.root):
            self.add(t)
        return Graph(self.nodes, self.edges, self.ids[id(self.root)], title=title)

    def add(self, t: Tensor) -> None:
        op_id = None
        if t.op is not None:
            op_id = len(self.nodes)
            self.nodes.append(Node(op_id, "op", self.op_label(t), op=t.op))
            for arg in t.inputs:
                if isinstance(arg, Tensor):
                    self.edges.append((self.ids[id(arg)], op_id))
        text, precedence = self.text_of(t)
        name = self.names.get(id(t))
        if name is None and len(text) > MAX_LABEL:
            self.unnamed += 1
            name = f"n{self.unnamed}"
        label = name or text
        self.texts[id(t)] = (label, 5) if name else (text, precedence)
        role = ("output" if t is self.root else "intermediate" if t.op is not None
                else "param" if t.requires_grad else "data")
        node = Node(len(self.nodes), "value", label, role=role, value=t.numpy(),
                    grad=None if t.grad is None else np.asarray(t.grad), expression=text)
        self.nodes.append(node)
        self.ids[id(t)] = node.id
        if op_id is not None:
            self.edges.append((op_id, node.id))

    def op_label(self, t: Tensor) -> str:
        """The op's symbol, with a constant operand folded in: ``**2``, ``×0.5``, ``1 −``."""
        symbol = _SYMBOLS.get(t.op, (t.op,))[0]
        constants = [(i, a) for i, a in enumerate(t.inputs) if not isinstance(a, Tensor)]
        if len(constants) != 1 or t.op not in _SYMBOLS:
            return symbol
        i, value = constants[0]
        return f"{format_value(value)}{symbol}" if i == 0 else f"{symbol}{format_value(value)}"

    def text_of(self, t: Tensor) -> tuple:
        """``(sub-expression, precedence)`` of a tensor, from its inputs' texts."""
        if t.op is None:
            name = self.names.get(id(t))
            return (name, 5) if name else (format_value(t.numpy()), 5)
        args = [self.texts[id(a)] if isinstance(a, Tensor) else (format_value(a), 5) for a in t.inputs]
        if t.op in _TEXT:
            precedence = _SYMBOLS[t.op][1]
            left = _wrap(args[0], precedence)
            right = _wrap(args[1], precedence + (t.op in ("sub", "div")))
            return f"{left}{_TEXT[t.op]}{right}", precedence
        if t.op == "neg":
            return f"−{_wrap(args[0], 3)}", 3
        if t.op == "pow":
            exponent = t.inputs[1]
            if isinstance(exponent, (int, float)) and exponent in _SUPERSCRIPTS:
                return f"{_wrap(args[0], 5)}{_SUPERSCRIPTS[exponent]}", 4
            return f"{_wrap(args[0], 5)}^{_wrap(args[1], 5)}", 4
        if t.op == "getitem":
            return f"{_wrap(args[0], 5)}[…]", 5
        return f"{t.op}({', '.join(a[0] for a in args)})", 5


def _wrap(arg: tuple, precedence: int) -> str:
    text, own = arg
    return f"({text})" if own < precedence else text


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("−", "-")

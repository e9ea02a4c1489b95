"""Reverse-mode differentiation of a SymPy expression, over its DAG, as straight-line code.

``sympy.diff`` differentiates a loss once per weight, and each partial is a
separate tree: for a network the 33 partials repeat the same forward values
and the same chain-rule products. Here the loss is walked once, as a DAG
(equal subexpressions are one node), in reverse topological order: each node
receives the sum of its consumers' contributions (its *adjoint*) and passes
``adjoint * local derivative`` to each of its arguments, exactly as
backpropagation does, with the local derivatives taken from SymPy itself
(``Function.fdiff``). The result is a :class:`Program`: the forward nodes, the
adjoint assignments over placeholders, and one output per weight, so that every
partial shares every subexpression it can. :mod:`symgrad.symbolic.codegen`
prints it as NumPy code; :meth:`Program.expressions` substitutes the
placeholders back to give each partial as an ordinary SymPy expression.

Example:
    >>> import sympy
    >>> w, x, b, y = sympy.symbols("w x b y", real=True)
    >>> program = gradient_program((w*x + b - y)**2, [w, b])
    >>> program.expressions()
    [2*x*(b + w*x - y), 2*(b + w*x - y)]
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Sequence

import sympy
from sympy.core.parameters import distribute

__all__ = ["Program", "gradient_program", "expression_program", "children"]


def children(node: sympy.Basic) -> tuple:
    """The arguments of ``node`` as the DAG sees them (a Piecewise's pairs are flattened).

    Example:
        >>> x = sympy.Symbol("x", real=True)
        >>> children(sympy.Piecewise((x, x > 0), (0, True)))
        (x, x > 0, 0, True)
    """
    if isinstance(node, sympy.Piecewise):
        return tuple(part for pair in node.args for part in pair)
    return node.args


def _differentiable(node: sympy.Basic) -> range:
    """The positions (in :func:`children`) of the arguments a node's value may depend on.

    Every argument, except a Piecewise's conditions and the arguments of a
    condition itself (a comparison or a logical operator), which are constant
    almost everywhere. A head that :func:`_contribution` cannot differentiate
    then raises, rather than being taken as constant.
    """
    if isinstance(node, sympy.Piecewise):
        return range(0, 2 * len(node.args), 2)
    if isinstance(node, sympy.logic.boolalg.Boolean):
        return range(0)
    return range(len(node.args))


def _topological(roots: Iterable[sympy.Basic]) -> list:
    """Every distinct non-atomic node under ``roots``, each after all of its children (no recursion)."""
    order: list = []
    seen: set = set()
    stack = [(root, False) for root in reversed(list(roots))]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if node.is_Atom or node in seen:
            continue
        seen.add(node)
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(children(node)) if not child.is_Atom)
    return order


class Program:
    """Straight-line code computing some expressions: forward nodes, assignments, outputs.

    ``nodes`` are the distinct subexpressions of the inputs in topological order,
    each standing for itself under the placeholder ``names[node]``;
    ``assignments`` are ``(placeholder, expression)`` pairs over placeholders,
    symbols and numbers (the adjoints), in order; ``outputs`` are expressions
    over the same.

    Example:
        >>> x = sympy.Symbol("x", real=True)
        >>> program = gradient_program(sympy.tanh(x), [x])
        >>> len(program.nodes), program.expressions()
        (1, [1 - tanh(x)**2])
    """

    def __init__(self, nodes: list, names: dict, assignments: list, outputs: list):
        self.nodes = nodes
        self.names = names
        self.assignments = assignments
        self.outputs = outputs

    def expressions(self) -> list:
        """The outputs as SymPy expressions of the original symbols (placeholders substituted).

        Numeric factors are kept outside sums (``2*(x - y)``, as the chain rule gives
        them) rather than distributed.
        """
        meaning = {self.names[node]: node for node in self.nodes}
        with distribute(False):
            for placeholder, expression in self.assignments:
                meaning[placeholder] = expression.xreplace(meaning)
            return [output.xreplace(meaning) for output in self.outputs]


def expression_program(exprs: Sequence[sympy.Expr]) -> Program:
    """The :class:`Program` that computes ``exprs`` themselves (no differentiation).

    Example:
        >>> x = sympy.Symbol("x", real=True)
        >>> expression_program([x**2, sympy.exp(x**2)]).expressions()
        [x**2, exp(x**2)]
    """
    nodes = _topological(exprs)
    names = {node: sympy.Dummy() for node in nodes}
    return Program(nodes, names, [], [names.get(e, e) for e in exprs])


def gradient_program(loss: sympy.Expr, wrt: Sequence[sympy.Symbol]) -> Program:
    """The :class:`Program` computing the partial derivative of ``loss`` with respect to each of ``wrt``.

    Raises ValueError for a head it cannot differentiate (anything but Add, Mul,
    Pow, SymPy functions and Piecewise on the way from the loss to a weight).

    Example:
        >>> x, w = sympy.symbols("x w", real=True)
        >>> gradient_program(sympy.exp(w * x), [w, x]).expressions()
        [x*exp(w*x), w*exp(w*x)]
    """
    nodes = _topological([loss])
    names = {node: sympy.Dummy() for node in nodes}
    targets = set(wrt)
    active = set()
    for node in nodes:
        parts = children(node)
        if any(parts[k] in active or parts[k] in targets for k in _differentiable(node)):
            active.add(node)
    assignments: list = []
    terms: dict = defaultdict(list)
    if loss in active or loss in targets:
        terms[loss].append(sympy.S.One)
    for node in reversed(nodes):
        if node not in terms:
            continue
        g = _adjoint(terms.pop(node), assignments)
        parts = children(node)
        for k in _differentiable(node):
            if parts[k] in active or parts[k] in targets:
                terms[parts[k]].append(_contribution(node, k, g, names))
    outputs = [_adjoint(terms[w], assignments) if w in terms else sympy.S.Zero for w in wrt]
    return Program(nodes, names, assignments, outputs)


def _adjoint(terms: list, assignments: list) -> sympy.Expr:
    """The sum of a node's incoming contributions: an atom, or a new placeholder assigned to it."""
    total = terms[0] if len(terms) == 1 else sympy.Add(*terms)
    if total.is_Atom:
        return total
    placeholder = sympy.Dummy()
    assignments.append((placeholder, total))
    return placeholder


def _contribution(node: sympy.Basic, k: int, g: sympy.Expr, names: dict) -> sympy.Expr:
    """``g`` (the adjoint of ``node``) times the derivative of ``node`` by its ``k``-th child, over placeholders."""
    def name(part: sympy.Basic) -> sympy.Basic:
        return names.get(part, part)

    me = names[node]
    if node.is_Add:
        return g
    if node.is_Mul:
        return sympy.Mul(g, *(name(a) for j, a in enumerate(node.args) if j != k))
    if node.is_Pow:
        base, exponent = (name(a) for a in node.args)
        if k == 1:
            return g * me * sympy.log(base)
        if exponent == -1:                        # d(1/b) = -(1/b)**2
            return -g * me ** 2
        if exponent == sympy.S.Half:              # d sqrt(b) = 1/(2 sqrt(b))
            return g / (2 * me)
        return g * exponent * base ** (exponent - 1)
    if isinstance(node, sympy.Piecewise):
        conditions = [name(pair.cond) for pair in node.args]
        branch = k // 2
        return sympy.Piecewise(*((g if j == branch else 0, conditions[j]) for j in range(branch + 1)),
                               (0, True))
    if hasattr(node, "fdiff") and not isinstance(node, sympy.core.function.AppliedUndef):  # functions, Max, Min
        arguments = tuple(name(a) for a in node.args)
        form = node.func(*arguments, evaluate=False)
        try:
            local = form.fdiff(form.args.index(arguments[k]) + 1)      # Max and Min may sort their arguments
        except (sympy.core.function.ArgumentIndexError, NotImplementedError, ValueError):
            local = None
        if local is not None and not local.has(sympy.Derivative, sympy.Subs):
            return g * local.xreplace({form: me})
    raise ValueError(f"cannot differentiate {type(node).__name__} (in {str(node)[:60]})")

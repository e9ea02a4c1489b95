"""Compiled gradients: a graph recorded once, replayed as straight-line code.

:func:`replay_program` takes the graph that the engine recorded from some input
tensors to a scalar result and writes one Python function that recomputes it on
new arrays of the same shapes: each recorded op's forward, then, newest first,
the vector-Jacobian products of the inputs that lead to a gradient, each line a
direct call of the rule from :mod:`symgrad.rules`. The engine's bookkeeping (one
tensor and one node per op, the heap of backward) is paid once, when the graph is
recorded; a replay pays for the arrays only. ``sg.value_and_grad(f,
compile=True)`` records ``f`` once per signature of its arguments and replays it.

Arrays that the graph holds but that are not inputs (a closure's data) are taken
as they were when the graph was recorded; a tensor that needs no gradient is read
afresh on every replay, as the engine itself would.

Example:
    >>> import numpy as np
    >>> from symgrad.tensor import Tensor
    >>> w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    >>> replay = replay_program((w * w).sum(), [w], [0], "example")
    >>> value, (grad,) = replay(np.array([3.0, 4.0]))
    >>> float(value), grad.tolist()
    (25.0, [6.0, 8.0])
"""
from __future__ import annotations

from collections import Counter
from functools import partial
from typing import Any, Callable, Optional, Sequence

import numpy as np

from . import backend
from .rules import broadcast_axes, unbroadcast
from .tensor import Tensor, _accumulated

__all__ = ["replay_program"]


def replay_program(out: Tensor, inputs: Sequence[Tensor], wanted: Sequence[int], what: str) -> Callable:
    """A function of the arrays of ``inputs`` returning ``(value, gradients)``: the value of ``out`` as a
    0-d array and the gradient of each ``inputs[i]`` for ``i`` in ``wanted``, by replaying the graph
    recorded from ``inputs`` to the one-element tensor ``out``. Its source is in ``.source``;
    ``.connected`` is false when ``out`` depends on none of the wanted inputs (every gradient is zero).

    Every tensor of the graph that requires grad must be one of ``inputs`` (else TypeError naming
    ``what``): a replay returns no gradient for any other.

    Example:
        >>> x = Tensor(np.array(1.0), requires_grad=True)
        >>> print(replay_program(x * 3.0, [x], [0], "example").source, end="")
        def replay(a0):
            v0 = f0(a0, c0)
            g0 = seed
            ga0 = b0_0(g0, v0, a0, c0)
            return v0, finish(ga0)
    """
    nodes = _nodes(out, inputs, what)
    names = {id(t): f"a{i}" for i, t in enumerate(inputs)}
    names.update((id(t), f"v{k}") for k, t in enumerate(nodes))
    scope: dict = {"seed": _seed(out), "unbroadcast": unbroadcast, "value": _value,
                   "changed": partial(_changed, what)}
    constants: dict = {}
    lines = []

    def constant(value: Any) -> str:
        """The name of ``value`` in the replay: a tensor's data is read at each replay, and must keep the
        shape, dtype and array type it had when the graph was recorded (every step of the replay was
        chosen for those)."""
        if id(value) in constants:
            return constants[id(value)]
        name = constants[id(value)] = f"c{len(constants)}"
        if not isinstance(value, Tensor):
            scope[name] = value
            return name
        data = value.data
        scope[f"t{name}"], scope[f"e{name}"] = value, (data.shape, data.dtype, type(data))
        lines.insert(0, f"{name} = t{name}.data")
        lines.insert(1, f"if ({name}.shape, {name}.dtype, type({name})) != e{name}: changed(e{name}, {name})")
        return name

    arguments = {}                        # node -> the source of its VJPs' arguments after (g, out)
    uses = Counter(id(a) for node in nodes for a in node._node[1] if isinstance(a, Tensor))
    uses[id(out)] += 1                    # the result is returned: never written over
    for k, node in enumerate(nodes):
        rule, args, recorded, params = node._node[:4]
        scope[f"f{k}"], scope[f"p{k}"] = rule.forward, params
        given = ", ".join(names[id(a)] if id(a) in names else constant(a if isinstance(a, Tensor) else recorded[1 + i])
                          for i, a in enumerate(args))
        keywords = f", **p{k}" if params else ""
        if rule.check is not None and any(id(a) in names for i, a in enumerate(args)      # constants were
                                          if rule.check_reads is None or i in rule.check_reads):   # checked once
            scope[f"k{k}"] = rule.check
            lines.append(f"k{k}({given}{keywords})")
        spent = _spent_input(node, uses)
        if spent is not None:             # a ufunc writing over an input that nothing reads any more
            scope[f"u{k}"] = rule.ufunc
            lines.append(f"v{k} = u{k}({given}, out={names[id(spent)]})")
        else:
            lines.append(f"v{k}, s{k} = f{k}({given}{keywords})" if rule.saves else f"v{k} = f{k}({given}{keywords})")
        arguments[k] = f"v{k}, {given}" + (f", s{k}" if rule.saves else "") + keywords

    needs = {f"a{i}" for i in wanted}     # the values a gradient flows back to
    for k, node in enumerate(nodes):
        if any(names.get(id(a)) in needs for a in node._node[1]):
            needs.add(f"v{k}")
    gathered = set()
    if names[id(out)] in needs:
        lines.append(f"{_gradient(names[id(out)])} = seed")
        gathered.add(_gradient(names[id(out)]))
    for k in reversed(range(len(nodes))):
        rule, args = nodes[k]._node[:2]
        if f"v{k}" not in needs:
            continue
        for i, a in enumerate(args):
            target = names.get(id(a))
            if target not in needs or rule.vjps[i] is None:
                continue
            scope[f"b{k}_{i}"] = rule.vjps[i]
            grad = _gradient(target)
            vjp, summed = f"b{k}_{i}(g{k}, {arguments[k]})", _unbroadcast_line(nodes[k], a.shape)
            if summed is not None:
                lines += [f"t = {vjp}", summed]
                vjp = "t"
            lines.append(f"{grad} = {grad} + {vjp}" if grad in gathered else f"{grad} = {vjp}")
            gathered.add(grad)

    scope["zeros_like"] = backend.xp_of(out.data).zeros_like
    scope["finish"] = _first_finish(scope, [inputs[i].data.dtype for i in wanted])
    grads = ", ".join(f"ga{i}" if f"ga{i}" in gathered else f"zeros_like(a{i})" for i in wanted)
    result = names[id(out)] if out.shape == () else f"value({names[id(out)]})"
    lines.append(f"return {result}, finish({grads})")
    source = f"def replay({', '.join(f'a{i}' for i in range(len(inputs)))}):\n" + "".join(
        f"    {line}\n" for line in lines)
    exec(compile(source, "<symgrad replay>", "exec"), scope)       # our own generated code, never user text
    replay = scope["replay"]
    replay.source = source
    replay.connected = names[id(out)] in needs
    return replay


def _unbroadcast_line(node: Tensor, shape: tuple) -> Optional[str]:
    """The line summing ``t``, a VJP of ``node``, down to its argument's ``shape``, or None where none is
    needed. The VJPs of an elementwise op (a NumPy ufunc's) give the shape of its result (or ``shape``
    already, if they sum it themselves): none when that is ``shape``, else their sums written out, their
    axes known when the replay is written."""
    if node._node[0].ufunc is None:
        return f"if t.shape != {shape}: t = unbroadcast(t, {shape})"
    if node.shape == shape:
        return None
    lead, kept = broadcast_axes(node.shape, shape)
    sums = (f".sum(axis={lead})" if lead else "") + (f".sum(axis={kept}, keepdims=True)" if kept else "")
    return f"t = t{sums} if t.shape == {node.shape} else unbroadcast(t, {shape})"


def _changed(what: str, recorded: tuple, data: Any) -> None:
    """Raise the RuntimeError of a replay whose constant tensor's data changed shape, dtype or type."""
    shape, dtype, kind = recorded
    raise RuntimeError(f"{what}: a tensor that the function takes from outside its arguments held a "
                       f"{kind.__name__} of shape {shape} and dtype {dtype} when the function was recorded, and "
                       f"now a {type(data).__name__} of shape {data.shape} and dtype {data.dtype}; pass it as an "
                       "argument, so that each shape and dtype gets its own replay")


def _spent_input(node: Tensor, uses: Counter) -> Any:
    """The argument of ``node`` whose array a replay may overwrite with ``node``'s result, or None.

    That is an array made by an earlier op of the graph (never an input's or a constant's), owning its
    memory (not a view nor a NumPy scalar), of the result's shape and dtype, used by ``node`` alone,
    and whose values no VJP reads: neither those of the op that made it nor those of ``node`` (see
    ``Rule.reads``)."""
    rule, args, _, params = node._node[:4]
    if rule.ufunc is None or rule.reads is None or params:
        return None
    for i, a in enumerate(args):
        if not (isinstance(a, Tensor) and a._node and uses[id(a)] == 1 and i not in rule.reads):
            continue
        made_by = a._node[0].reads
        data = a.data
        if made_by is not None and "out" not in made_by and not isinstance(data, np.generic) and data.ndim and (
                data.base is None and data.shape == node.data.shape and data.dtype == node.data.dtype):
            return a
    return None


def _gradient(name: str) -> str:
    """The name of the gradient of the value ``name`` in a replay: g3 for v3, ga0 for a0."""
    return "g" + name[1:] if name[0] == "v" else "g" + name


def _nodes(out: Tensor, inputs: Sequence[Tensor], what: str) -> list:
    """The recorded tensors that ``out`` depends on, oldest first (each after its arguments)."""
    ours = {id(t) for t in inputs}
    found, stack, nodes = set(), [out], []
    while stack:
        t = stack.pop()
        if id(t) in found or id(t) in ours:
            continue
        found.add(id(t))
        if t._node == ():
            raise TypeError(f"{what}: the function uses a tensor that requires grad but is not a differentiated "
                            "argument, whose gradient a compiled replay would not return; pass it as an argument "
                            "(and in argnums) or make it with requires_grad=False")
        if t._node:
            if len(t._node) == 1:
                raise RuntimeError(f"{what}: the function's result comes from a graph that backward() already "
                                   "freed")
            nodes.append(t)
            stack.extend(a for a in t._node[1] if isinstance(a, Tensor))
    nodes.sort(key=lambda t: -t._seq)
    return nodes


def _seed(out: Tensor) -> Any:
    """The gradient of the result with respect to itself: ones of its shape and dtype."""
    return backend.xp_of(out.data).ones(out.shape, dtype=out.dtype)


def _first_finish(scope: dict, dtypes: list) -> Callable:
    """The replay's last step, ``finish(*gradients)``, on its first run: each gradient made an array of its
    own, of its input's dtype, as ``backward()`` hands them back (a view, the seed or an array returned
    twice is copied). Which arrays are views or shared, and their dtypes, follow from the shapes, dtypes
    and array types of the arrays a replay computes with (NumPy 2 promotes by dtype, never by value),
    and those are the same on every run of one program: the arguments' are its signature, and the
    constant tensors' are checked at the start of each run. So when none needed a change, ``finish``
    hands the gradients back as they are on the runs after."""
    def checked(*grads: Any) -> tuple:
        owned = {id(scope["seed"])}
        return tuple(_accumulated(None, g, dtype, owned) for g, dtype in zip(grads, dtypes))

    def first(*grads: Any) -> tuple:
        finished = checked(*grads)
        scope["finish"] = _as_they_are if all(a is b for a, b in zip(finished, grads)) else checked
        return finished

    return first


def _as_they_are(*grads: Any) -> tuple:
    return grads


def _value(result: Any) -> Any:
    """The replayed result as the engine gives it: an array (or NumPy scalar) of shape ()."""
    return (result if hasattr(result, "reshape") else np.asarray(result)).reshape(())

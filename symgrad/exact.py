"""The exact gradient of a loss at a point, from SymPy's partial derivatives, as :func:`symgrad.check` needs it.

A loss over many samples is usually the mean (or the sum) of one per-sample
loss over the leading axis of its data. SymPy then does not need the whole
batch, with one copy of the model per sample: :func:`exact_gradient` derives the
loss of a single sample, proves (symbolically, on two samples) that the batch
loss is the mean or the sum of it, confirms that numerically on the whole data
(at the point and at a second, perturbed one: a loss may use only some of the
samples, which two samples cannot reveal), and evaluates the compiled per-sample
partials over all the samples at once. Any other loss is derived whole.

Example:
    >>> import numpy as np
    >>> import symgrad as sg
    >>> def loss(w, x, y):
    ...     return sg.mean((sg.tanh(x * w) - y) ** 2)
    >>> x, y = np.linspace(-1, 1, 50), np.linspace(0, 1, 50)
    >>> gradient, how = exact_gradient(loss, {"w": 0.5}, {"x": x, "y": y})
    >>> how
    'derived for one sample and averaged over the 50 samples of x, y'
    >>> float(gradient["w"]) == float(np.mean(2 * (np.tanh(0.5 * x) - y) * (1 - np.tanh(0.5 * x) ** 2) * x))
    True
"""
from __future__ import annotations

import math
from collections import Counter
from functools import partial
from typing import Any, Callable, Mapping, NamedTuple, Optional

import numpy as np

__all__ = ["exact_gradient", "exact_derivation", "Exact"]

PRECISE_DIGITS = 30    # significant digits of the partials evaluated past float64 (Exact.precise)
MIN_SAMPLES = 3        # below this, deriving the whole batch costs no more than the separability proof
AGREEMENT = 1e-8       # per-sample total and batch loss this close (relatively) agree up to rounding


class Exact(NamedTuple):
    """What :func:`exact_derivation` returns: the gradient, how it was derived, and whether the loss is smooth.

    ``smooth`` is True when the derived expression holds no non-smooth function
    (abs, max, min, a piecewise form, a step...): the exact gradient then holds
    wherever it is finite, even where finite differences see a kink.
    ``precise`` (None when the loss was derived per sample) maps a list of
    ``(weight, index)`` to those partials evaluated with :data:`PRECISE_DIGITS`
    significant digits instead of float64: the float64 evaluation of a formula
    can lose digits to cancellation (``(x cos x - sin x)/x**2`` near 0).

    Example:
        >>> Exact({"w": np.array(1.0)}, "derived whole", True).smooth
        True
    """

    gradient: dict
    how: str
    smooth: bool
    precise: Optional[Callable[[list], list]] = None


def exact_gradient(f: Callable[..., Any], params: Mapping[str, Any], data: Mapping[str, Any]) -> tuple:
    """``(gradient, how)``: ``{weight: exact gradient in float64}`` at ``params``, and how it was derived.

    ``f(**params, **data)`` must compute with ``sg.*`` functions; whatever SymPy
    cannot trace raises (ValueError or TypeError from :func:`symgrad.derive`).

    Example:
        >>> exact_gradient(lambda w, x: (w * x) ** 2, {"w": 3.0}, {"x": 2.0})
        ({'w': array(24.)}, 'derived whole')
    """
    return tuple(exact_derivation(f, params, data)[:2])


def exact_derivation(f: Callable[..., Any], params: Mapping[str, Any], data: Mapping[str, Any]) -> Exact:
    """The exact gradient of :func:`exact_gradient`, with whether the derived loss is smooth (see :class:`Exact`).

    Example:
        >>> import symgrad as sg
        >>> exact_derivation(lambda w: sg.abs(w) + w ** 2, {"w": 1.0}, {})[:3]
        ({'w': array(3.)}, 'derived whole', False)
        >>> exact_derivation(lambda w: sg.sqrt(w * w + 1e-18), {"w": 1e-9}, {}).smooth
        True
    """
    import sympy  # noqa: PLC0415  (loads SymPy)

    from .symbolic.derive import derive  # noqa: PLC0415

    values = {n: np.asarray(v, dtype=np.float64) for n, v in params.items()}
    shapes = {n: v.shape for n, v in values.items()}
    per_sample = _per_sample(f, shapes, dict(data), derive)
    if per_sample is not None and not _sums_to_loss(f, values, dict(data), *per_sample):
        per_sample = None
    precise = None
    if per_sample is None:
        derivatives = derive(f, wrt=list(params), shapes=shapes, data=dict(data))
        gradient = derivatives.compile()(**values)
        how = "derived whole"
        precise = partial(_precise_partials, derivatives, values)
    else:
        derivatives, reduction, batched = per_sample
        gradient = derivatives.compile(reduction)(**values, **{n: np.asarray(data[n])[:, None] for n in batched})
        count = len(data[batched[0]])
        how = (f"derived for one sample and {'averaged' if reduction == 'mean' else 'summed'} over the "
               f"{count} samples of {', '.join(batched)}")
    smooth = not derivatives.expr.has(*_non_smooth(sympy))
    return Exact({n: np.asarray(gradient[n], dtype=np.float64).reshape(shapes[n]) for n in params}, how, smooth,
                 precise)


def _precise_partials(derivatives: Any, values: dict, elements: list) -> list:
    """The partials by ``elements`` (``(weight, index)`` pairs) at ``values``, evaluated with
    :data:`PRECISE_DIGITS` digits and rounded to float (NaN where SymPy finds no real number).

    Example:
        >>> from symgrad.symbolic.derive import derive
        >>> d = derive("sin(x)/x", wrt="x")                     # d/dx = (x cos x - sin x)/x**2 = -x/3 + O(x**3)
        >>> x = np.float64(1e-5)
        >>> float(d.gradient(x=x)["x"] + x / 3) > 1e-12       # float64 loses digits to cancellation
        True
        >>> bool(abs(_precise_partials(d, {"x": x}, [("x", ())])[0] + x / 3) < 1e-15)
        True
    """
    import sympy  # noqa: PLC0415

    from .symbolic.derive import element_name  # noqa: PLC0415

    point = {sympy.Symbol(element_name(name, index), real=True): sympy.Float(float(value[index]), PRECISE_DIGITS)
             for name, value in values.items() for index in np.ndindex(value.shape)}
    results = []
    for name, index in elements:
        number = derivatives.exprs[element_name(name, index)].evalf(PRECISE_DIGITS, subs=point)
        results.append(float(number) if number.is_real and number.is_finite else math.nan)
    return results


def _non_smooth(sympy: Any) -> tuple:
    """The SymPy functions whose derivative jumps somewhere (SymPy is passed in: it loads lazily).

    Example:
        >>> import sympy
        >>> sympy.Abs in _non_smooth(sympy)
        True
    """
    return (sympy.Abs, sympy.Max, sympy.Min, sympy.Piecewise, sympy.Heaviside, sympy.sign, sympy.floor,
            sympy.ceiling, sympy.DiracDelta)


def _per_sample(f: Callable[..., Any], shapes: dict, data: dict, derive: Callable) -> Optional[tuple]:
    """The per-sample Derivatives, "mean" or "sum", and the batched data names; None if f is not of that form.

    The samples run along the leading axis of the data arrays that share the most
    common leading length (the longest, between equally common ones). The loss of two symbolic samples must equal the mean
    (or the sum) of the one-sample loss applied to each, after expansion.
    """
    import sympy  # noqa: PLC0415

    from .symbolic.derive import element_name  # noqa: PLC0415

    lengths = Counter(np.shape(v)[0] for v in data.values() if np.ndim(v) >= 1)
    if not lengths:
        return None
    count = max(lengths, key=lambda n: (lengths[n], n))
    if count < MIN_SAMPLES:
        return None
    batched = [n for n, v in data.items() if np.ndim(v) >= 1 and np.shape(v)[0] == count]
    constants = {n: v for n, v in data.items() if n not in batched}

    def derived(samples: int) -> Any:
        sample_shapes = {n: (samples, *np.shape(data[n])[1:]) for n in batched}
        return derive(f, wrt=list(shapes), shapes={**shapes, **sample_shapes}, data=constants)

    try:
        one, two = derived(1), derived(2)
    except Exception:  # noqa: BLE001  (a loss that indexes samples or divides by their count: derive it whole)
        return None
    second = {}
    for name in batched:
        for index in np.ndindex((1, *np.shape(data[name])[1:])):
            second[sympy.Symbol(element_name(name, index), real=True)] = sympy.Symbol(
                element_name(name, (1, *index[1:])), real=True)
    pair = one.expr + one.expr.xreplace(second)
    for reduction, candidate in (("mean", pair / 2), ("sum", pair)):
        difference = two.expr - candidate
        if difference == 0 or sympy.expand(difference) == 0:
            return one, reduction, batched
    return None


def _sums_to_loss(f: Callable[..., Any], values: dict, data: dict, one: Any, reduction: str, batched: list) -> bool:
    """Whether the mean (or sum) of the per-sample loss over all the samples is ``f(**values, **data)``, at
    ``values`` and at a perturbed point, up to rounding.

    Example:
        >>> from symgrad.symbolic.derive import derive
        >>> x = np.arange(1.0, 6.0)
        >>> one = derive(lambda w, x: (w * x) ** 2, wrt=["w"], shapes={"w": (), "x": (1,)})
        >>> _sums_to_loss(lambda w, x: np.mean((w * x) ** 2), {"w": np.float64(2.0)}, {"x": x}, one, "mean", ["x"])
        True
        >>> _sums_to_loss(lambda w, x: np.mean((w * x[:2]) ** 2), {"w": np.float64(2.0)}, {"x": x}, one, "mean",
        ...               ["x"])
        False
    """
    import sympy  # noqa: PLC0415

    from .symbolic.derive import element_name  # noqa: PLC0415

    symbols, arguments = [], []
    for name, value in values.items():
        for index in np.ndindex(value.shape):
            symbols.append(sympy.Symbol(element_name(name, index), real=True))
            arguments.append(lambda point, name=name, index=index: point[name][index])
    for name in batched:
        column = np.asarray(data[name], dtype=np.float64)
        for index in np.ndindex(column.shape[1:]):
            symbols.append(sympy.Symbol(element_name(name, (0, *index)), real=True))
            arguments.append(lambda point, column=column, index=index: column[(slice(None), *index)])
    per_sample = sympy.lambdify(symbols, one.expr, "numpy")
    count = len(data[batched[0]])
    rng = np.random.default_rng(0)
    shifted = {n: v + (0.1 + 0.1 * np.abs(v)) * rng.uniform(0.5, 1.0, v.shape) for n, v in values.items()}
    for point in (values, shifted):
        samples = np.broadcast_to(np.asarray(per_sample(*(a(point) for a in arguments)), dtype=np.float64), (count,))
        total = samples.mean() if reduction == "mean" else samples.sum()
        with np.errstate(all="ignore"):
            loss = float(np.asarray(f(**point, **data)).reshape(()))
        size = np.abs(samples).mean() if reduction == "mean" else np.abs(samples).sum()
        if not abs(total - loss) <= AGREEMENT * (abs(loss) + size):
            return False
    return True

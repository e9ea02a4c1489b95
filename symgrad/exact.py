"""The exact gradient of a loss at a point, from SymPy's partial derivatives, as :func:`symgrad.check` needs it.

A loss over many samples is usually the mean (or the sum) of one per-sample
loss over the leading axis of its data. SymPy then does not need the whole
batch, with one copy of the model per sample: :func:`exact_gradient` derives the
loss of a single sample, proves (symbolically, on two samples) that the batch
loss is the mean or the sum of it, and evaluates the compiled per-sample
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

from collections import Counter
from typing import Any, Callable, Mapping, Optional

import numpy as np

__all__ = ["exact_gradient"]

MIN_SAMPLES = 3        # below this, deriving the whole batch costs no more than the separability proof


def exact_gradient(f: Callable[..., Any], params: Mapping[str, Any], data: Mapping[str, Any]) -> tuple:
    """``(gradient, how)``: ``{weight: exact gradient in float64}`` at ``params``, and how it was derived.

    ``f(**params, **data)`` must compute with ``sg.*`` functions; whatever SymPy
    cannot trace raises (ValueError or TypeError from :func:`symgrad.derive`).

    Example:
        >>> exact_gradient(lambda w, x: (w * x) ** 2, {"w": 3.0}, {"x": 2.0})
        ({'w': array(24.)}, 'derived whole')
    """
    from .symbolic.derive import derive  # noqa: PLC0415  (loads SymPy)

    values = {n: np.asarray(v, dtype=np.float64) for n, v in params.items()}
    shapes = {n: v.shape for n, v in values.items()}
    per_sample = _per_sample(f, shapes, dict(data), derive)
    if per_sample is None:
        gradient = derive(f, wrt=list(params), shapes=shapes, data=dict(data)).compile()(**values)
        how = "derived whole"
    else:
        one, reduction, batched = per_sample
        gradient = one.compile(reduction)(**values, **{n: np.asarray(data[n])[:, None] for n in batched})
        count = len(data[batched[0]])
        how = (f"derived for one sample and {'averaged' if reduction == 'mean' else 'summed'} over the "
               f"{count} samples of {', '.join(batched)}")
    return {n: np.asarray(gradient[n], dtype=np.float64).reshape(shapes[n]) for n in params}, how


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
    except (TypeError, ValueError):
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

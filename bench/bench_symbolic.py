"""Symbolic gradients of a 2-8-1 tanh MLP's MSE loss (33 weights): derive+compile, then evaluate.

Two tables:

1. *derive + compile* the 33 partials from a cold SymPy cache (the loss is built
   from the same Python function each time): symgrad (reverse mode over the
   expression DAG, its own NumPy code) against ``sympy.diff`` per weight +
   ``lambdify`` without and with ``cse``, and SymEngine (``diff`` + ``Lambdify``).
   ``first call`` is the first run in a fresh process.
2. *evaluate* the gradient of the mean loss over 100,000 samples: symgrad's
   compiled function against a hand-written NumPy gradient (the baseline), the
   lambdified SymPy partials (mean taken in NumPy), SymEngine's Lambdify, and
   symgrad's reverse-mode engine (``sg.Tensor``). ``max_rel_error`` is the
   largest error relative to the hand-written gradient's largest entry.

Run: ``python bench/bench_symbolic.py`` (``--case``/``--peer`` to select).
"""
from __future__ import annotations

import sys
import time

import numpy as np

from harness import main

SHAPES = {"W1": (2, 8), "b1": (8,), "W2": (8, 1), "b2": (1,), "x": (2,), "y": (1,)}
WEIGHTS = ["W1", "b1", "W2", "b2"]
SAMPLES = 100_000


def mlp_loss(W1, b1, W2, b2, x, y):
    """The per-sample loss: MSE of a 2-8-1 tanh network."""
    import symgrad as sg

    return sg.mse_loss(sg.tanh(x @ W1 + b1) @ W2 + b2, y)


def point() -> tuple:
    """Fixed weights and 100,000 samples."""
    rng = np.random.default_rng(0)
    params = {"W1": rng.normal(size=(2, 8)), "b1": rng.normal(size=8), "W2": rng.normal(size=(8, 1)),
              "b2": rng.normal(size=1)}
    data = {"x": rng.normal(size=(SAMPLES, 2)), "y": rng.normal(size=(SAMPLES, 1))}
    return params, data


def by_hand(W1, b1, W2, b2, x, y) -> dict:
    """The gradient of the mean loss, written by hand in NumPy."""
    h = np.tanh(x @ W1 + b1)
    d = (2.0 / len(x)) * (h @ W2 + b2 - y)
    dh = (d @ W2.T) * (1 - h * h)
    return {"W1": x.T @ dh, "b1": dh.sum(0), "W2": h.T @ d, "b2": d.sum(0)}


def sympy_partials():
    """The loss built from SymPy symbols through ``sg.*`` (as derive builds it), its weights' and data's symbols."""
    import sympy

    symbols = {name: np.array([sympy.Symbol(f"{name}_{i}", real=True) for i in range(int(np.prod(shape)))],
                              dtype=object).reshape(shape) for name, shape in SHAPES.items()}
    loss = mlp_loss(**symbols)
    weights = [s for name in WEIGHTS for s in symbols[name].ravel()]
    data = [s for name in ("x", "y") for s in symbols[name].ravel()]
    return loss, weights, data


def timed_first(work):
    """``work`` with the duration of its first call (cold process) attached as an extra column."""
    start = time.perf_counter()
    work()
    work.extra = {"first_call": f"{(time.perf_counter() - start) * 1e3:.1f} ms"}
    return work


# --- derive + compile -------------------------------------------------------------------------------


def symgrad_derive():
    from sympy.core.cache import clear_cache

    from symgrad.symbolic.derive import derive

    def work():
        clear_cache()
        return derive(mlp_loss, WEIGHTS, shapes=SHAPES).compile()

    return timed_first(work)


def sympy_diff_lambdify(cse: bool):
    def setup():
        import sympy
        from sympy.core.cache import clear_cache

        def work():
            clear_cache()
            loss, weights, data = sympy_partials()
            return sympy.lambdify(weights + data, [sympy.diff(loss, w) for w in weights], "numpy", cse=cse)

        return timed_first(work)

    return setup


def symengine_gradient(backend: str):
    """``diff`` + ``Lambdify`` of the 33 partials in SymEngine, the loss built from SymEngine symbols."""
    import symengine

    W1 = np.array(symengine.symbols("W1_0:16")).reshape(2, 8)
    b1 = symengine.symbols("b1_0:8")
    W2 = symengine.symbols("W2_0:8")
    b2, x0, x1, y = symengine.symbols("b2 x0 x1 y")
    h = [symengine.tanh(x0 * W1[0, j] + x1 * W1[1, j] + b1[j]) for j in range(8)]
    loss = (sum(W2[j] * h[j] for j in range(8)) + b2 - y) ** 2
    weights = list(W1.ravel()) + list(b1) + list(W2) + [b2]
    return symengine.Lambdify(weights + [x0, x1, y], [loss.diff(w) for w in weights], cse=True, backend=backend)


def symengine_diff_lambdify(backend: str):
    def setup():
        import symengine  # noqa: F401  (ImportError: peer not installed)

        return timed_first(lambda: symengine_gradient(backend))

    return setup


# --- evaluate on 100,000 samples -------------------------------------------------------------------


def with_error(work, reference: dict):
    """Attach the largest error of ``work()`` relative to the hand-written gradient."""
    got = work()
    scale = max(np.abs(v).max() for v in reference.values())
    work.extra = {"max_rel_error": max(float(np.abs(np.reshape(got[k], np.shape(v)) - v).max())
                                       for k, v in reference.items()) / scale}
    return work


def numpy_by_hand():
    params, data = point()
    return with_error(lambda: by_hand(**params, **data), by_hand(**params, **data))


def symgrad_compiled():
    from symgrad.symbolic.derive import derive

    params, data = point()
    grad = derive(mlp_loss, WEIGHTS, shapes=SHAPES).compile()
    return with_error(lambda: grad(**params, **data), by_hand(**params, **data))


def symgrad_engine():
    import symgrad as sg

    params, data = point()
    return with_error(lambda: sg.value_and_gradients(mlp_loss, params, data)[1], by_hand(**params, **data))


def _assemble(values) -> dict:
    """33 partials in weight order -> the gradient dict."""
    out, start = {}, 0
    for name in WEIGHTS:
        size = int(np.prod(SHAPES[name]))
        out[name] = np.reshape(values[start:start + size], SHAPES[name])
        start += size
    return out


def sympy_lambdified(cse: bool):
    def setup():
        import sympy

        params, data = point()
        loss, weights, symbols = sympy_partials()
        f = sympy.lambdify(weights + symbols, [sympy.diff(loss, w) for w in weights], "numpy", cse=cse)
        args = [v for name in WEIGHTS for v in params[name].ravel()] + [data["x"][:, 0], data["x"][:, 1],
                                                                          data["y"][:, 0]]

        def work():
            return _assemble([np.mean(p) for p in f(*args)])

        return with_error(work, by_hand(**params, **data))

    return setup


def symengine_lambdified(backend: str):
    def setup():
        params, data = point()
        lambdified = symengine_gradient(backend)
        weights = np.concatenate([params[name].ravel() for name in WEIGHTS])

        def work():                       # Lambdify takes one row of every input per sample
            inputs = np.empty((SAMPLES, weights.size + 3))
            inputs[:, :weights.size] = weights
            inputs[:, weights.size:weights.size + 2] = data["x"]
            inputs[:, -1] = data["y"][:, 0]
            return _assemble(lambdified(inputs).mean(axis=0))

        return with_error(work, by_hand(**params, **data))

    return setup


CASES = {
    "derive+compile 33 partials": {
        "sympy.diff + lambdify": sympy_diff_lambdify(cse=False),
        "sympy.diff + lambdify(cse)": sympy_diff_lambdify(cse=True),
        "symengine diff + Lambdify": symengine_diff_lambdify("lambda"),
        "symengine diff + Lambdify(llvm)": symengine_diff_lambdify("llvm"),
        "symgrad derive + compile": symgrad_derive,
    },
    f"gradient on {SAMPLES:,} samples": {
        "numpy by hand": numpy_by_hand,
        "symgrad compiled": symgrad_compiled,
        "sympy lambdify": sympy_lambdified(cse=False),
        "sympy lambdify(cse)": sympy_lambdified(cse=True),
        "symengine Lambdify": symengine_lambdified("lambda"),
        "symengine Lambdify(llvm)": symengine_lambdified("llvm"),
        "symgrad engine (Tensor)": symgrad_engine,
    },
}

if __name__ == "__main__":
    first, second = list(CASES)
    main({first: CASES[first]}, baseline="sympy.diff + lambdify", title="symbolic: derive and compile",
         columns=("first_call",))
    if "--child" not in sys.argv:
        print()
        main({second: CASES[second]}, baseline="numpy by hand", title="symbolic: evaluate the gradient",
             columns=("max_rel_error",))

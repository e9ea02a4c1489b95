"""Speed of the cross-check: ``sg.check`` three ways, and ``sg.assert_gradients_close`` against gradcheck.

Cases (each peer in its own single-threaded process pinned to one CPU; see ``harness.py``):

- ``check mlp 2-8-1 x100``: ``sg.check`` of a 2-8-1 tanh MLP's MSE loss over 100 samples with
  all three methods (exact SymPy partials, central differences, backprop), float64; target
  0.5 s. Every call builds a new loss function, so nothing derived before is reused but
  SymPy's own caches; ``first call`` is the first check of the process (SymPy loaded, its
  caches empty) and ``import sympy`` the one-time cost of loading the symbolic engine. ``torch gradcheck`` (finite differences against autograd, no exact value) is
  there for scale. The ``sym/fd/bp ms`` columns split symgrad's time (wall clock, medians over the calls).
- ``assert 1000 tanh`` and ``assert 1000 linear``: ``sg.assert_gradients_close`` (central
  differences against backprop, every entry) on one 1,000-element parameter, against
  ``torch.autograd.gradcheck`` (the baseline) on the same function, and JAX's
  ``check_grads`` (which compares random directional derivatives, not every entry).
  ``tanh``: ``sum(tanh(w * x) ** 2)``; ``linear``: ``mean((X @ w - y) ** 2)`` with X of
  shape (32, 1000).

The ``max_error`` column is the largest |backprop - reference| the check saw.

Example::

    python bench/bench_check.py
    python bench/bench_check.py --case "assert 1000 tanh"
"""
from __future__ import annotations

import statistics

import numpy as np

from harness import main

SAMPLES, HIDDEN = 100, 8
N = 1000


# --- shared data ---------------------------------------------------------------------------------------


def mlp_problem() -> tuple:
    """The 2-8-1 MLP's weights and its 100 samples, float64, the same for every peer.

    Example:
        >>> params, data = mlp_problem()
        >>> params["W1"].shape, data["X"].shape
        ((2, 8), (100, 2))
    """
    rng = np.random.default_rng(0)
    params = {"W1": rng.standard_normal((2, HIDDEN)), "b1": rng.standard_normal(HIDDEN) * 0.1,
              "W2": rng.standard_normal((HIDDEN, 1)) / np.sqrt(HIDDEN), "b2": np.zeros(1)}
    X = rng.uniform(-1, 1, (SAMPLES, 2))
    data = {"X": X, "y": np.sin(X[:, :1] * 3) * X[:, 1:]}
    return params, data


def make_mlp_loss():
    """A fresh 2-8-1 tanh MLP loss function (mean squared error over the samples)."""
    import symgrad as sg

    def loss(W1, b1, W2, b2, X, y):
        return sg.mean((sg.tanh(X @ W1 + b1) @ W2 + b2 - y) ** 2)

    return loss


def assert_problem(kind: str) -> tuple:
    """The 1,000-element parameter and the data of the assert cases.

    Example:
        >>> w, data = assert_problem("linear")
        >>> w.shape, data["X"].shape
        ((1000,), (32, 1000))
    """
    rng = np.random.default_rng(1)
    w = rng.standard_normal(N) * 0.5
    if kind == "tanh":
        return w, {"x": rng.uniform(-1, 1, N)}
    return w, {"X": rng.standard_normal((32, N)) / np.sqrt(N), "y": rng.standard_normal(32)}


def with_extra(work, extra):
    work.extra = extra
    return work


# --- check of the MLP -----------------------------------------------------------------------------------


def symgrad_check():
    import time

    import symgrad as sg

    params, data = mlp_problem()
    reports = []

    def work():
        report = sg.check(make_mlp_loss(), params, data)
        assert report.ok, str(report)
        reports.append(report)

    start = time.perf_counter()
    import symgrad.symbolic.derive  # noqa: F401  (SymPy and the symbolic engine: loaded once per process)
    loaded = time.perf_counter()
    work()                                     # the first check of the process: SymPy's caches are empty
    first = time.perf_counter() - loaded
    importing = loaded - start

    def extra():
        later = reports[1:]                    # every call after the first, warm-up included
        return {"max_error": max(r.max_abs_error for r in later), "import sympy": f"{importing * 1e3:.0f} ms",
                "first call": f"{first * 1e3:.0f} ms",
                **{f"{k} ms": round(statistics.median(r.timings[m] for r in later) * 1e3, 2)
                   for k, m in (("sym", "symbolic"), ("fd", "finite_diff"), ("bp", "backprop"))}}

    return with_extra(work, extra)


def torch_mlp_gradcheck():
    import torch

    params, data = mlp_problem()
    X, y = (torch.tensor(data[k]) for k in ("X", "y"))
    weights = tuple(torch.tensor(params[k], requires_grad=True) for k in ("W1", "b1", "W2", "b2"))

    def loss(W1, b1, W2, b2):
        return (((torch.tanh(X @ W1 + b1) @ W2 + b2) - y) ** 2).mean()

    return lambda: torch.autograd.gradcheck(loss, weights)


# --- assert_gradients_close on 1,000 elements ---------------------------------------------------------


def symgrad_assert(kind: str):
    def setup():
        import symgrad as sg

        w, data = assert_problem(kind)
        if kind == "tanh":
            def loss(w, x):
                return sg.sum(sg.tanh(w * x) ** 2)
        else:
            def loss(w, X, y):
                return sg.mean((X @ w - y) ** 2)
        last = {}

        def work():
            last["report"] = sg.assert_gradients_close(loss, {"w": w}, data)

        return with_extra(work, lambda: {"max_error": last["report"].max_abs_error})

    return setup


def torch_assert(kind: str):
    def setup():
        import torch

        w0, data = assert_problem(kind)
        w = torch.tensor(w0, requires_grad=True)
        tensors = {k: torch.tensor(v) for k, v in data.items()}
        if kind == "tanh":
            def loss(w):
                return (torch.tanh(w * tensors["x"]) ** 2).sum()
        else:
            def loss(w):
                return ((tensors["X"] @ w - tensors["y"]) ** 2).mean()
        return lambda: torch.autograd.gradcheck(loss, (w,))

    return setup


def jax_assert(kind: str):
    def setup():
        import jax

        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp
        from jax.test_util import check_grads

        w0, data = assert_problem(kind)
        arrays = {k: jnp.asarray(v) for k, v in data.items()}
        if kind == "tanh":
            def loss(w):
                return jnp.sum(jnp.tanh(w * arrays["x"]) ** 2)
        else:
            def loss(w):
                return jnp.mean((arrays["X"] @ w - arrays["y"]) ** 2)
        w = jnp.asarray(w0)
        return lambda: check_grads(loss, (w,), order=1, modes=["rev"])

    return setup


CASES = {
    "check mlp 2-8-1 x100": {"symgrad": symgrad_check, "torch gradcheck": torch_mlp_gradcheck},
    "assert 1000 tanh": {"torch gradcheck": torch_assert("tanh"), "symgrad": symgrad_assert("tanh"),
                         "jax check_grads": jax_assert("tanh")},
    "assert 1000 linear": {"torch gradcheck": torch_assert("linear"), "symgrad": symgrad_assert("linear"),
                           "jax check_grads": jax_assert("linear")},
}

if __name__ == "__main__":
    main(CASES, baseline="torch gradcheck", title="symgrad check: three-way report and assert_gradients_close",
         columns=("max_error", "import sympy", "first call", "sym ms", "fd ms", "bp ms"))

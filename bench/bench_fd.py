"""Finite-difference gradients: symgrad against a NumPy loop, scipy, numdifftools and torch.gradcheck.

The gradient of f(x) = sum(sin(x) * x**2) at n = 1,000 and 10,000 points drawn uniformly in
[-2, 2], with the max error against the exact gradient 2x sin x + x² cos x. The targets at
n = 1,000: central differences at max error <= 1e-8 in <= 15 ms, Richardson at <= 1e-10 in
<= 36 ms; at n = 10,000: central in <= 0.9 s.

symgrad peers:

- "symgrad central" / "symgrad richardson": f written for a batch of points (``axis=-1``), so
  every perturbed point goes through one call as PerturbedRows (the base point plus one
  replaced element per row: O(n) work per call instead of O(n²));
- "symgrad dense rows": the same f but starting with ``np.asarray``, which takes away the
  row structure: dense chunks of 128 KiB of points (what any f with ``@`` gets);
- "symgrad unbatched": ``batched=False``, one call per point.

Other peers: "numpy loop" (central differences, one call per point, the baseline);
"scipy approx_fprime" (scipy's forward differences); "numdifftools" (``nd.Gradient``,
Richardson extrapolation; n = 1,000 only, it takes seconds beyond); "torch gradcheck"
(the checking use: compares numeric and autograd Jacobians and returns pass/fail, so no
error column; the full check at n = 1,000 only, ``fast_mode`` at both sizes).

Run (with the project's environment active): ``python bench/bench_fd.py`` (``--help`` for options).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from harness import main


def _point(n: int) -> tuple:
    x = np.random.default_rng(0).uniform(-2, 2, n)
    return x, 2 * x * np.sin(x) + x ** 2 * np.cos(x)


def _scored(compute: Callable[[], Any], exact: np.ndarray, note: str = "") -> Callable[[], None]:
    """A zero-argument callable running ``compute``, reporting the max error of its last result."""
    last = {}

    def work() -> None:
        last["gradient"] = compute()

    def extra() -> dict:
        figures = {"note": note} if note else {}
        if exact is not None:
            figures["max_error"] = float(np.max(np.abs(np.asarray(last["gradient"]) - exact)))
        return figures

    work.extra = extra
    return work


def _batched(v: Any) -> Any:
    return np.sum(np.sin(v) * v ** 2, axis=-1)


def _dense(v: Any) -> Any:
    v = np.asarray(v)
    return np.sum(np.sin(v) * v ** 2, axis=-1)


def _plain(v: np.ndarray) -> float:
    return np.sum(np.sin(v) * v ** 2)


def symgrad_peer(n: int, method: str, f: Callable, batched: bool, note: str) -> Callable:
    def setup() -> Callable[[], None]:
        import symgrad as sg

        x, exact = _point(n)
        return _scored(lambda: sg.fd_gradient(f, x, method, batched=batched), exact, note)
    return setup


def numpy_loop(n: int) -> Callable:
    def setup() -> Callable[[], None]:
        x, exact = _point(n)
        h = np.cbrt(np.finfo(float).eps) * np.maximum(1.0, np.abs(x))

        def central() -> np.ndarray:
            gradient = np.empty(n)
            moved = x.copy()
            for i in range(n):
                moved[i] = x[i] + h[i]
                up = _plain(moved)
                moved[i] = x[i] - h[i]
                down = _plain(moved)
                moved[i] = x[i]
                gradient[i] = (up - down) / (2 * h[i])
            return gradient
        return _scored(central, exact, "central, one call per point")
    return setup


def scipy_forward(n: int) -> Callable:
    def setup() -> Callable[[], None]:
        from scipy.optimize import approx_fprime

        x, exact = _point(n)
        return _scored(lambda: approx_fprime(x, _plain), exact, "forward, h = sqrt(eps)")
    return setup


def numdifftools_gradient(n: int) -> Callable:
    def setup() -> Callable[[], None]:
        import numdifftools as nd

        x, exact = _point(n)
        gradient = nd.Gradient(_plain)
        return _scored(lambda: gradient(x), exact, "central + Richardson")
    return setup


def torch_gradcheck(n: int, fast_mode: bool) -> Callable:
    def setup() -> Callable[[], None]:
        import torch

        x = torch.tensor(_point(n)[0], requires_grad=True)

        def fn(t: Any) -> Any:
            return (torch.sin(t) * t ** 2).sum()

        def check() -> bool:
            assert torch.autograd.gradcheck(fn, (x,), fast_mode=fast_mode)
            return True
        return _scored(check, None, "pass/fail" + (", fast_mode" if fast_mode else ""))
    return setup


def _central_case(n: int) -> dict:
    peers = {
        "numpy loop": numpy_loop(n),
        "symgrad central": symgrad_peer(n, "central", _batched, True, "PerturbedRows"),
        "symgrad dense rows": symgrad_peer(n, "central", _dense, True, "dense chunks"),
        "symgrad unbatched": symgrad_peer(n, "central", _plain, False, "one call per point"),
        "scipy approx_fprime": scipy_forward(n),
    }
    if n <= 1000:
        peers["torch gradcheck"] = torch_gradcheck(n, fast_mode=False)
    peers["torch gradcheck fast"] = torch_gradcheck(n, fast_mode=True)
    return peers


CASES = {
    "central, n=1,000": _central_case(1000),
    "richardson, n=1,000": {
        "numpy loop": numpy_loop(1000),
        "symgrad richardson": symgrad_peer(1000, "richardson", _batched, True, "PerturbedRows"),
        "symgrad richardson dense": symgrad_peer(1000, "richardson", _dense, True, "dense chunks"),
        "numdifftools": numdifftools_gradient(1000),
    },
    "central, n=10,000": _central_case(10_000),
}

if __name__ == "__main__":
    main(CASES, baseline="numpy loop", title="finite-difference gradients of sum(sin(x)·x²)",
         columns=("max_error", "note"))

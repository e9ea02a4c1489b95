"""Shared fixtures: an independent numerical gradient oracle for engine tests.

The oracle never touches the engine's backward rules nor ``symgrad.finite_diff``:
it differentiates plain NumPy evaluations, by complex step (exact to rounding for
analytic code) or by central differences (for code with kinks).

Example (in a test)::

    def test_tanh(gradcheck):
        gradcheck(lambda x: sg.tanh(x), np.linspace(-1, 1, 5))
"""
from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import numpy as np
import pytest
from hypothesis import settings

import symgrad as sg

# Timing belongs to bench/, not to the tests: no per-example deadline on a busy machine. CI draws the
# same examples on every run (a failure there is reproducible); elsewhere each run explores new ones.
settings.register_profile("symgrad", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "symgrad")


def numeric_gradient(f: Callable[[np.ndarray], Any], x: Any, method: str = "complex") -> np.ndarray:
    """The gradient of the real scalar ``f`` at float64 ``x``, one coordinate at a time.

    Example:
        >>> float(numeric_gradient(lambda v: v ** 3, 2.0))
        12.0
    """
    x = np.array(x, dtype=np.float64)
    grad = np.empty(x.shape)
    for i in np.ndindex(x.shape):
        if method == "complex":
            probe = x.astype(complex)
            probe[i] += 1e-30j
            grad[i] = np.imag(f(probe)) / 1e-30
        else:
            h = 1e-6 * max(1.0, abs(x[i]))
            up, down = x.copy(), x.copy()
            up[i] += h
            down[i] -= h
            grad[i] = (np.real(f(up)) - np.real(f(down))) / (2 * h)
    return grad


def _is_float_operand(value: Any) -> bool:
    return isinstance(value, float) or (isinstance(value, np.ndarray) and value.dtype.kind == "f")


def check_gradients(fn: Callable, *args: Any, wrt: Sequence[int] | None = None, method: str = "complex",
                    rtol: float | None = None, atol: float | None = None) -> list:
    """Compare the engine's gradients of ``fn(*args)`` with :func:`numeric_gradient`.

    The arguments at positions ``wrt`` (default: every float argument) become
    tensors that require grad; the others stay as given (Python floats, arrays,
    labels). A non-scalar output is contracted with a fixed random cotangent ``W``,
    so each vector-Jacobian product is checked in full, not only against ones; a
    scalar output is differentiated as is (``backward()`` without argument).
    Returns the engine's gradients; also checks their shape and dtype.

    Example:
        >>> [g.tolist() for g in check_gradients(lambda a, b: sg.sum(a * b), np.array([1.0, 2.0]), 3.0)]
        [[3.0, 3.0], 3.0]
    """
    wrt = [i for i, a in enumerate(args) if _is_float_operand(a)] if wrt is None else list(wrt)
    rtol = (1e-11 if method == "complex" else 1e-6) if rtol is None else rtol
    atol = (1e-12 if method == "complex" else 1e-8) if atol is None else atol
    reference = fn(*args)
    scalar = np.ndim(reference) == 0
    cotangent = 1.0 if scalar else np.random.default_rng(7).standard_normal(np.shape(reference))

    leaves = [sg.tensor(a, requires_grad=True) if i in wrt else a for i, a in enumerate(args)]
    out = fn(*leaves)
    assert isinstance(out, sg.Tensor) and out.shape == np.shape(reference)
    np.testing.assert_allclose(out.data, reference, rtol=1e-12, atol=1e-12)
    out.backward(None if scalar else cotangent)

    grads = []
    for i in wrt:
        def contracted(v: np.ndarray, i: int = i) -> Any:
            return np.sum(fn(*args[:i], v, *args[i + 1:]) * cotangent)

        expected = numeric_gradient(contracted, args[i], method)
        got = leaves[i].grad
        assert got is not None, f"argument {i} got no gradient"
        assert got.shape == np.shape(args[i]) and got.dtype == np.float64
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, err_msg=f"gradient of argument {i}")
        grads.append(got)
    return grads


@pytest.fixture(scope="session")
def gradcheck() -> Callable:
    """:func:`check_gradients`: engine gradients against a numerical oracle."""
    return check_gradients


@pytest.fixture(scope="session")
def numgrad() -> Callable:
    """:func:`numeric_gradient`: complex-step or central-difference gradient of a scalar function."""
    return numeric_gradient

"""symgrad: the gradient of a loss three ways, side by side.

Exact partial derivatives from SymPy, finite differences, and a reverse-mode
engine on NumPy (or CuPy) arrays, cross-checked against each other.

``import symgrad`` loads only NumPy; SymPy is imported the first time a symbolic
feature is used.

Example:
    >>> import symgrad as sg
    >>> a, b = sg.tensor(2.0, requires_grad=True), sg.tensor(-3.0, requires_grad=True)
    >>> c, f = sg.tensor(10.0, requires_grad=True), sg.tensor(-2.0, requires_grad=True)
    >>> L = (a * b + c) * f
    >>> L.backward()
    >>> [float(t.grad) for t in (a, b, c, f)]
    [6.0, -4.0, -2.0, 4.0]
"""
import importlib as _importlib

from .check import CheckReport, assert_gradients_close, check, check_backward  # noqa: F401
from .functions import (  # noqa: F401  (re-exported)
    abs, concatenate, cos, cross_entropy, exp, log, log_softmax, matmul, max, maximum, mean, minimum,
    mse_loss, relu, reshape, sigmoid, sin, softmax, sqrt, stack, sum, tanh, transpose, where,
)
from .tensor import Tensor, tensor  # noqa: F401
from .transforms import grad, value_and_grad, value_and_gradients  # noqa: F401

__version__ = "0.1.0"

# Public names whose modules load SymPy or do more work: imported on first use.
_LAZY = {
    "parse": "symgrad.symbolic.parse",
    "ParseError": "symgrad.symbolic.parse",
    "derive": "symgrad.symbolic.derive",
    "Derivatives": "symgrad.symbolic.derive",
    "fd_gradient": "symgrad.finite_diff",
    "fd_error_curve": "symgrad.finite_diff",
    "FDResult": "symgrad.finite_diff",
    "FDErrorCurve": "symgrad.finite_diff",
    "NonDifferentiableError": "symgrad.finite_diff",
    "UnresolvedError": "symgrad.finite_diff",
    "finite_diff": "symgrad.finite_diff",
    "descend": "symgrad.descent",
    "Trajectory": "symgrad.descent",
    "examples": "symgrad.examples",
}


def __getattr__(name: str) -> object:
    """Load a name of :data:`_LAZY` (and its module) on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'symgrad' has no attribute {name!r}")
    loaded = _importlib.import_module(module)
    value = loaded if module == f"symgrad.{name}" else getattr(loaded, name)
    globals()[name] = value
    return value


def __dir__() -> list:
    """The public names, loaded or not: what tab completion offers."""
    return sorted(name for name in set(globals()) | set(_LAZY) if name.startswith("__") or not name.startswith("_"))

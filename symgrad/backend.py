"""The array backend: NumPy on the CPU, CuPy on the GPU.

This is the only module that imports CuPy. Everything else asks it for the
array module of an array (:func:`xp_of`) or of a device (:func:`array_module`).

Example:
    >>> import numpy as np
    >>> from symgrad import backend
    >>> backend.xp_of(np.ones(3)) is np
    True
"""
from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

import numpy as np

DEVICES = ("cpu", "gpu")
_cupy: ModuleType | None = None


def cupy_module() -> ModuleType:
    """Return the ``cupy`` module, or raise a clear error when it cannot run.

    Example:
        >>> try:
        ...     cupy_module()
        ... except RuntimeError as err:
        ...     print("needs CuPy" in str(err))
        True
    """
    global _cupy
    if _cupy is None:
        try:
            import cupy  # noqa: PLC0415  (optional, loaded on first GPU use)

            cupy.cuda.runtime.getDeviceCount()
        except Exception as err:  # ImportError, or CUDA runtime errors
            raise RuntimeError(
                f"device='gpu' needs CuPy and a CUDA GPU (pip install 'symgrad[gpu]'): {err}"
            ) from None
        _cupy = cupy
    return _cupy


def gpu_available() -> bool:
    """True when CuPy is installed and sees a GPU.

    Example:
        >>> isinstance(gpu_available(), bool)
        True
    """
    try:
        cupy_module()
    except RuntimeError:
        return False
    return True


def check_device(device: str | None) -> str:
    """Return the device name ("cpu" by default), raising ValueError for unknown names.

    Example:
        >>> check_device(None)
        'cpu'
    """
    if device is None:
        return "cpu"
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; expected one of {', '.join(DEVICES)}")
    return device


def array_module(device: str | None) -> ModuleType:
    """Return the array module (``numpy`` or ``cupy``) of a device.

    Example:
        >>> array_module("cpu") is np
        True
    """
    return cupy_module() if check_device(device) == "gpu" else np


def xp_of(array: Any) -> ModuleType:
    """Return the array module that owns ``array`` (NumPy for anything not on the GPU).

    Example:
        >>> xp_of(3.0) is np
        True
    """
    cupy = sys.modules.get("cupy")      # a CuPy array exists only once CuPy is imported, by anyone
    if cupy is not None and isinstance(array, cupy.ndarray):
        return cupy
    return np


def device_of(array: Any) -> str:
    """Return "gpu" for a CuPy array and "cpu" otherwise.

    Example:
        >>> device_of(np.zeros(2))
        'cpu'
    """
    return "gpu" if xp_of(array) is not np else "cpu"


def to_device(array: Any, device: str) -> Any:
    """Move an array to ``device``, copying only when it lives elsewhere.

    Example:
        >>> to_device(np.arange(2.0), "cpu")
        array([0., 1.])
    """
    if check_device(device) == "gpu":
        return cupy_module().asarray(array)
    if xp_of(array) is not np:
        return array.get()
    return array


_HOST_COPY_LIMIT = 1 << 16      # below this many elements, copying a GPU array beats reducing it on the device


def extremes(array: Any) -> tuple:
    """The smallest and largest entries of a non-empty array, read from a GPU in one transfer.

    Example:
        >>> [int(v) for v in extremes(np.array([3, -1, 2]))]
        [-1, 3]
    """
    xp = xp_of(array)
    if xp is np:
        return array.min(), array.max()
    host = (array if array.size <= _HOST_COPY_LIMIT else xp.stack((array.min(), array.max()))).get()
    return host.min(), host.max()


def check_index(shape: tuple, index: Any) -> None:
    """Raise NumPy's IndexError where ``index`` does not fit an array of ``shape`` on the GPU.

    CuPy checks integer scalars itself but wraps any other out-of-range integer index
    around (an index array, a 0-d array, a nested tuple), which would be a silent wrong
    answer. NumPy validates such an index here on an array of ``shape`` that holds no
    data, every slice and every axis left out made empty, so that nothing is allocated
    for them. Only the parts of the index that are arrays travel to the host.

    Example:
        >>> check_index((3, 4), (slice(None), np.array([0, 4])))
        Traceback (most recent call last):
        ...
        IndexError: index 4 is out of bounds for axis 1 with size 4
    """
    parts = list(index) if isinstance(index, tuple) else [index]
    if all(_checked_by_cupy(part) for part in parts):
        return
    parts = [to_device(part, "cpu") if hasattr(part, "shape") else part for part in parts]
    if sum(part is Ellipsis for part in parts) <= 1:      # else NumPy's own error says what is wrong
        left_out = max(len(shape) - sum(_axes_indexed(part) for part in parts), 0)
        at = next((i for i, part in enumerate(parts) if part is Ellipsis), len(parts))
        parts[at:at + 1] = [slice(0, 0)] * left_out
        parts = [slice(0, 0) if isinstance(part, slice) else part for part in parts]
    np.broadcast_to(np.empty((), np.bool_), shape)[tuple(parts)]


def _checked_by_cupy(part: Any) -> bool:
    """True for the parts of an index that CuPy bounds-checks or that need no check."""
    return part is None or part is Ellipsis or isinstance(part, slice) or (
        isinstance(part, (int, np.integer)) and not isinstance(part, (bool, np.bool_)))


def _axes_indexed(part: Any) -> int:
    """How many axes of the array one part of an index consumes (a boolean mask: its number of dimensions)."""
    if part is None or part is Ellipsis:
        return 0
    if isinstance(part, slice):
        return 1
    return np.ndim(part) if np.asarray(part).dtype == np.bool_ else 1

"""The look shared by every figure: slide-size fonts, saving by file extension.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot, no GUI
backend): rendering goes through Agg for PNG and through the vector backends for
SVG and PDF.

Example:
    >>> fig = new_figure()
    >>> save_figure(fig, "plot.jpg")
    Traceback (most recent call last):
    ...
    ValueError: cannot write 'plot.jpg': the file name must end in .png, .svg or .pdf
"""
from __future__ import annotations

import functools
import os
from typing import Any, Callable

import matplotlib
from matplotlib.figure import Figure

__all__ = ["FORMATS", "COLORS", "LARGEST_DRAWN", "new_figure", "save_figure", "slide_style", "minus", "drawable_range"]

FORMATS = (".png", ".svg", ".pdf")
#: The largest magnitude an axis may reach: matplotlib's tick arithmetic overflows near the float maximum.
LARGEST_DRAWN = 1e300

# One color per role, the same in every figure (colour-blind safe, from Okabe & Ito).
COLORS = {
    "reverse": "#0072B2", "symbolic": "#E69F00", "finite_diff": "#009E73", "coarse": "#D55E00",
    "f": "#0072B2", "derivative": "#E69F00", "tangent": "#009E73",
    "param": "#d6e6f5", "data": "#e6e6e6", "intermediate": "#ffffff", "output": "#fbd9b8", "op": "#f2f2f2",
}

SLIDE_RC = {
    "font.size": 14,
    "axes.titlesize": 16,
    "axes.titleweight": "bold",
    "axes.labelsize": 15,
    "legend.fontsize": 12,
    "legend.framealpha": 0.9,
    "xtick.labelsize": 13,
    "ytick.labelsize": 13,
    "lines.linewidth": 2.4,
    "lines.markersize": 6,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.unicode_minus": True,
    "pdf.fonttype": 42,
    "svg.fonttype": "path",
}


def slide_style(build: Callable) -> Callable:
    """Decorator: build the figure under the slide-size style (fonts are fixed when artists are made).

    Example:
        >>> @slide_style
        ... def empty():
        ...     return new_figure()
        >>> type(empty()).__name__
        'Figure'
    """
    @functools.wraps(build)
    def wrapped(*args: Any, **kwargs: Any) -> Figure:
        with matplotlib.rc_context(SLIDE_RC):
            return build(*args, **kwargs)
    return wrapped


def new_figure(width: float = 9.0, height: float = 5.6, constrained: bool = True) -> Figure:
    """A new figure, ``width`` x ``height`` inches, with constrained layout (no clipped labels).

    Example:
        >>> new_figure(4, 3).get_size_inches().tolist()
        [4.0, 3.0]
    """
    return Figure(figsize=(width, height), layout="constrained" if constrained else None)


def save_figure(fig: Figure, path: "str | os.PathLike") -> str:
    """Write ``fig`` as PNG (150 dpi), SVG or PDF, chosen by the extension of ``path``; returns the path.

    Example:
        >>> import tempfile, pathlib
        >>> out = save_figure(new_figure(2, 2), pathlib.Path(tempfile.mkdtemp()) / "f.svg")
        >>> out.endswith("f.svg")
        True
    """
    path = os.fspath(path)
    extension = os.path.splitext(path)[1].lower()
    if extension not in FORMATS:
        raise ValueError(f"cannot write {path!r}: the file name must end in .png, .svg or .pdf")
    folder = os.path.dirname(path)
    if folder and not os.path.isdir(folder):
        raise ValueError(f"cannot write {path!r}: the folder {folder!r} does not exist")
    with matplotlib.rc_context(SLIDE_RC):
        fig.savefig(path, dpi=150, format=extension[1:], metadata=_metadata(extension))
    return path


def _metadata(extension: str) -> dict:
    """No creation date in SVG/PDF, so the same figure gives the same file."""
    return {"Date": None} if extension in (".svg", ".pdf") else {}


def minus(text: str) -> str:
    """``text`` with ASCII hyphen-minus signs of numbers set as typographic minus signs.

    Example:
        >>> minus("value -8, x-y")
        'value −8, x-y'
    """
    out = []
    for i, ch in enumerate(text):
        is_sign = ch == "-" and i + 1 < len(text) and (text[i + 1].isdigit() or text[i + 1] == ".") and \
            (i == 0 or not text[i - 1].isalnum())
        out.append("−" if is_sign else ch)
    return "".join(out)


def drawable_range(low: float, high: float, what: str) -> tuple:
    """``(low, high)`` as floats if an axis can show them, else a one-line ValueError naming ``what``.

    Both ends must be finite, within ±:data:`LARGEST_DRAWN`, and ``low < high``.

    Example:
        >>> drawable_range(-1, 2, "x")
        (-1.0, 2.0)
        >>> drawable_range(0, 1e308, "the values of w")
        Traceback (most recent call last):
        ...
        ValueError: cannot draw the values of w: the range [0, 1e+308] goes beyond ±1e+300
    """
    low, high = float(low), float(high)
    if not (abs(low) <= LARGEST_DRAWN and abs(high) <= LARGEST_DRAWN):
        raise ValueError(f"cannot draw {what}: the range [{low:g}, {high:g}] goes beyond ±{LARGEST_DRAWN:g}")
    if not low < high:
        raise ValueError(f"cannot draw {what}: the range [{low:g}, {high:g}] is empty")
    return low, high

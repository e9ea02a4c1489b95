"""Figures for a course on gradients, drawn with matplotlib from symgrad's computations.

Every function returns a :class:`matplotlib.figure.Figure`; :func:`save_figure`
writes it as PNG, SVG or PDF by the file's extension.

Example:
    >>> from symgrad.plots import derivative_figure, save_figure
    >>> fig = derivative_figure(lambda x: x ** 2, 5.0)
"""
from .graph import graph_figure, node_texts  # noqa: F401
from .style import save_figure  # noqa: F401
from .curves import loss_curves_figure  # noqa: F401
from .derivative import derivative_figure  # noqa: F401
from .surface import sources_figure, surface_figure  # noqa: F401
from .check import check_figure  # noqa: F401
from .fd_error import fd_error_figure  # noqa: F401

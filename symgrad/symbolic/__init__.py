"""The symbolic third of symgrad: exact partial derivatives from SymPy.

- :mod:`~symgrad.symbolic.parse`: expression text to SymPy, safely (``sg.parse``);
- :mod:`~symgrad.symbolic.ops`: the SymPy forms of the ``sg.*`` functions;
- :mod:`~symgrad.symbolic.reverse`: reverse-mode differentiation over an expression's DAG;
- :mod:`~symgrad.symbolic.codegen`: one vectorized NumPy function for all the partials;
- :mod:`~symgrad.symbolic.derive`: ``sg.derive`` and ``Derivatives``.

These modules import SymPy; ``import symgrad`` loads none of them.

Example:
    >>> import symgrad as sg
    >>> sg.derive("(w*x + b - y)**2", wrt="w,b").at(w=1, b=0, x=1, y=2)
    {'w': -2.0, 'b': -2.0}
"""

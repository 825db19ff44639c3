"""The symbols the engine reasons with."""

from __future__ import annotations

import sympy

#: The one variable of every activation expression.
X = sympy.Symbol("x", real=True)

#: A positive dummy: ``X -> P`` is the right half line, ``X -> -P`` the left one.
P = sympy.Symbol("p", positive=True)

#: A positive scale factor ``lam`` in scaling identities.
LAM = sympy.Symbol("lam", positive=True)

"""The activation object that every analysis takes."""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy

from ._symbols import X


@dataclass(frozen=True)
class Activation:
    """An elementwise activation ``sigma(x)`` with its exact expression.

    ``expr`` is a sympy expression in :data:`symgroups._symbols.X` whose
    numbers are exact. ``name`` is the catalogue name, or ``"custom"``;
    ``params`` holds the catalogue parameters actually used, as exact numbers.
    """

    name: str
    expr: sympy.Expr
    params: dict[str, sympy.Expr] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The expression as text in the variable ``x``."""
        return str(self.expr)

    def subs_x(self, value: sympy.Expr) -> sympy.Expr:
        """Return ``sigma(value)``."""
        return self.expr.subs(X, value)

    def cache_key(self) -> str:
        items = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.name}({items})"

"""The prover: search for the steps that determine an intertwiner group.

The search follows the reduction to one dimension. It first decides whether
``sigma`` is affine. For a non-affine ``sigma`` it settles the positive part
of the scalar group ``Lambda`` (all positive reals, proved by a scaling
identity, or only 1, proved by a kink away from 0 or by Taylor coefficients)
and then whether ``-1`` is in ``Lambda`` (a reflection identity, a parity
argument from Taylor coefficients, or two witness points). Every step it keeps
has passed :func:`symgroups._claims.check_step`, the same check the
certificate verifier runs, and :func:`symgroups._claims.deduce` turns the
steps into the group.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import sympy

from . import _worker
from ._claims import Deduction, check_step, deduce
from ._errors import VerificationError
from ._group import GroupDescription, exact_text
from ._symbolic import (
    analytic_at,
    breakpoints,
    is_piecewise,
    side_expression,
    taylor_coefficients,
)
from ._symbols import X
from ._worker import DEFAULT_STEP_TIMEOUT

logger = logging.getLogger(__name__)

#: Series orders tried in turn; more terms are needed only to separate parities.
SERIES_ORDERS = (4, 8, 13)

#: Triples ``(a, b, c)`` with ``b`` the midpoint, tried as non-affinity witnesses.
AFFINE_WITNESS_TRIPLES = tuple(
    tuple(sympy.Rational(v) for v in triple)
    for triple in (
        (-1, 0, 1),
        (0, 1, 2),
        (-2, -1, 0),
        (-2, 0, 2),
        (1, 2, 3),
        (-3, -2, -1),
        (-2, "-1/2", 1),
        ("-1/2", 0, "1/2"),
        (-3, 0, 3),
        (-4, -2, 0),
        (2, 4, 6),
        (-6, -3, 0),
        (0, 5, 10),
        (-10, -5, 0),
        (10, 20, 30),
        (-30, -20, -10),
        ("1/10", "1/5", "3/10"),
    )
)

#: Scales and points of the float screen run before a scaling identity is
#: handed to sympy, and its relative tolerance. The screen only saves time:
#: a candidate that passes it still needs its exact proof.
SCREEN_SCALES = tuple(sympy.Rational(v) for v in (2, 3, "1/2"))
SCREEN_POINTS = tuple(sympy.Rational(v) for v in (1, -1, "1/3", "-5/2", 7))
SCREEN_RTOL = 1e-9

#: Points tried as witnesses that ``sigma(-x) != +-sigma(x)``.
REFLECTION_WITNESS_POINTS = tuple(
    sympy.Rational(v) for v in (1, 2, "1/2", 3, "1/3", 5, 10, "7/3", 20, 30)
)


@dataclass
class Analysis:
    """The outcome of the symbolic search.

    ``group`` is set when ``deduction`` proves the whole group. ``notes`` lists,
    for each part that stayed open, what was tried. ``timed_out`` is True when
    a sympy call hit its deadline, so an open part may have a proof that was
    not found in time.
    """

    steps: list[dict[str, Any]] = field(default_factory=list)
    deduction: Deduction | None = None
    notes: list[str] = field(default_factory=list)
    timed_out: bool = False

    @property
    def group(self) -> GroupDescription | None:
        return None if self.deduction is None else self.deduction.group


class _Prover:
    def __init__(self, expr: sympy.Expr, seconds: float) -> None:
        self.expr = expr
        self.seconds = seconds
        self.result = Analysis()
        self.germs: dict[str, sympy.Expr | None] = {}
        self.taylor: dict[str, dict[int, sympy.Expr]] = {}

    # -- bookkeeping -------------------------------------------------------

    def keep(self, step: dict[str, Any]) -> bool:
        """Keep ``step`` if it checks; return whether it did."""
        try:
            check_step(self.expr, step, self.seconds)
        except VerificationError as exc:
            logger.debug("discarded %s: %s", step, exc)
            return False
        self.result.steps.append(step)
        return True

    def current(self) -> Deduction:
        return deduce(self.result.steps)

    def numeric(self, value: sympy.Expr) -> float | None:
        try:
            number = complex(sympy.N(value, 15))
        except (TypeError, ValueError):
            return None
        if abs(number.imag) > 1e-12 * max(1.0, abs(number.real)):
            return None
        return number.real

    # -- the search --------------------------------------------------------

    def run(self) -> Analysis:
        if self.try_affine():
            self.result.deduction = self.current()
            return self.result
        if not self.find_not_affine():
            self.result.notes.append(
                "no witness points showed that sigma is not affine, and no "
                "affine identity was proved"
            )
            self.result.deduction = self.current()
            return self.result
        self.find_kink()
        self.expand_germs()
        if self.current().positive is None and self.taylor:
            self.keep({"claim": "nonzero_at_zero"})
        if self.current().positive is None:
            self.try_positive_scaling()
        if self.current().reflection is None:
            self.settle_reflection()
        self.result.deduction = self.current()
        deduction = self.result.deduction
        if deduction.positive is None:
            self.result.notes.append(
                "positive scalings: no scaling identity was proved and no kink or "
                "Taylor coefficients excluded them"
            )
        if deduction.reflection is None:
            self.result.notes.append(
                "sigma(-x): neither a reflection identity nor witness points were found"
            )
        return self.result

    def try_affine(self) -> bool:
        f0 = self.expr.subs(X, 0)
        slope = sympy.simplify(self.expr.subs(X, 1) - f0)
        # A quick numeric screen saves an expensive symbolic attempt.
        for a, b, c in AFFINE_WITNESS_TRIPLES[:6]:
            values = [self.numeric(self.expr.subs(X, v)) for v in (a, b, c)]
            if None in values:
                continue
            second = values[0] - 2 * values[1] + values[2]
            if abs(second) > 1e-6 * (1 + max(abs(v) for v in values)):
                return False
        step = {
            "claim": "affine",
            "slope": exact_text(slope),
            "intercept": exact_text(sympy.simplify(f0)),
        }
        return self.keep(step)

    def find_not_affine(self) -> bool:
        scored = []
        for triple in AFFINE_WITNESS_TRIPLES:
            values = [self.numeric(self.expr.subs(X, v)) for v in triple]
            if None in values:
                continue
            second = values[0] - 2 * values[1] + values[2]
            scale = 1 + max(abs(v) for v in values)
            scored.append((abs(second) / scale, triple))
        scored.sort(key=lambda item: -item[0])
        for score, triple in scored[:4]:
            if score == 0:
                break
            step = {"claim": "not_affine", "points": [exact_text(v) for v in triple]}
            if self.keep(step):
                return True
        return False

    def find_kink(self) -> None:
        if not is_piecewise(self.expr):
            return
        candidates = breakpoints(self.expr, X, self.seconds)
        if not candidates:
            return
        for b, _, _, _ in sorted(candidates, key=lambda c: -abs(float(c[0]))):
            if b == 0:
                continue
            step = {"claim": "kink", "point": exact_text(b)}
            if self.keep(step):
                return

    def expand_germs(self) -> None:
        both = side_expression(self.expr, "both")
        if both is not None and analytic_at(both, X, sympy.Integer(0), self.seconds):
            self.germs["both"] = both
            self.expand_side("both")
            return
        for side in ("right", "left"):
            germ = side_expression(self.expr, side)
            if germ is not None and not analytic_at(
                germ, X, sympy.Integer(0), self.seconds
            ):
                germ = None
            self.germs[side] = germ
            if germ is not None:
                self.expand_side(side)

    def expand_side(self, side: str, until_odd_gap: bool = False) -> None:
        """Expand a germ until two nonzero degrees appear (or, with
        ``until_odd_gap``, two whose difference is odd)."""
        germ = self.germs[side]
        found: dict[int, sympy.Expr] = {}
        orders = SERIES_ORDERS
        if germ == 0:
            orders = ()
        elif germ.is_polynomial(X):
            # A polynomial is its own Taylor series: expand just past its degree.
            orders = (int(sympy.degree(germ, X)) + 1,)
        for order in orders:
            result = taylor_coefficients(germ, X, order, self.seconds)
            if result is None:
                break
            found = result.nonzero
            degrees = sorted(found)
            if len(degrees) >= 2:
                odd = any((b - a) % 2 for a in degrees for b in degrees)
                if odd or not until_odd_gap:
                    break
        if found == self.taylor.get(side):
            return
        self.taylor[side] = found
        if len(found) >= 2 or (side != "both" and found):
            keep = dict(list(found.items())[:3])
            step = {
                "claim": "taylor",
                "side": side,
                "coefficients": {str(k): exact_text(v) for k, v in keep.items()},
            }
            if not self.keep(step):
                logger.info("taylor step for side %s did not re-check", side)

    def candidate_power(self) -> sympy.Expr | None:
        if self.taylor.get("both"):
            degrees = sorted(self.taylor["both"])
            return sympy.Integer(degrees[0]) if len(degrees) == 1 else None
        sides = [sorted(self.taylor.get(s, {})) for s in ("right", "left")]
        nonempty = [d for d in sides if d]
        if nonempty and all(len(d) == 1 for d in nonempty):
            if len({d[0] for d in nonempty}) == 1:
                return sympy.Integer(nonempty[0][0])
        return self.numeric_power()

    def numeric_power(self) -> sympy.Expr | None:
        for q in (sympy.Integer(1), sympy.Rational(1, 2), sympy.Integer(-1)):
            base = self.numeric(self.expr.subs(X, q))
            scaled = self.numeric(self.expr.subs(X, 2 * q))
            if base is None or scaled is None or base == 0 or scaled / base <= 0:
                continue
            estimate = sympy.log(scaled / base) / sympy.log(2)
            return sympy.nsimplify(float(estimate), rational=True, tolerance=1e-9)
        return None

    def try_positive_scaling(self) -> None:
        power = self.candidate_power()
        if power is None or not self.numerically_scales(power):
            return
        self.keep({"claim": "positive_scaling", "power": exact_text(power)})

    def numerically_scales(self, power: sympy.Expr) -> bool:
        """Screen ``sigma(lam q) = lam**power sigma(q)`` at a few points, so
        that sympy is not asked to prove an identity that is false."""
        for lam in SCREEN_SCALES:
            for q in SCREEN_POINTS:
                scaled = self.numeric(self.expr.subs(X, lam * q))
                base = self.numeric(self.expr.subs(X, q))
                if scaled is None or base is None:
                    continue
                expected = float(lam**power) * base
                if abs(scaled - expected) > SCREEN_RTOL * (1 + abs(scaled)):
                    return False
        return True

    def settle_reflection(self) -> None:
        for mu in self.candidate_reflections():
            if not self.numerically_reflects(mu):
                continue
            if self.keep({"claim": "reflection", "mu": exact_text(mu)}):
                return
        if "both" in self.taylor:
            # More terms may reveal an odd gap between degrees.
            self.expand_side("both", until_odd_gap=True)
            if self.current().reflection is not None:
                return
        self.find_no_reflection()

    def numerically_reflects(self, mu: sympy.Integer) -> bool:
        """Screen ``sigma(-q) = mu sigma(q)`` at a few points."""
        for q in SCREEN_POINTS:
            mirrored = self.numeric(self.expr.subs(X, -q))
            value = self.numeric(self.expr.subs(X, q))
            if mirrored is None or value is None:
                continue
            if abs(mirrored - float(mu) * value) > SCREEN_RTOL * (1 + abs(value)):
                return False
        return True

    def candidate_reflections(self) -> list[sympy.Integer]:
        if "both" in self.taylor and self.taylor["both"]:
            lowest = min(self.taylor["both"])
            return [sympy.Integer(-1) ** lowest]
        for q in REFLECTION_WITNESS_POINTS:
            value = self.numeric(self.expr.subs(X, q))
            mirrored = self.numeric(self.expr.subs(X, -q))
            if value is None or mirrored is None or value == 0:
                continue
            ratio = mirrored / value
            if abs(abs(ratio) - 1) < 1e-9:
                return [sympy.Integer(1 if ratio > 0 else -1)]
            return []
        return [sympy.Integer(1), sympy.Integer(-1)]

    def find_no_reflection(self) -> None:
        even_witness = odd_witness = None
        for q in REFLECTION_WITNESS_POINTS:
            value = self.numeric(self.expr.subs(X, q))
            mirrored = self.numeric(self.expr.subs(X, -q))
            if value is None or mirrored is None:
                continue
            # Relative to the values themselves, so that 1e-39*Max(0, x) is
            # treated like Max(0, x); the exact check decides in the end.
            scale = 1e-9 * max(abs(value), abs(mirrored))
            if even_witness is None and abs(mirrored - value) > scale:
                even_witness = q
            if odd_witness is None and abs(mirrored + value) > scale:
                odd_witness = q
            if even_witness is not None and odd_witness is not None:
                break
        if even_witness is None or odd_witness is None:
            return
        self.keep(
            {
                "claim": "no_reflection",
                "points": [exact_text(even_witness), exact_text(odd_witness)],
            }
        )


def prove_group(expr: sympy.Expr, seconds: float = DEFAULT_STEP_TIMEOUT) -> Analysis:
    """Search for a proof of the intertwiner group of ``sigma = expr``.

    Runs in the calling process; callers wrap it in
    :func:`symgroups._worker.run_in_worker` for a hard deadline. Each sympy
    call has the step deadline ``seconds``.
    """
    before = _worker.timeout_count()
    analysis = _Prover(expr, seconds).run()
    analysis.timed_out = _worker.timeout_count() > before
    if analysis.timed_out:
        analysis.notes.append(
            f"at least one sympy call hit its {seconds:g} s deadline, so a proof "
            "may exist that was not found in time"
        )
    return analysis

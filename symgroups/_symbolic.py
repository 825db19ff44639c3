"""Exact symbolic primitives the prover and the verifier share.

Each primitive either proves its statement or says it could not. None of them
uses ``Expr.equals`` (which can return a wrong ``False`` under assumptions,
sympy issue #29781) or ``series`` on an expression with a kink (which silently
returns a one-sided expansion, sympy issue #25682). Every sympy call runs under
:func:`symgroups._worker.call_with_deadline`.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import sympy

from ._symbols import P, X
from ._worker import DEFAULT_STEP_TIMEOUT, call_with_deadline

logger = logging.getLogger(__name__)

#: Significant digits used to certify that an exact number is nonzero.
NONZERO_DIGITS = 30

#: A number whose evaluation is below this in absolute value is not
#: certified nonzero (about the smallest positive float64 times 1e-10).
NONZERO_FLOOR = sympy.Rational(1, 10**318)

#: Functions that are real-analytic on the whole real line.
ENTIRE_ON_REALS = (
    sympy.exp,
    sympy.sin,
    sympy.cos,
    sympy.tanh,
    sympy.sinh,
    sympy.cosh,
    sympy.atan,
    sympy.asinh,
    sympy.erf,
    sympy.erfc,
)

#: Nodes that make an expression piecewise (kinks, jumps, branches).
PIECEWISE_NODES = (
    sympy.Max,
    sympy.Min,
    sympy.Abs,
    sympy.sign,
    sympy.Heaviside,
    sympy.Piecewise,
)


def is_piecewise(expr: sympy.Basic) -> bool:
    """Return whether ``expr`` has a Max, Min, Abs, sign, Heaviside or Piecewise."""
    return expr.has(*PIECEWISE_NODES)


def nonzero_number(value: sympy.Expr, seconds: float = DEFAULT_STEP_TIMEOUT) -> bool:
    """Prove that an exact real number is not zero.

    sympy's evalf raises its working precision until the requested digits
    are correct, and returns a zero mantissa when it cannot resolve a value.
    The number is evaluated to :data:`NONZERO_DIGITS` and to
    ``NONZERO_DIGITS + 15`` digits; it is certified nonzero when both
    results are nonzero and agree in :data:`NONZERO_DIGITS` - 10 digits.
    Returns False when the number is zero or could not be certified.
    """
    if value.free_symbols:
        return False
    if value.is_zero is True:
        return False

    def evaluate() -> tuple[sympy.Expr, sympy.Expr]:
        low = sympy.N(value, NONZERO_DIGITS, maxn=2000)
        high = sympy.N(value, NONZERO_DIGITS + 15, maxn=2000)
        return low, high

    ok, approximations = call_with_deadline(evaluate, seconds=seconds)
    if not ok:
        return False
    low, high = approximations
    for approx in (low, high):
        if not isinstance(approx, sympy.Number) or not approx.is_real:
            return False
        if not abs(approx) > NONZERO_FLOOR:
            return False
    agreement = abs(low - high) / abs(high)
    return bool(agreement < sympy.Rational(1, 10 ** (NONZERO_DIGITS - 10)))


def number_is_zero(value: sympy.Expr, seconds: float = DEFAULT_STEP_TIMEOUT) -> bool:
    """Prove that an exact number is zero (``is_zero``, then ``simplify``)."""
    if value.free_symbols:
        return False
    return prove_zero_expression(value, seconds)


def prove_zero_expression(
    expr: sympy.Expr, seconds: float = DEFAULT_STEP_TIMEOUT
) -> bool:
    """Prove ``expr == 0`` identically for an expression without pieces.

    Tries, in order: structural zero, ``is_zero``, ``expand``, ``simplify``,
    and ``simplify`` after ``rewrite(exp)``. A result is accepted only when
    sympy returns exactly zero or ``is_zero is True``.
    """
    if expr == 0:
        return True
    ok, zero = call_with_deadline(lambda: expr.is_zero, seconds=seconds)
    if ok and zero is True:
        return True
    attempts = (
        lambda: sympy.expand(expr),
        lambda: sympy.simplify(expr),
        lambda: sympy.simplify(expr.rewrite(sympy.exp)),
        lambda: sympy.simplify(sympy.expand_log(expr.rewrite(sympy.exp), force=False)),
    )
    for attempt in attempts:
        ok, result = call_with_deadline(attempt, seconds=seconds)
        if ok and result is not None and (result == 0 or result.is_zero is True):
            return True
    return False


def prove_zero_on_reals(
    expr: sympy.Expr, var: sympy.Symbol = X, seconds: float = DEFAULT_STEP_TIMEOUT
) -> bool:
    """Prove ``expr(t) = 0`` for every real ``t``.

    Without pieces this is :func:`prove_zero_expression`. With pieces, ``t``
    is replaced by ``p``, ``-p`` (``p`` a positive symbol) and 0, so that
    sympy resolves kinks at 0 by itself; whatever stays piecewise is split
    into its pieces with ``piecewise_fold(...).as_expr_set_pairs``, and each
    piece must vanish on its set.
    """
    if expr == 0:
        return True
    if not is_piecewise(expr):
        return prove_zero_expression(expr, seconds)
    sides_ok = True
    for value in (P, -P, sympy.Integer(0)):
        side = expr.subs(var, value)
        if is_piecewise(side) or not prove_zero_expression(side, seconds):
            sides_ok = False
            break
    if sides_ok:
        return True
    pairs = expression_set_pairs(expr, var, seconds)
    if pairs is None:
        return False
    for piece, domain in pairs:
        if domain is sympy.S.EmptySet:
            continue
        if isinstance(domain, sympy.FiniteSet):
            for point in domain:
                if not number_is_zero(piece.subs(var, point), seconds):
                    return False
            continue
        if is_piecewise(piece) or not prove_zero_expression(piece, seconds):
            return False
    return True


def expression_set_pairs(
    expr: sympy.Expr, var: sympy.Symbol = X, seconds: float = DEFAULT_STEP_TIMEOUT
) -> list[tuple[sympy.Expr, sympy.Set]] | None:
    """Split a piecewise function of ``var`` into (piece, set) pairs.

    The sets partition the real line. Returns None when sympy cannot split
    the expression in time.
    """

    def split() -> list[tuple[sympy.Expr, sympy.Set]]:
        rewritten = expr.rewrite(sympy.Piecewise)
        folded = sympy.piecewise_fold(rewritten)
        if not isinstance(folded, sympy.Piecewise):
            return [(folded, sympy.S.Reals)]
        return list(folded.as_expr_set_pairs(sympy.S.Reals))

    try:
        ok, pairs = call_with_deadline(split, seconds=seconds)
    except (NotImplementedError, TypeError, ValueError) as exc:
        logger.info("could not split %s into pieces: %s", expr, exc)
        return None
    if not ok:
        return None
    cleaned = []
    for piece, domain in pairs:
        if is_piecewise(piece):
            # A piece that still has kinks is split again by its own pieces.
            inner = expression_set_pairs(piece, var, seconds)
            if inner is None:
                return None
            for sub_piece, sub_domain in inner:
                joint = sympy.Intersection(domain, sub_domain)
                if joint is not sympy.S.EmptySet:
                    cleaned.append((sub_piece, joint))
            continue
        cleaned.append((piece, domain))
    return cleaned


def interval_parts(domain: sympy.Set) -> list[sympy.Set]:
    """Split a set into its intervals and finite point sets."""
    if isinstance(domain, sympy.Union):
        parts: list[sympy.Set] = []
        for arg in domain.args:
            parts.extend(interval_parts(arg))
        return parts
    return [domain]


def breakpoints(
    expr: sympy.Expr, var: sympy.Symbol = X, seconds: float = DEFAULT_STEP_TIMEOUT
) -> list[tuple[sympy.Expr, sympy.Expr | None, sympy.Expr | None, sympy.Expr]] | None:
    """List candidate breakpoints with the pieces on each side.

    Returns ``(b, left, right, value)`` for every finite end of an interval
    and every isolated point of the partition, where ``left`` and ``right``
    are the pieces that hold just below and just above ``b`` (None where none
    was found) and ``value`` is ``expr`` at ``b``. A candidate need not be a
    real kink: :func:`genuine_break_order` decides that.
    """
    pairs = expression_set_pairs(expr, var, seconds)
    if pairs is None:
        return None
    intervals: list[tuple[sympy.Expr, sympy.Interval]] = []
    points: set[sympy.Expr] = set()
    for piece, domain in pairs:
        for part in interval_parts(domain):
            if isinstance(part, sympy.Interval):
                intervals.append((piece, part))
                for end in (part.start, part.end):
                    if end.is_finite:
                        points.add(end)
            elif isinstance(part, sympy.FiniteSet):
                points.update(part)
            elif part is not sympy.S.EmptySet:
                return None
    result = []
    for b in sorted(points, key=lambda v: float(v)):
        left = right = None
        for piece, part in intervals:
            if part.end == b and part.start != b:
                left = piece
            if part.start == b and part.end != b:
                right = piece
        result.append((b, left, right, expr.subs(var, b)))
    return result


def genuine_break_order(
    b: sympy.Expr,
    left: sympy.Expr | None,
    right: sympy.Expr | None,
    value: sympy.Expr,
    var: sympy.Symbol = X,
    max_order: int = 4,
    seconds: float = DEFAULT_STEP_TIMEOUT,
) -> str | None:
    """Prove that the function is not analytic at the breakpoint ``b``.

    Both pieces must be analytic at ``b``. Then the function is analytic at
    ``b`` only if the pieces agree as analytic functions there (identity
    theorem), so a derivative of order ``k <= max_order`` that differs
    between them, or a value at ``b`` that differs from the pieces, proves a
    genuine break. Returns the witness as text (``"value"`` or the order
    ``"k"``), or None when no break was proved.
    """
    if left is None or right is None:
        return None
    if not (analytic_at(left, var, b, seconds) and analytic_at(right, var, b, seconds)):
        return None
    left_value = left.subs(var, b)
    if nonzero_number(value - left_value, seconds):
        return "value"
    for k in range(max_order + 1):
        ok, difference = call_with_deadline(
            lambda k=k: sympy.diff(left - right, var, k).subs(var, b), seconds=seconds
        )
        if not ok:
            return None
        if nonzero_number(difference, seconds):
            return str(k)
    return None


def analytic_at(
    expr: sympy.Expr,
    var: sympy.Symbol,
    point: sympy.Expr,
    seconds: float = DEFAULT_STEP_TIMEOUT,
) -> bool:
    """Prove, by the structure of ``expr``, that it is real-analytic at ``point``.

    Sums, products and compositions of analytic functions are analytic.
    ``log(u)`` and non-integer powers need ``u(point) > 0``, negative integer
    powers and ``Abs(u)`` need ``u(point) != 0``, ``sign`` and ``Heaviside``
    need a nonzero argument, and ``Max``/``Min`` need distinct arguments at
    ``point``. Returns False when this cannot be shown.
    """
    return _analytic(expr, var, point, seconds)


def _value_sign(
    expr: sympy.Expr, var: sympy.Symbol, point: sympy.Expr, seconds: float
) -> int | None:
    value = expr.subs(var, point)
    if value.free_symbols or value.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
        return None
    if number_is_zero(value, seconds):
        return 0
    if not nonzero_number(value, seconds):
        return None
    approx = sympy.N(value, 15)
    return 1 if approx > 0 else -1


def _analytic(
    expr: sympy.Expr, var: sympy.Symbol, point: sympy.Expr, seconds: float
) -> bool:
    if not expr.has(var):
        value = expr.subs(var, point)
        return bool(value.is_finite) and not value.has(sympy.zoo, sympy.nan)
    if expr == var:
        return True
    if isinstance(expr, (sympy.Add, sympy.Mul)):
        return all(_analytic(a, var, point, seconds) for a in expr.args)
    if isinstance(expr, sympy.Pow):
        base, exponent = expr.args
        if not exponent.has(var):
            if not _analytic(base, var, point, seconds):
                return False
            if exponent.is_integer and exponent.is_nonnegative:
                return True
            sign = _value_sign(base, var, point, seconds)
            if exponent.is_integer:
                return sign is not None and sign != 0
            return sign == 1
        if not base.has(var):
            sign = _value_sign(base, var, point, seconds)
            return sign == 1 and _analytic(exponent, var, point, seconds)
        return False
    if isinstance(expr, sympy.exp) or isinstance(expr, ENTIRE_ON_REALS):
        return all(_analytic(a, var, point, seconds) for a in expr.args)
    if isinstance(expr, sympy.log):
        (arg,) = expr.args
        return _analytic(arg, var, point, seconds) and (
            _value_sign(arg, var, point, seconds) == 1
        )
    if isinstance(expr, sympy.tan):
        (arg,) = expr.args
        cosine = sympy.cos(arg)
        return _analytic(arg, var, point, seconds) and _value_sign(
            cosine, var, point, seconds
        ) not in (None, 0)
    if isinstance(expr, (sympy.Abs, sympy.sign, sympy.Heaviside)):
        arg = expr.args[0]
        return _analytic(arg, var, point, seconds) and _value_sign(
            arg, var, point, seconds
        ) not in (None, 0)
    if isinstance(expr, (sympy.Max, sympy.Min)):
        return localize(expr, var, point, seconds) is not None and all(
            _analytic(a, var, point, seconds) for a in expr.args
        )
    return False


def analytic_on_reals(
    expr: sympy.Expr, var: sympy.Symbol = X, seconds: float = DEFAULT_STEP_TIMEOUT
) -> bool:
    """Prove, by the structure of ``expr``, that it is real-analytic on all of R.

    Polynomials and the functions in :data:`ENTIRE_ON_REALS` compose freely;
    ``log(u)``, ``1/u`` and non-integer powers of ``u`` need sympy's
    assumption system to prove ``u > 0`` for every real value of ``var``
    (``1 + exp(x)`` or ``x**2 + 1``, say). Returns False when this cannot
    be shown.
    """
    if not expr.has(var):
        return bool(expr.is_finite)
    if expr == var:
        return True
    if isinstance(expr, (sympy.Add, sympy.Mul)):
        return all(analytic_on_reals(a, var, seconds) for a in expr.args)
    if isinstance(expr, sympy.Pow):
        base, exponent = expr.args
        if not exponent.has(var):
            if not analytic_on_reals(base, var, seconds):
                return False
            if exponent.is_integer and exponent.is_nonnegative:
                return True
            return _positive_everywhere(base, seconds)
        if not base.has(var):
            return bool(base.is_positive) and analytic_on_reals(exponent, var, seconds)
        return False
    if isinstance(expr, sympy.exp) or isinstance(expr, ENTIRE_ON_REALS):
        return all(analytic_on_reals(a, var, seconds) for a in expr.args)
    if isinstance(expr, sympy.log):
        (arg,) = expr.args
        return analytic_on_reals(arg, var, seconds) and _positive_everywhere(
            arg, seconds
        )
    return False


def _positive_everywhere(expr: sympy.Expr, seconds: float) -> bool:
    ok, positive = call_with_deadline(lambda: expr.is_positive, seconds=seconds)
    return ok and positive is True


def localize(
    expr: sympy.Expr,
    var: sympy.Symbol,
    point: sympy.Expr,
    seconds: float = DEFAULT_STEP_TIMEOUT,
) -> sympy.Expr | None:
    """Return a piece-free expression equal to ``expr`` near ``point``.

    ``Abs(u)`` becomes ``u`` or ``-u`` by the sign of ``u(point)``, ``sign``
    and ``Heaviside`` become constants, and ``Max``/``Min`` the argument that
    is strictly largest (smallest) at ``point``. By continuity these choices
    hold on a neighbourhood of ``point``. Returns None when an argument
    vanishes or ties at ``point``, or for a ``Piecewise``.
    """
    if not is_piecewise(expr):
        return expr
    if isinstance(expr, sympy.Piecewise):
        return None
    args = []
    for arg in expr.args:
        local = localize(arg, var, point, seconds)
        if local is None:
            return None
        args.append(local)
    if isinstance(expr, (sympy.Abs, sympy.sign, sympy.Heaviside)):
        sign = _value_sign(args[0], var, point, seconds)
        if sign in (None, 0):
            return None
        if isinstance(expr, sympy.Abs):
            return sign * args[0]
        if isinstance(expr, sympy.sign):
            return sympy.Integer(sign)
        return sympy.Integer(1 if sign > 0 else 0)
    if isinstance(expr, (sympy.Max, sympy.Min)):
        best = 0
        for i in range(1, len(args)):
            difference = args[i] - args[best]
            if expr.func is sympy.Min:
                difference = -difference
            sign = _value_sign(difference, var, point, seconds)
            if sign in (None, 0):
                return None
            if sign > 0:
                best = i
        return args[best]
    return expr.func(*args)


@dataclass(frozen=True)
class TaylorResult:
    """Exact Taylor coefficients ``a_k`` for ``k < order``.

    ``nonzero`` maps each degree whose coefficient is proved nonzero to that
    coefficient; ``undecided`` lists the degrees whose coefficient could be
    proved neither zero nor nonzero. All other degrees below ``order`` are
    proved zero.
    """

    order: int
    nonzero: dict[int, sympy.Expr]
    undecided: tuple[int, ...]


def taylor_coefficients(
    expr: sympy.Expr,
    var: sympy.Symbol,
    order: int,
    seconds: float = DEFAULT_STEP_TIMEOUT,
) -> TaylorResult | None:
    """Compute the Taylor coefficients of a piece-free expression at 0.

    The caller guarantees ``expr`` is analytic at 0 (see :func:`analytic_at`).
    When a coefficient cannot be decided and ``tanh`` occurs, the expansion
    is redone after ``rewrite(exp)``, because sympy 1.14 leaves
    ``tanh(log(2))`` unsimplified in the coefficients of Mish. Returns None
    on a timeout or when sympy's series has a term that is not a power of
    ``var`` with a nonnegative integer exponent. Results are memoized, so the
    prover's own re-check of a claim costs nothing.
    """
    if is_piecewise(expr):
        raise ValueError("taylor_coefficients needs a piece-free expression")
    result = _taylor_memo(expr, var, order, seconds, False)
    if result is not None and result.undecided and expr.has(sympy.tanh):
        result = _taylor_memo(expr, var, order, seconds, True)
    return result


@functools.lru_cache(maxsize=256)
def _taylor_memo(
    expr: sympy.Expr, var: sympy.Symbol, order: int, seconds: float, rewrite: bool
) -> TaylorResult | None:
    target = expr.rewrite(sympy.exp) if rewrite else expr

    def expand_series() -> sympy.Expr:
        return sympy.expand(sympy.series(target, var, 0, order).removeO())

    try:
        ok, polynomial = call_with_deadline(expand_series, seconds=seconds)
    except (NotImplementedError, ValueError, TypeError) as exc:
        logger.info("series of %s failed: %s", expr, exc)
        return None
    if not ok:
        return None
    try:
        poly = sympy.Poly(polynomial, var)
    except sympy.PolynomialError:
        return None
    nonzero: dict[int, sympy.Expr] = {}
    undecided: list[int] = []
    for (degree,), coefficient in poly.terms():
        if degree >= order:
            continue
        if coefficient.free_symbols:
            return None
        if nonzero_number(coefficient, seconds):
            nonzero[degree] = coefficient
        elif not number_is_zero(coefficient, seconds):
            undecided.append(degree)
    return TaylorResult(order, dict(sorted(nonzero.items())), tuple(sorted(undecided)))


def side_expression(expr: sympy.Expr, side: str) -> sympy.Expr | None:
    """Return a piece-free ``g(u)`` equal to ``expr(u)`` (``side='right'``) or
    ``expr(-u)`` (``side='left'``) for small ``u > 0``, in the variable ``X``.

    The positive symbol ``p`` resolves kinks at 0 by sympy's own evaluation
    (``Max(0, p) = p``); the remaining pieces are localized at 0.
    """
    if side not in ("right", "left", "both"):
        raise ValueError(f"side must be 'right', 'left' or 'both', got {side!r}")
    if side == "both":
        return localize(expr, X, sympy.Integer(0))
    value = P if side == "right" else -P
    substituted = expr.subs(X, value)
    local = localize(substituted, P, sympy.Integer(0))
    if local is None:
        return None
    return local.subs(P, X)

"""Numeric evidence for intertwiner groups, and black-box discovery of them.

:func:`compile_numpy` turns an activation expression into a float64 evaluator
by walking the sympy tree into numpy and scipy closures, so no code text is
generated or evaluated. The evaluator rewrites the patterns that lose accuracy
in floating point (``log(1 + exp(u))``, ``exp(u) - 1``, ``log(1 + u)``,
``1/(1 + exp(-u))``) into their stable numpy forms.

:func:`numeric_evidence` checks a claimed group on random samples: every
sampled element ``A`` must satisfy ``sigma(A x) = phi(A) sigma(x)``, and
matrices just outside the group must fail that law for every ``B``.
:func:`discover_numerically` finds the group from samples of ``sigma`` alone,
by scanning scalings ``lam`` and fitting ``sigma(lam t) = mu sigma(t)``.
Both are evidence, not proof: they see only float64 samples.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import scipy.optimize
import scipy.special
import sympy

from ._errors import ExpressionError, ParameterError
from ._group import Character, GroupDescription, IntertwinerGroup, exact_text
from ._symbols import X

logger = logging.getLogger(__name__)

#: The float type of every evaluation; evidence records store its name.
DTYPE = "float64"

#: The smallest positive normal float64, used as the floor of denominators.
TINY = float(np.finfo(np.float64).tiny)

#: Default relative tolerance of the identities that must hold.
DEFAULT_TOL = 1e-8

#: A non-member must have a relative residual of at least this much, or
#: ``NEAR_MISS_TOL_FACTOR * tol`` when that is larger.
NEAR_MISS_THRESHOLD = 1e-4
NEAR_MISS_TOL_FACTOR = 10.0

#: Residuals weight each point by ``1 / max(size, floor)`` with this floor,
#: relative to the median point size (see ``_point_weights``).
BALANCE_FLOOR = 1e-4

#: Deepest sympy tree that :func:`compile_numpy` accepts.
MAX_EXPRESSION_DEPTH = 200

#: Minimum number of finite sample points a residual is computed from. With
#: fewer the residual is NaN, which counts as a failure.
MIN_VALID_POINTS = 16

#: Minimum number of points :func:`sample_points` draws.
MIN_SAMPLE_POINTS = 20

#: Magnitude ranges of :func:`sample_points` and the share of points in each.
TINY_MAGNITUDES = (1e-12, 1e-3)
ORDINARY_MAGNITUDES = (1e-3, 5.0)
LARGE_MAGNITUDES = (5.0, 50.0)
HUGE_MAGNITUDES = (50.0, 1e3)
TINY_SHARE = 0.15
LARGE_SHARE = 0.25
HUGE_SHARE = 0.05

#: Share of the points placed around breakpoints, and their offsets from the
#: breakpoint relative to ``max(1, |b|)``.
BREAKPOINT_SHARE = 0.2
BREAKPOINT_OFFSETS = (1e-9, 1e-2)

#: Breakpoints farther from 0 than this are not sampled.
MAX_BREAKPOINT = 1e3
MAX_BREAKPOINTS = 16

#: Maximum number of array elements one :func:`fit_scalings` call evaluates at once.
FIT_CHUNK_ELEMENTS = 1 << 21

#: Scalings per check of the scalar identity in :func:`numeric_evidence`.
N_SCALAR_SAMPLES = 64

#: Angle range of the rotations used as non-permutation near misses.
NEAR_MISS_ANGLES = (math.pi / 8, 3 * math.pi / 8)

#: Relative size range of the extra off-support entry of a near miss.
NEAR_MISS_ENTRY_SIZES = (0.1, 1.0)

#: The log-spaced scan of :func:`discover_numerically`: ``DEFAULT_GRID_SIZE``
#: values of ``|lam|`` in ``[1/DEFAULT_LAM_MAX, DEFAULT_LAM_MAX]``, both signs.
DEFAULT_GRID_SIZE = 201
DEFAULT_LAM_MAX = 100.0

#: Exact scalings that are always tested, with their negatives.
EXACT_CANDIDATES = (
    sympy.sqrt(2),
    sympy.Integer(2),
    sympy.Integer(3),
    sympy.Integer(4),
    sympy.E,
    sympy.Integer(10),
    sympy.Rational(1, 2),
    sympy.Rational(1, 3),
    sympy.Rational(1, 10),
)

#: Local minima of the scan residual below this value are refined by a 1-D search.
REFINE_MAX_RESIDUAL = 0.5
MAX_REFINEMENTS = 64
REFINE_XATOL = 1e-15
REFINE_MAXITER = 200

#: Snapping of a refined generator to an exact number. The exact number must
#: lie within relative distance ``SNAP_TOL``. It may be a rational, a square
#: or cube root of one, or a sum of such terms, with numerators and
#: denominators up to ``SNAP_MAX_TERM`` and at most ``SNAP_MAX_OPS`` operations.
SNAP_TOL = 1e-9
SNAP_MAX_TERM = 1000
SNAP_MAX_OPS = 6
SNAP_ROOT_DENOMINATORS = (1, 2, 3)

#: Snapping of the character power ``p`` to a rational.
POWER_MAX_DENOMINATOR = 12
POWER_SNAP_TOL = 1e-6

#: ``|lam|`` within this of 1 is treated as the identity scaling.
UNIT_SCALING_TOL = 1e-12

#: Relative tolerance of the check that every fitting scaling lies in the
#: discovered group with the discovered ``mu``.
CONSISTENCY_TOL = 1e-6

_Node = float | Callable[[np.ndarray], np.ndarray]
_BoolNode = bool | Callable[[np.ndarray], np.ndarray]


# --------------------------------------------------------------------------
# Compiling sympy expressions to numpy closures
# --------------------------------------------------------------------------

_UNARY_FUNCTIONS: dict[type, Callable[[Any], Any]] = {
    sympy.exp: np.exp,
    sympy.sin: np.sin,
    sympy.cos: np.cos,
    sympy.tan: np.tan,
    sympy.tanh: np.tanh,
    sympy.sinh: np.sinh,
    sympy.cosh: np.cosh,
    sympy.atan: np.arctan,
    sympy.asinh: np.arcsinh,
    sympy.erf: scipy.special.erf,
    sympy.erfc: scipy.special.erfc,
    sympy.Abs: np.abs,
    sympy.sign: np.sign,
}

_RELATIONS: dict[type, Callable[[Any, Any], Any]] = {
    sympy.StrictLessThan: np.less,
    sympy.LessThan: np.less_equal,
    sympy.StrictGreaterThan: np.greater,
    sympy.GreaterThan: np.greater_equal,
    sympy.Equality: np.equal,
    sympy.Unequality: np.not_equal,
}

_SUPPORTED_TEXT = (
    "numbers, pi, E, x, +, *, **, exp, log, sqrt, sin, cos, tan, tanh, sinh, "
    "cosh, atan, asinh, erf, erfc, Abs, sign, Heaviside, Max, Min, Piecewise"
)


def _identity(x: np.ndarray) -> np.ndarray:
    return x


def _apply(op: Callable[..., Any], *args: _Node) -> _Node:
    """Apply ``op`` to compiled arguments, folding it when all are constants."""
    if all(isinstance(a, float) for a in args):
        with np.errstate(all="ignore"):
            return float(op(*args))
    if len(args) == 1:
        (f,) = args
        return lambda x: op(f(x))
    if len(args) == 2:
        a, b = args
        if isinstance(a, float):
            return lambda x: op(a, b(x))
        if isinstance(b, float):
            return lambda x: op(a(x), b)
        return lambda x: op(a(x), b(x))
    raise AssertionError("_apply takes one or two arguments")


def _scale(c: float, node: _Node) -> _Node:
    if isinstance(node, float):
        return c * node
    if c == 1.0:
        return node
    return lambda x: c * node(x)


def _number(expr: sympy.Expr) -> float:
    try:
        value = float(expr)
    except TypeError as error:
        raise ExpressionError(
            f"unsupported constant {expr!r} in the expression: "
            "the evaluator accepts real numbers, oo and nan"
        ) from error
    return value


def _one_plus_exp_argument(expr: sympy.Expr) -> sympy.Expr | None:
    """Return ``u`` when ``expr`` is ``1 + exp(u)``, else ``None``."""
    if not isinstance(expr, sympy.Add) or len(expr.args) != 2:
        return None
    first, second = expr.args
    if first == 1 and isinstance(second, sympy.exp):
        return second.args[0]
    if second == 1 and isinstance(first, sympy.exp):
        return first.args[0]
    return None


def _compile(expr: sympy.Basic, depth: int) -> _Node:
    if depth > MAX_EXPRESSION_DEPTH:
        raise ExpressionError(
            f"expression is nested deeper than {MAX_EXPRESSION_DEPTH} levels; "
            "simplify it or split it"
        )
    if expr.is_Symbol:
        if expr == X:
            return _identity
        raise ExpressionError(
            f"unknown symbol {expr!r} (assumptions {expr.assumptions0!r}): the only "
            "variable is symgroups._symbols.X, x with real=True"
        )

    if expr.is_Number:
        return _number(expr)
    if isinstance(expr, sympy.NumberSymbol):
        return float(expr)

    if isinstance(expr, sympy.Add):
        return _compile_add(expr, depth)
    if isinstance(expr, sympy.Mul):
        return _compile_mul(expr, depth)
    if isinstance(expr, sympy.Pow):
        return _compile_pow(expr.base, expr.exp, depth)
    if isinstance(expr, sympy.log):
        return _compile_log(expr.args[0], depth)
    if isinstance(expr, sympy.Heaviside):
        return _compile_heaviside(expr, depth)
    if isinstance(expr, (sympy.Max, sympy.Min)):
        return _compile_extremum(expr, depth)
    if isinstance(expr, sympy.Piecewise):
        return _compile_piecewise(expr, depth)

    function = _UNARY_FUNCTIONS.get(expr.func)
    if function is not None and len(expr.args) == 1:
        return _apply(function, _compile(expr.args[0], depth + 1))
    raise ExpressionError(
        f"unsupported node {type(expr).__name__} in {expr}: the evaluator "
        f"accepts {_SUPPORTED_TEXT}"
    )


def _sum(constant: float, parts: list[Callable[[np.ndarray], np.ndarray]]) -> _Node:
    if not parts:
        return constant
    if len(parts) == 1:
        (p0,) = parts
        if constant == 0.0:
            return p0
        return lambda x: p0(x) + constant
    if len(parts) == 2 and constant == 0.0:
        p0, p1 = parts
        return lambda x: p0(x) + p1(x)
    first, second, *rest = parts

    def add(x: np.ndarray) -> np.ndarray:
        # The first sum is a new array, so the remaining terms go in place.
        total = first(x) + second(x)
        for part in rest:
            total += part(x)
        if constant != 0.0:
            total += constant
        return total

    return add


def _pair_with_constant(
    coefficient: sympy.Expr, term: sympy.Expr, depth: int
) -> _Node | None:
    """Compile ``coefficient + term`` in a stable form, or return None.

    The forms are ``c*exp(u) - c = c*expm1(u)``, ``c + c*erf(u) = c*erfc(-u)``,
    ``c - c*erf(u) = c*erfc(u)`` and ``c + c*tanh(u) = 2c*expit(2u)`` (and
    ``c - c*tanh(u) = 2c*expit(-2u)``). Each keeps its digits where the plain
    sum cancels to 0.
    """
    c, factor = term.as_coeff_Mul()
    if not isinstance(factor, (sympy.exp, sympy.erf, sympy.tanh)):
        return None
    u = factor.args[0]
    if isinstance(factor, sympy.exp):
        if c != -coefficient:
            return None
        return _scale(float(c), _apply(np.expm1, _compile(u, depth + 1)))
    if c == coefficient:
        argument = u if isinstance(factor, sympy.tanh) else -u
    elif c == -coefficient:
        argument = -u if isinstance(factor, sympy.tanh) else u
    else:
        return None
    if isinstance(factor, sympy.erf):
        node = _apply(scipy.special.erfc, _compile(argument, depth + 1))
        return _scale(float(coefficient), node)
    node = _apply(scipy.special.expit, _compile(2 * argument, depth + 1))
    return _scale(2.0 * float(coefficient), node)


def _compile_add(expr: sympy.Add, depth: int) -> _Node:
    coefficient, rest = expr.as_coeff_Add()
    terms = list(sympy.Add.make_args(rest))
    parts: list[Callable[[np.ndarray], np.ndarray]] = []
    constant = 0.0
    if coefficient != 0:
        for index, term in enumerate(terms):
            node = _pair_with_constant(coefficient, term, depth)
            if node is None:
                continue
            if isinstance(node, float):
                constant += node
            else:
                parts.append(node)
            del terms[index]
            coefficient = sympy.Integer(0)
            break
    constant += _number(coefficient)
    for term in terms:
        node = _compile(term, depth + 1)
        if isinstance(node, float):
            constant += node
        else:
            parts.append(node)
    return _sum(constant, parts)


def _product(
    coefficient: float,
    numerator: list[Callable[[np.ndarray], np.ndarray]],
    denominator: list[Callable[[np.ndarray], np.ndarray]],
) -> _Node:
    if not numerator and not denominator:
        return coefficient
    if not denominator:
        if len(numerator) == 1:
            return _scale(coefficient, numerator[0])
        if len(numerator) == 2:
            n0, n1 = numerator
            if coefficient == 1.0:
                return lambda x: n0(x) * n1(x)
            return lambda x: coefficient * n0(x) * n1(x)
    if not numerator and len(denominator) == 1:
        (d0,) = denominator
        return lambda x: coefficient / d0(x)
    if len(numerator) == 1 and len(denominator) == 1:
        n0, d0 = numerator[0], denominator[0]
        if coefficient == 1.0:
            return lambda x: n0(x) / d0(x)
        return lambda x: coefficient * n0(x) / d0(x)

    def multiply(x: np.ndarray) -> np.ndarray:
        # Every product below starts from a new array, so the rest goes in place.
        if numerator:
            value = coefficient * numerator[0](x)
            for factor in numerator[1:]:
                value *= factor(x)
        else:
            value = np.full(np.shape(x), coefficient)
        if denominator:
            below = denominator[0](x)
            for factor in denominator[1:]:
                below = below * factor(x)
            value /= below
        return value

    return multiply


def _expit_pairs(factors: list[sympy.Expr]) -> dict[int, int]:
    """Pair each ``(1 + exp(u))**-1`` factor with an ``exp(u)`` factor.

    Returns a map from the index of the reciprocal to the index of ``exp(u)``.
    """
    pairs: dict[int, int] = {}
    used: set[int] = set()
    for i, factor in enumerate(factors):
        if not (isinstance(factor, sympy.Pow) and factor.exp == -1):
            continue
        u = _one_plus_exp_argument(factor.base)
        if u is None:
            continue
        for j, other in enumerate(factors):
            if j not in used and isinstance(other, sympy.exp) and other.args[0] == u:
                pairs[i] = j
                used.add(j)
                break
    return pairs


def _compile_mul(expr: sympy.Mul, depth: int) -> _Node:
    coefficient = 1.0
    numerator: list[Callable[[np.ndarray], np.ndarray]] = []
    denominator: list[Callable[[np.ndarray], np.ndarray]] = []
    factors = list(sympy.Mul.make_args(expr))
    pairs = _expit_pairs(factors)
    paired_exps = set(pairs.values())
    for index, factor in enumerate(factors):
        if index in paired_exps:
            continue
        node: _Node
        below = False
        u = None
        if isinstance(factor, sympy.Pow) and factor.exp == -1:
            u = _one_plus_exp_argument(factor.base)
        if index in pairs:
            # exp(u) / (1 + exp(u)) is expit(u), which does not overflow.
            node = _apply(scipy.special.expit, _compile(u, depth + 1))
        elif u is not None:
            node = _apply(scipy.special.expit, _compile(-u, depth + 1))
        elif (
            isinstance(factor, sympy.Pow)
            and factor.exp.is_Number
            and factor.exp.is_negative
        ):
            # Dividing by b**k rounds once, where multiplying by b**-k rounds twice.
            node = _compile_pow(factor.base, -factor.exp, depth + 1)
            below = True
        else:
            node = _compile(factor, depth + 1)
        if isinstance(node, float):
            coefficient = coefficient / node if below else coefficient * node
        elif below:
            denominator.append(node)
        else:
            numerator.append(node)
    return _product(coefficient, numerator, denominator)


def _integer_power(base: _Node, n: int) -> _Node:
    if isinstance(base, float):
        with np.errstate(all="ignore"):
            return float(np.power(base, float(n)))
    if n == 0:
        return 1.0
    if n == 1:
        return base
    if n == 2:
        return lambda x: np.square(base(x))
    if n == 3:

        def cube(x: np.ndarray) -> np.ndarray:
            b = base(x)
            return b * b * b

        return cube
    if n == -1:
        return lambda x: 1.0 / base(x)
    if n == -2:
        return lambda x: 1.0 / np.square(base(x))
    exponent = float(n)
    return lambda x: np.power(base(x), exponent)


def _real_root_power(base: _Node, p: int, q: int) -> _Node:
    """Return ``base**(p/q)`` for odd ``q`` as the real root raised to ``p``."""
    if q == 3 and p == 1:
        return _apply(np.cbrt, base)
    exponent = p / q
    odd = p % 2 == 1

    def power(b: Any) -> Any:
        magnitude = np.power(np.abs(b), exponent)
        return np.copysign(magnitude, b) if odd else magnitude

    return _apply(power, base)


def _compile_pow(base_expr: sympy.Expr, exp_expr: sympy.Expr, depth: int) -> _Node:
    base = _compile(base_expr, depth + 1)
    exponent = _compile(exp_expr, depth + 1)
    if isinstance(exponent, float) and exp_expr.is_Rational:
        p, q = int(exp_expr.p), int(exp_expr.q)
        if q == 1:
            return _integer_power(base, p)
        if q == 2 and p == 1:
            return _apply(np.sqrt, base)
        if q == 2 and p == -1:
            return _apply(lambda b: 1.0 / np.sqrt(b), base)
        if q % 2 == 1:
            return _real_root_power(base, p, q)
        # An even root of a negative number is not real, and np.power returns NaN.
    return _apply(np.power, base, exponent)


def _compile_log(argument: sympy.Expr, depth: int) -> _Node:
    u = _one_plus_exp_argument(argument)
    if u is not None:
        return _apply(lambda v: np.logaddexp(0.0, v), _compile(u, depth + 1))
    if isinstance(argument, sympy.Pow) and argument.exp == -1:
        # log(1/b) = -log(b) for b > 0, and both sides are NaN for b < 0.
        return _scale(-1.0, _compile_log(argument.base, depth + 1))
    if isinstance(argument, sympy.Add):
        coefficient, rest = argument.as_coeff_Add()
        if coefficient == 1 and rest != 0:
            return _apply(np.log1p, _compile(rest, depth + 1))
        if coefficient.is_positive and isinstance(rest, sympy.exp):
            # log(c + exp(u)) = logaddexp(log(c), u) for c > 0.
            shift = math.log(float(coefficient))
            node = _compile(rest.args[0], depth + 1)
            return _apply(lambda v: np.logaddexp(shift, v), node)
    return _apply(np.log, _compile(argument, depth + 1))


def _compile_heaviside(expr: sympy.Heaviside, depth: int) -> _Node:
    argument = _compile(expr.args[0], depth + 1)
    at_zero = _compile(expr.args[1], depth + 1) if len(expr.args) > 1 else 0.5
    if not isinstance(at_zero, float):
        raise ExpressionError(
            f"the value at 0 of {expr} must be a number, got {expr.args[1]!r}"
        )
    return _apply(np.heaviside, argument, at_zero)


def _compile_extremum(expr: sympy.Expr, depth: int) -> _Node:
    is_max = isinstance(expr, sympy.Max)
    ufunc = np.maximum if is_max else np.minimum
    nodes = [_compile(arg, depth + 1) for arg in expr.args]
    constants = [n for n in nodes if isinstance(n, float)]
    parts = [n for n in nodes if not isinstance(n, float)]
    if not parts:
        return max(constants) if is_max else min(constants)
    if constants:
        constant = max(constants) if is_max else min(constants)
        head = _apply(ufunc, parts[0], constant)
        rest = parts[1:]
    elif len(parts) == 1:
        return parts[0]
    else:
        head = _apply(ufunc, parts[0], parts[1])
        rest = parts[2:]
    if not rest:
        return head

    def extremum(x: np.ndarray) -> np.ndarray:
        # head(x) is a new array, so the remaining arguments go in place.
        value = head(x)
        for part in rest:
            ufunc(value, part(x), out=value)
        return value

    return extremum


def _compile_condition(cond: sympy.Basic, depth: int) -> _BoolNode:
    if depth > MAX_EXPRESSION_DEPTH:
        raise ExpressionError(
            f"expression is nested deeper than {MAX_EXPRESSION_DEPTH} levels; "
            "simplify it or split it"
        )
    if cond is sympy.true:
        return True
    if cond is sympy.false:
        return False
    relation = _RELATIONS.get(type(cond))
    if relation is not None:
        lhs = _compile(cond.lhs, depth + 1)
        rhs = _compile(cond.rhs, depth + 1)
        if isinstance(lhs, float) and isinstance(rhs, float):
            return bool(relation(lhs, rhs))
        return _apply(relation, lhs, rhs)
    if isinstance(cond, sympy.Not):
        inner = _compile_condition(cond.args[0], depth + 1)
        if isinstance(inner, bool):
            return not inner
        return lambda x: np.logical_not(inner(x))
    if isinstance(cond, (sympy.And, sympy.Or)):
        is_and = isinstance(cond, sympy.And)
        parts = []
        for arg in cond.args:
            node = _compile_condition(arg, depth + 1)
            if isinstance(node, bool):
                if node != is_and:
                    return node  # False in an And, True in an Or
                continue
            parts.append(node)
        if not parts:
            return is_and
        combine = np.logical_and if is_and else np.logical_or

        def junction(x: np.ndarray) -> np.ndarray:
            value = parts[0](x)
            for part in parts[1:]:
                value = combine(value, part(x))
            return value

        return junction
    raise ExpressionError(
        f"unsupported condition {type(cond).__name__} in {cond}: Piecewise "
        "conditions may use <, <=, >, >=, Eq, Ne, And, Or, Not, True and False"
    )


def _compile_piecewise(expr: sympy.Piecewise, depth: int) -> _Node:
    values: list[_Node] = []
    conditions: list[Callable[[np.ndarray], np.ndarray]] = []
    default: _Node = math.nan
    for pair in expr.args:
        condition = _compile_condition(pair.cond, depth + 1)
        if condition is False:
            continue
        value = _compile(pair.expr, depth + 1)
        if condition is True:
            default = value
            break
        conditions.append(condition)
        values.append(value)
    if not conditions:
        return default
    if len(conditions) == 1:
        condition, value = conditions[0], values[0]
        if isinstance(value, float) and isinstance(default, float):
            return lambda x: np.where(condition(x), value, default)
        if isinstance(value, float):
            return lambda x: np.where(condition(x), value, default(x))
        if isinstance(default, float):
            return lambda x: np.where(condition(x), value(x), default)
        return lambda x: np.where(condition(x), value(x), default(x))

    def piecewise(x: np.ndarray) -> np.ndarray:
        # np.select takes the first true condition, as Piecewise does.
        chosen = [v if isinstance(v, float) else v(x) for v in values]
        masks = [c(x) for c in conditions]
        otherwise = default if isinstance(default, float) else default(x)
        return np.select(masks, chosen, otherwise)

    return piecewise


class CompiledExpression:
    """A float64 evaluator of one activation expression, applied elementwise.

    Calling it on an array of any shape returns a new float64 array of that
    shape. Floating-point warnings are silenced: overflow gives ``inf``, and
    points where the real value does not exist give ``NaN``. For an odd
    denominator ``q``, ``x**(p/q)`` is the real root, which differs from
    sympy's principal branch at negative ``x``.
    """

    def __init__(self, expr: sympy.Expr, root: _Node) -> None:
        self.expr = expr
        self._root = root

    def __call__(self, x: Any) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 0:
            # The closures update arrays in place, which numpy scalars are not.
            return self(x.reshape(1)).reshape(())
        root = self._root
        if isinstance(root, float):
            return np.full(x.shape, root)
        with np.errstate(all="ignore"):
            value = root(x)
        if value is x:
            return x.copy()
        value = np.asarray(value, dtype=np.float64)
        if value.shape != x.shape:
            value = np.broadcast_to(value, x.shape).copy()
        return value

    def __repr__(self) -> str:
        return f"CompiledExpression({self.expr})"


def compile_numpy(expr: sympy.Expr) -> CompiledExpression:
    """Compile an expression in :data:`symgroups._symbols.X` to a numpy evaluator.

    The result ``f`` satisfies ``f(t)[i] == float(expr.subs(X, t[i]))`` up to
    float64 rounding wherever the real value exists and is finite. Constant
    subexpressions are folded once, in float64.

    Parameters
    ----------
    expr : sympy.Expr
        An expression built from numbers, ``pi``, ``E``, ``X``, ``+``, ``*``,
        ``**``, ``Max``, ``Min`` and ``Piecewise``, and from the functions
        exp, log, sin, cos, tan, tanh, sinh, cosh, atan, asinh, erf, erfc,
        Abs, sign and Heaviside. Piecewise conditions may use ``<``, ``<=``,
        ``>``, ``>=``, ``Eq``, ``Ne``, ``And``, ``Or`` and ``Not``.

    Returns
    -------
    CompiledExpression
        A callable from a float array to a float64 array of the same shape.

    Raises
    ------
    ExpressionError
        When ``expr`` is not a sympy expression, contains a symbol other than
        ``X``, or contains a node the evaluator does not support.
    """
    if not isinstance(expr, sympy.Expr):
        raise ExpressionError(
            f"expr must be a sympy expression in x, got {type(expr).__name__} {expr!r}"
        )
    root = _compile(expr, 0)
    return CompiledExpression(expr, root)


# --------------------------------------------------------------------------
# Sample points and scaling fits
# --------------------------------------------------------------------------


def _signed(rng: np.random.Generator, magnitudes: np.ndarray) -> np.ndarray:
    # Alternating signs give each magnitude range both signs in equal number.
    signs = np.where(np.arange(magnitudes.size) % 2 == 0, 1.0, -1.0)
    return signs * magnitudes[rng.permutation(magnitudes.size)]


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float], n: int):
    low, high = math.log(bounds[0]), math.log(bounds[1])
    return np.exp(rng.uniform(low, high, size=n))


def sample_points(
    rng: np.random.Generator, n: int, breakpoints: Sequence[float] = ()
) -> np.ndarray:
    """Draw ``n`` scalar test points of both signs, in random order.

    The magnitudes are tiny (log-uniform in ``TINY_MAGNITUDES``), ordinary
    (uniform in ``ORDINARY_MAGNITUDES``), large (uniform in
    ``LARGE_MAGNITUDES``) and huge (log-uniform in ``HUGE_MAGNITUDES``).
    When ``breakpoints`` are given, ``BREAKPOINT_SHARE`` of the points lie
    on each breakpoint ``b`` and at log-uniform offsets of both signs from it.

    Parameters
    ----------
    rng : numpy.random.Generator
        The only source of randomness, so a seeded generator repeats the points.
    n : int
        Number of points, at least ``MIN_SAMPLE_POINTS``.
    breakpoints : sequence of float
        Points where the activation changes form, such as the 0 of ``Abs``.

    Returns
    -------
    numpy.ndarray
        A float64 array of shape ``(n,)``.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise ParameterError(f"n must be an integer, got {n!r}")
    if n < MIN_SAMPLE_POINTS:
        raise ParameterError(f"n must be at least {MIN_SAMPLE_POINTS}, got {n!r}")
    points = [float(b) for b in breakpoints]
    if not all(math.isfinite(b) for b in points):
        raise ParameterError(f"breakpoints must be finite numbers, got {breakpoints!r}")
    parts = []
    n_break = int(n * BREAKPOINT_SHARE) if points else 0
    for index, b in enumerate(points):
        count = n_break // len(points) + (1 if index < n_break % len(points) else 0)
        if count == 0:
            continue
        offsets = _log_uniform(rng, BREAKPOINT_OFFSETS, count - 1) * max(1.0, abs(b))
        parts.append(np.concatenate([[b], b + _signed(rng, offsets)]))
    n_rest = n - n_break
    n_tiny = int(n_rest * TINY_SHARE)
    n_large = int(n_rest * LARGE_SHARE)
    n_huge = max(2, int(n_rest * HUGE_SHARE))
    n_ordinary = n_rest - n_tiny - n_large - n_huge
    parts.append(_signed(rng, _log_uniform(rng, TINY_MAGNITUDES, n_tiny)))
    parts.append(_signed(rng, rng.uniform(*ORDINARY_MAGNITUDES, size=n_ordinary)))
    parts.append(_signed(rng, rng.uniform(*LARGE_MAGNITUDES, size=n_large)))
    parts.append(_signed(rng, _log_uniform(rng, HUGE_MAGNITUDES, n_huge)))
    values = np.concatenate(parts)
    return values[rng.permutation(values.size)]


@dataclass(frozen=True)
class ScalingFit:
    """Result of :func:`fit_scalings`; it unpacks as ``(mu, residual)``.

    ``n_ignored[k]`` is the number of points skipped for ``lams[k]`` because
    ``f(lam t)`` or ``f(t)`` was not finite.
    """

    mu: np.ndarray
    residual: np.ndarray
    n_ignored: np.ndarray

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter((self.mu, self.residual))


def _point_weights(size: np.ndarray) -> np.ndarray:
    """Return ``1 / max(size, floor)`` per point, along the last axis.

    ``size`` is the magnitude of each point's values, and ``floor`` is
    ``BALANCE_FLOOR`` times the median positive size of its row. Weighting by
    the inverse size makes every point count about equally, so one huge value
    cannot hide a mismatch elsewhere. The floor keeps points whose values are
    0 up to rounding from being blown up to size 1.
    """
    positive = np.where(size > 0.0, size, np.nan)
    with warnings.catch_warnings():
        # A row of zeros has no positive size; its floor is then 1.
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.nanmedian(positive, axis=-1, keepdims=True)
    floor = np.where(np.isfinite(median), BALANCE_FLOOR * median, 1.0)
    return 1.0 / np.maximum(size, floor)


def _scaling_rows(
    y: np.ndarray, z: np.ndarray, mu: np.ndarray | None, balanced: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit (or take) ``mu`` per row in ``y ~ mu z`` and return its residual.

    ``y`` has shape ``(k, m)`` and ``z`` shape ``(m,)``. Each row is weighted
    (see :func:`_point_weights`) or divided by its maximum, and ``z`` is then
    divided by its own maximum, so no square leaves the float64 range even
    when ``mu`` is huge.
    """
    valid = np.isfinite(y) & np.isfinite(z)[None, :]
    n_valid = valid.sum(axis=1)
    yv = np.where(valid, y, 0.0)
    zv = np.where(valid, z[None, :], 0.0)
    if balanced:
        weights = _point_weights(np.maximum(np.abs(yv), np.abs(zv)))
    else:
        scale = np.maximum(np.abs(yv).max(axis=1), np.abs(zv).max(axis=1))
        weights = 1.0 / np.where(scale > 0.0, scale, 1.0)[:, None]
    yw = yv * weights
    zw = zv * weights
    z_scale = np.abs(zw).max(axis=1)
    z_scale = np.where(z_scale > 0.0, z_scale, 1.0)
    zs = zw / z_scale[:, None]
    if mu is None:
        zz = np.einsum("ij,ij->i", zs, zs)
        yz = np.einsum("ij,ij->i", yw, zs)
        # Where f(t) is 0 at every valid point, every mu fits equally, so take 0.
        ratio = np.divide(yz, zz, out=np.zeros_like(yz), where=zz > 0.0)
        mu = ratio / z_scale
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            ratio = mu * z_scale
    with np.errstate(over="ignore", invalid="ignore"):
        difference = yw - ratio[:, None] * zs
        residual = np.linalg.norm(difference, axis=1) / np.maximum(
            np.linalg.norm(yw, axis=1), TINY
        )
    residual = np.where(n_valid >= MIN_VALID_POINTS, residual, np.nan)
    return mu, residual, (y.shape[1] - n_valid)


def _scaling_fit(
    f: Callable[[np.ndarray], np.ndarray],
    lams: np.ndarray,
    t: np.ndarray,
    mu: np.ndarray | None,
    balanced: bool,
) -> ScalingFit:
    z = np.asarray(f(t), dtype=np.float64)
    chunk = max(1, FIT_CHUNK_ELEMENTS // max(1, t.size))
    mus, residuals, ignored = [], [], []
    for start in range(0, lams.size, chunk):
        block = lams[start : start + chunk]
        y = np.asarray(f(block[:, None] * t[None, :]), dtype=np.float64)
        given = None if mu is None else mu[start : start + chunk]
        m, r, i = _scaling_rows(y, z, given, balanced)
        mus.append(m)
        residuals.append(r)
        ignored.append(i)
    if not mus:
        empty = np.zeros(0)
        return ScalingFit(empty, empty, np.zeros(0, dtype=np.int64))
    return ScalingFit(
        np.concatenate(mus), np.concatenate(residuals), np.concatenate(ignored)
    )


def fit_scalings(
    f: Callable[[np.ndarray], np.ndarray],
    lams: Any,
    t: Any,
    *,
    balanced: bool = True,
) -> ScalingFit:
    """Fit ``mu`` in ``f(lam t) ~ mu f(t)`` by least squares, for each ``lam``.

    For each ``lam``, with ``y = f(lam t)`` and ``z = f(t)`` on the points
    where both are finite, the fit returns ``mu = <W y, W z> / <W z, W z>``
    and the relative residual ``||W (y - mu z)|| / max(||W y||, TINY)``. The
    residual is 0 exactly when ``lam`` is a scaling of ``f`` on these points,
    and NaN when fewer than ``MIN_VALID_POINTS`` points are finite.

    ``W`` is diagonal. With ``balanced=False`` it is the identity, the plain
    least-squares fit. Then the largest values decide the fit: for ``exp``
    the largest sample point alone makes many ``lam`` fit to 1e-19. The
    default ``balanced=True`` weights each point by ``1 / max(|y_i|, |z_i|,
    floor)`` (see ``BALANCE_FLOOR``), so every point counts about equally.

    Parameters
    ----------
    f : callable
        An elementwise float64 function; it is called on 1-D and 2-D arrays.
    lams : array_like
        Scalings, flattened to 1-D.
    t : array_like
        Sample points, flattened to 1-D.
    balanced : bool
        Whether to weight the points as described above.

    Returns
    -------
    ScalingFit
        ``mu`` and ``residual`` of shape ``(len(lams),)``, and the number of
        ignored points per scaling; ``mu_hat, residual = fit_scalings(...)``
        unpacks it.
    """
    lams = np.asarray(lams, dtype=np.float64).ravel()
    t = np.asarray(t, dtype=np.float64).ravel()
    return _scaling_fit(f, lams, t, None, balanced)


def scaling_residuals(
    f: Callable[[np.ndarray], np.ndarray],
    lams: Any,
    mus: Any,
    t: Any,
    *,
    balanced: bool = True,
) -> ScalingFit:
    """Return the relative residual of ``f(lam t) = mu f(t)`` for given pairs.

    The residual is the one of :func:`fit_scalings` with ``mu`` fixed to
    ``mus[k]`` instead of fitted.
    """
    lams = np.asarray(lams, dtype=np.float64).ravel()
    mus = np.asarray(mus, dtype=np.float64).ravel()
    if mus.shape != lams.shape:
        raise ParameterError(
            f"mus must have one value per scaling ({lams.size}), got {mus.size}"
        )
    t = np.asarray(t, dtype=np.float64).ravel()
    return _scaling_fit(f, lams, t, mus, balanced)


# --------------------------------------------------------------------------
# Breakpoints of an expression
# --------------------------------------------------------------------------


def _linear_root(g: sympy.Expr) -> float | None:
    """Return the root of ``g`` when ``g = a x + b`` with constants, else None."""
    if not g.has(X):
        return None
    slope = sympy.diff(g, X)
    if slope.free_symbols or slope == 0:
        return None
    root = -g.subs(X, 0) / slope
    try:
        value = float(root)
    except TypeError:
        return None
    return value if math.isfinite(value) else None


def find_breakpoints(expr: sympy.Expr) -> list[float]:
    """Return the points where ``expr`` may change form, sorted.

    These are the roots of linear arguments of ``Abs``, ``sign`` and
    ``Heaviside``, of the differences of linear arguments of ``Max`` and
    ``Min``, and of linear relations in ``Piecewise`` conditions, within
    ``MAX_BREAKPOINT`` of 0 and at most ``MAX_BREAKPOINTS`` of them.
    """
    candidates: list[sympy.Expr] = []
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, (sympy.Abs, sympy.sign, sympy.Heaviside)):
            candidates.append(node.args[0])
        elif isinstance(node, (sympy.Max, sympy.Min)):
            args = node.args
            for i in range(len(args)):
                for j in range(i + 1, len(args)):
                    candidates.append(args[i] - args[j])
        elif isinstance(node, sympy.core.relational.Relational):
            candidates.append(node.lhs - node.rhs)
    found: set[float] = set()
    for g in candidates:
        root = _linear_root(g)
        if root is not None and abs(root) <= MAX_BREAKPOINT:
            found.add(root)
        if len(found) >= MAX_BREAKPOINTS:
            break
    return sorted(found)


# --------------------------------------------------------------------------
# Numeric evidence for a claimed group
# --------------------------------------------------------------------------


def _json_float(value: Any) -> float | None:
    """Return a plain float, or None for NaN and infinities (not valid JSON)."""
    value = float(value)
    return value if math.isfinite(value) else None


def _weighted_columns(
    lhs: np.ndarray, rhs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Keep the columns finite on both sides and weight them by their size.

    Returns the weighted ``lhs`` and ``rhs`` (see :func:`_point_weights`,
    with a column's size its largest entry on either side) and the number of
    columns dropped, or None when fewer than ``MIN_VALID_POINTS`` are left.
    """
    valid = np.isfinite(lhs).all(axis=0) & np.isfinite(rhs).all(axis=0)
    if valid.sum() < MIN_VALID_POINTS:
        return None
    left, right = lhs[:, valid], rhs[:, valid]
    size = np.maximum(np.abs(left).max(axis=0), np.abs(right).max(axis=0))
    weights = _point_weights(size)
    return left * weights, right * weights, int(lhs.shape[1] - valid.sum())


def _matrix_residual(lhs: np.ndarray, rhs: np.ndarray) -> tuple[float, int]:
    """Return ``||W (lhs - rhs)|| / ||W lhs||`` and the number of dropped columns.

    Columns are points; ``W`` is the weighting of :func:`_weighted_columns`.
    """
    weighted = _weighted_columns(lhs, rhs)
    if weighted is None:
        valid = np.isfinite(lhs).all(axis=0) & np.isfinite(rhs).all(axis=0)
        return math.nan, int(lhs.shape[1] - valid.sum())
    left, right, ignored = weighted
    numerator = float(np.linalg.norm(left - right))
    return numerator / max(float(np.linalg.norm(left)), TINY), ignored


def _best_intertwiner_residual(lhs: np.ndarray, rhs: np.ndarray) -> float:
    """Return ``max_i min_B ||W (lhs - B rhs)_i|| / ||W lhs_i||`` over all ``n x n`` B.

    ``lhs = sigma(M X)`` and ``rhs = sigma(X)``, one column per point; a
    residual far from 0 shows that no ``B`` makes ``M`` an intertwiner on
    these points. ``W`` is the weighting of :func:`_weighted_columns`.
    Without it the huge points, where many activations are nearly linear or
    a polynomial is dominated by its leading term, hide a mismatch at
    ``|x| ~ 1``.
    """
    weighted = _weighted_columns(lhs, rhs)
    if weighted is None:
        return math.nan
    left, right, _ = weighted
    solution, *_ = np.linalg.lstsq(right.T, left.T, rcond=None)
    fitted = solution.T @ right
    # Each output coordinate is fitted on its own, and its residual is taken
    # relative to its own size: a single wrong row must not hide behind rows
    # whose values are many orders of magnitude larger (exp, cosh).
    row_error = np.linalg.norm(left - fitted, axis=1)
    row_size = np.maximum(np.linalg.norm(left, axis=1), TINY)
    return float(np.max(row_error / row_size))


def _vectors(
    rng: np.random.Generator, n: int, count: int, breakpoints: Sequence[float]
) -> np.ndarray:
    return sample_points(rng, n * count, breakpoints).reshape(n, count)


def scalars_outside(description: GroupDescription) -> list[float]:
    """Return a few scalars that are not in the scalar group of ``description``.

    The list is empty for ``nonzero``, which contains every scalar.
    """
    if description.kind != "monomial":
        raise ParameterError(f"a {description.kind} group has no scalar subgroup")
    scalars = description.scalars
    if scalars == "trivial":
        return [-1.0, 2.0]
    if scalars == "sign":
        return [2.0, -0.5]
    if scalars == "positive":
        return [-1.0, -2.0]
    if scalars == "nonzero":
        return []
    (c,) = [float(g) for g in description.generators if abs(g) != 1]
    # sqrt(|c|) is never a power of c because |c| != 1.
    outside = [math.sqrt(abs(c))]
    if not any(g == -1 for g in description.generators):
        outside.append(-1.0)
    return outside


def rotation_matrix(n: int, i: int, j: int, angle: float) -> np.ndarray:
    """Return the ``n x n`` rotation by ``angle`` in the plane of axes i and j."""
    rotation = np.eye(n)
    c, s = math.cos(angle), math.sin(angle)
    rotation[i, i] = rotation[j, j] = c
    rotation[i, j], rotation[j, i] = -s, s
    return rotation


def near_miss_matrices(
    group: IntertwinerGroup, rng: np.random.Generator
) -> list[tuple[str, np.ndarray]]:
    """Return labelled matrices just outside ``group``, built from a sample.

    Monomial groups get an element with one extra off-support entry, an
    element times a rotation (not monomial), and elements with one scalar
    outside the scalar group. Affine stabilizers get an element whose first
    row no longer sums to 1. ``GL_n`` has no invertible matrices outside it,
    so the list is empty.
    """
    description = group.description
    n = group.n
    A = group.sample(rng)
    misses: list[tuple[str, np.ndarray]] = []
    if description.kind == "general_linear":
        return misses
    if description.kind == "affine_stabilizer":
        M = A.copy()
        M[0, :] += rng.uniform(*NEAR_MISS_ENTRY_SIZES) / n
        misses.append(("row sum not 1", M))
        return misses
    perm, d = group.monomial_factors(A)
    if n >= 2:
        column = int(rng.integers(n))
        rows = [r for r in range(n) if r != perm[column]]
        row = int(rng.choice(rows))
        size = rng.uniform(*NEAR_MISS_ENTRY_SIZES) * abs(d[column])
        M = A.copy()
        M[row, column] = size * rng.choice([-1.0, 1.0])
        misses.append(("extra off-support entry", M))
        i, j = (int(v) for v in rng.choice(n, size=2, replace=False))
        angle = rng.uniform(*NEAR_MISS_ANGLES)
        misses.append(("non-permutation", A @ rotation_matrix(n, i, j, angle)))
    for lam in scalars_outside(description):
        M = A.copy()
        M[:, 0] *= lam
        misses.append((f"scalar {lam:g} outside the scalar group", M))
    return misses


def _validate_seed(seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParameterError(f"seed must be a non-negative integer, got {seed!r}")


def _validate_evidence_arguments(
    group: Any, seed: Any, n_points: Any, dims: Any, n_matrices: Any, tol: Any
) -> tuple[int, ...]:
    _validate_seed(seed)
    if not isinstance(group, GroupDescription):
        raise ParameterError(f"group must be a GroupDescription, got {group!r}")
    if isinstance(n_points, bool) or not isinstance(n_points, (int, np.integer)):
        raise ParameterError(f"n_points must be an integer, got {n_points!r}")
    if n_points < MIN_SAMPLE_POINTS:
        raise ParameterError(
            f"n_points must be at least {MIN_SAMPLE_POINTS}, got {n_points!r}"
        )
    if isinstance(n_matrices, bool) or not isinstance(n_matrices, (int, np.integer)):
        raise ParameterError(f"n_matrices must be an integer, got {n_matrices!r}")
    if n_matrices < 1:
        raise ParameterError(f"n_matrices must be at least 1, got {n_matrices!r}")
    dims = tuple(dims)
    if not dims or not all(
        isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1
        for n in dims
    ):
        raise ParameterError(
            f"dims must be a non-empty sequence of positive integers, got {dims!r}"
        )
    if not isinstance(tol, (int, float)) or not (0 < tol < 1):
        raise ParameterError(f"tol must be a number in (0, 1), got {tol!r}")
    return tuple(int(n) for n in dims)


def _kind_fit_residual(f: CompiledExpression, t: np.ndarray, constant: bool) -> float:
    """Return the relative residual of fitting ``f(t) = a t`` (or ``a t + c``).

    The fit is weighted like :func:`fit_scalings`, so the largest points do
    not decide it alone.
    """
    y = f(t)
    valid = np.isfinite(y)
    if valid.sum() < MIN_VALID_POINTS:
        return math.nan
    tv, yv = t[valid], y[valid]
    weights = _point_weights(np.maximum(np.abs(yv), np.abs(tv)))
    columns = [tv, np.ones_like(tv)] if constant else [tv]
    design = np.stack(columns, axis=1) * weights[:, None]
    target = yv * weights
    coefficients, *_ = np.linalg.lstsq(design, target, rcond=None)
    residual = target - design @ coefficients
    return float(np.linalg.norm(residual)) / max(float(np.linalg.norm(target)), TINY)


def _constant_residual(y: np.ndarray) -> float:
    finite = y[np.isfinite(y)]
    if finite.size < MIN_VALID_POINTS:
        return math.nan
    scale = float(np.abs(finite).max())
    if scale == 0.0:
        return 0.0
    finite = finite / scale
    spread = float(np.linalg.norm(finite - np.median(finite)))
    return spread / max(float(np.linalg.norm(finite)), TINY)


@dataclass(frozen=True)
class _Source:
    """The source of a numeric record: its key and text in the record."""

    key: str
    text: str


def numeric_evidence(
    expr: sympy.Expr,
    group: GroupDescription,
    *,
    seed: int = 0,
    n_points: int = 2000,
    dims: Sequence[int] = (1, 2, 3, 5),
    n_matrices: int = 20,
    tol: float = DEFAULT_TOL,
) -> dict[str, Any]:
    """Check a claimed group of ``sigma = expr`` on random float64 samples.

    The claim passes when, for ``n`` in ``dims``:

    * the relative residual of ``sigma(A x) = phi(A) sigma(x)`` is at most
      ``tol`` for ``n_matrices`` sampled elements ``A`` and ``n_points``
      random ``x``;
    * the relative residual of the scalar identity ``sigma(lam t) = mu(lam)
      sigma(t)`` is at most ``tol`` on sampled scalars of the group (for
      ``general_linear`` and ``affine_stabilizer``, that of the fit
      ``sigma(t) = a t`` or ``a t + c``);
    * every near miss ``M`` (see :func:`near_miss_matrices`) has
      ``min_B ||sigma(M x) - B sigma(x)|| / ||sigma(M x)||`` of at least the
      failure threshold ``max(NEAR_MISS_THRESHOLD, NEAR_MISS_TOL_FACTOR *
      tol)``, so the group is not larger than claimed;
    * for ``degenerate``, ``sigma`` is constant to ``tol``.

    Every residual weights the points as :func:`fit_scalings` does by
    default, so that huge points do not decide it alone. Points where a
    value is not finite are skipped and counted. The record depends only on
    its arguments, so the same ``seed`` repeats it.

    Returns
    -------
    dict
        A JSON-serialisable record; residuals that are NaN or infinite are
        stored as ``None`` and fail the check.
    """
    dims = _validate_evidence_arguments(group, seed, n_points, dims, n_matrices, tol)
    f = compile_numpy(expr)
    breakpoints = find_breakpoints(expr)
    source = _Source("expression", str(expr))
    return _evidence(
        f, breakpoints, source, group, seed, n_points, dims, n_matrices, tol
    )


def callable_evidence(
    f: Callable[[np.ndarray], np.ndarray],
    group: GroupDescription,
    *,
    label: str = "callable",
    breakpoints: Sequence[float] = (),
    seed: int = 0,
    n_points: int = 2000,
    dims: Sequence[int] = (1, 2, 3, 5),
    n_matrices: int = 20,
    tol: float = DEFAULT_TOL,
) -> dict[str, Any]:
    """Check a claimed group of an elementwise float64 function ``f``.

    The checks, thresholds and record are those of :func:`numeric_evidence`,
    with ``f`` evaluated directly and named by ``label`` under the key
    ``"callable"``. ``breakpoints`` only add sample points.
    """
    dims = _validate_evidence_arguments(group, seed, n_points, dims, n_matrices, tol)
    if not callable(f):
        raise ParameterError(f"f must be callable, got {f!r}")
    points = sorted(float(b) for b in breakpoints)
    source = _Source("callable", str(label))
    return _evidence(f, points, source, group, seed, n_points, dims, n_matrices, tol)


def _evidence(
    f: Callable[[np.ndarray], np.ndarray],
    breakpoints: list[float],
    source: _Source,
    group: GroupDescription,
    seed: int,
    n_points: int,
    dims: tuple[int, ...],
    n_matrices: int,
    tol: float,
) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    threshold = max(NEAR_MISS_THRESHOLD, NEAR_MISS_TOL_FACTOR * tol)
    record: dict[str, Any] = {
        "method": "numeric",
        source.key: source.text,
        "group": group.to_json(),
        "seed": int(seed),
        "dtype": DTYPE,
        "tolerance": float(tol),
        "failure_threshold": float(threshold),
        "n_points": int(n_points),
        "dims": list(dims),
        "n_matrices": int(n_matrices),
        "breakpoints": breakpoints,
    }
    t = sample_points(rng, n_points, breakpoints)
    failures: list[str] = []
    if group.kind == "degenerate":
        values = f(t)
        residual = _constant_residual(values)
        record["scalar_check"] = "sigma(t) is constant"
        record["scalar_residual"] = _json_float(residual)
        record.update(group_residual=None, near_misses=[], near_miss_residual=None)
        record["ignored_points"] = int(np.sum(~np.isfinite(values)))
        if not residual <= tol:
            failures.append(f"sigma is not constant: residual {residual:.3g}")
        record["failures"] = failures
        record["passed"] = not failures
        return record

    group_residual, ignored = _group_residual(
        f, group, dims, n_matrices, n_points, rng, breakpoints
    )
    record["group_residual"] = _json_float(group_residual)
    if not group_residual <= tol:
        failures.append(
            f"sigma(A x) = phi(A) sigma(x) fails: residual {group_residual:.3g}"
        )

    check, scalar_residual, scalar_ignored = _scalar_residual(f, group, t, rng)
    record["scalar_check"] = check
    record["n_scalars"] = N_SCALAR_SAMPLES
    record["scalar_residual"] = _json_float(scalar_residual)
    if not scalar_residual <= tol:
        failures.append(f"{check} fails: residual {scalar_residual:.3g}")

    misses = []
    for n in dims:
        matrix_group = group.matrix_group(n)
        x = _vectors(rng, n, n_points, breakpoints)
        right = f(x)
        for label, M in near_miss_matrices(matrix_group, rng):
            residual = _best_intertwiner_residual(f(M @ x), right)
            misses.append({"label": label, "n": n, "residual": _json_float(residual)})
            if not residual >= threshold:
                failures.append(
                    f"near miss '{label}' (n = {n}) intertwines: residual "
                    f"{residual:.3g} < {threshold:.3g}"
                )
    record["near_misses"] = misses
    residuals = [m["residual"] for m in misses]
    if None in residuals:
        record["near_miss_residual"] = None
    else:
        record["near_miss_residual"] = min(residuals) if residuals else None
    record["ignored_points"] = int(ignored + scalar_ignored)
    record["failures"] = failures
    record["passed"] = not failures
    return record


def _group_residual(
    f: CompiledExpression,
    group: GroupDescription,
    dims: tuple[int, ...],
    n_matrices: int,
    n_points: int,
    rng: np.random.Generator,
    breakpoints: Sequence[float],
) -> tuple[float, int]:
    worst = 0.0
    ignored = 0
    for n in dims:
        matrix_group = group.matrix_group(n)
        for _ in range(n_matrices):
            A = matrix_group.sample(rng)
            B = matrix_group.phi(A)
            x = _vectors(rng, n, n_points, breakpoints)
            with np.errstate(invalid="ignore", over="ignore"):
                # 0 * inf in B @ f(x) is NaN, and the column is then dropped.
                right = B @ f(x)
            residual, skipped = _matrix_residual(f(A @ x), right)
            ignored += skipped
            if not residual <= worst:
                worst = residual  # NaN sticks, and fails the check
            if math.isnan(worst):
                return worst, ignored
    return worst, ignored


def _scalar_residual(
    f: CompiledExpression,
    group: GroupDescription,
    t: np.ndarray,
    rng: np.random.Generator,
) -> tuple[str, float, int]:
    if group.kind == "general_linear":
        return "linear fit sigma(t) = a t", _kind_fit_residual(f, t, False), 0
    if group.kind == "affine_stabilizer":
        return "affine fit sigma(t) = a t + c", _kind_fit_residual(f, t, True), 0
    lams = group.matrix_group(1).sample_scalars(rng, N_SCALAR_SAMPLES)
    exact = [float(g) for g in group.generators]
    if group.has_negative_scalars and group.scalars != "discrete":
        exact.append(-1.0)
    exact += [1.0 / g for g in exact]
    lams = np.concatenate([lams, exact])
    fit = scaling_residuals(f, lams, group.mu(lams), t)
    residual = (
        float(np.max(fit.residual)) if np.all(np.isfinite(fit.residual)) else math.nan
    )
    check = "scaling identity sigma(lam t) = mu(lam) sigma(t)"
    return check, residual, int(fit.n_ignored.sum())


# --------------------------------------------------------------------------
# Black-box discovery
# --------------------------------------------------------------------------


def _is_simple_number(value: sympy.Expr) -> bool:
    """Return whether ``value`` is a rational, a small root of one, or a sum of such."""
    if not value.is_real or value.free_symbols:
        return False
    if sympy.count_ops(value) > SNAP_MAX_OPS:
        return False
    for node in sympy.preorder_traversal(value):
        if isinstance(node, sympy.NumberSymbol) or node.is_Function:
            return False
        if node.is_Rational and (abs(node.p) > SNAP_MAX_TERM or node.q > SNAP_MAX_TERM):
            return False
        if isinstance(node, sympy.Pow):
            exponent = node.exp
            if not exponent.is_Rational or exponent.q not in SNAP_ROOT_DENOMINATORS:
                return False
    return True


def _snap_generator(value: float) -> sympy.Expr | None:
    """Return a simple exact number within ``SNAP_TOL`` of ``value``, or None."""
    candidate = sympy.nsimplify(value, tolerance=SNAP_TOL * abs(value))
    if not _is_simple_number(candidate):
        return None
    if abs(float(candidate) - value) > SNAP_TOL * abs(value):
        return None
    return candidate


def _refine(
    f: CompiledExpression, t: np.ndarray, centre: float, width: float
) -> tuple[float, float]:
    """Minimise the scaling residual near ``centre`` and return ``(lam, residual)``.

    The search runs over ``delta`` in ``lam = centre * exp(delta)`` with
    ``|delta| <= width``, and minimises the squared residual, which is smooth
    near a true scaling. Searching an offset from the centre, not ``log lam``
    itself, lets the bounded Brent method resolve the minimum to
    ``REFINE_XATOL`` instead of ``sqrt(eps) * |log lam|``.
    """

    def objective(delta: float) -> float:
        _, residual = fit_scalings(f, [centre * math.exp(delta)], t)
        value = float(residual[0])
        return value * value if math.isfinite(value) else 1.0

    result = scipy.optimize.minimize_scalar(
        objective,
        bounds=(-width, width),
        method="bounded",
        options={"xatol": REFINE_XATOL, "maxiter": REFINE_MAXITER},
    )
    lam = centre * math.exp(float(result.x))
    _, residual = fit_scalings(f, [lam], t)
    return lam, float(residual[0])


def _local_minima(residual: np.ndarray) -> list[int]:
    indices = []
    for i in range(1, residual.size - 1):
        r = residual[i]
        if not math.isfinite(r) or r > REFINE_MAX_RESIDUAL:
            continue
        if r <= residual[i - 1] and r <= residual[i + 1]:
            indices.append(i)
    return indices


def _validate_discovery_arguments(
    seed: Any, n_points: Any, tol: Any, grid_size: Any, lam_max: Any
) -> None:
    _validate_seed(seed)
    if isinstance(n_points, bool) or not isinstance(n_points, (int, np.integer)):
        raise ParameterError(f"n_points must be an integer, got {n_points!r}")
    if n_points < MIN_SAMPLE_POINTS:
        raise ParameterError(
            f"n_points must be at least {MIN_SAMPLE_POINTS}, got {n_points!r}"
        )
    if not isinstance(tol, (int, float)) or not (0 < tol < 1):
        raise ParameterError(f"tol must be a number in (0, 1), got {tol!r}")
    if isinstance(grid_size, bool) or not isinstance(grid_size, (int, np.integer)):
        raise ParameterError(f"grid_size must be an integer, got {grid_size!r}")
    if grid_size < 5:
        raise ParameterError(f"grid_size must be at least 5, got {grid_size!r}")
    if not isinstance(lam_max, (int, float)) or not (1 < lam_max < 1e6):
        raise ParameterError(f"lam_max must be a number in (1, 1e6), got {lam_max!r}")


def discover_numerically(
    expr: sympy.Expr,
    *,
    seed: int = 0,
    n_points: int = 2000,
    tol: float = DEFAULT_TOL,
    grid_size: int = DEFAULT_GRID_SIZE,
    lam_max: float = DEFAULT_LAM_MAX,
) -> tuple[GroupDescription, dict[str, Any]]:
    """Find the intertwiner group of ``sigma = expr`` from float64 samples alone.

    A constant ``sigma`` gives ``degenerate``, and ``sigma(t) = a t`` or
    ``a t + c`` (least-squares residual at most ``tol``) gives
    ``general_linear`` or ``affine_stabilizer``. Otherwise the scalar group
    ``Lambda`` is read from fits of ``sigma(lam t) = mu sigma(t)``: on
    ``grid_size`` log-spaced ``|lam|`` in ``[1/lam_max, lam_max]`` of both
    signs, on :data:`EXACT_CANDIDATES`, and at refined local minima of the
    residual. A scaling fits when its relative residual (weighted as in
    :func:`fit_scalings`) is at most ``tol``.

    * every positive grid value fits: ``positive``, or ``nonzero`` when a
      negative scaling fits too;
    * some isolated scalings fit: ``discrete``, generated by the fitting
      scaling of smallest ``|lam| > 1`` (refined, then snapped to a simple
      exact number when one lies within ``SNAP_TOL``), and by ``-1`` when it
      fits;
    * only ``-1`` fits: ``sign``; nothing fits: ``trivial``.

    The character has ``e = 1`` when ``mu`` is negative at a fitting negative
    scaling, and ``p`` fitted to ``log|mu| = p log|lam|`` over the fitting
    scalings, then snapped to a rational with denominator at most
    ``POWER_MAX_DENOMINATOR``.

    The result is evidence, not proof. A discrete generator with
    ``|log lam|`` below a few grid steps is not resolved, and a group that
    only acts on points outside the sampled range is not seen.

    Returns
    -------
    (GroupDescription, dict)
        The description and a JSON-serialisable record of the scan, with
        ``"method": "numeric"``.

    Raises
    ------
    ExpressionError
        When ``expr`` cannot be compiled, is not finite at enough sample
        points, or has a character that ``sign(lam)**e * |lam|**p`` cannot
        express.
    """
    _validate_discovery_arguments(seed, n_points, tol, grid_size, lam_max)
    f = compile_numpy(expr)
    breakpoints = find_breakpoints(expr)
    source = _Source("expression", str(expr))
    return _discover(f, breakpoints, source, seed, n_points, tol, grid_size, lam_max)


def discover_callable(
    f: Callable[[np.ndarray], np.ndarray],
    *,
    label: str = "callable",
    breakpoints: Sequence[float] = (),
    seed: int = 0,
    n_points: int = 2000,
    tol: float = DEFAULT_TOL,
    grid_size: int = DEFAULT_GRID_SIZE,
    lam_max: float = DEFAULT_LAM_MAX,
) -> tuple[GroupDescription, dict[str, Any]]:
    """Find the intertwiner group of an elementwise float64 function ``f``.

    The same scan as :func:`discover_numerically`, on samples of ``f``
    instead of a compiled expression: ``f`` must map a float64 array of any
    shape to a float64 array of that shape, elementwise. ``breakpoints`` are
    the points where ``f`` may change form, if the caller knows them; they
    only add sample points there. ``label`` names ``f`` in the record, under
    the key ``"callable"``. The law and the limits are those of
    :func:`discover_numerically`: evidence, not proof.
    """
    _validate_discovery_arguments(seed, n_points, tol, grid_size, lam_max)
    if not callable(f):
        raise ParameterError(f"f must be callable, got {f!r}")
    points = sorted(float(b) for b in breakpoints)
    source = _Source("callable", str(label))
    return _discover(f, points, source, seed, n_points, tol, grid_size, lam_max)


def _discover(
    f: Callable[[np.ndarray], np.ndarray],
    breakpoints: list[float],
    source: _Source,
    seed: int,
    n_points: int,
    tol: float,
    grid_size: int,
    lam_max: float,
) -> tuple[GroupDescription, dict[str, Any]]:
    rng = np.random.default_rng(seed)
    t = sample_points(rng, n_points, breakpoints)
    record: dict[str, Any] = {
        "method": "numeric",
        source.key: source.text,
        "seed": int(seed),
        "dtype": DTYPE,
        "tolerance": float(tol),
        "n_points": int(n_points),
        "breakpoints": breakpoints,
    }
    y = f(t)
    if np.isfinite(y).sum() < MIN_VALID_POINTS:
        raise ExpressionError(
            f"{source.key} {source.text} is finite at only "
            f"{int(np.isfinite(y).sum())} of "
            f"{n_points} sample points; it needs at least {MIN_VALID_POINTS}"
        )
    constant_residual = _constant_residual(y)
    record["constant_residual"] = _json_float(constant_residual)
    if constant_residual <= tol:
        record["classification"] = "constant"
        description = GroupDescription("degenerate")
        record["group"] = description.to_json()
        return description, record
    linear_residual = _kind_fit_residual(f, t, False)
    affine_residual = _kind_fit_residual(f, t, True)
    record["linear_fit_residual"] = _json_float(linear_residual)
    record["affine_fit_residual"] = _json_float(affine_residual)
    if linear_residual <= tol:
        record["classification"] = "linear"
        description = GroupDescription("general_linear")
        record["group"] = description.to_json()
        return description, record
    if affine_residual <= tol:
        record["classification"] = "affine"
        description = GroupDescription("affine_stabilizer")
        record["group"] = description.to_json()
        return description, record

    description = _discover_scalars(f, t, tol, grid_size, lam_max, record)
    record["group"] = description.to_json()
    return description, record


def _discover_scalars(
    f: CompiledExpression,
    t: np.ndarray,
    tol: float,
    grid_size: int,
    lam_max: float,
    record: dict[str, Any],
) -> GroupDescription:
    # The grid keeps lam = 1 (residual 0) when grid_size is odd, so that its
    # neighbours are never local minima that a refinement would pull onto 1.
    fine = np.geomspace(1.0 / lam_max, lam_max, grid_size)
    exact = np.array([float(c) for c in EXACT_CANDIDATES])
    lams = np.concatenate([fine, -fine, exact, -exact, [-1.0]])
    fit = fit_scalings(f, lams, t)
    fits = fit.residual <= tol
    n_fine = fine.size
    positive_fine_fits = fits[:n_fine]
    negative_fine_fits = fits[n_fine : 2 * n_fine]

    fitting: dict[float, float] = {
        float(lam): float(mu)
        for lam, mu, ok in zip(lams, fit.mu, fits, strict=True)
        if ok
    }
    refined = []
    if not positive_fine_fits.all():
        refined = _refine_minima(f, t, fine, fit.residual, n_fine, tol)
        for item in refined:
            if item["fits"]:
                fitting[item["lam"]] = item["mu"]

    record["grid"] = {
        "lam_max": float(lam_max),
        "grid_size": int(grid_size),
        "exact_candidates": [exact_text(c) for c in EXACT_CANDIDATES],
        "lams": [float(v) for v in lams],
        "residuals": [_json_float(v) for v in fit.residual],
    }
    finite = fit.residual[np.isfinite(fit.residual)]
    record["residual_summary"] = {
        "n_scalings": int(lams.size),
        "n_fitting": int(fits.sum()),
        "n_positive_grid_fitting": int(positive_fine_fits.sum()),
        "n_negative_grid_fitting": int(negative_fine_fits.sum()),
        "max_fitting": _json_float(fit.residual[fits].max()) if fits.any() else None,
        "min_not_fitting": _json_float(finite[finite > tol].min())
        if (finite > tol).any()
        else None,
        "n_not_finite": int((~np.isfinite(fit.residual)).sum()),
        "ignored_points": int(fit.n_ignored.sum()),
    }
    record["refinements"] = refined

    minus_one_fits = bool(fits[-1])
    negative_fits = [lam for lam in fitting if lam < 0]
    nontrivial = {
        lam: mu for lam, mu in fitting.items() if abs(abs(lam) - 1.0) > UNIT_SCALING_TOL
    }
    generators: tuple[sympy.Expr, ...] = ()
    if positive_fine_fits.all():
        scalars = "nonzero" if negative_fits or negative_fine_fits.any() else "positive"
    elif nontrivial:
        scalars = "discrete"
        generators = _discrete_generators(f, t, tol, nontrivial, minus_one_fits, record)
    else:
        scalars = "sign" if minus_one_fits else "trivial"
    record["classification"] = scalars
    character = _fit_character(scalars, fitting, record)
    description = GroupDescription(
        "monomial", scalars, generators=generators, character=character
    )
    _check_consistency(description, fitting, record)
    return description


def _refine_minima(
    f: CompiledExpression,
    t: np.ndarray,
    fine: np.ndarray,
    residual: np.ndarray,
    n_fine: int,
    tol: float,
) -> list[dict[str, Any]]:
    step = math.log(fine[1] / fine[0])
    starts = []
    for sign, block in (
        (1.0, residual[:n_fine]),
        (-1.0, residual[n_fine : 2 * n_fine]),
    ):
        for i in _local_minima(block):
            if block[i] > tol:
                starts.append((float(block[i]), sign * float(fine[i])))
    starts.sort()
    results = []
    for _, centre in starts[:MAX_REFINEMENTS]:
        lam, value = _refine(f, t, centre, step)
        if abs(math.log(abs(lam))) < step / 2:
            continue  # converged onto the identity scaling
        mu = float(fit_scalings(f, [lam], t).mu[0])
        results.append(
            {
                "start": centre,
                "lam": lam,
                "mu": mu,
                "residual": _json_float(value),
                "fits": bool(value <= tol),
            }
        )
    return results


def _discrete_generators(
    f: CompiledExpression,
    t: np.ndarray,
    tol: float,
    nontrivial: dict[float, float],
    minus_one_fits: bool,
    record: dict[str, Any],
) -> tuple[sympy.Expr, ...]:
    # Every fitting scaling is a power of the generator, so the one closest to
    # |lam| = 1 (folding |lam| < 1 to its inverse) is the generator or its inverse.
    closest = min(nontrivial, key=_log_distance)
    start = closest if abs(closest) > 1.0 else 1.0 / closest
    width = min(0.05, _log_distance(start) / 4)
    lam, residual = _refine(f, t, start, width)
    if not residual <= tol:
        lam, residual = start, float(fit_scalings(f, [start], t).residual[0])

    snapped = _snap_generator(abs(lam))
    info: dict[str, Any] = {
        "start": start,
        "refined": lam,
        "refined_residual": _json_float(residual),
        "snap_method": (
            f"sympy.nsimplify with tolerance {SNAP_TOL:g} (relative); accepted "
            "forms are rationals, their square and cube roots and sums of such, "
            f"with terms up to {SNAP_MAX_TERM}"
        ),
        "snapped": None,
        "snapped_residual": None,
    }
    magnitude: sympy.Expr
    if snapped is not None:
        signed = math.copysign(float(snapped), lam)
        snapped_residual = float(fit_scalings(f, [signed], t).residual[0])
        info["snapped_residual"] = _json_float(snapped_residual)
        if snapped_residual <= tol:
            info["snapped"] = exact_text(snapped)
            magnitude = snapped
        else:
            snapped = None
    if snapped is None:
        # NOTE: the generator is then the float's exact binary value, which
        # is only as good as the refinement.
        magnitude = sympy.Rational(repr(abs(lam)))
    record["generator"] = info

    if minus_one_fits:
        return (sympy.Integer(-1), magnitude)
    if lam < 0:
        return (-magnitude,)
    return (magnitude,)


def _log_distance(lam: float) -> float:
    """Return ``|log |lam||``, the distance of a scaling from the identity."""
    return abs(math.log(abs(lam)))


def _fit_character(
    scalars: str, fitting: dict[float, float], record: dict[str, Any]
) -> Character:
    # Closest to 1 first, and of lam and 1/lam (up to the refinement's
    # rounding) the one above 1 first.
    positives = sorted(
        (lam for lam in fitting if lam > 0),
        key=lambda v: (round(_log_distance(v), 9), -v),
    )
    for lam in positives:
        if not fitting[lam] > 0:
            raise ExpressionError(
                f"mu({lam:g}) = {fitting[lam]:g} is not positive, which "
                "sign(lam)**e * |lam|**p cannot express"
            )

    negatives = sorted((lam for lam in fitting if lam < 0), key=_log_distance)
    sign_exponent = 0
    if negatives:
        signs = {math.copysign(1.0, fitting[lam]) for lam in negatives}
        if len(signs) > 1:
            raise ExpressionError(
                "mu has both signs on negative scalings, which "
                "sign(lam)**e * |lam|**p cannot express"
            )
        sign_exponent = 1 if signs == {-1.0} else 0
        record["mu_at_negative"] = {
            "lam": negatives[0],
            "mu": _json_float(fitting[negatives[0]]),
        }
    if scalars in ("trivial", "sign"):
        return Character(sign_exponent, 0)

    pairs = [
        (math.log(abs(lam)), mu)
        for lam, mu in fitting.items()
        if abs(abs(lam) - 1.0) > UNIT_SCALING_TOL
    ]
    logs = np.array([p[0] for p in pairs])
    values = np.log(np.abs(np.array([p[1] for p in pairs])))
    power = float(np.dot(logs, values) / np.dot(logs, logs))
    snapped = Fraction(power).limit_denominator(POWER_MAX_DENOMINATOR)
    info: dict[str, Any] = {
        "fitted": power,
        "max_denominator": POWER_MAX_DENOMINATOR,
        "snap_tolerance": POWER_SNAP_TOL,
    }
    if abs(power - float(snapped)) <= POWER_SNAP_TOL:
        exact_power = sympy.Rational(snapped.numerator, snapped.denominator)
        info["snapped"] = exact_text(exact_power)
    else:
        exact_power = sympy.Rational(repr(power))
        info["snapped"] = None
    record["power"] = info
    return Character(sign_exponent, exact_power)


def _check_consistency(
    description: GroupDescription, fitting: dict[float, float], record: dict[str, Any]
) -> None:
    """Record and log the fitting scalings that contradict the found group.

    A scaling contradicts it when the scalar group does not contain it, or
    when its fitted ``mu`` differs from the found character, both to
    relative tolerance ``CONSISTENCY_TOL``.
    """
    outside = []
    mismatched = []
    for lam, mu in fitting.items():
        if not description.scalar_contains(lam, tol=CONSISTENCY_TOL):
            outside.append(lam)
            continue
        expected = float(description.mu(lam))
        if abs(expected - mu) > CONSISTENCY_TOL * max(1.0, abs(mu)):
            mismatched.append(lam)
    record["fitting_outside_group"] = outside
    record["fitting_mu_mismatch"] = mismatched
    if outside or mismatched:
        logger.warning(
            "numeric discovery is inconsistent: %d fitting scalings outside %s, "
            "%d with a different mu",
            len(outside),
            description.describe(),
            len(mismatched),
        )

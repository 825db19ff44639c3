"""Tests of symgroups._numeric and symgroups.testing."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from symgroups._errors import ExpressionError, ParameterError
from symgroups._group import Character, GroupDescription
from symgroups._numeric import (
    compile_numpy,
    discover_numerically,
    find_breakpoints,
    fit_scalings,
    near_miss_matrices,
    numeric_evidence,
    sample_points,
    scalars_outside,
    scaling_residuals,
)
from symgroups._symbols import X
from symgroups.testing import assert_intertwines, group_elements, near_misses

x = X

#: Digits of the sympy reference values. In sympy 1.14, sympy.N at 30 digits
#: returns 0 for log(1 + exp(-700)) and keeps 4 digits of GELU(-27), because
#: evalf does not raise the precision of a log argument near 1 or of
#: 1 + erf(u) near 0. At 400 digits every point used here is exact to float64.
REFERENCE_DIGITS = 400

#: Maximum relative error of the compiled evaluator against the reference.
EVAL_RTOL = 1e-12

RELU = sympy.Max(0, x)
LEAKY_RELU = sympy.Max(x, x / 5)
GELU = x * (1 + sympy.erf(x / sympy.sqrt(2))) / 2
SILU = x / (1 + sympy.exp(-x))
SIGMOID = 1 / (1 + sympy.exp(-x))
SOFTPLUS = sympy.log(1 + sympy.exp(x))
MISH = x * sympy.tanh(SOFTPLUS)
GAUSSIAN = sympy.exp(-(x**2))
LOG_PERIODIC = sympy.Piecewise(
    (0, sympy.Eq(x, 0)),
    (x * (2 + sympy.sin(2 * sympy.pi * sympy.log(sympy.Abs(x)) / sympy.log(2))), True),
)


def log_periodic(base, sign_twist=False):
    """Return ``x (2 + sin(2 pi log|x| / log(base)))``, which ``base`` scales.

    With ``sign_twist`` the sine is multiplied by ``sign(x)`` and its period
    doubled, so that ``-base`` is a scaling and ``base`` and ``-1`` are not.
    """
    phase = 2 * sympy.pi * sympy.log(sympy.Abs(x)) / sympy.log(base)
    wiggle = sympy.sin(phase)
    if sign_twist:
        wiggle = sympy.sign(x) * sympy.sin(phase / 2)
    return sympy.Piecewise((0, sympy.Eq(x, 0)), (x * (2 + wiggle), True))


def monomial(scalars, e, p, generators=()):
    return GroupDescription(
        "monomial", scalars, generators=generators, character=Character(e, p)
    )


def reference(expr, point):
    """Return ``expr`` at the exact binary value of ``point``, rounded to float.

    The result is NaN where the value is not real and inf at a pole.
    """
    value = sympy.N(expr.subs(x, sympy.Rational(point)), REFERENCE_DIGITS)
    if value.has(sympy.zoo):
        return math.inf  # a pole: the evaluator returns an infinity of either sign
    if value.is_real is False or value.has(sympy.nan):
        return math.nan
    real, imaginary = value.as_real_imag()
    if imaginary != 0:
        return math.nan
    return float(real)


def assert_matches_reference(expr, points, rtol=EVAL_RTOL):
    points = np.asarray(points, dtype=np.float64)
    got = compile_numpy(expr)(points)
    for point, value in zip(points, got, strict=True):
        expected = reference(expr, float(point))
        if math.isnan(expected):
            assert math.isnan(value), (expr, point, value)
        elif math.isinf(expected):
            assert math.isinf(value), (expr, point, value)
        else:
            assert abs(value - expected) <= rtol * abs(expected) + 1e-300, (
                expr,
                point,
                value,
                expected,
            )


# --------------------------------------------------------------------------
# compile_numpy: accuracy against sympy
# --------------------------------------------------------------------------

POINTS = [-7.5, -2.0, -1.0, -0.3, -1e-5, 0.0, 1e-7, 0.25, 1.0, 1.5, 3.0, 9.0]
POSITIVE_POINTS = [1e-9, 1e-3, 0.2, 1.0, 2.5, 17.0, 400.0]

EXPRESSIONS = [
    x**2,
    x**3,
    x**5,
    x**-1,
    x**-2,
    x**-3,
    3 * x**2 - x + 7,
    (x + 1) ** 4 / (x**2 + 1),
    sympy.exp(x),
    sympy.exp(-(x**2)),
    2**x,
    sympy.pi * x + sympy.E,
    sympy.sqrt(2) * x,
    sympy.sin(x),
    sympy.cos(3 * x),
    sympy.tan(x / 4),
    sympy.tanh(x),
    sympy.sinh(x),
    sympy.cosh(x),
    sympy.atan(x),
    sympy.asinh(x),
    sympy.erf(x),
    sympy.erfc(x),
    sympy.Abs(x),
    sympy.sign(x),
    sympy.Heaviside(x),
    sympy.Heaviside(x, 0),
    sympy.Heaviside(x, 1),
    sympy.Heaviside(x - 1, sympy.Rational(1, 3)),
    RELU,
    LEAKY_RELU,
    sympy.Max(x, 0, x**2 - 1),
    sympy.Min(x, 1, -x),
    sympy.Min(x, x**3),
    sympy.Piecewise((x, x > 1), (x**2, x > 0), (0, True)),
    sympy.Piecewise((x, sympy.And(x > -1, x < 1)), (1, True)),
    sympy.Piecewise((1, sympy.Or(x < -1, x >= 2)), (-1, True)),
    sympy.Piecewise((2, sympy.Not(x <= 0)), (3, True)),
    sympy.Piecewise((5, sympy.Eq(x, 0)), (x, sympy.Ne(x, 1)), (7, True)),
    sympy.Piecewise((x, x > 0)),
    GELU,
    SILU,
    SIGMOID,
    SOFTPLUS,
    MISH,
    sympy.exp(x) - 1,
    sympy.exp(x) / 2 - sympy.Rational(1, 2),
    sympy.log(1 + x**2),
    x * sympy.exp(x) / (1 + sympy.exp(x)),
    sympy.log(1 / (1 + sympy.exp(-x))),
    sympy.log(2 + sympy.exp(x)),
    1 + sympy.tanh(x),
    (1 - sympy.tanh(x)) / 2,
    1 - sympy.erf(x),
    x * (1 + sympy.erf(x / sympy.sqrt(2))) / 2 + x**2,
    LOG_PERIODIC,
]


@pytest.mark.parametrize("expr", EXPRESSIONS, ids=str)
def test_compiled_matches_sympy(expr):
    assert_matches_reference(expr, POINTS)


@pytest.mark.parametrize(
    "expr",
    [
        sympy.sqrt(x),
        x ** sympy.Rational(3, 2),
        x ** sympy.Rational(-1, 2),
        x ** sympy.Rational(1, 4),
        x**sympy.pi,
        sympy.log(x),
        x**x,
        sympy.log(x) ** 2 + x ** sympy.Rational(2, 3),
    ],
    ids=str,
)
def test_compiled_positive_domain(expr):
    assert_matches_reference(expr, POSITIVE_POINTS)


@pytest.mark.parametrize(
    "expr",
    [sympy.sqrt(x), x ** sympy.Rational(1, 4), x ** sympy.Rational(3, 2), sympy.log(x)],
    ids=str,
)
def test_compiled_nan_without_real_value(expr):
    values = compile_numpy(expr)(np.array([-4.0, -1e-3]))
    assert np.isnan(values).all()


@pytest.mark.parametrize(
    ("exponent", "points"),
    [
        (sympy.Rational(1, 3), [-27.0, -8.0, -1e-9, 0.0, 2.0]),
        (sympy.Rational(2, 3), [-27.0, -8.0, -0.5, 8.0]),
        (sympy.Rational(-1, 3), [-8.0, -0.001, 27.0]),
        (sympy.Rational(5, 3), [-8.0, 3.0]),
        (sympy.Rational(1, 5), [-32.0, 32.0]),
        (sympy.Rational(-4, 5), [-32.0, 1024.0]),
    ],
)
def test_odd_root_is_real_root(exponent, points):
    # sympy's principal branch is complex at x < 0; the evaluator takes the
    # real root, (x**(1/q))**p with the real q-th root.
    p, q = exponent.p, exponent.q
    got = compile_numpy(x**exponent)(np.array(points))
    for point, value in zip(points, got, strict=True):
        expected = float(sympy.real_root(sympy.Rational(point), q) ** p)
        assert value == pytest.approx(expected, rel=1e-14), point


@pytest.mark.parametrize(
    ("expr", "point", "naive"),
    [
        (SOFTPLUS, 800.0, lambda t: np.log(1 + np.exp(t))),
        (SOFTPLUS, -40.0, lambda t: np.log(1 + np.exp(t))),
        (SOFTPLUS, -700.0, lambda t: np.log(1 + np.exp(t))),
        (sympy.exp(x) - 1, 1e-8, lambda t: np.exp(t) - 1),
        (sympy.exp(x) - 1, -3e-12, lambda t: np.exp(t) - 1),
        (sympy.exp(x) / 2 - sympy.Rational(1, 2), 1e-10, lambda t: np.exp(t) / 2 - 0.5),
        (sympy.log(1 + x), 1e-10, lambda t: np.log(1 + t)),
        (sympy.log(1 + x), -1e-13, lambda t: np.log(1 + t)),
        (
            sympy.exp(x) / (1 + sympy.exp(x)),
            800.0,
            lambda t: np.exp(t) / (1 + np.exp(t)),
        ),
        (sympy.log(SIGMOID), -800.0, lambda t: np.log(1 / (1 + np.exp(-t)))),
        (GELU, -10.0, lambda t: t * (1 + _erf(t / np.sqrt(2))) / 2),
        (1 + sympy.tanh(x), -30.0, lambda t: 1 + np.tanh(t)),
        (MISH, -40.0, lambda t: t * np.tanh(np.log(1 + np.exp(t)))),
    ],
)
def test_stable_patterns(expr, point, naive):
    with np.errstate(all="ignore"):
        naive_value = float(naive(np.float64(point)))
    expected = reference(expr, point)
    got = float(compile_numpy(expr)(np.array([point]))[0])
    assert got == pytest.approx(expected, rel=1e-14, abs=0.0)
    # The naive form loses digits here, so the rewrite is what helps.
    assert not naive_value == pytest.approx(expected, rel=1e-10, abs=0.0)


def _erf(t):
    import scipy.special

    return scipy.special.erf(t)


@settings(max_examples=30, deadline=None)
@given(
    expr=st.sampled_from(
        [GELU, SILU, SOFTPLUS, MISH, sympy.tanh(x) * x**2, LEAKY_RELU]
    ),
    point=st.floats(-40.0, 40.0, allow_nan=False, allow_subnormal=False),
)
def test_compiled_matches_sympy_random_points(expr, point):
    assert_matches_reference(expr, [point], rtol=1e-11)


def test_compiled_preserves_shape():
    f = compile_numpy(sympy.tanh(x) + x)
    grid = np.linspace(-2.0, 2.0, 12).reshape(3, 4)
    assert f(grid).shape == (3, 4)
    assert f(np.float64(0.5)).shape == ()
    assert f(grid).dtype == np.float64


def test_compiled_scalar_input_many_arguments():
    # Max of three arguments updates an array in place, so a 0-d input must work.
    f = compile_numpy(sympy.Max(x, 0, x**2 - 1) + sympy.Min(x, 1, -x))
    assert f(np.float64(3.0)) == pytest.approx(8.0 - 3.0)
    assert f(2.0).shape == ()


def test_compiled_identity_returns_new_array():
    t = np.array([1.0, -2.0])
    value = compile_numpy(x)(t)
    value[0] = 99.0
    assert t[0] == 1.0


def test_compiled_constant_fills_shape():
    value = compile_numpy(sympy.Integer(3) + sympy.pi)(np.zeros((2, 3)))
    np.testing.assert_allclose(value, np.full((2, 3), 3.0 + math.pi))


def test_compiled_accepts_integer_input():
    np.testing.assert_array_equal(compile_numpy(x**2)([1, 2, 3]), [1.0, 4.0, 9.0])


def test_compiled_overflow_is_inf():
    values = compile_numpy(sympy.exp(x))(np.array([1000.0, -1000.0]))
    assert values[0] == math.inf
    assert values[1] == 0.0


def test_compiled_repr_names_expression():
    assert repr(compile_numpy(sympy.tanh(x))) == "CompiledExpression(tanh(x))"


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        (sympy.gamma(x), "unsupported node gamma in gamma"),
        (sympy.asin(x), "unsupported node asin"),
        (sympy.Symbol("y") + x, "unknown symbol y"),
        (sympy.Symbol("x") ** 2, "unknown symbol x .*the only variable is"),
        (sympy.I * x, "unsupported node ImaginaryUnit"),
        (sympy.zoo * x, "unsupported node ComplexInfinity"),
        (sympy.Heaviside(x, x), "the value at 0 of .* must be a number"),
        (
            sympy.Piecewise((x, sympy.Xor(x > 0, x < 1)), (0, True)),
            "unsupported condition Xor",
        ),
    ],
)
def test_compile_rejects(expr, message):
    with pytest.raises(ExpressionError, match=message):
        compile_numpy(expr)


def test_compile_rejects_non_expression():
    with pytest.raises(ExpressionError, match="expr must be a sympy expression"):
        compile_numpy("x**2")
    with pytest.raises(ExpressionError, match="expr must be a sympy expression"):
        compile_numpy(x > 0)


def test_compile_rejects_deep_nesting():
    expr = x
    for _ in range(250):
        expr = sympy.sin(expr)
    with pytest.raises(ExpressionError, match="nested deeper than 200 levels"):
        compile_numpy(expr)


# --------------------------------------------------------------------------
# sample_points, find_breakpoints, fit_scalings
# --------------------------------------------------------------------------


def test_sample_points_ranges():
    t = sample_points(np.random.default_rng(0), 2000)
    assert t.shape == (2000,)
    magnitude = np.abs(t)
    assert magnitude.max() <= 1e3
    assert magnitude.min() >= 1e-12
    for low, high in [(1e-12, 1e-3), (1e-3, 5.0), (5.0, 50.0), (50.0, 1e3)]:
        band = t[(magnitude >= low) & (magnitude <= high)]
        assert (band > 0).sum() >= 10, (low, high)
        assert (band < 0).sum() >= 10, (low, high)


def test_sample_points_breakpoints():
    t = sample_points(np.random.default_rng(1), 1000, breakpoints=(0.0, 2.5))
    assert t.shape == (1000,)
    assert 2.5 in t
    assert 0.0 in t
    near = t[(np.abs(t - 2.5) < 0.03) & (t != 2.5)]
    assert (near > 2.5).sum() >= 10
    assert (near < 2.5).sum() >= 10


def test_sample_points_deterministic():
    first = sample_points(np.random.default_rng(5), 300, (1.0,))
    second = sample_points(np.random.default_rng(5), 300, (1.0,))
    np.testing.assert_array_equal(first, second)


def test_sample_points_validation():
    rng = np.random.default_rng(0)
    with pytest.raises(ParameterError, match="n must be at least 20, got 5"):
        sample_points(rng, 5)
    with pytest.raises(ParameterError, match="n must be an integer, got 10.5"):
        sample_points(rng, 10.5)
    with pytest.raises(ParameterError, match="breakpoints must be finite numbers"):
        sample_points(rng, 100, (math.inf,))


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (RELU, [0.0]),
        (sympy.Abs(x - 3), [3.0]),
        (sympy.Heaviside(2 * x + 1), [-0.5]),
        (sympy.Piecewise((x, x > 1), (0, True)), [1.0]),
        (sympy.Max(x, 2 * x - 4), [4.0]),
        (sympy.tanh(x), []),
        (sympy.Abs(x**2 - 1), []),
    ],
    ids=str,
)
def test_find_breakpoints(expr, expected):
    assert find_breakpoints(expr) == pytest.approx(expected)


def test_fit_scalings_relu():
    f = compile_numpy(RELU)
    t = sample_points(np.random.default_rng(0), 500)
    mu, residual = fit_scalings(f, [0.5, 2.0, 7.0, -1.0, -2.0], t)
    np.testing.assert_allclose(mu[:3], [0.5, 2.0, 7.0], rtol=1e-14)
    assert (residual[:3] <= 1e-14).all()
    assert (residual[3:] > 0.5).all()


def test_fit_scalings_power():
    f = compile_numpy(x**3)
    t = sample_points(np.random.default_rng(0), 500)
    fit = fit_scalings(f, [-2.0, 0.1, 3.0], t)
    np.testing.assert_allclose(fit.mu, [-8.0, 1e-3, 27.0], rtol=1e-13)
    assert (fit.residual <= 1e-14).all()
    assert (fit.n_ignored == 0).all()


def test_fit_scalings_counts_non_finite():
    f = compile_numpy(sympy.sqrt(x))
    t = np.array([-4.0, -1.0] + [float(v) for v in range(1, 41)])
    fit = fit_scalings(f, [4.0, -1.0], t)
    assert fit.n_ignored[0] == 2
    assert fit.mu[0] == pytest.approx(2.0, rel=1e-14)
    assert fit.residual[0] <= 1e-14
    # At lam = -1 every point is NaN on one side, so nothing is left to fit.
    assert fit.n_ignored[1] == t.size
    assert math.isnan(fit.residual[1])


def test_fit_scalings_zero_function():
    f = compile_numpy(sympy.Integer(0) * x)
    t = sample_points(np.random.default_rng(0), 100)
    mu, residual = fit_scalings(f, [2.0], t)
    assert mu[0] == 0.0
    assert residual[0] == 0.0


def test_fit_scalings_huge_values():
    f = compile_numpy(x**40)
    t = np.linspace(1.0, 2e7, 200)
    mu, residual = fit_scalings(f, [2.0], t)
    assert math.isfinite(residual[0])
    assert mu[0] == pytest.approx(2.0**40, rel=1e-12)


def test_fit_scalings_balanced_weights():
    # Unweighted, the largest finite exp(t) decides the fit alone, so lam = 1.2
    # seems to fit; the balanced weights count every point.
    f = compile_numpy(sympy.exp(x))
    t = sample_points(np.random.default_rng(0), 500)
    _, plain = fit_scalings(f, [1.2], t, balanced=False)
    _, balanced = fit_scalings(f, [1.2], t)
    assert plain[0] < 1e-8
    assert balanced[0] > 0.1


def test_scaling_residuals_fixed_mu():
    f = compile_numpy(sympy.tanh(x))
    t = sample_points(np.random.default_rng(0), 500)
    fit = scaling_residuals(f, [-1.0, -1.0], [-1.0, 1.0], t)
    assert fit.residual[0] <= 1e-15
    assert fit.residual[1] > 1.0
    with pytest.raises(ParameterError, match="mus must have one value per scaling"):
        scaling_residuals(f, [1.0, 2.0], [1.0], t)


# --------------------------------------------------------------------------
# numeric_evidence
# --------------------------------------------------------------------------

TRUE_GROUPS = [
    ("relu", RELU, monomial("positive", 0, 1)),
    ("leaky_relu", LEAKY_RELU, monomial("positive", 0, 1)),
    ("tanh", sympy.tanh(x), monomial("sign", 1, 0)),
    ("gelu", GELU, monomial("trivial", 0, 0)),
    ("cube", x**3, monomial("nonzero", 1, 3)),
    ("gaussian", GAUSSIAN, monomial("sign", 0, 0)),
    ("sigmoid", SIGMOID, monomial("trivial", 0, 0)),
    ("abs", sympy.Abs(x), monomial("nonzero", 0, 1)),
    ("log_periodic", LOG_PERIODIC, monomial("discrete", 1, 1, (-1, 2))),
    ("heaviside", sympy.Heaviside(x), monomial("positive", 0, 0)),
    ("cbrt", x ** sympy.Rational(1, 3), monomial("nonzero", 1, sympy.Rational(1, 3))),
    ("linear", 3 * x, GroupDescription("general_linear")),
    ("affine", 2 * x + 1, GroupDescription("affine_stabilizer")),
    ("constant", sympy.Integer(4) + 0 * x, GroupDescription("degenerate")),
]


@pytest.mark.parametrize(("name", "expr", "group"), TRUE_GROUPS, ids=lambda v: "")
def test_evidence_passes_true_groups(name, expr, group):
    record = numeric_evidence(expr, group, n_points=500, n_matrices=5)
    assert record["passed"] is True, (name, record["failures"])
    assert record["failures"] == []
    if group.kind != "degenerate":
        assert record["group_residual"] <= 1e-8
    assert record["scalar_residual"] <= 1e-8


WRONG_GROUPS = [
    ("tanh positive", sympy.tanh(x), monomial("positive", 0, 1), "sigma(A x)"),
    ("relu trivial", RELU, monomial("trivial", 0, 0), "near miss 'scalar 2"),
    ("relu nonzero", RELU, monomial("nonzero", 1, 1), "sigma(A x)"),
    ("relu power 2", RELU, monomial("positive", 0, 2), "sigma(A x)"),
    ("gelu sign", GELU, monomial("sign", 1, 0), "sigma(A x)"),
    ("sigmoid sign", SIGMOID, monomial("sign", 1, 0), "sigma(A x)"),
    ("cube as positive", x**3, monomial("positive", 0, 3), "near miss 'scalar -1"),
    ("abs as odd", sympy.Abs(x), monomial("nonzero", 1, 1), "sigma(A x)"),
    ("identity monomial", x, monomial("nonzero", 1, 1), "near miss 'extra"),
    (
        "log_periodic by 3",
        LOG_PERIODIC,
        monomial("discrete", 1, 1, (-1, 3)),
        "sigma(A x)",
    ),
    ("log_periodic positive", LOG_PERIODIC, monomial("positive", 0, 1), "sigma(A x)"),
    (
        "log_periodic without -1",
        LOG_PERIODIC,
        monomial("discrete", 1, 1, (2,)),
        "near miss 'scalar -1",
    ),
    ("linear as affine", 3 * x, GroupDescription("affine_stabilizer"), "row sum"),
    ("affine as linear", 2 * x + 1, GroupDescription("general_linear"), "linear fit"),
    ("tanh as linear", sympy.tanh(x), GroupDescription("general_linear"), "sigma(A x)"),
    ("tanh degenerate", sympy.tanh(x), GroupDescription("degenerate"), "not constant"),
]


@pytest.mark.parametrize(
    ("name", "expr", "group", "failure"), WRONG_GROUPS, ids=[w[0] for w in WRONG_GROUPS]
)
def test_evidence_fails_wrong_groups(name, expr, group, failure):
    record = numeric_evidence(expr, group, n_points=500, n_matrices=5)
    assert record["passed"] is False
    assert any(failure in text for text in record["failures"]), record["failures"]


def test_evidence_record_fields():
    record = numeric_evidence(GELU, monomial("trivial", 0, 0), seed=3, n_points=400)
    assert record["method"] == "numeric"
    assert record["seed"] == 3
    assert record["dtype"] == "float64"
    assert record["tolerance"] == 1e-8
    assert record["failure_threshold"] == 1e-4
    assert record["n_points"] == 400
    assert record["dims"] == [1, 2, 3, 5]
    assert record["n_matrices"] == 20
    assert record["group"] == monomial("trivial", 0, 0).to_json()
    labels = {miss["label"] for miss in record["near_misses"]}
    assert "extra off-support entry" in labels
    assert "non-permutation" in labels
    assert "scalar 2 outside the scalar group" in labels
    assert record["near_miss_residual"] == min(
        miss["residual"] for miss in record["near_misses"]
    )
    assert record["near_miss_residual"] >= 1e-4


def test_evidence_is_json_serialisable():
    record = numeric_evidence(LOG_PERIODIC, monomial("discrete", 1, 1, (-1, 2)))
    text = json.dumps(record, allow_nan=False)
    assert json.loads(text) == record


def test_evidence_stores_nan_as_none():
    record = numeric_evidence(sympy.sqrt(x), monomial("positive", 0, 1), n_points=200)
    assert record["passed"] is False
    json.dumps(record, allow_nan=False)


def test_evidence_is_deterministic():
    group = monomial("discrete", 1, 1, (-1, 2))
    first = numeric_evidence(LOG_PERIODIC, group, seed=11, n_points=300)
    second = numeric_evidence(LOG_PERIODIC, group, seed=11, n_points=300)
    other = numeric_evidence(LOG_PERIODIC, group, seed=12, n_points=300)
    assert first == second
    assert first["near_misses"] != other["near_misses"]


def test_evidence_general_linear_no_misses():
    record = numeric_evidence(3 * x, GroupDescription("general_linear"))
    assert record["near_misses"] == []
    assert record["near_miss_residual"] is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"group": "positive"}, "group must be a GroupDescription"),
        ({"n_points": 10}, "n_points must be at least 20, got 10"),
        ({"n_points": 100.0}, "n_points must be an integer, got 100.0"),
        ({"dims": ()}, "dims must be a non-empty sequence of positive integers"),
        ({"dims": (2, 0)}, "dims must be a non-empty sequence of positive integers"),
        ({"n_matrices": 0}, "n_matrices must be at least 1, got 0"),
        ({"tol": 0.0}, r"tol must be a number in \(0, 1\), got 0.0"),
        ({"tol": "1e-8"}, r"tol must be a number in \(0, 1\), got '1e-8'"),
        ({"seed": -1}, "seed must be a non-negative integer, got -1"),
        ({"seed": 1.5}, "seed must be a non-negative integer, got 1.5"),
    ],
)
def test_evidence_validation(kwargs, message):
    arguments = {"group": monomial("positive", 0, 1)}
    arguments.update(kwargs)
    group = arguments.pop("group")
    with pytest.raises(ParameterError, match=message):
        numeric_evidence(RELU, group, **arguments)


def test_near_miss_matrices_are_outside():
    rng = np.random.default_rng(0)
    for description in [
        monomial("trivial", 0, 0),
        monomial("sign", 1, 0),
        monomial("positive", 0, 1),
        monomial("nonzero", 1, 3),
        monomial("discrete", 1, 1, (-1, 2)),
        monomial("discrete", 1, 1, (-2,)),
        GroupDescription("affine_stabilizer"),
    ]:
        for n in (1, 2, 4):
            group = description.matrix_group(n)
            for label, M in near_miss_matrices(group, rng):
                assert not group.contains(M), (description, n, label)


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        (monomial("trivial", 0, 0), [-1.0, 2.0]),
        (monomial("sign", 1, 0), [2.0, -0.5]),
        (monomial("positive", 0, 1), [-1.0, -2.0]),
        (monomial("nonzero", 0, 1), []),
        (monomial("discrete", 1, 1, (-1, 4)), [2.0]),
        (monomial("discrete", 0, 1, (9,)), [3.0, -1.0]),
        (monomial("discrete", 1, 1, (-4,)), [2.0, -1.0]),
    ],
)
def test_scalars_outside(description, expected):
    outside = scalars_outside(description)
    assert outside == expected
    for lam in outside:
        assert not description.scalar_contains(lam)


# --------------------------------------------------------------------------
# discover_numerically
# --------------------------------------------------------------------------

DISCOVERIES = [
    ("relu", RELU, monomial("positive", 0, 1)),
    ("leaky_relu", LEAKY_RELU, monomial("positive", 0, 1)),
    ("tanh", sympy.tanh(x), monomial("sign", 1, 0)),
    ("gelu", GELU, monomial("trivial", 0, 0)),
    ("cube", x**3, monomial("nonzero", 1, 3)),
    ("gaussian", GAUSSIAN, monomial("sign", 0, 0)),
    ("sigmoid", SIGMOID, monomial("trivial", 0, 0)),
    ("abs", sympy.Abs(x), monomial("nonzero", 0, 1)),
    ("log_periodic", LOG_PERIODIC, monomial("discrete", 1, 1, (-1, 2))),
    (
        "log_periodic 3/2",
        log_periodic(sympy.Rational(3, 2)),
        monomial("discrete", 1, 1, (-1, sympy.Rational(3, 2))),
    ),
    (
        "log_periodic sqrt 3",
        log_periodic(sympy.sqrt(3)),
        monomial("discrete", 1, 1, (-1, sympy.sqrt(3))),
    ),
    (
        "log_periodic -2",
        log_periodic(2, sign_twist=True),
        monomial("discrete", 1, 1, (-2,)),
    ),
    ("heaviside", sympy.Heaviside(x), monomial("positive", 0, 0)),
    ("sign", sympy.sign(x), monomial("nonzero", 1, 0)),
    ("cbrt", x ** sympy.Rational(1, 3), monomial("nonzero", 1, sympy.Rational(1, 3))),
    ("square", x**2, monomial("nonzero", 0, 2)),
    ("softplus", SOFTPLUS, monomial("trivial", 0, 0)),
    ("exp", sympy.exp(x), monomial("trivial", 0, 0)),
    ("even quartic", x**4 + x**2, monomial("sign", 0, 0)),
    ("linear", -x / 3, GroupDescription("general_linear")),
    ("affine", 2 * x + 1, GroupDescription("affine_stabilizer")),
    ("constant", sympy.Integer(4) + 0 * x, GroupDescription("degenerate")),
]


@pytest.mark.parametrize(
    ("name", "expr", "expected"), DISCOVERIES, ids=[d[0] for d in DISCOVERIES]
)
def test_discovery(name, expr, expected):
    description, record = discover_numerically(expr, n_points=800)
    assert description == expected, description.describe()
    assert record["method"] == "numeric"
    assert record["group"] == expected.to_json()


def test_discovery_record_fields():
    description, record = discover_numerically(LOG_PERIODIC, seed=4)
    assert record["seed"] == 4
    assert record["tolerance"] == 1e-8
    assert record["dtype"] == "float64"
    assert record["classification"] == "discrete"
    grid = record["grid"]
    assert len(grid["lams"]) == len(grid["residuals"])
    assert "2" in grid["exact_candidates"]
    assert grid["grid_size"] == 201
    assert record["generator"]["snapped"] == "2"
    assert "nsimplify" in record["generator"]["snap_method"]
    assert record["power"]["snapped"] == "1"
    assert record["residual_summary"]["max_fitting"] <= 1e-8
    assert record["residual_summary"]["min_not_fitting"] > 1e-8
    assert record["fitting_outside_group"] == []
    json.dumps(record, allow_nan=False)


def test_discovery_finds_generator_off_the_grid():
    # 3/2 is not an exact candidate, so only the refinement of a local minimum
    # of the scan residual can find it.
    _, record = discover_numerically(log_periodic(sympy.Rational(3, 2)))
    assert record["generator"]["snapped"] == "3/2"
    assert any(item["fits"] for item in record["refinements"])


def test_discovery_is_deterministic():
    first = discover_numerically(LOG_PERIODIC, seed=2, n_points=400)
    second = discover_numerically(LOG_PERIODIC, seed=2, n_points=400)
    assert first == second


def test_discovery_rejects_negative_mu():
    # sin(pi log2|x|) changes sign under x -> 2x, so mu(2) = -1, which
    # sign(lam)**e * |lam|**p cannot express.
    expr = sympy.Piecewise(
        (0, sympy.Eq(x, 0)),
        (sympy.sin(sympy.pi * sympy.log(sympy.Abs(x)) / sympy.log(2)), True),
    )
    with pytest.raises(ExpressionError, match=r"mu\(2\) = -1 is not positive"):
        discover_numerically(expr, n_points=400)


def test_discovery_rejects_nowhere_finite():
    with pytest.raises(ExpressionError, match="is finite at only 0 of 100 sample"):
        discover_numerically(sympy.log(-sympy.Abs(x) - 1), n_points=100)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_points": 3}, "n_points must be at least 20, got 3"),
        ({"tol": 2.0}, r"tol must be a number in \(0, 1\), got 2.0"),
        ({"grid_size": 2}, "grid_size must be at least 5, got 2"),
        ({"lam_max": 1.0}, r"lam_max must be a number in \(1, 1e6\), got 1.0"),
        ({"seed": "0"}, "seed must be a non-negative integer, got '0'"),
    ],
)
def test_discovery_validation(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        discover_numerically(RELU, **kwargs)


def test_discovery_agrees_with_evidence():
    for _, expr, _ in DISCOVERIES[:9]:
        description, _ = discover_numerically(expr, n_points=500)
        record = numeric_evidence(expr, description, n_points=500, n_matrices=5)
        assert record["passed"] is True, (expr, record["failures"])


# --------------------------------------------------------------------------
# symgroups.testing
# --------------------------------------------------------------------------


def test_assert_intertwines_passes():
    sigma = compile_numpy(RELU)
    A = np.array([[0.0, 2.0], [0.5, 0.0]])
    assert_intertwines(sigma, A, A)
    assert_intertwines(sigma, A, A, np.array([1.0, -3.0]))
    assert_intertwines(sigma, A, A, np.array([[1.0, 0.0], [-3.0, 2.0]]))


def test_assert_intertwines_reports_worst_x():
    sigma = compile_numpy(sympy.tanh(x))
    A = np.diag([2.0, 1.0])
    with pytest.raises(AssertionError, match=r"sigma\(A x\) != B sigma\(x\)") as info:
        assert_intertwines(sigma, A, A, np.array([[0.5, 3.0], [1.0, 1.0]]))
    message = str(info.value)
    assert "max deviation 0.99" in message
    assert "worst entry 0 of x = [3. 1.]" in message
    assert "sigma(A x) = 0.99998771165" in message


def test_assert_intertwines_nan_matches_nan():
    sigma = compile_numpy(sympy.sqrt(x))
    A, B = np.diag([4.0]), np.diag([2.0])
    assert_intertwines(sigma, A, B, np.array([[-1.0, 0.0, 9.0]]))
    with pytest.raises(AssertionError, match="2 of 3 entries.*NaN or infinite"):
        assert_intertwines(sigma, -A, B, np.array([[-1.0, 0.0, 9.0]]))


def test_assert_intertwines_shapes():
    sigma = compile_numpy(RELU)
    with pytest.raises(ParameterError, match=r"A must be a square matrix, got shape"):
        assert_intertwines(sigma, np.ones((2, 3)), np.eye(2))
    with pytest.raises(ParameterError, match="A and B must have the same shape"):
        assert_intertwines(sigma, np.eye(2), np.eye(3))
    with pytest.raises(ParameterError, match=r"x must have shape \(2,\) or \(2, k\)"):
        assert_intertwines(sigma, np.eye(2), np.eye(2), np.ones(3))


LOG_PERIODIC_GROUP = monomial("discrete", 1, 1, (-1, 2)).matrix_group(3)
RELU_GROUP = monomial("positive", 0, 1).matrix_group(3)


@settings(max_examples=25, deadline=None)
@given(A=group_elements(LOG_PERIODIC_GROUP))
def test_group_elements_intertwine(A):
    assert LOG_PERIODIC_GROUP.contains(A)
    sigma = compile_numpy(LOG_PERIODIC)
    assert_intertwines(sigma, A, LOG_PERIODIC_GROUP.phi(A), rtol=1e-9)


@pytest.mark.parametrize(
    "description",
    [
        monomial("trivial", 0, 0),
        monomial("sign", 1, 0),
        monomial("positive", 0, 1),
        monomial("nonzero", 1, 3),
        monomial("discrete", 1, 1, (-2,)),
        GroupDescription("general_linear"),
        GroupDescription("affine_stabilizer"),
    ],
    ids=str,
)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_near_misses_are_outside(description, data):
    n = data.draw(st.integers(1, 4))
    group = description.matrix_group(n)
    if description.scalars == "nonzero" and n == 1:
        return
    M = data.draw(near_misses(group))
    assert not group.contains(M)


@settings(max_examples=20, deadline=None)
@given(M=near_misses(RELU_GROUP))
def test_near_misses_break_relu_law(M):
    sigma = compile_numpy(RELU)
    x_batch = sample_points(np.random.default_rng(0), 3 * 200).reshape(3, 200)
    left, right = sigma(M @ x_batch), sigma(x_batch)
    B, *_ = np.linalg.lstsq(right.T, left.T, rcond=None)
    with pytest.raises(AssertionError):
        assert_intertwines(sigma, M, B.T, x_batch, rtol=1e-6)


def test_near_misses_need_room():
    group = monomial("nonzero", 0, 1).matrix_group(1)
    with pytest.raises(ParameterError, match="has no matrices just outside it"):
        near_misses(group)


def test_strategies_reject_non_groups():
    with pytest.raises(ParameterError, match="group must be an IntertwinerGroup"):
        group_elements(monomial("trivial", 0, 0))
    with pytest.raises(ParameterError, match="group must be an IntertwinerGroup"):
        near_misses("relu")


def test_import_does_not_load_testing():
    code = (
        "import sys, symgroups; "
        "sys.exit(1 if 'symgroups.testing' in sys.modules "
        "or 'hypothesis' in sys.modules else 0)"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert completed.returncode == 0, completed.stderr.decode()

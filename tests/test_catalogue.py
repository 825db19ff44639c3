"""The activation catalogue against torch 2.13 (CPU, float64).

Every entry is evaluated at its defaults and at non-default parameters, both
exactly (a small mpmath evaluator of the sympy expression, with adaptive
precision) and through its torch module in float64. The non-default values are
dyadic (exact in binary), so that torch's float parameters equal the exact
ones and the breakpoints sit on representable inputs.
"""

from __future__ import annotations

import decimal
import fractions
import math
import subprocess
import sys
from collections.abc import Callable

import mpmath
import numpy as np
import pytest
import sympy
import torch
from torch import nn

from symgroups import _torch_activations as custom
from symgroups._activation import Activation
from symgroups._catalogue import (
    CATALOGUE,
    SELU_ALPHA,
    SELU_SCALE,
    Domain,
    activation_from_aten,
    activation_from_torch_module,
    get_activation,
)
from symgroups._errors import ParameterError, UnknownActivationError
from symgroups._symbols import X

#: Relative agreement required between torch (float64) and the exact value.
RTOL = 1e-12

#: Absolute floor for every entry, near the bottom of the float64 range
#: (the smallest normal float64 is 2.2e-308), where torch's results underflow
#: to subnormals or to 0.
ABS_FLOOR = 1e-300

#: Machine epsilon of float64.
EPS = float(np.finfo(np.float64).eps)

#: Absolute floor ``CANCELLATION_ULPS * EPS * |x|`` for entries that torch
#: evaluates with a cancelling difference: 1 + erf and 1 + tanh at x < 0
#: (gelu, gelu_tanh), x - tanh(x) near 0 (tanhshrink). GELU(-30) is about
#: -1.5e-196, but torch 2.13 returns -0.0 because 1 + erf(-21.2) rounds to 0.
CANCELLATION_ULPS = 4

CANCELLING_ENTRIES = frozenset({"gelu", "gelu_tanh", "tanhshrink"})

#: Digits kept beyond the digits lost to cancellation by the reference.
GUARD_DIGITS = 30

#: Working precisions (decimal digits) the reference tries in turn.
PRECISIONS = (40, 80, 160, 320, 640, 1280)

#: Largest finite float64.
FLOAT_MAX = float(np.finfo(np.float64).max)

EXPECTED_ORDER = (
    "identity",
    "relu",
    "relu6",
    "leaky_relu",
    "prelu",
    "rrelu",
    "elu",
    "selu",
    "celu",
    "gelu",
    "gelu_tanh",
    "silu",
    "mish",
    "softplus",
    "sigmoid",
    "tanh",
    "hardtanh",
    "hardsigmoid",
    "hardswish",
    "softsign",
    "tanhshrink",
    "softshrink",
    "hardshrink",
    "logsigmoid",
    "threshold",
    "abs",
    "sin",
    "cos",
    "atan",
    "exp",
    "power",
    "gaussian",
)

#: Non-default settings, in dyadic numbers. Each entry also runs at defaults.
NON_DEFAULT = {
    "leaky_relu": [
        {"negative_slope": 0.25},
        {"negative_slope": -0.5},
        {"negative_slope": 2},
    ],
    "prelu": [{"weight": -0.75}],
    "rrelu": [{"lower": 0.25, "upper": 0.75}, {"lower": 1, "upper": 2}],
    "elu": [{"alpha": 2.5}, {"alpha": -0.5}],
    "celu": [{"alpha": 0.75}, {"alpha": -1.5}],
    "softplus": [{"beta": 2, "threshold": 10}, {"beta": -1}],
    "hardtanh": [{"min_val": -0.5, "max_val": 2}],
    "softshrink": [{"lambd": 0.25}, {"lambd": 0}],
    "hardshrink": [{"lambd": 0.25}, {"lambd": -1}],
    "threshold": [{"threshold": -0.5, "value": 3}],
    "power": [{"d": 3}, {"d": 1}, {"d": 7}],
}

CASES = [(name, {}) for name in CATALOGUE] + [
    (name, params) for name, settings in NON_DEFAULT.items() for params in settings
]


def _case_id(case: tuple[str, dict]) -> str:
    name, params = case
    return name + "".join(f"-{k}={v}" for k, v in params.items())


# --------------------------------------------------------------------------
# A high-precision reference for sympy expressions
# --------------------------------------------------------------------------


class _Context:
    """One evaluation: the input, the precision and the digits lost so far."""

    def __init__(self, x: float, dps: int) -> None:
        self.x = x
        self.dps = dps
        self.lost_digits = 0.0

    def lose(self, digits: float) -> None:
        self.lost_digits = max(self.lost_digits, digits)


Evaluator = Callable[[_Context], object]

_FUNCTIONS = {
    sympy.exp: mpmath.exp,
    sympy.tanh: mpmath.tanh,
    sympy.erf: mpmath.erf,
    sympy.sin: mpmath.sin,
    sympy.cos: mpmath.cos,
    sympy.atan: mpmath.atan,
    sympy.Abs: abs,
}

_RELATIONS = {
    sympy.StrictGreaterThan: lambda d: d > 0,
    sympy.StrictLessThan: lambda d: d < 0,
    sympy.GreaterThan: lambda d: d >= 0,
    sympy.LessThan: lambda d: d <= 0,
}


def _compile(expr: sympy.Basic) -> Evaluator:
    """Turn a catalogue expression into an mpmath evaluator.

    Sums record the digits they cancel and logarithms the digits they lose
    near 1, so that :func:`_reference` can raise the precision. Conditions are
    decided in mpmath unless the two sides are too close, and then exactly
    with sympy at the rational value of the input.
    """
    if expr == X:
        return lambda ctx: mpmath.mpf(ctx.x)
    if expr in (sympy.true, sympy.false):
        value = bool(expr)
        return lambda ctx: value
    if not expr.free_symbols:
        return _compile_constant(expr)
    if isinstance(expr, sympy.Piecewise):
        return _compile_piecewise(expr)
    args = [_compile(arg) for arg in expr.args]
    if isinstance(expr, sympy.Add):
        return _compile_add(args)
    if isinstance(expr, sympy.Mul):
        return lambda ctx: mpmath.fprod(arg(ctx) for arg in args)
    if isinstance(expr, sympy.Pow):
        return lambda ctx: mpmath.power(args[0](ctx), args[1](ctx))
    if isinstance(expr, sympy.log):
        return _compile_log(args[0])
    if isinstance(expr, sympy.Max):
        return lambda ctx: max(arg(ctx) for arg in args)
    if isinstance(expr, sympy.Min):
        return lambda ctx: min(arg(ctx) for arg in args)
    if type(expr) in _RELATIONS:
        return _compile_relation(expr, args)
    if isinstance(expr, sympy.And):
        return lambda ctx: all(arg(ctx) for arg in args)
    if isinstance(expr, sympy.Or):
        return lambda ctx: any(arg(ctx) for arg in args)
    if expr.func in _FUNCTIONS:
        function = _FUNCTIONS[expr.func]
        return lambda ctx: function(args[0](ctx))
    raise NotImplementedError(f"no mpmath evaluator for {expr.func}")


def _compile_constant(expr: sympy.Expr) -> Evaluator:
    by_precision: dict[int, mpmath.mpf] = {}

    def evaluate(ctx: _Context) -> mpmath.mpf:
        if ctx.dps not in by_precision:
            value = sympy.Float(expr.evalf(ctx.dps + 10), ctx.dps + 10)
            by_precision[ctx.dps] = mpmath.mpf(value._mpf_)
        return by_precision[ctx.dps]

    return evaluate


def _compile_add(args: list[Evaluator]) -> Evaluator:
    def evaluate(ctx: _Context) -> mpmath.mpf:
        terms = [arg(ctx) for arg in args]
        total = mpmath.fsum(terms)
        largest = max(abs(term) for term in terms)
        if largest != 0:
            if total == 0:
                ctx.lose(math.inf)
            else:
                ctx.lose(float(mpmath.log10(largest / abs(total))))
        return total

    return evaluate


def _compile_log(arg: Evaluator) -> Evaluator:
    def evaluate(ctx: _Context) -> mpmath.mpf:
        value = mpmath.log(arg(ctx))
        # The condition number of log at y is 1/|log y|.
        if value == 0:
            ctx.lose(math.inf)
        elif abs(value) < 1:
            ctx.lose(float(-mpmath.log10(abs(value))))
        return value

    return evaluate


def _compile_relation(expr: sympy.Basic, args: list[Evaluator]) -> Evaluator:
    decide = _RELATIONS[type(expr)]

    def evaluate(ctx: _Context) -> bool:
        left, right = args[0](ctx), args[1](ctx)
        scale = max(mpmath.mpf(1), abs(left), abs(right))
        if abs(left - right) > scale * mpmath.mpf(10) ** (10 - ctx.dps):
            return decide(left - right)
        return bool(expr.subs(X, sympy.Rational(ctx.x)))

    return evaluate


def _compile_piecewise(expr: sympy.Piecewise) -> Evaluator:
    branches = [(_compile(e), _compile(c)) for e, c in expr.args]

    def evaluate(ctx: _Context) -> mpmath.mpf:
        for value, condition in branches:
            if condition(ctx):
                return value(ctx)
        raise ValueError(f"no branch of {expr} holds at {ctx.x!r}")

    return evaluate


def _reference(evaluator: Evaluator, x: float) -> mpmath.mpf:
    """Evaluate at the first precision that keeps GUARD_DIGITS digits."""
    for dps in PRECISIONS:
        ctx = _Context(x, dps)
        with mpmath.workdps(dps):
            value = evaluator(ctx)
        if ctx.lost_digits + GUARD_DIGITS <= dps:
            return value
    # Still cancelling at the highest precision, so the exact value is below
    # about 10**-1250 times the largest term, far under every floor here.
    return value


# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------


def _breakpoints(name: str, p: dict[str, float]) -> list[float]:
    """Points where the entry switches branch, as floats of its parameters."""
    if name == "relu6":
        return [0.0, 6.0]
    if name == "hardtanh":
        return [p["min_val"], p["max_val"]]
    if name in ("hardsigmoid", "hardswish"):
        return [-3.0, 3.0]
    if name == "softplus":
        return [p["threshold"] / p["beta"]]
    if name in ("softshrink", "hardshrink"):
        return [p["lambd"], -p["lambd"]]
    if name == "threshold":
        return [p["threshold"]]
    return [0.0]


def _inputs(breakpoints: list[float]) -> np.ndarray:
    magnitudes = np.concatenate(
        [
            np.logspace(-30, -6, 25),
            np.linspace(0.05, 10.0, 40),
            np.logspace(1, 3, 15),
            [math.pi, 1.0, 2.0, 3.0, 20.0, 700.0, 745.0],
        ]
    )
    points = [0.0, *magnitudes, *(-magnitudes)]
    for point in breakpoints:
        scale = max(1.0, abs(point))
        points += [
            point,
            math.nextafter(point, math.inf),
            math.nextafter(point, -math.inf),
        ]
        for offset in (1e-12, 1e-6, 1e-2):
            points += [point + offset * scale, point - offset * scale]
    return np.unique(np.array(points, dtype=np.float64))


def _torch_values(module: nn.Module, xs: np.ndarray) -> np.ndarray:
    module = module.double()
    with torch.no_grad():
        return module(torch.from_numpy(xs)).numpy()


# --------------------------------------------------------------------------
# The catalogue against torch
# --------------------------------------------------------------------------


def test_catalogue_order_is_stable() -> None:
    assert tuple(CATALOGUE) == EXPECTED_ORDER


def test_catalogue_imports_without_torch() -> None:
    code = "import sys, symgroups._catalogue; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_entries_are_documented() -> None:
    for entry in CATALOGUE.values():
        assert entry.summary and "\n" not in entry.summary, entry.name
        assert entry.torch_name.startswith(("torch.nn.", "symgroups.")), entry.name
        for parameter in entry.parameters:
            assert parameter.doc and "\n" not in parameter.doc, parameter.name
            assert parameter.domain.contains(parameter.default), parameter.name


def test_defaults_are_torch_defaults() -> None:
    torch_defaults = {
        ("leaky_relu", "negative_slope"): nn.LeakyReLU().negative_slope,
        ("prelu", "weight"): nn.PReLU().weight.item(),
        ("rrelu", "lower"): nn.RReLU().lower,
        ("rrelu", "upper"): nn.RReLU().upper,
        ("elu", "alpha"): nn.ELU().alpha,
        ("celu", "alpha"): nn.CELU().alpha,
        ("softplus", "beta"): nn.Softplus().beta,
        ("softplus", "threshold"): nn.Softplus().threshold,
        ("hardtanh", "min_val"): nn.Hardtanh().min_val,
        ("hardtanh", "max_val"): nn.Hardtanh().max_val,
        ("softshrink", "lambd"): nn.Softshrink().lambd,
        ("hardshrink", "lambd"): nn.Hardshrink().lambd,
    }
    for (name, parameter), value in torch_defaults.items():
        default = CATALOGUE[name].defaults()[parameter]
        assert float(default) == value, (name, parameter)


def test_selu_constants_are_exact() -> None:
    assert SELU_ALPHA == sympy.Rational(16732632423543772848170429916717, 10**31)
    assert SELU_SCALE == sympy.Rational(10507009873554804934193349852946, 10**31)
    assert float(SELU_ALPHA) == 1.6732632423543772
    assert float(SELU_SCALE) == 1.0507009873554805


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_entry_matches_torch(case: tuple[str, dict]) -> None:
    name, params = case
    entry = CATALOGUE[name]
    resolved = entry.resolve_params(params)
    float_params = {key: float(value) for key, value in resolved.items()}
    xs = _inputs(_breakpoints(name, float_params))
    actual = _torch_values(entry.torch_module(params), xs)
    evaluator = _compile(entry.expression(params))
    cancelling = name in CANCELLING_ENTRIES
    failures = []
    for x, got in zip(xs, actual, strict=True):
        exact = _reference(evaluator, float(x))
        if abs(exact) > FLOAT_MAX:
            if not (math.isinf(got) and (got > 0) == (exact > 0)):
                failures.append((x, got, "overflow expected"))
            continue
        floor = ABS_FLOOR
        if cancelling:
            floor = max(floor, CANCELLATION_ULPS * EPS * abs(x))
        if not abs(got - exact) <= RTOL * abs(exact) + floor:
            failures.append((x, got, mpmath.nstr(exact, 20)))
    assert not failures, failures[:5]


def test_reference_resolves_gelu_cancellation() -> None:
    exact = _reference(_compile(CATALOGUE["gelu"].expression()), -30.0)
    with mpmath.workdps(50):
        expected = -30 * mpmath.erfc(30 / mpmath.sqrt(2)) / 2
    assert abs(exact / expected - 1) < 1e-20
    assert 1e-197 < abs(exact) < 1e-195


def test_reference_resolves_softplus_absorption() -> None:
    exact = _reference(_compile(CATALOGUE["softplus"].expression()), -1000.0)
    with mpmath.workdps(50):
        expected = mpmath.log1p(mpmath.exp(-1000))
    assert abs(exact / expected - 1) < 1e-20


def test_boundaries_follow_torch() -> None:
    at_lambd = get_activation("hardshrink").subs_x(sympy.Rational(1, 2))
    above_lambd = get_activation("hardshrink").subs_x(sympy.Rational(51, 100))
    at_threshold = get_activation("threshold").subs_x(1)
    at_softplus_threshold = get_activation("softplus").subs_x(20)
    assert at_lambd == 0
    assert above_lambd == sympy.Rational(51, 100)
    assert at_threshold == 0
    assert at_softplus_threshold == sympy.log(1 + sympy.exp(20))
    assert get_activation("softplus").subs_x(21) == 21


def test_leaky_relu_forms() -> None:
    inside = get_activation("leaky_relu", {"negative_slope": 0.5}).expr
    negative = get_activation("leaky_relu", {"negative_slope": -0.5}).expr
    steep = get_activation("leaky_relu", {"negative_slope": 3}).expr
    assert inside == sympy.Max(X, X / 2)
    assert isinstance(negative, sympy.Piecewise)
    assert isinstance(steep, sympy.Piecewise)
    assert get_activation("relu").expr == sympy.Max(0, X)


# --------------------------------------------------------------------------
# get_activation: values and errors
# --------------------------------------------------------------------------


def test_get_activation_fills_defaults() -> None:
    act = get_activation("softplus", {"beta": 2})
    assert act.name == "softplus"
    assert act.params == {"beta": sympy.Integer(2), "threshold": sympy.Integer(20)}
    assert act.expr == CATALOGUE["softplus"].expression(act.params)
    assert CATALOGUE["softplus"].resolve_params(act.params) == act.params


def test_get_activation_normalises_name() -> None:
    assert get_activation(" Leaky-ReLU ").name == "leaky_relu"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.1, sympy.Rational(1, 10)),
        (1e-30, sympy.Rational(1, 10**30)),
        (3, sympy.Integer(3)),
        (np.float64(0.2), sympy.Rational(1, 5)),
        (np.int64(4), sympy.Integer(4)),
        (np.float32(0.5), sympy.Rational(1, 2)),
        (fractions.Fraction(1, 3), sympy.Rational(1, 3)),
        (decimal.Decimal("0.125"), sympy.Rational(1, 8)),
        (sympy.Rational(2, 7), sympy.Rational(2, 7)),
        (sympy.Float("0.3"), sympy.Rational(3, 10)),
        (sympy.sqrt(2), sympy.sqrt(2)),
    ],
)
def test_values_become_exact(value: object, expected: sympy.Expr) -> None:
    act = get_activation("elu", {"alpha": value})
    assert act.params["alpha"] == expected
    assert not act.expr.atoms(sympy.Float)


def test_unknown_name_lists_close_matches() -> None:
    with pytest.raises(
        UnknownActivationError, match=r"'rleu' \(close matches: relu, rrelu, relu6\)"
    ):
        get_activation("rleu")
    with pytest.raises(UnknownActivationError, match=r"run 'symgroups list'"):
        get_activation("rleu")


def test_unknown_name_without_matches() -> None:
    with pytest.raises(
        UnknownActivationError,
        match=r"^unknown activation 'zzzz', run 'symgroups list' to see",
    ):
        get_activation("zzzz")


def test_name_must_be_text() -> None:
    with pytest.raises(UnknownActivationError, match=r"invalid activation name 3"):
        get_activation(3)  # type: ignore[arg-type]


def test_unknown_parameter_lists_accepted() -> None:
    with pytest.raises(
        ParameterError,
        match=r"unknown parameter 'alpah'=2 for activation 'elu', "
        r"expected one of: alpha$",
    ):
        get_activation("elu", {"alpah": 2})
    with pytest.raises(ParameterError, match=r"'relu', which has no parameters$"):
        get_activation("relu", {"alpha": 2})


@pytest.mark.parametrize(
    ("name", "params", "pattern"),
    [
        ("celu", {"alpha": 0}, r"value 0 for parameter 'alpha' .* nonzero real"),
        ("softplus", {"beta": 0.0}, r"value 0\.0 for parameter 'beta' .* nonzero"),
        ("power", {"d": 0}, r"value 0 for parameter 'd' .* an integer >= 1"),
        ("power", {"d": 1.5}, r"value 1\.5 for parameter 'd' .* an integer >= 1"),
        ("softshrink", {"lambd": -0.5}, r"'lambd' .*: expected a real number >= 0"),
        ("elu", {"alpha": math.nan}, r"value nan for parameter 'alpha'"),
        ("elu", {"alpha": math.inf}, r"value inf for parameter 'alpha'"),
        ("elu", {"alpha": True}, r"value True .* as an int, float, str"),
        ("elu", {"alpha": [1]}, r"value \[1\] .* as an int, float, str"),
        ("elu", {"alpha": sympy.I}, r"value I for parameter 'alpha'"),
        ("elu", {"alpha": X}, r"value x for parameter 'alpha'"),
        ("elu", {"alpha": sympy.oo}, r"value oo for parameter 'alpha'"),
        ("elu", {"alpha": sympy.true}, r"value True .* as an int, float, str"),
    ],
)
def test_invalid_values_raise(name: str, params: dict, pattern: str) -> None:
    with pytest.raises(ParameterError, match=pattern):
        get_activation(name, params)


def test_constraints_raise() -> None:
    with pytest.raises(
        ParameterError,
        match=r"invalid parameters lower=1/2, upper=1/10 for activation 'rrelu': "
        r"expected lower <= upper",
    ):
        get_activation("rrelu", {"lower": 0.5, "upper": 0.1})
    with pytest.raises(ParameterError, match=r"expected min_val < max_val"):
        get_activation("hardtanh", {"min_val": 1, "max_val": 1})


def test_torch_accepts_what_catalogue_accepts() -> None:
    # The catalogue's domains mirror torch 2.13: these unusual values run.
    x = torch.linspace(-3, 3, 7, dtype=torch.float64)
    assert torch.isfinite(nn.ELU(-1.0)(x)).all()
    assert torch.isfinite(nn.CELU(-1.0)(x)).all()
    assert torch.isfinite(nn.Softplus(-1.0)(x)).all()
    assert torch.equal(nn.Hardshrink(-1.0)(x), x)
    assert torch.isfinite(nn.LeakyReLU(-2.0)(x)).all()
    assert not torch.isfinite(nn.Softplus(0.0)(x)).all()
    with pytest.raises(RuntimeError, match="alpha cannot be 0"):
        nn.CELU(0.0)(x)
    with pytest.raises(RuntimeError, match="lambda must be in range"):
        nn.Softshrink(-1.0)(x)
    with pytest.raises(AssertionError, match="must be greater than min_val"):
        nn.Hardtanh(1.0, 1.0)


def test_domain_edge_values() -> None:
    assert not Domain.REAL.contains(X)
    assert Domain.NONNEGATIVE.contains(sympy.Integer(0))
    assert not Domain.POSITIVE.contains(sympy.Integer(0))
    assert Domain.INTEGER_AT_LEAST_ONE.contains(sympy.Integer(1))


def test_string_values_use_parse_number() -> None:
    parse = pytest.importorskip("symgroups._parse")
    act = get_activation("leaky_relu", {"negative_slope": "1/3"})
    assert act.params["negative_slope"] == parse.parse_number("1/3")
    assert act.params["negative_slope"] == sympy.Rational(1, 3)


def test_string_values_reject_bad_text() -> None:
    pytest.importorskip("symgroups._parse")
    with pytest.raises(
        ParameterError, match=r"invalid value 'x\*\*2' for parameter 'negative_slope'"
    ):
        get_activation("leaky_relu", {"negative_slope": "x**2"})


# --------------------------------------------------------------------------
# From torch modules
# --------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_torch_module_round_trip(case: tuple[str, dict]) -> None:
    name, params = case
    module = CATALOGUE[name].torch_module(params)
    assert type(module).__name__ in CATALOGUE[name].torch_name
    assert activation_from_torch_module(module) == get_activation(name, params)


#: One instance of every elementwise class of torch.nn.modules.activation,
#: with non-default parameters, and the activation it must map to.
NN_MODULES = {
    "Threshold": (
        nn.Threshold(0.5, -2.0),
        "threshold",
        {"threshold": 0.5, "value": -2},
    ),
    "ReLU": (nn.ReLU(inplace=True), "relu", {}),
    "RReLU": (nn.RReLU(0.1, 0.3).eval(), "rrelu", {"lower": 0.1, "upper": 0.3}),
    "Hardtanh": (nn.Hardtanh(-2.0, 0.5), "hardtanh", {"min_val": -2, "max_val": 0.5}),
    "ReLU6": (nn.ReLU6(), "relu6", {}),
    "Sigmoid": (nn.Sigmoid(), "sigmoid", {}),
    "Hardsigmoid": (nn.Hardsigmoid(), "hardsigmoid", {}),
    "Tanh": (nn.Tanh(), "tanh", {}),
    "SiLU": (nn.SiLU(), "silu", {}),
    "Mish": (nn.Mish(), "mish", {}),
    "Hardswish": (nn.Hardswish(), "hardswish", {}),
    "ELU": (nn.ELU(alpha=0.3), "elu", {"alpha": 0.3}),
    "CELU": (nn.CELU(alpha=2), "celu", {"alpha": 2}),
    "SELU": (nn.SELU(), "selu", {}),
    "GELU": (nn.GELU(approximate="tanh"), "gelu_tanh", {}),
    "Hardshrink": (nn.Hardshrink(0.2), "hardshrink", {"lambd": 0.2}),
    "LeakyReLU": (nn.LeakyReLU(0.1), "leaky_relu", {"negative_slope": 0.1}),
    "LogSigmoid": (nn.LogSigmoid(), "logsigmoid", {}),
    "Softplus": (nn.Softplus(3.0, 5.0), "softplus", {"beta": 3, "threshold": 5}),
    "Softshrink": (nn.Softshrink(0.7), "softshrink", {"lambd": 0.7}),
    "PReLU": (nn.PReLU(init=0.5), "prelu", {"weight": 0.5}),
    "Softsign": (nn.Softsign(), "softsign", {}),
    "Tanhshrink": (nn.Tanhshrink(), "tanhshrink", {}),
}

#: Classes of torch.nn.modules.activation that are not elementwise.
NOT_ELEMENTWISE = {
    "GLU": nn.GLU(),
    "MultiheadAttention": nn.MultiheadAttention(4, 2),
    "Softmin": nn.Softmin(dim=-1),
    "Softmax": nn.Softmax(dim=-1),
    "Softmax2d": nn.Softmax2d(),
    "LogSoftmax": nn.LogSoftmax(dim=-1),
}


def test_every_torch_activation_class_is_covered() -> None:
    classes = set(torch.nn.modules.activation.__all__)
    assert classes == set(NN_MODULES) | set(NOT_ELEMENTWISE)


@pytest.mark.parametrize("class_name", sorted(NN_MODULES))
def test_from_torch_module_maps(class_name: str) -> None:
    module, name, params = NN_MODULES[class_name]
    act = activation_from_torch_module(module)
    assert act == get_activation(name, params)


@pytest.mark.parametrize("class_name", sorted(NOT_ELEMENTWISE))
def test_from_torch_module_not_elementwise(class_name: str) -> None:
    assert activation_from_torch_module(NOT_ELEMENTWISE[class_name]) is None


def test_module_floats_exact_from_repr() -> None:
    act = activation_from_torch_module(nn.LeakyReLU(0.1))
    numpy_act = activation_from_torch_module(nn.ELU(np.float64(0.3)))
    prelu = activation_from_torch_module(nn.PReLU(init=0.2))
    assert act.params["negative_slope"] == sympy.Rational(1, 10)
    assert numpy_act.params["alpha"] == sympy.Rational(3, 10)
    # The float32 weight 0.2 reads back as the float 0.20000000298023224.
    assert prelu.params["weight"] == sympy.Rational("0.20000000298023224")


def test_module_floats_snap_to_defaults() -> None:
    act = activation_from_torch_module(nn.RReLU().eval())
    assert act.params == {"lower": sympy.Rational(1, 8), "upper": sympy.Rational(1, 3)}
    assert act.expr == sympy.Max(X, sympy.Rational(11, 48) * X)


def test_from_torch_module_unmapped_cases() -> None:
    class CustomReLU(nn.ReLU):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 2 * super().forward(x)

    assert activation_from_torch_module(nn.PReLU(num_parameters=3)) is None
    assert activation_from_torch_module(nn.RReLU().train()) is None
    assert activation_from_torch_module(CustomReLU()) is None
    assert activation_from_torch_module(nn.Linear(2, 2)) is None
    assert activation_from_torch_module("relu") is None
    assert activation_from_torch_module(nn.PReLU(device="meta")) is None


def test_from_torch_module_custom_classes() -> None:
    assert activation_from_torch_module(custom.Power(5)) == get_activation(
        "power", {"d": 5}
    )
    assert activation_from_torch_module(custom.Gaussian()).name == "gaussian"
    assert activation_from_torch_module(nn.Identity()).name == "identity"


def test_module_invalid_parameter_raises() -> None:
    with pytest.raises(ParameterError, match=r"parameter 'beta' of activation"):
        activation_from_torch_module(nn.Softplus(beta=0.0))


def test_power_module_rejects_bad_exponent() -> None:
    with pytest.raises(ParameterError, match=r"invalid exponent 0 for Power"):
        custom.Power(0)
    with pytest.raises(ParameterError, match=r"invalid exponent 2\.0 for Power"):
        custom.Power(2.0)  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# From ATen operators of exported graphs
# --------------------------------------------------------------------------


def _activation_nodes(program: torch.export.ExportedProgram) -> list[torch.fx.Node]:
    return [
        node
        for node in program.graph.nodes
        if node.op == "call_function" and str(node.target) != "aten.linear.default"
    ]


def _resolved_arguments(
    program: torch.export.ExportedProgram, node: torch.fx.Node
) -> tuple:
    """The node's arguments after the input, with parameter nodes as tensors."""
    to_parameter = program.graph_signature.inputs_to_parameters
    resolved = []
    for arg in node.args[1:]:
        if isinstance(arg, torch.fx.Node) and arg.name in to_parameter:
            arg = program.state_dict[to_parameter[arg.name]]
        resolved.append(arg)
    return tuple(resolved)


def _export(activation: nn.Module) -> torch.export.ExportedProgram:
    model = nn.Sequential(nn.Linear(3, 3), activation).eval()
    return torch.export.export(model, (torch.randn(2, 3),))


#: Modules that torch 2.13 exports as one ATen operator.
SINGLE_OP_MODULES = [
    nn.ReLU(),
    nn.ReLU6(),
    nn.LeakyReLU(0.2),
    nn.PReLU(init=-0.5),
    nn.RReLU(0.25, 0.5),
    nn.ELU(0.5),
    nn.SELU(),
    nn.CELU(0.75),
    nn.GELU(),
    nn.GELU(approximate="tanh"),
    nn.SiLU(),
    nn.Mish(),
    nn.Softplus(2.0, 10.0),
    nn.Sigmoid(),
    nn.Tanh(),
    nn.Hardtanh(-2.0, 3.0),
    nn.Hardsigmoid(),
    nn.Hardswish(),
    nn.Softshrink(0.25),
    nn.Hardshrink(0.25),
    nn.LogSigmoid(),
    nn.Threshold(0.5, -1.0),
    custom.Abs(),
    custom.Sin(),
    custom.Cos(),
    custom.Atan(),
    custom.Exp(),
    custom.Power(3),
]


def _single_activation(program: torch.export.ExportedProgram) -> Activation | None:
    nodes = _activation_nodes(program)
    assert len(nodes) == 1, [str(node.target) for node in nodes]
    (node,) = nodes
    args = _resolved_arguments(program, node)
    return activation_from_aten(str(node.target), args, node.kwargs)


@pytest.mark.parametrize("module", SINGLE_OP_MODULES, ids=lambda m: type(m).__name__)
def test_from_aten_matches_module(module: nn.Module) -> None:
    expected = activation_from_torch_module(module.eval())
    assert _single_activation(_export(module)) == expected


@pytest.mark.slow
@pytest.mark.parametrize("module", SINGLE_OP_MODULES, ids=lambda m: type(m).__name__)
def test_from_aten_after_decompositions(module: nn.Module) -> None:
    program = _export(module).run_decompositions({})
    if isinstance(module, (nn.Softshrink, nn.Hardshrink)):
        assert len(_activation_nodes(program)) > 1
        return
    assert _single_activation(program) == activation_from_torch_module(module)


def test_from_aten_prelu_weight_node() -> None:
    program = _export(nn.PReLU(init=-0.5))
    (node,) = _activation_nodes(program)
    args = _resolved_arguments(program, node)
    expected = get_activation("prelu", {"weight": -0.5})
    # The OpOverload itself is accepted in place of its text.
    assert activation_from_aten(node.target, args, node.kwargs) == expected
    # An unresolved parameter node is not a number.
    assert activation_from_aten(str(node.target), node.args[1:], node.kwargs) is None


def test_from_aten_multi_op_modules() -> None:
    expected_ops = {
        "Softsign": ["aten.abs.default", "aten.add.Tensor", "aten.div.Tensor"],
        "Tanhshrink": ["aten.tanh.default", "aten.sub.Tensor"],
        "Identity": [],
        "Gaussian": ["aten.square.default", "aten.neg.default", "aten.exp.default"],
    }
    modules = [nn.Softsign(), nn.Tanhshrink(), nn.Identity(), custom.Gaussian()]
    for module in modules:
        nodes = _activation_nodes(_export(module))
        ops = [str(node.target) for node in nodes]
        assert ops == expected_ops[type(module).__name__]


def test_from_aten_core_decomposition_of_selu() -> None:
    program = _export(nn.SELU()).run_decompositions()
    (node,) = [n for n in _activation_nodes(program) if "elu" in str(n.target)]
    assert str(node.target) == "aten.elu.default"
    act = activation_from_aten(str(node.target), node.args[1:], node.kwargs)
    assert act == get_activation("selu")


def test_from_aten_rrelu_training_is_none() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.RReLU()).train()
    program = torch.export.export(model, (torch.randn(2, 3),))
    (node,) = _activation_nodes(program)
    assert activation_from_aten(str(node.target), node.args[1:], node.kwargs) is None


@pytest.mark.parametrize(
    ("op_name", "args", "kwargs", "name", "params"),
    [
        ("aten.relu.default", (), {}, "relu", {}),
        ("aten.relu_.default", (), {}, "relu", {}),
        ("aten.relu6.default", (), {}, "relu6", {}),
        ("aten.leaky_relu.default", (), {}, "leaky_relu", {}),
        ("aten.leaky_relu_.default", (0.5,), {}, "leaky_relu", {"negative_slope": 0.5}),
        ("aten.hardtanh.default", (0.0, 6.0), {}, "relu6", {}),
        ("aten.hardtanh.default", (), {"max_val": 2}, "hardtanh", {"max_val": 2}),
        ("aten.clamp.default", (-1, 2), {}, "hardtanh", {"min_val": -1, "max_val": 2}),
        ("aten.clamp.default", (0,), {}, "relu", {}),
        ("aten.elu.default", (2.0,), {}, "elu", {"alpha": 2}),
        ("aten.elu.default", (), {"alpha": 0.5}, "elu", {"alpha": 0.5}),
        ("aten.celu.default", (), {}, "celu", {}),
        ("aten.gelu.default", (), {"approximate": "none"}, "gelu", {}),
        ("aten.softplus.default", (3, 4), {}, "softplus", {"beta": 3, "threshold": 4}),
        ("aten.rrelu.default", (), {}, "rrelu", {}),
        ("aten.softshrink.default", (), {}, "softshrink", {}),
        ("aten.hardshrink.default", (1.5,), {}, "hardshrink", {"lambd": 1.5}),
        ("aten.threshold.default", (1, 0), {}, "threshold", {}),
        ("aten.prelu.default", (0.25,), {}, "prelu", {}),
        ("aten.pow.Tensor_Scalar", (2.0,), {}, "power", {"d": 2}),
        ("aten.pow_.Scalar", (3,), {}, "power", {"d": 3}),
        ("aten.square.default", (), {}, "power", {"d": 2}),
        ("aten.log_sigmoid.default", (), {}, "logsigmoid", {}),
        ("aten.exp.default", (), {}, "exp", {}),
    ],
)
def test_from_aten_argument_forms(
    op_name: str, args: tuple, kwargs: dict, name: str, params: dict
) -> None:
    assert activation_from_aten(op_name, args, kwargs) == get_activation(name, params)


@pytest.mark.parametrize(
    ("op_name", "args", "kwargs"),
    [
        ("aten.linear.default", (), {}),
        ("aten.softmax.int", (-1,), {}),
        ("relu.default", (), {}),
        ("prims.relu.default", (), {}),
        ("aten.relu.out", (), {}),
        ("aten.pow.Scalar", (2,), {}),
        ("aten.relu.default", (1.0,), {}),
        ("aten.leaky_relu.default", (0.1,), {"negative_slope": 0.2}),
        ("aten.leaky_relu.default", (), {"slope": 0.2}),
        ("aten.leaky_relu.default", (object(),), {}),
        ("aten.gelu.default", ("tanh",), {}),
        ("aten.gelu.default", (), {"approximate": "fast"}),
        ("aten.threshold.default", (1.0,), {}),
        ("aten.rrelu.default", (0.1, 0.3, True), {}),
        ("aten.elu.default", (1.0, 2.0), {}),
        ("aten.elu.default", (1.0, object()), {}),
        ("aten.hardtanh.default", (object(), 6.0), {}),
        ("aten.clamp.default", (None, 6), {}),
        ("aten.clamp.default", (2, 1), {}),
        ("aten.clamp.default", (1,), {}),
        ("aten.pow.Tensor_Scalar", (0.5,), {}),
        ("aten.pow.Tensor_Scalar", (0,), {}),
        ("aten.prelu.default", (torch.full((3,), 0.25),), {}),
    ],
)
def test_from_aten_unmapped_forms(op_name: str, args: tuple, kwargs: dict) -> None:
    assert activation_from_aten(op_name, args, kwargs) is None


def test_from_aten_invalid_value_raises() -> None:
    with pytest.raises(ParameterError, match=r"invalid value -1 for parameter 'lambd'"):
        activation_from_aten("aten.softshrink.default", (-1.0,), {})


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("power", {"d": 65}, "at most 64"),
        ("leaky_relu", {"negative_slope": "1e-45"}, "at most 40 digits"),
    ],
)
def test_parameters_obey_parser_limits(name, params, message):
    with pytest.raises(ParameterError, match=message):
        get_activation(name, params)

"""The catalogue of named activations and their torch counterparts.

Each :class:`CatalogueEntry` pairs an exact sympy expression in
:data:`symgroups._symbols.X` with the ``torch.nn`` module that computes the
same function, parameter by parameter, with torch's own defaults. Entry names
follow ``torch.nn.functional`` where torch has the function.

The law that ties the two sides together, for every entry and every valid
parameter setting ``p``, is ``entry.torch_module(p)(t) == entry.expression(p)``
evaluated at ``t``, up to float64 rounding. ``tests/test_catalogue.py`` checks
it against a high-precision reference.

This module never imports torch at import time. The functions that need torch
(:meth:`CatalogueEntry.torch_module`, :func:`activation_from_torch_module`,
:func:`activation_from_aten`) import it when called.
"""

from __future__ import annotations

import decimal
import difflib
import enum
import fractions
import functools
import importlib
import logging
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sympy

from ._activation import Activation
from ._errors import ParameterError, SymgroupsError, UnknownActivationError
from ._symbols import X

logger = logging.getLogger(__name__)

#: Number of close matches that an unknown activation name reports.
CLOSE_MATCH_COUNT = 3

#: Minimum :class:`difflib.SequenceMatcher` ratio for a close match.
CLOSE_MATCH_CUTOFF = 0.6

#: ``alpha`` of SELU, from the decimal text in the torch 2.13 SELU docstring.
SELU_ALPHA = sympy.Rational("1.6732632423543772848170429916717")

#: ``scale`` of SELU, from the decimal text in the torch 2.13 SELU docstring.
SELU_SCALE = sympy.Rational("1.0507009873554804934193349852946")

#: The cubic coefficient 0.044715 of the tanh approximation of GELU.
GELU_TANH_CUBIC = sympy.Rational(8943, 200000)


# --------------------------------------------------------------------------
# Parameters and entries
# --------------------------------------------------------------------------


class Domain(enum.Enum):
    """The set of values that a catalogue parameter accepts.

    Every domain is a subset of the finite real numbers. The value of each
    member is the text that error messages show after "expected".
    """

    REAL = "a real number"
    POSITIVE = "a positive real number"
    NONNEGATIVE = "a real number >= 0"
    NONZERO = "a nonzero real number"
    INTEGER_AT_LEAST_ONE = "an integer >= 1"

    @property
    def accepted(self) -> str:
        """The description of the accepted values, as in error messages."""
        return self.value

    def contains(self, value: sympy.Expr) -> bool:
        """Return whether the exact number ``value`` lies in this domain.

        An undecidable sign (sympy's ``None``) counts as outside the domain.
        """
        if value.free_symbols or value.is_real is not True:
            return False
        if self is Domain.REAL:
            return True
        if self is Domain.POSITIVE:
            return value.is_positive is True
        if self is Domain.NONNEGATIVE:
            return value.is_nonnegative is True
        if self is Domain.NONZERO:
            return value.is_zero is False
        return value.is_integer is True and bool(value >= 1)


@dataclass(frozen=True)
class Parameter:
    """One named, exact parameter of a catalogue entry.

    ``default`` is torch's default where torch has one. ``doc`` is one line
    with the meaning and unit of the parameter. ``domain`` is the validity
    rule, and its ``accepted`` text is the message shown for a bad value.
    """

    name: str
    default: sympy.Expr
    doc: str
    domain: Domain = Domain.REAL

    @property
    def accepted(self) -> str:
        """The description of the accepted values, as in error messages."""
        return self.domain.accepted


@dataclass(frozen=True)
class Constraint:
    """A rule that ties several parameters of one entry together.

    ``check`` returns whether the resolved parameters satisfy the rule, and
    ``text`` states the rule the way error messages show it (``lower <= upper``).
    """

    text: str
    names: tuple[str, ...]
    check: Callable[[Mapping[str, sympy.Expr]], bool] = field(compare=False)


@dataclass(frozen=True)
class CatalogueEntry:
    """A named activation: its parameters, exact expression and torch module.

    ``torch_name`` is the torch call that computes the same function, written
    with the catalogue's parameter names, such as
    ``"torch.nn.LeakyReLU(negative_slope)"``. ``build_expression`` and
    ``build_module`` take a complete, validated parameter mapping. Callers use
    :meth:`expression` and :meth:`torch_module`, which validate first.
    """

    name: str
    summary: str
    parameters: tuple[Parameter, ...]
    torch_name: str
    build_expression: Callable[[Mapping[str, sympy.Expr]], sympy.Expr] = field(
        repr=False, compare=False
    )
    build_module: Callable[[Mapping[str, sympy.Expr]], Any] = field(
        repr=False, compare=False
    )
    constraints: tuple[Constraint, ...] = ()

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """The names of the parameters, in their catalogue order."""
        return tuple(parameter.name for parameter in self.parameters)

    def defaults(self) -> dict[str, sympy.Expr]:
        """Return every parameter at its default, in catalogue order."""
        return {parameter.name: parameter.default for parameter in self.parameters}

    def resolve_params(
        self, params: Mapping[str, object] | None = None
    ) -> dict[str, sympy.Expr]:
        """Convert, validate and complete a parameter mapping.

        Values may be ``int``, ``float`` (converted exactly from its ``repr``),
        :class:`fractions.Fraction`, :class:`decimal.Decimal`, sympy numbers
        (a ``Float`` inside is replaced by the rational of its decimal text)
        or strings, which :func:`symgroups._parse.parse_number` reads. Missing
        parameters take their defaults. The result is idempotent:
        ``resolve_params(resolve_params(p)) == resolve_params(p)``.

        Raises
        ------
        ParameterError
            For an unknown parameter name, a value of an unsupported type, a
            value outside the parameter's domain, or a failed constraint. The
            message names the parameter, the value and what is accepted.
        """
        requested = dict(params or {})
        for key, value in requested.items():
            if key not in self.parameter_names:
                raise ParameterError(
                    f"unknown parameter {key!r}={value!r} for activation "
                    f"{self.name!r}, {self._accepted_names_text()}"
                )
        resolved = {}
        for parameter in self.parameters:
            if parameter.name in requested:
                value = requested[parameter.name]
                resolved[parameter.name] = _resolve_value(self.name, parameter, value)
            else:
                resolved[parameter.name] = parameter.default
        for constraint in self.constraints:
            if not _constraint_holds(constraint, resolved):
                values = ", ".join(
                    f"{name}={resolved[name]}" for name in constraint.names
                )
                raise ParameterError(
                    f"invalid parameters {values} for activation {self.name!r}: "
                    f"expected {constraint.text}"
                )
        return resolved

    def _accepted_names_text(self) -> str:
        if not self.parameters:
            return "which has no parameters"
        return f"expected one of: {', '.join(self.parameter_names)}"

    def expression(self, params: Mapping[str, object] | None = None) -> sympy.Expr:
        """Return the exact expression in ``X`` at the given parameters.

        Missing parameters take their defaults, and the values are validated
        as in :meth:`resolve_params`.
        """
        return self.build_expression(self.resolve_params(params))

    def torch_module(self, params: Mapping[str, object] | None = None) -> Any:
        """Build a fresh ``torch.nn.Module`` that computes :meth:`expression`.

        The module stores each exact parameter rounded to the nearest float,
        and is in eval mode where the mode changes the function (RReLU).
        torch is imported here, not when this module is imported.
        """
        return self.build_module(self.resolve_params(params))


def _constraint_holds(constraint: Constraint, params: Mapping[str, sympy.Expr]) -> bool:
    try:
        return bool(constraint.check(params))
    except TypeError:
        # sympy raises TypeError when a relation between numbers is undecidable.
        return False


# --------------------------------------------------------------------------
# Exact values
# --------------------------------------------------------------------------


class _UnsupportedValueError(Exception):
    """A value whose type is not a number that this module can make exact."""


def _exact_number(value: object) -> sympy.Expr:
    """Convert a supported number type to an exact sympy expression.

    Raises ``_UnsupportedValueError`` for other types and for non-finite
    floats. Strings are handled by the caller.
    """
    if isinstance(value, bool):
        raise _UnsupportedValueError
    if isinstance(value, sympy.Basic):
        if not isinstance(value, sympy.Expr):
            raise _UnsupportedValueError
        floats = value.atoms(sympy.Float)
        return value.xreplace({f: sympy.Rational(str(f)) for f in floats})
    if isinstance(value, numbers.Integral):
        return sympy.Integer(int(value))
    if isinstance(value, fractions.Fraction):
        return sympy.Rational(value.numerator, value.denominator)
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise _UnsupportedValueError
        return sympy.Rational(*value.as_integer_ratio())
    if isinstance(value, numbers.Real):
        # float.__repr__ keeps numpy scalars (whose repr is "np.float64(...)")
        # on the shortest decimal text that rounds back to the same float.
        number = float(value)
        if not math.isfinite(number):
            raise _UnsupportedValueError
        return sympy.Rational(float.__repr__(number))
    raise _UnsupportedValueError


def _resolve_value(entry_name: str, parameter: Parameter, value: object) -> sympy.Expr:
    where = f"for parameter {parameter.name!r} of activation {entry_name!r}"
    if isinstance(value, str):
        from ._parse import parse_number

        try:
            exact = parse_number(value)
        except SymgroupsError as exc:
            raise ParameterError(
                f"invalid value {value!r} {where}: expected {parameter.accepted} "
                f"({exc})"
            ) from exc
    else:
        try:
            exact = _exact_number(value)
        except _UnsupportedValueError:
            raise ParameterError(
                f"invalid value {value!r} {where}: expected {parameter.accepted} "
                "given as an int, float, str, Fraction, Decimal or sympy number"
            ) from None
    if not parameter.domain.contains(exact):
        raise ParameterError(
            f"invalid value {value!r} {where}: expected {parameter.accepted}"
        )
    return exact


# --------------------------------------------------------------------------
# Expressions
# --------------------------------------------------------------------------


def _leaky(slope: sympy.Expr) -> sympy.Expr:
    """Return ``x`` for ``x > 0`` and ``slope * x`` otherwise.

    For ``0 <= slope <= 1`` that is ``Max(x, slope*x)``. Other slopes need a
    Piecewise, because the Max form would pick the wrong branch.
    """
    if bool(slope >= 0) and bool(slope <= 1):
        return sympy.Max(X, slope * X)
    return sympy.Piecewise((X, X > 0), (slope * X, True))


def _elu_core(alpha: sympy.Expr, input_scale: sympy.Expr) -> sympy.Expr:
    """Return ``x`` for ``x > 0`` and ``alpha*(exp(input_scale*x) - 1)`` otherwise.

    Both branches are 0 at ``x = 0``, so the side that owns 0 does not matter.
    """
    return sympy.Piecewise((X, X > 0), (alpha * (sympy.exp(input_scale * X) - 1), True))


def _expr_softplus(p: Mapping[str, sympy.Expr]) -> sympy.Expr:
    beta, threshold = p["beta"], p["threshold"]
    # torch returns x itself where beta*x > threshold, so the exact function
    # jumps by about exp(-threshold)/beta at x = threshold/beta.
    smooth = sympy.log(1 + sympy.exp(beta * X)) / beta
    return sympy.Piecewise((X, beta * X > threshold), (smooth, True))


def _expr_softshrink(p: Mapping[str, sympy.Expr]) -> sympy.Expr:
    lambd = p["lambd"]
    return sympy.Piecewise((X - lambd, X > lambd), (X + lambd, X < -lambd), (0, True))


def _expr_gelu_tanh(p: Mapping[str, sympy.Expr]) -> sympy.Expr:
    inner = sympy.sqrt(2 / sympy.pi) * (X + GELU_TANH_CUBIC * X**3)
    return X * (1 + sympy.tanh(inner)) / 2


def _relu6_of(argument: sympy.Expr) -> sympy.Expr:
    return sympy.Min(sympy.Max(argument, 0), 6)


# --------------------------------------------------------------------------
# torch modules (torch is imported only inside the builders)
# --------------------------------------------------------------------------


def _module_factory(
    path: str, argument_names: tuple[str, ...] = ()
) -> tuple[str, Callable[[Mapping[str, sympy.Expr]], Any]]:
    """Return ``(torch_name, builder)`` for a class called with float arguments.

    ``path`` is a dotted class path such as ``"torch.nn.ELU"``, and the builder
    passes the listed parameters positionally, each rounded to a float.
    """
    module_path, class_name = path.rsplit(".", 1)

    def build(p: Mapping[str, sympy.Expr]) -> Any:
        cls = getattr(importlib.import_module(module_path), class_name)
        return cls(*(float(p[name]) for name in argument_names))

    return f"{path}({', '.join(argument_names)})", build


def _module_prelu(p: Mapping[str, sympy.Expr]) -> Any:
    from torch import nn

    return nn.PReLU(num_parameters=1, init=float(p["weight"]))


def _module_rrelu(p: Mapping[str, sympy.Expr]) -> Any:
    from torch import nn

    return nn.RReLU(float(p["lower"]), float(p["upper"])).eval()


def _module_gelu_tanh(p: Mapping[str, sympy.Expr]) -> Any:
    from torch import nn

    return nn.GELU(approximate="tanh")


def _module_power(p: Mapping[str, sympy.Expr]) -> Any:
    from ._torch_activations import Power

    return Power(int(p["d"]))


# --------------------------------------------------------------------------
# The catalogue
# --------------------------------------------------------------------------


def _entry(
    name: str,
    summary: str,
    expression: Callable[[Mapping[str, sympy.Expr]], sympy.Expr],
    module: str | tuple[str, Callable[[Mapping[str, sympy.Expr]], Any]],
    parameters: tuple[Parameter, ...] = (),
    constraints: tuple[Constraint, ...] = (),
) -> CatalogueEntry:
    """Build one entry. A ``str`` module is a class path for ``_module_factory``."""
    if isinstance(module, str):
        module = _module_factory(module, tuple(p.name for p in parameters))
    torch_name, build_module = module
    return CatalogueEntry(
        name=name,
        summary=summary,
        parameters=parameters,
        torch_name=torch_name,
        build_expression=expression,
        build_module=build_module,
        constraints=constraints,
    )


def _slope_parameter(name: str, default: str, doc: str) -> Parameter:
    return Parameter(name, sympy.Rational(default), doc)


_CUSTOM_MODULES = "symgroups._torch_activations"

_ENTRIES = (
    _entry("identity", "x", lambda p: X, "torch.nn.Identity"),
    _entry("relu", "max(0, x)", lambda p: sympy.Max(0, X), "torch.nn.ReLU"),
    _entry("relu6", "min(max(0, x), 6)", lambda p: _relu6_of(X), "torch.nn.ReLU6"),
    _entry(
        "leaky_relu",
        "x for x > 0, negative_slope*x otherwise",
        lambda p: _leaky(p["negative_slope"]),
        "torch.nn.LeakyReLU",
        (
            _slope_parameter(
                "negative_slope", "0.01", "slope for x <= 0 (dimensionless)"
            ),
        ),
    ),
    _entry(
        "prelu",
        "x for x > 0, weight*x otherwise, one slope shared by all channels",
        lambda p: _leaky(p["weight"]),
        ("torch.nn.PReLU(num_parameters=1, init=weight)", _module_prelu),
        (_slope_parameter("weight", "0.25", "learned slope for x <= 0, shared"),),
    ),
    _entry(
        "rrelu",
        "eval-mode RReLU: leaky_relu with slope (lower + upper)/2",
        lambda p: _leaky((p["lower"] + p["upper"]) / 2),
        ("torch.nn.RReLU(lower, upper).eval()", _module_rrelu),
        (
            Parameter("lower", sympy.Rational(1, 8), "lower bound of the slope draw"),
            Parameter("upper", sympy.Rational(1, 3), "upper bound of the slope draw"),
        ),
        (
            Constraint(
                "lower <= upper",
                ("lower", "upper"),
                lambda p: p["lower"] <= p["upper"],
            ),
        ),
    ),
    _entry(
        "elu",
        "x for x > 0, alpha*(exp(x) - 1) otherwise",
        lambda p: _elu_core(p["alpha"], sympy.Integer(1)),
        "torch.nn.ELU",
        (
            Parameter(
                "alpha", sympy.Integer(1), "value approached as x -> -oo, negated"
            ),
        ),
    ),
    _entry(
        "selu",
        "scale*elu(x, alpha) with torch's fixed SELU constants",
        lambda p: SELU_SCALE * _elu_core(SELU_ALPHA, sympy.Integer(1)),
        "torch.nn.SELU",
    ),
    _entry(
        "celu",
        "x for x > 0, alpha*(exp(x/alpha) - 1) otherwise",
        lambda p: _elu_core(p["alpha"], 1 / p["alpha"]),
        "torch.nn.CELU",
        (
            Parameter(
                "alpha",
                sympy.Integer(1),
                "scale of the negative branch, also dividing x in exp",
                Domain.NONZERO,
            ),
        ),
    ),
    _entry(
        "gelu",
        "x*Phi(x) = x/2*(1 + erf(x/sqrt(2))), the exact (erf) form",
        lambda p: X * (1 + sympy.erf(X / sympy.sqrt(2))) / 2,
        "torch.nn.GELU",
    ),
    _entry(
        "gelu_tanh",
        "x/2*(1 + tanh(sqrt(2/pi)*(x + 0.044715*x**3)))",
        _expr_gelu_tanh,
        ('torch.nn.GELU(approximate="tanh")', _module_gelu_tanh),
    ),
    _entry("silu", "x*sigmoid(x)", lambda p: X / (1 + sympy.exp(-X)), "torch.nn.SiLU"),
    _entry(
        "mish",
        "x*tanh(log(1 + exp(x)))",
        lambda p: X * sympy.tanh(sympy.log(1 + sympy.exp(X))),
        "torch.nn.Mish",
    ),
    _entry(
        "softplus",
        "log(1 + exp(beta*x))/beta, and x itself where beta*x > threshold",
        _expr_softplus,
        "torch.nn.Softplus",
        (
            Parameter(
                "beta",
                sympy.Integer(1),
                "sharpness: scale of x inside exp and of 1/beta outside",
                Domain.NONZERO,
            ),
            Parameter(
                "threshold",
                sympy.Integer(20),
                "value of beta*x above which torch returns x itself",
            ),
        ),
    ),
    _entry(
        "sigmoid",
        "1/(1 + exp(-x))",
        lambda p: 1 / (1 + sympy.exp(-X)),
        "torch.nn.Sigmoid",
    ),
    _entry("tanh", "tanh(x)", lambda p: sympy.tanh(X), "torch.nn.Tanh"),
    _entry(
        "hardtanh",
        "min(max(x, min_val), max_val)",
        lambda p: sympy.Min(sympy.Max(X, p["min_val"]), p["max_val"]),
        "torch.nn.Hardtanh",
        (
            Parameter("min_val", sympy.Integer(-1), "lower clipping value"),
            Parameter("max_val", sympy.Integer(1), "upper clipping value"),
        ),
        (
            # torch.nn.Hardtanh asserts max_val > min_val (torch 2.13).
            Constraint(
                "min_val < max_val",
                ("min_val", "max_val"),
                lambda p: p["min_val"] < p["max_val"],
            ),
        ),
    ),
    _entry(
        "hardsigmoid",
        "relu6(x + 3)/6",
        lambda p: _relu6_of(X + 3) / 6,
        "torch.nn.Hardsigmoid",
    ),
    _entry(
        "hardswish",
        "x*relu6(x + 3)/6",
        lambda p: X * _relu6_of(X + 3) / 6,
        "torch.nn.Hardswish",
    ),
    _entry(
        "softsign", "x/(1 + |x|)", lambda p: X / (1 + sympy.Abs(X)), "torch.nn.Softsign"
    ),
    _entry(
        "tanhshrink", "x - tanh(x)", lambda p: X - sympy.tanh(X), "torch.nn.Tanhshrink"
    ),
    _entry(
        "softshrink",
        "x - lambd for x > lambd, x + lambd for x < -lambd, 0 otherwise",
        _expr_softshrink,
        "torch.nn.Softshrink",
        (
            Parameter(
                "lambd",
                sympy.Rational(1, 2),
                "half width of the band mapped to 0",
                Domain.NONNEGATIVE,
            ),
        ),
    ),
    _entry(
        "hardshrink",
        "x for |x| > lambd, 0 otherwise (0 at |x| == lambd)",
        lambda p: sympy.Piecewise((X, sympy.Abs(X) > p["lambd"]), (0, True)),
        "torch.nn.Hardshrink",
        # torch 2.13 accepts a negative lambd for Hardshrink (then it is x).
        (
            Parameter(
                "lambd", sympy.Rational(1, 2), "half width of the band mapped to 0"
            ),
        ),
    ),
    _entry(
        "logsigmoid",
        "log(sigmoid(x)) = -log(1 + exp(-x))",
        lambda p: -sympy.log(1 + sympy.exp(-X)),
        "torch.nn.LogSigmoid",
    ),
    _entry(
        "threshold",
        "x for x > threshold, value otherwise",
        lambda p: sympy.Piecewise((X, X > p["threshold"]), (p["value"], True)),
        "torch.nn.Threshold",
        (
            Parameter(
                "threshold",
                sympy.Integer(1),
                "input level above which x passes; no torch default, 1 is ours",
            ),
            Parameter(
                "value",
                sympy.Integer(0),
                "output at or below the threshold; no torch default, 0 is ours",
            ),
        ),
    ),
    _entry("abs", "|x|", lambda p: sympy.Abs(X), f"{_CUSTOM_MODULES}.Abs"),
    _entry("sin", "sin(x)", lambda p: sympy.sin(X), f"{_CUSTOM_MODULES}.Sin"),
    _entry("cos", "cos(x)", lambda p: sympy.cos(X), f"{_CUSTOM_MODULES}.Cos"),
    _entry("atan", "atan(x)", lambda p: sympy.atan(X), f"{_CUSTOM_MODULES}.Atan"),
    _entry("exp", "exp(x)", lambda p: sympy.exp(X), f"{_CUSTOM_MODULES}.Exp"),
    _entry(
        "power",
        "x**d for an integer d >= 1",
        lambda p: X ** p["d"],
        (f"{_CUSTOM_MODULES}.Power(exponent=d)", _module_power),
        (
            Parameter(
                "d",
                sympy.Integer(2),
                "integer exponent, at least 1",
                Domain.INTEGER_AT_LEAST_ONE,
            ),
        ),
    ),
    _entry(
        "gaussian",
        "exp(-x**2), without scale or normalisation",
        lambda p: sympy.exp(-(X**2)),
        f"{_CUSTOM_MODULES}.Gaussian",
    ),
)

#: Every catalogue entry by name, in the stable order that ``symgroups list``
#: prints.
CATALOGUE: dict[str, CatalogueEntry] = {entry.name: entry for entry in _ENTRIES}


def _normalise_name(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def get_activation(name: str, params: Mapping[str, object] | None = None) -> Activation:
    """Look up a catalogue entry and build its activation at ``params``.

    The name is matched after stripping spaces, lowering the case and
    replacing ``-`` by ``_``. The result satisfies
    ``act.expr == CATALOGUE[act.name].expression(act.params)``, and
    ``act.params`` contains every parameter of the entry, defaults filled in.

    Raises
    ------
    UnknownActivationError
        If ``name`` is not in :data:`CATALOGUE`. The message lists the close
        matches and points to ``symgroups list``.
    ParameterError
        For an unknown parameter name or an invalid value, as described in
        :meth:`CatalogueEntry.resolve_params`.
    """
    if not isinstance(name, str):
        raise UnknownActivationError(
            f"invalid activation name {name!r}: expected a str such as 'relu'"
        )
    key = _normalise_name(name)
    entry = CATALOGUE.get(key)
    if entry is None:
        matches = difflib.get_close_matches(
            key, list(CATALOGUE), n=CLOSE_MATCH_COUNT, cutoff=CLOSE_MATCH_CUTOFF
        )
        hint = f" (close matches: {', '.join(matches)})" if matches else ""
        raise UnknownActivationError(
            f"unknown activation {name!r}{hint}, "
            "run 'symgroups list' to see every catalogue name"
        )
    resolved = entry.resolve_params(params)
    expr = entry.build_expression(resolved)
    if params:
        # Parameters must not build what the parser would reject as text,
        # such as x**1000, because the prover's limits assume that bound.
        from ._errors import ExpressionError
        from ._parse import check_expression

        try:
            check_expression(expr)
        except ExpressionError as error:
            values = ", ".join(f"{key}={value}" for key, value in params.items())
            raise ParameterError(
                f"invalid parameters {values} for activation {entry.name!r}: {error}"
            ) from None
    return Activation(entry.name, expr, resolved)


# --------------------------------------------------------------------------
# From torch modules and ATen operators
# --------------------------------------------------------------------------


def _exact_torch_scalar(value: object, default: sympy.Expr) -> sympy.Expr | None:
    """Convert a scalar read from torch to an exact number, or return None.

    A float equal to ``float(default)`` becomes ``default`` itself, so that
    torch's ``1/3`` (RReLU's ``upper``) and the float SELU constants map to
    the catalogue's exact values. Other floats become
    ``sympy.Rational(repr(value))``, with numpy floats read as Python floats.
    One-element tensors are read with ``item()``. Any other value, a meta
    tensor included, gives None.
    """
    if _is_tensor(value):
        if value.numel() != 1 or value.is_meta:
            return None
        value = value.detach().reshape(-1)[0].item()
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):
        return sympy.Integer(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            return None
        if number == float(default):
            return default
        return sympy.Rational(float.__repr__(number))
    return None


def _is_tensor(value: object) -> bool:
    import torch

    return isinstance(value, torch.Tensor)


def _activation_from_raw(name: str, raw: Mapping[str, object]) -> Activation | None:
    """Build ``get_activation(name, ...)`` from values read from torch.

    Returns None when a value is not a plain number (such as an unresolved
    graph node). Raises ParameterError when a number is outside the domain.
    """
    entry = CATALOGUE[name]
    defaults = entry.defaults()
    exact = {}
    for key, value in raw.items():
        converted = _exact_torch_scalar(value, defaults[key])
        if converted is None:
            logger.debug("%s: parameter %s=%r is not a number", name, key, value)
            return None
        exact[key] = converted
    return get_activation(name, exact)


#: torch.nn module class name -> (entry name, {entry parameter: module attribute}).
_MODULE_ATTRIBUTES: dict[str, tuple[str, dict[str, str]]] = {
    "Identity": ("identity", {}),
    "ReLU": ("relu", {}),
    "ReLU6": ("relu6", {}),
    "LeakyReLU": ("leaky_relu", {"negative_slope": "negative_slope"}),
    "ELU": ("elu", {"alpha": "alpha"}),
    "SELU": ("selu", {}),
    "CELU": ("celu", {"alpha": "alpha"}),
    "SiLU": ("silu", {}),
    "Mish": ("mish", {}),
    "Softplus": ("softplus", {"beta": "beta", "threshold": "threshold"}),
    "Sigmoid": ("sigmoid", {}),
    "Tanh": ("tanh", {}),
    "Hardtanh": ("hardtanh", {"min_val": "min_val", "max_val": "max_val"}),
    "Hardsigmoid": ("hardsigmoid", {}),
    "Hardswish": ("hardswish", {}),
    "Softsign": ("softsign", {}),
    "Tanhshrink": ("tanhshrink", {}),
    "Softshrink": ("softshrink", {"lambd": "lambd"}),
    "Hardshrink": ("hardshrink", {"lambd": "lambd"}),
    "LogSigmoid": ("logsigmoid", {}),
    "Threshold": ("threshold", {"threshold": "threshold", "value": "value"}),
}

#: Classes of :mod:`symgroups._torch_activations` -> (entry name, attributes).
_CUSTOM_MODULE_ATTRIBUTES: dict[str, tuple[str, dict[str, str]]] = {
    "Abs": ("abs", {}),
    "Sin": ("sin", {}),
    "Cos": ("cos", {}),
    "Atan": ("atan", {}),
    "Exp": ("exp", {}),
    "Power": ("power", {"d": "exponent"}),
    "Gaussian": ("gaussian", {}),
}


@functools.lru_cache(maxsize=1)
def _module_table() -> dict[type, tuple[str, dict[str, str]]]:
    from torch import nn

    from . import _torch_activations

    table: dict[type, tuple[str, dict[str, str]]] = {}
    for class_name, target in _MODULE_ATTRIBUTES.items():
        table[getattr(nn, class_name)] = target
    for class_name, target in _CUSTOM_MODULE_ATTRIBUTES.items():
        table[getattr(_torch_activations, class_name)] = target
    return table


#: The ``approximate`` argument of torch's GELU -> catalogue entry.
_GELU_NAMES = {"none": "gelu", "tanh": "gelu_tanh"}


def activation_from_torch_module(module: object) -> Activation | None:
    """Return the catalogue activation that a torch module computes, or None.

    The lookup uses the exact class, so a subclass (whose ``forward`` may
    differ) gives None, and ``ReLU6`` maps to ``relu6`` although it subclasses
    ``Hardtanh``. Float attributes become exact numbers through
    ``sympy.Rational(repr(v))``, except that a float equal to the float of
    the entry's default becomes that exact default. The law is
    ``module(t) == act.expr`` at ``t``, up to float64 rounding.

    ``PReLU`` with one parameter maps to ``prelu(weight=...)``. With several
    (per-channel slopes) it gives None, and the caller handles the channels.
    ``RReLU`` maps only in eval mode, where its slope is ``(lower + upper)/2``.
    ``GELU`` maps to ``gelu`` or ``gelu_tanh`` by ``approximate``. Every other
    object, such as ``Softmax`` or ``GLU``, which are not elementwise, gives
    None.

    Raises
    ------
    ParameterError
        If a parameter of the module is outside the catalogue's domain, such
        as ``Softplus(beta=0)``.
    """
    import torch
    from torch import nn

    cls = type(module)
    if cls is nn.GELU:
        name = _GELU_NAMES.get(module.approximate)
        return None if name is None else get_activation(name)
    if cls is nn.PReLU:
        weight = module.weight
        if weight.numel() != 1:
            logger.debug("PReLU with %d slopes has no catalogue entry", weight.numel())
            return None
        return _activation_from_raw("prelu", {"weight": weight})
    if cls is nn.RReLU:
        if module.training:
            logger.debug("RReLU in training mode draws random slopes")
            return None
        return _activation_from_raw(
            "rrelu", {"lower": module.lower, "upper": module.upper}
        )
    if not isinstance(module, torch.nn.Module):
        return None
    target = _module_table().get(cls)
    if target is None:
        return None
    name, attributes = target
    raw = {key: getattr(module, attribute) for key, attribute in attributes.items()}
    return _activation_from_raw(name, raw)


#: Marks an ATen argument without a schema default.
_REQUIRED = object()


@dataclass(frozen=True)
class _AtenRule:
    """The mapping of one ATen operator to a catalogue entry.

    ``arguments`` lists the schema's arguments after the input tensor with
    their schema defaults (torch 2.13), ``keyword_only`` the names that may
    only come in ``kwargs``. ``convert`` takes the bound raw values.
    """

    arguments: tuple[tuple[str, object], ...]
    convert: Callable[[dict[str, object]], Activation | None]
    keyword_only: tuple[str, ...] = ()


def _fixed(name: str) -> _AtenRule:
    return _AtenRule((), lambda raw: get_activation(name))


def _direct(name: str, arguments: tuple[tuple[str, object], ...]) -> _AtenRule:
    return _AtenRule(arguments, lambda raw: _activation_from_raw(name, raw))


def _aten_hardtanh(raw: dict[str, object]) -> Activation | None:
    low, high = raw["min_val"], raw["max_val"]
    if _is_number(low) and _is_number(high) and (low, high) == (0, 6):
        # nn.ReLU6 exports as aten.hardtanh(x, 0.0, 6.0): the same function.
        return get_activation("relu6")
    return _activation_from_raw("hardtanh", raw)


def _aten_clamp(raw: dict[str, object]) -> Activation | None:
    low, high = raw["min"], raw["max"]
    if high is None:
        return get_activation("relu") if _is_number(low) and low == 0 else None
    if not (_is_number(low) and _is_number(high)) or not low < high:
        # torch.clamp with min >= max returns max everywhere: a constant.
        return None
    return _aten_hardtanh({"min_val": low, "max_val": high})


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _aten_elu(raw: dict[str, object]) -> Activation | None:
    alpha, scale, input_scale = raw["alpha"], raw["scale"], raw["input_scale"]
    if not (_is_number(scale) and _is_number(input_scale)):
        return None
    if scale == 1 and input_scale == 1:
        return _activation_from_raw("elu", {"alpha": alpha})
    # The core ATen decomposition of SELU is elu(x, alpha, scale) with the
    # SELU constants rounded to floats.
    if (alpha, scale, input_scale) == (float(SELU_ALPHA), float(SELU_SCALE), 1):
        return get_activation("selu")
    # NOTE: other scales (a general scaled ELU) have no catalogue entry.
    return None


def _aten_gelu(raw: dict[str, object]) -> Activation | None:
    name = _GELU_NAMES.get(str(raw["approximate"]))
    return None if name is None else get_activation(name)


def _aten_prelu(raw: dict[str, object]) -> Activation | None:
    weight = raw["weight"]
    if _is_tensor(weight) and weight.numel() != 1:
        return None
    return _activation_from_raw("prelu", {"weight": weight})


def _aten_rrelu(raw: dict[str, object]) -> Activation | None:
    if raw["training"] is not False or raw["generator"] is not None:
        return None
    return _activation_from_raw("rrelu", {"lower": raw["lower"], "upper": raw["upper"]})


def _aten_power(raw: dict[str, object]) -> Activation | None:
    exponent = raw["exponent"]
    if isinstance(exponent, float) and exponent.is_integer():
        exponent = int(exponent)
    if isinstance(exponent, bool) or not isinstance(exponent, int) or exponent < 1:
        return None
    return get_activation("power", {"d": exponent})


_SCALE_ONE = (("alpha", 1), ("scale", 1), ("input_scale", 1))

#: ATen operator (without ``aten.``, in-place ``_`` removed) -> mapping rule.
_ATEN_RULES: dict[str, _AtenRule] = {
    "relu.default": _fixed("relu"),
    "relu6.default": _fixed("relu6"),
    "leaky_relu.default": _direct("leaky_relu", (("negative_slope", 0.01),)),
    "prelu.default": _AtenRule((("weight", _REQUIRED),), _aten_prelu),
    "rrelu.default": _AtenRule(
        (
            ("lower", 0.125),
            ("upper", 0.3333333333333333),
            ("training", False),
            ("generator", None),
        ),
        _aten_rrelu,
    ),
    "elu.default": _AtenRule(_SCALE_ONE, _aten_elu),
    "selu.default": _fixed("selu"),
    "celu.default": _direct("celu", (("alpha", 1.0),)),
    "gelu.default": _AtenRule(
        (("approximate", "none"),), _aten_gelu, keyword_only=("approximate",)
    ),
    "silu.default": _fixed("silu"),
    "mish.default": _fixed("mish"),
    "softplus.default": _direct("softplus", (("beta", 1), ("threshold", 20))),
    "sigmoid.default": _fixed("sigmoid"),
    "tanh.default": _fixed("tanh"),
    "hardtanh.default": _AtenRule((("min_val", -1), ("max_val", 1)), _aten_hardtanh),
    "clamp.default": _AtenRule((("min", None), ("max", None)), _aten_clamp),
    "hardsigmoid.default": _fixed("hardsigmoid"),
    "hardswish.default": _fixed("hardswish"),
    "softshrink.default": _direct("softshrink", (("lambd", 0.5),)),
    "hardshrink.default": _direct("hardshrink", (("lambd", 0.5),)),
    "log_sigmoid.default": _fixed("logsigmoid"),
    "threshold.default": _direct(
        "threshold", (("threshold", _REQUIRED), ("value", _REQUIRED))
    ),
    "abs.default": _fixed("abs"),
    "sin.default": _fixed("sin"),
    "cos.default": _fixed("cos"),
    "atan.default": _fixed("atan"),
    "exp.default": _fixed("exp"),
    "pow.Tensor_Scalar": _AtenRule((("exponent", _REQUIRED),), _aten_power),
    "square.default": _AtenRule((), lambda raw: get_activation("power", {"d": 2})),
}

#: In-place overloads whose name differs from the functional one by more than ``_``.
_ATEN_ALIASES = {"pow_.Scalar": "pow.Tensor_Scalar"}


def _aten_key(op_name: str) -> str | None:
    namespace, _, rest = op_name.partition(".")
    if namespace != "aten" or not rest:
        return None
    if rest in _ATEN_ALIASES:
        return _ATEN_ALIASES[rest]
    base, _, overload = rest.partition(".")
    return f"{base.removesuffix('_')}.{overload}"


def _bind_aten(
    rule: _AtenRule, args: tuple, kwargs: Mapping[str, object]
) -> dict[str, object] | None:
    positional = [name for name, _ in rule.arguments if name not in rule.keyword_only]
    if len(args) > len(positional):
        return None
    bound = dict(zip(positional, args, strict=False))
    for key, value in kwargs.items():
        if key in bound or key not in dict(rule.arguments):
            return None
        bound[key] = value
    for name, default in rule.arguments:
        if name not in bound:
            if default is _REQUIRED:
                return None
            bound[name] = default
    return bound


def activation_from_aten(
    op_name: str, args: tuple = (), kwargs: Mapping[str, object] | None = None
) -> Activation | None:
    """Return the catalogue activation that one ATen operator computes, or None.

    ``op_name`` is the operator's text, such as ``"aten.leaky_relu.default"``,
    which is ``str(node.target)`` of a ``torch.export`` graph node. An
    OpOverload is converted with ``str``. ``args`` are the positional
    arguments after the input tensor, and ``kwargs`` the keyword arguments.
    In-place variants (``aten.relu_.default``) map like the functional ones.
    Omitted arguments take the defaults of the torch 2.13 schema. The law is
    ``op(t, *args, **kwargs) == act.expr`` at ``t``, up to float64 rounding.

    What ``torch.export.export(nn.Sequential(nn.Linear(3, 3), act))`` contains
    in torch 2.13, both as exported and after ``run_decompositions({})``:

    * One operator per module for ReLU, LeakyReLU, PReLU, RReLU, ELU, SELU,
      CELU, GELU, SiLU, Mish, Softplus, Sigmoid, Tanh, Hardtanh, Hardsigmoid,
      Hardswish, LogSigmoid and Threshold.
    * ``ReLU6`` is ``aten.hardtanh.default(x, 0.0, 6.0)``, which maps to
      ``relu6``, so ``Hardtanh(0, 6)`` also maps to ``relu6`` here.
    * ``Softshrink`` and ``Hardshrink`` are one operator as exported, but
      ``run_decompositions({})`` splits them into abs, gt or le, where and
      more.
    * ``Softsign`` is abs, add and div, ``Tanhshrink`` is tanh and sub, and
      ``Identity`` leaves no operator. The ``gaussian`` module exports as
      square, neg and exp. This function maps single operators, so such
      sequences need pattern matching by the caller.

    The core ATen table (``run_decompositions()`` without arguments) splits
    most of the smooth activations further. Of its results only
    ``aten.elu.default(x, alpha, scale)`` with the SELU constants is mapped,
    to ``selu``.

    ``aten.prelu.default`` takes the weight as a tensor (or a number), which
    the caller reads from the exported program's state dict. A weight with
    several elements gives None. ``aten.rrelu.default`` maps only with
    ``training=False``. ``aten.clamp.default`` maps to ``hardtanh`` (or
    ``relu6``) with both bounds, and to ``relu`` with ``min=0`` alone. A
    graph node or another non-number in a scalar argument gives None.

    Raises
    ------
    ParameterError
        If a numeric argument is outside the catalogue's domain.
    """
    key = _aten_key(str(op_name))
    rule = _ATEN_RULES.get(key) if key is not None else None
    if rule is None:
        return None
    bound = _bind_aten(rule, tuple(args), kwargs or {})
    if bound is None:
        logger.debug("%s: unsupported arguments %r %r", op_name, args, kwargs)
        return None
    return rule.convert(bound)

"""Activations given as PyTorch code: trace them and translate them to sympy.

:func:`translate` traces an ``nn.Module`` or a plain function of one tensor
with :func:`torch.fx.symbolic_trace` and rebuilds the graph as an exact
expression in :data:`symgroups._symbols.X`. Catalogue activations
(``F.leaky_relu``, ``nn.GELU`` as a submodule, ...) become the catalogue's
expression at the parameters found in the graph, and Python floats become
the rational of their decimal text (``0.2`` is ``1/5``), as in the catalogue.

:func:`query_code` proves the group of the translated expression, or, when
some operations have no translation, finds it by black-box numeric discovery
of the code itself (:func:`symgroups._blackbox.discover`).

``F.softplus`` is translated as torch computes it, ``x`` itself where
``beta*x > threshold``, like the catalogue's ``softplus`` entry: the
expression must be the function the code computes, because the group found
is applied to that code's weights.

torch is imported inside the functions, never when this module is imported.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import logging
import math
import numbers
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy

from ._activation import Activation
from ._errors import ExpressionError, UnknownActivationError
from ._symbols import X

logger = logging.getLogger(__name__)

#: ``package.module:name`` as the command line accepts it.
CODE_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")

#: Largest traced graph that is translated, in nodes.
MAX_GRAPH_NODES = 500

#: Largest absolute integer exponent of a translated power, as in the parser.
MAX_POWER = 64


class _Untranslatable(Exception):
    """An operation of the graph that has no sympy translation (internal)."""


@dataclass(frozen=True)
class _Unknown:
    """The value of a node computed from an untranslatable operation."""


_UNKNOWN = _Unknown()


@dataclass(frozen=True)
class Translation:
    """The result of :func:`translate`.

    ``expr`` is the exact expression of the code, or None when
    ``untranslatable`` (the operations without a translation, in graph
    order) is not empty. ``name`` is ``"torch: <qualified name>"``, and
    ``catalogue_name`` the catalogue entry whose expression at its default
    parameters is ``expr``, if one is.
    """

    name: str
    expr: sympy.Expr | None
    untranslatable: tuple[str, ...] = ()
    catalogue_name: str | None = None

    def message(self) -> str:
        """Describe what could not be translated, in one sentence."""
        ops = ", ".join(self.untranslatable)
        return (
            f"{self.name} has operations without a sympy translation ({ops}), so "
            "its group is found by black-box numeric discovery of the code"
        )


# --------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------


def _exact(value: Any) -> sympy.Expr:
    """Convert a Python number or a sympy expression to an exact sympy value."""
    if isinstance(value, sympy.Basic):
        return value
    if isinstance(value, bool):
        raise _Untranslatable(f"boolean constant {value!r}")
    if isinstance(value, numbers.Integral):
        return sympy.Integer(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            raise _Untranslatable(f"constant {number!r}")
        # The decimal text of a float is what its writer meant: 0.2 is 1/5.
        return sympy.Rational(float.__repr__(number))
    raise _Untranslatable(f"constant of type {type(value).__name__}")


def _tensor_number(tensor: Any) -> float | int | None:
    """Return the number in a one-element tensor, or None.

    A float32 or float16 value is read as the shortest decimal text that
    rounds back to it in its own type, so a float32 parameter set to 0.1
    gives 0.1, not 0.10000000149011612. Other float types (bfloat16) give
    the float64 value.
    """
    import torch

    if tensor.numel() != 1 or tensor.is_meta or tensor.dtype == torch.bool:
        return None
    item = tensor.detach().cpu().reshape(-1)[0].item()
    if not tensor.is_floating_point():
        return int(item) if isinstance(item, int) else None
    numpy_type = {torch.float32: np.float32, torch.float16: np.float16}
    kind = numpy_type.get(tensor.dtype)
    if kind is None:
        return float(item)
    return float(str(kind(item)))


# --------------------------------------------------------------------------
# Operations
# --------------------------------------------------------------------------


def _expr(value: Any) -> sympy.Expr:
    if isinstance(value, _Unknown):
        raise _Untranslatable("")
    return _exact(value)


def _condition(value: Any) -> sympy.Basic:
    if value is True:
        return sympy.true
    if value is False:
        return sympy.false
    if isinstance(value, sympy.logic.boolalg.Boolean):
        return value
    raise _Untranslatable("a condition that is not a comparison")


def _power(base: Any, exponent: Any) -> sympy.Expr:
    b, e = _expr(base), _expr(exponent)
    if e.has(X):
        if b.has(X) or not (b.is_number and b.is_positive):
            raise _Untranslatable("pow with a tensor exponent")
        return b**e
    if not e.is_Rational or abs(e) > MAX_POWER:
        raise _Untranslatable(f"pow with exponent {e}")
    return b**e


def _clamp(value: Any, low: Any = None, high: Any = None) -> sympy.Expr:
    result = _expr(value)
    if low is not None:
        result = sympy.Max(result, _expr(low))
    if high is not None:
        result = sympy.Min(result, _expr(high))
    return result


def _where(condition: Any, if_true: Any, if_false: Any) -> sympy.Expr:
    cond = _condition(condition)
    return sympy.Piecewise((_expr(if_true), cond), (_expr(if_false), True))


def _divide(a: Any, b: Any, rounding_mode: Any = None) -> sympy.Expr:
    if rounding_mode is not None:
        raise _Untranslatable(f"div with rounding_mode={rounding_mode!r}")
    return _expr(a) / _expr(b)


def _add(a: Any, b: Any, alpha: Any = 1) -> sympy.Expr:
    return _expr(a) + _expr(alpha) * _expr(b)


def _sub(a: Any, b: Any, alpha: Any = 1) -> sympy.Expr:
    return _expr(a) - _expr(alpha) * _expr(b)


def _rsub(a: Any, b: Any, alpha: Any = 1) -> sympy.Expr:
    return _expr(b) - _expr(alpha) * _expr(a)


def _sigmoid(a: Any) -> sympy.Expr:
    return 1 / (1 + sympy.exp(-_expr(a)))


def _unary(function: Callable[[sympy.Expr], sympy.Expr]) -> Callable[..., Any]:
    def apply(a: Any) -> sympy.Expr:
        return function(_expr(a))

    return apply


def _relation(kind: type) -> Callable[..., Any]:
    def compare(a: Any, b: Any) -> sympy.Basic:
        return kind(_expr(a), _expr(b))

    return compare


def _logical(kind: Callable[..., Any]) -> Callable[..., Any]:
    def combine(*args: Any) -> sympy.Basic:
        return kind(*(_condition(a) for a in args))

    return combine


#: Elementwise operations by name; each takes the input first.
_BASIC: dict[str, Callable[..., Any]] = {
    "add": _add,
    "sub": _sub,
    "subtract": _sub,
    "rsub": _rsub,
    "mul": lambda a, b: _expr(a) * _expr(b),
    "multiply": lambda a, b: _expr(a) * _expr(b),
    "div": _divide,
    "divide": _divide,
    "true_divide": _divide,
    "neg": _unary(lambda a: -a),
    "negative": _unary(lambda a: -a),
    "positive": _unary(lambda a: a),
    "pow": _power,
    "square": _unary(lambda a: a**2),
    "reciprocal": _unary(lambda a: 1 / a),
    "rsqrt": _unary(lambda a: 1 / sympy.sqrt(a)),
    "exp": _unary(sympy.exp),
    "log": _unary(sympy.log),
    "log1p": _unary(lambda a: sympy.log(1 + a)),
    "expm1": _unary(lambda a: sympy.exp(a) - 1),
    "sqrt": _unary(sympy.sqrt),
    "tanh": _unary(sympy.tanh),
    "sigmoid": _sigmoid,
    "expit": _sigmoid,
    "erf": _unary(sympy.erf),
    "erfc": _unary(sympy.erfc),
    "abs": _unary(sympy.Abs),
    "absolute": _unary(sympy.Abs),
    "sign": _unary(sympy.sign),
    "sin": _unary(sympy.sin),
    "cos": _unary(sympy.cos),
    "tan": _unary(sympy.tan),
    "atan": _unary(sympy.atan),
    "arctan": _unary(sympy.atan),
    "sinh": _unary(sympy.sinh),
    "cosh": _unary(sympy.cosh),
    "asinh": _unary(sympy.asinh),
    "arcsinh": _unary(sympy.asinh),
    "clamp": _clamp,
    "clip": _clamp,
    "clamp_min": lambda a, low: _clamp(a, low, None),
    "clamp_max": lambda a, high: _clamp(a, None, high),
    "maximum": lambda a, b: sympy.Max(_expr(a), _expr(b)),
    "minimum": lambda a, b: sympy.Min(_expr(a), _expr(b)),
    "fmax": lambda a, b: sympy.Max(_expr(a), _expr(b)),
    "fmin": lambda a, b: sympy.Min(_expr(a), _expr(b)),
    "where": _where,
    "gt": _relation(sympy.StrictGreaterThan),
    "greater": _relation(sympy.StrictGreaterThan),
    "ge": _relation(sympy.GreaterThan),
    "greater_equal": _relation(sympy.GreaterThan),
    "lt": _relation(sympy.StrictLessThan),
    "less": _relation(sympy.StrictLessThan),
    "le": _relation(sympy.LessThan),
    "less_equal": _relation(sympy.LessThan),
    "eq": _relation(sympy.Eq),
    "ne": _relation(sympy.Ne),
    "logical_and": _logical(sympy.And),
    "logical_or": _logical(sympy.Or),
    "logical_not": _logical(sympy.Not),
    "clone": _unary(lambda a: a),
    "contiguous": _unary(lambda a: a),
}

#: Python operators that fx records as ``call_function`` with these targets.
_OPERATORS: dict[Callable[..., Any], str] = {
    operator.add: "add",
    operator.sub: "sub",
    operator.mul: "mul",
    operator.truediv: "div",
    operator.neg: "neg",
    operator.pos: "positive",
    operator.pow: "pow",
    operator.abs: "abs",
    operator.gt: "gt",
    operator.ge: "ge",
    operator.lt: "lt",
    operator.le: "le",
    operator.eq: "eq",
    operator.ne: "ne",
    operator.and_: "logical_and",
    operator.or_: "logical_or",
    operator.invert: "logical_not",
}


@dataclass(frozen=True)
class _CatalogueCall:
    """A torch function that computes a catalogue entry.

    ``arguments`` are the entry's parameters in the function's positional
    order after the input, each with the function's default (torch 2.13);
    ``ignored`` are arguments that do not change the values (``inplace``).
    ``convert`` maps the bound raw values to an activation.
    """

    entry: str
    arguments: tuple[tuple[str, Any], ...] = ()
    ignored: tuple[str, ...] = ("inplace",)
    convert: Callable[[dict[str, Any]], Activation | None] | None = None


_REQUIRED = object()


def _convert_hardtanh(raw: dict[str, Any]) -> Activation | None:
    from ._catalogue import _activation_from_raw, get_activation

    if (raw["min_val"], raw["max_val"]) == (0, 6):
        # F.relu6 is F.hardtanh(x, 0.0, 6.0) in torch 2.13.
        return get_activation("relu6")
    return _activation_from_raw("hardtanh", raw)


def _convert_rrelu(raw: dict[str, Any]) -> Activation | None:
    from ._catalogue import _activation_from_raw

    if raw.pop("training") is not False:
        raise _Untranslatable("rrelu with training=True (random slopes)")
    return _activation_from_raw("rrelu", raw)


def _convert_gelu(raw: dict[str, Any]) -> Activation | None:
    from ._catalogue import get_activation

    name = {"none": "gelu", "tanh": "gelu_tanh"}.get(str(raw["approximate"]))
    if name is None:
        raise _Untranslatable(f"gelu with approximate={raw['approximate']!r}")
    return get_activation(name)


#: ``torch.nn.functional`` names (and torch aliases) of catalogue activations.
_CATALOGUE_CALLS: dict[str, _CatalogueCall] = {
    "relu": _CatalogueCall("relu"),
    "relu6": _CatalogueCall("relu6"),
    "hardtanh": _CatalogueCall(
        "hardtanh", (("min_val", -1.0), ("max_val", 1.0)), convert=_convert_hardtanh
    ),
    "leaky_relu": _CatalogueCall("leaky_relu", (("negative_slope", 0.01),)),
    "prelu": _CatalogueCall("prelu", (("weight", _REQUIRED),)),
    "rrelu": _CatalogueCall(
        "rrelu",
        (("lower", 1.0 / 8.0), ("upper", 1.0 / 3.0), ("training", False)),
        ignored=("inplace", "generator"),
        convert=_convert_rrelu,
    ),
    "elu": _CatalogueCall("elu", (("alpha", 1.0),)),
    "selu": _CatalogueCall("selu"),
    "celu": _CatalogueCall("celu", (("alpha", 1.0),)),
    "gelu": _CatalogueCall("gelu", (("approximate", "none"),), convert=_convert_gelu),
    "silu": _CatalogueCall("silu"),
    "mish": _CatalogueCall("mish"),
    "softplus": _CatalogueCall("softplus", (("beta", 1.0), ("threshold", 20.0))),
    "hardsigmoid": _CatalogueCall("hardsigmoid"),
    "hardswish": _CatalogueCall("hardswish"),
    "softsign": _CatalogueCall("softsign"),
    "tanhshrink": _CatalogueCall("tanhshrink"),
    "softshrink": _CatalogueCall("softshrink", (("lambd", 0.5),)),
    "hardshrink": _CatalogueCall("hardshrink", (("lambd", 0.5),)),
    "logsigmoid": _CatalogueCall("logsigmoid"),
    "log_sigmoid": _CatalogueCall("logsigmoid"),
    "threshold": _CatalogueCall(
        "threshold", (("threshold", _REQUIRED), ("value", _REQUIRED))
    ),
}


def _catalogue_call(call: _CatalogueCall, args: tuple, kwargs: dict) -> sympy.Expr:
    from ._catalogue import _activation_from_raw

    if not args:
        raise _Untranslatable("no input")
    argument = _expr(args[0])
    names = [name for name, _ in call.arguments]
    if len(args) - 1 > len(names):
        raise _Untranslatable("too many arguments")
    raw = dict(zip(names, args[1:], strict=False))
    for key, value in kwargs.items():
        if key in call.ignored:
            continue
        if key not in names or key in raw:
            raise _Untranslatable(f"argument {key}={value!r}")
        raw[key] = value
    for name, default in call.arguments:
        if name not in raw:
            if default is _REQUIRED:
                raise _Untranslatable(f"missing argument {name}")
            raw[name] = default
    for key, value in raw.items():
        if isinstance(value, _Unknown):
            raise _Untranslatable("")
        if isinstance(value, sympy.Basic):
            if not value.is_Rational:
                raise _Untranslatable(f"{key} that depends on the input")
            raw[key] = float(value) if value.q != 1 else int(value)
    if call.convert is not None:
        activation = call.convert(raw)
    else:
        activation = _activation_from_raw(call.entry, raw)
    if activation is None:
        raise _Untranslatable(f"arguments {raw!r}")
    return activation.expr.subs(X, argument)


# --------------------------------------------------------------------------
# Targets of the traced graph
# --------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _function_table() -> dict[Any, tuple[str, str]]:
    """Map torch callables to ``("basic" | "catalogue", name)``.

    Keys are the function objects themselves (``torch.tanh``,
    ``torch.nn.functional.gelu``, ``operator.add``), looked up by identity.
    """
    import torch
    import torch.nn.functional as F

    table: dict[Any, tuple[str, str]] = {}
    for op, name in _OPERATORS.items():
        table[op] = ("basic", name)
    for namespace in (torch, torch.special):
        for name in _BASIC:
            function = getattr(namespace, name, None)
            if function is not None:
                table.setdefault(function, ("basic", name))
    table[torch.special.expit] = ("basic", "sigmoid")
    table[F.sigmoid] = ("basic", "sigmoid")
    table[F.tanh] = ("basic", "tanh")
    table[torch.max] = ("basic", "maximum")
    table[torch.min] = ("basic", "minimum")
    for name in _CATALOGUE_CALLS:
        for namespace in (F, torch):
            function = getattr(namespace, name, None)
            if function is not None and function not in table:
                table[function] = ("catalogue", name)
    return table


def _call_basic(name: str, args: tuple, kwargs: dict) -> Any:
    handler = _BASIC[name]
    if name in ("maximum", "minimum") and (len(args) != 2 or kwargs):
        raise _Untranslatable("max/min as a reduction")
    if name in ("clamp", "clip") and kwargs:
        kwargs = {"low": kwargs.get("min"), "high": kwargs.get("max")}
    elif name == "clamp_min" and "min" in kwargs:
        kwargs = {"low": kwargs["min"]}
    elif name == "clamp_max" and "max" in kwargs:
        kwargs = {"high": kwargs["max"]}
    elif name in ("where",) and kwargs:
        raise _Untranslatable("where with keyword arguments")
    if "other" in kwargs:
        kwargs = dict(kwargs)
        args = (*args, kwargs.pop("other"))
    if "exponent" in kwargs:
        kwargs = dict(kwargs)
        args = (*args, kwargs.pop("exponent"))
    try:
        return handler(*args, **kwargs)
    except TypeError as error:
        raise _Untranslatable(f"arguments ({error})") from None


def _is_reduction(node: Any) -> bool:
    """Return whether a ``torch.max``/``torch.min`` node reduces instead of comparing.

    ``torch.max(x, 1)`` reduces over dimension 1, while ``torch.max(x, y)``
    with a tensor ``y`` is the elementwise maximum.
    """
    import torch
    import torch.fx

    if node.target not in (torch.max, torch.min):
        return False
    return len(node.args) != 2 or not isinstance(node.args[1], torch.fx.Node)


def _method_name(name: str) -> str:
    if name.endswith("_") and not name.endswith("__"):
        return name[:-1]  # in-place variants compute the same values
    return name


class _Translator:
    """Rebuilds one traced graph node by node."""

    def __init__(self, graph_module: Any) -> None:
        self.module = graph_module
        self.values: dict[Any, Any] = {}
        self.untranslatable: list[str] = []
        self.inputs = 0

    def run(self) -> sympy.Expr | None:
        nodes = list(self.module.graph.nodes)
        if len(nodes) > MAX_GRAPH_NODES:
            self.untranslatable.append(
                f"a graph of {len(nodes)} nodes (at most {MAX_GRAPH_NODES})"
            )
            return None
        result: Any = _UNKNOWN
        for node in nodes:
            if node.op == "output":
                result = self._load(node.args[0])
                break
            self.values[node] = self._node_value(node)
        if self.untranslatable:
            return None
        if isinstance(result, _Unknown) or not isinstance(result, sympy.Expr):
            self.untranslatable.append("an output that is not one tensor")
            return None
        return result

    def _load(self, value: Any) -> Any:
        import torch.fx

        if isinstance(value, torch.fx.Node):
            return self.values[value]
        if isinstance(value, (tuple, list)):
            return type(value)(self._load(v) for v in value)
        if isinstance(value, dict):
            return {k: self._load(v) for k, v in value.items()}
        return value

    def _node_value(self, node: Any) -> Any:
        args = self._load(tuple(node.args))
        kwargs = self._load(dict(node.kwargs))
        label = _node_label(node)
        if any(isinstance(v, _Unknown) for v in (*args, *kwargs.values())):
            return _UNKNOWN
        try:
            return self._evaluate(node, args, kwargs)
        except _Untranslatable as error:
            detail = str(error)
            self.untranslatable.append(f"{label} ({detail})" if detail else label)
            return _UNKNOWN

    def _evaluate(self, node: Any, args: tuple, kwargs: dict) -> Any:
        if node.op == "placeholder":
            self.inputs += 1
            if self.inputs == 1:
                return X
            if node.args:
                return node.args[0]  # a parameter with a default
            raise _Untranslatable("a second input")
        if node.op == "get_attr":
            return self._attribute(node.target)
        if node.op == "call_function":
            if _is_reduction(node):
                raise _Untranslatable("a reduction over a dimension")
            entry = _function_table().get(node.target)
            if entry is None:
                raise _Untranslatable("")
            kind, name = entry
            if kind == "catalogue":
                return _catalogue_call(_CATALOGUE_CALLS[name], args, kwargs)
            return _call_basic(name, args, kwargs)
        if node.op == "call_method":
            name = _method_name(str(node.target))
            if name in _CATALOGUE_CALLS:
                return _catalogue_call(_CATALOGUE_CALLS[name], args, kwargs)
            if name in _BASIC:
                return _call_basic(name, args, kwargs)
            if name in ("float", "double", "to", "type_as"):
                return _expr(args[0])
            raise _Untranslatable("")
        if node.op == "call_module":
            return self._submodule(node.target, args, kwargs)
        raise _Untranslatable("")

    def _attribute(self, target: str) -> sympy.Expr:
        import torch

        value: Any = self.module
        for part in target.split("."):
            value = getattr(value, part)
        if isinstance(value, torch.Tensor):
            number = _tensor_number(value)
            if number is None:
                raise _Untranslatable(f"tensor of shape {tuple(value.shape)}")
            return _exact(number)
        return _exact(value)

    def _submodule(self, target: str, args: tuple, kwargs: dict) -> sympy.Expr:
        from torch import nn

        from ._catalogue import activation_from_torch_module

        module = self.module.get_submodule(target)
        if len(args) != 1 or kwargs:
            raise _Untranslatable("a module called with several arguments")
        argument = _expr(args[0])
        if isinstance(module, nn.Dropout) and not module.training:
            return argument  # dropout in eval mode is the identity
        activation = activation_from_torch_module(module)
        if activation is None:
            raise _Untranslatable("not a catalogue activation")
        return activation.expr.subs(X, argument)


def _node_label(node: Any) -> str:
    target = node.target
    if node.op == "call_function":
        name = getattr(target, "__name__", None) or repr(target)
        module = getattr(target, "__module__", None) or ""
        if module.startswith("torch._C._special"):
            return f"torch.special.{name.removeprefix('special_')}"
        if module.startswith("torch._C._nn") or module == "torch.nn.functional":
            return f"torch.nn.functional.{name.lstrip('_')}"
        if module.startswith("torch._C") or module == "torch":
            return f"torch.{name}"
        if module == "_operator":
            return f"operator.{name}"
        return f"{module}.{name}" if module else name
    if node.op == "call_method":
        return f"Tensor.{target}"
    if node.op == "call_module":
        module = node.graph.owning_module.get_submodule(target)
        return f"module {target} ({type(module).__name__})"
    return f"{node.op} {target}"


# --------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------


def is_code(spec: object) -> bool:
    """Return whether ``spec`` is code (a torch module or a callable), not text."""
    from ._activation import Activation as _Activation

    if isinstance(spec, (str, sympy.Basic, _Activation)):
        return False
    return callable(spec) and not isinstance(spec, sympy.FunctionClass)


def code_name(fn: object) -> str:
    """Return ``"torch: <module>.<qualified name>"`` for a module or function."""
    from ._blackbox import _callable_name

    return f"torch: {_callable_name(fn)}"


def _as_module(fn: Any) -> Any:
    from torch import nn

    if isinstance(fn, nn.Module):
        return fn

    class FunctionModule(nn.Module):
        def forward(self, x):  # noqa: ANN001, ANN202 - traced, not called
            return fn(x)

    return FunctionModule()


@functools.lru_cache(maxsize=1)
def _catalogue_expressions() -> dict[str, str]:
    from ._catalogue import CATALOGUE
    from ._parse import expression_text

    table: dict[str, str] = {}
    for name, entry in CATALOGUE.items():
        table.setdefault(expression_text(entry.expression()), name)
    return table


def translate(fn: Any, *, step_timeout: float | None = None) -> Translation:
    """Trace ``fn`` with ``torch.fx.symbolic_trace`` and translate it to sympy.

    ``fn`` is a ``torch.nn.Module`` or a function of one tensor. The result
    satisfies ``fn(t) == expr(t)`` elementwise up to float64 rounding for
    every real ``t`` (torch evaluates in the module's dtype). Operations
    without a translation are listed in ``untranslatable``, and then
    ``expr`` is None; so is a trace that fails (data-dependent control flow).
    The translation runs under a step deadline of ``step_timeout`` seconds.
    """
    import torch.fx

    from ._parse import check_expression, expression_text
    from ._worker import DEFAULT_STEP_TIMEOUT, call_with_deadline

    name = code_name(fn)
    try:
        graph_module = torch.fx.symbolic_trace(_as_module(fn))
    except Exception as error:  # any failure of user code or of the tracer
        reason = " ".join(f"{type(error).__name__}: {error}".split())[:200]
        return Translation(name, None, (f"torch.fx.symbolic_trace ({reason})",))
    translator = _Translator(graph_module)
    seconds = DEFAULT_STEP_TIMEOUT if step_timeout is None else step_timeout
    finished, expr = call_with_deadline(translator.run, seconds=seconds)
    if not finished:
        return Translation(name, None, (f"the translation ({seconds:g} s deadline)",))
    if expr is None:
        return Translation(name, None, tuple(translator.untranslatable))
    try:
        expr = check_expression(expr)
    except ExpressionError as error:
        return Translation(name, None, (f"the translated expression ({error})",))
    catalogue_name = _catalogue_expressions().get(expression_text(expr))
    return Translation(name, expr, (), catalogue_name)


def activation_from_code(fn: Any) -> Activation:
    """Return the :class:`Activation` that the code ``fn`` computes.

    Raises
    ------
    ExpressionError
        When some operations have no translation; the message lists them.
        :func:`symgroups.query` falls back to numeric discovery instead.
    """
    translation = translate(fn)
    if translation.expr is None:
        ops = ", ".join(translation.untranslatable)
        raise ExpressionError(
            f"{translation.name} has operations without a sympy translation "
            f"({ops}); symgroups.query finds its group numerically instead"
        )
    return Activation(translation.name, translation.expr)


def query_code(
    fn: Any,
    *,
    seed: int,
    timeout: float,
    step_timeout: float,
    use_cache: bool,
) -> Any:
    """Compute the intertwiner group of code, proved when it translates.

    A translated expression goes through :func:`symgroups.query`; when it is
    a catalogue entry at its default parameters, the catalogue's result is
    used. Otherwise a warning lists the untranslatable operations and
    :func:`symgroups._blackbox.discover` finds the group from the code's
    values, with status ``numerically_verified`` at best.
    """
    from ._blackbox import discover
    from ._query import query

    translation = translate(fn, step_timeout=step_timeout)
    if translation.expr is None:
        message = translation.message()
        logger.warning("%s", message)
        return discover(
            fn, seed=seed, name=translation.name, timeout=timeout, notes=[message]
        )
    activation = Activation(translation.name, translation.expr)
    spec: Any = activation
    notes: list[str] = []
    if translation.catalogue_name is not None:
        spec = translation.catalogue_name
        notes.append(
            f"the traced code computes the catalogue entry "
            f"{translation.catalogue_name!r} at its default parameters"
        )
    result = query(
        spec, seed=seed, timeout=timeout, step_timeout=step_timeout,
        use_cache=use_cache,
    )  # fmt: skip
    return dataclasses.replace(
        result, activation=activation, notes=[*notes, *result.notes]
    )


def load_code(spec: str) -> Any:
    """Import ``package.module:name`` and return the activation it names.

    The module is imported, which runs its code. A ``torch.nn.Module``
    subclass is instantiated with no arguments; any other callable is
    returned as it is.

    Raises
    ------
    UnknownActivationError
        When the text is not ``package.module:name``, the module cannot be
        imported, the attribute is missing, is not callable, or the class
        cannot be instantiated without arguments.
    """
    if not CODE_SPEC.match(spec):
        raise UnknownActivationError(
            f"invalid code reference {spec!r}: expected package.module:name"
        )
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # import runs arbitrary code
        raise UnknownActivationError(
            f"cannot import module {module_name!r} of {spec!r}: "
            f"{type(error).__name__}: {error}"
        ) from None
    value: Any = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise UnknownActivationError(
                f"module {module_name!r} has no attribute {attribute!r} (from {spec!r})"
            )
        value = getattr(value, part)
    from torch import nn

    if isinstance(value, type) and issubclass(value, nn.Module):
        try:
            return value()
        except Exception as error:  # the constructor is user code
            raise UnknownActivationError(
                f"cannot instantiate {spec!r} without arguments: "
                f"{type(error).__name__}: {error}"
            ) from None
    if not callable(value):
        raise UnknownActivationError(
            f"{spec!r} is not callable (it is of type {type(value).__name__}); "
            "expected an nn.Module class or instance, or a function of one tensor"
        )
    return value


def is_code_spec(text: str) -> bool:
    """Return whether ``text`` has the form ``package.module:name``."""
    return bool(CODE_SPEC.match(text.strip()))

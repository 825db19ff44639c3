"""Safe conversion between activation text, sympy expressions and their limits.

sympy's ``sympify`` and ``parse_expr`` run ``eval`` on their input, so user text
never reaches them. :func:`parse_expression` reads the text with
``ast.parse(text, mode="eval")``, checks every node against a whitelist and builds
the sympy objects itself by calling constructors on already built sympy objects.
No string is ever passed to sympy.

Every expression that this module or :mod:`symgroups._exprjson` accepts satisfies
the same invariants, whichever way it came in (text, a sympy object, JSON):

* its only symbol is :data:`symgroups._symbols.X`, its only constants are exact
  rationals, ``pi`` and ``E``, and its only functions are those of
  :data:`FUNCTION_NAMES`; conditions appear only inside ``Piecewise``;
* every numerator and denominator has at most :data:`MAX_NUMBER_DIGITS` digits
  (:data:`MAX_VALUE_DIGITS` in a value of :func:`parse_number`);
* a power has a rational exponent of absolute value at most :data:`MAX_EXPONENT`,
  or a positive numeric base (as in ``2**x``) and an exponent whose numbers are at
  most :data:`MAX_EXPONENT` in absolute value;
* in ``exp(...)``, every term of the argument that contains ``log`` has numbers
  of absolute value at most :data:`MAX_EXPONENT` outside the ``log`` arguments,
  because sympy rewrites ``exp(c*log(b))`` into the exact power ``b**c``;
* ``Max`` and ``Min`` together take at most :data:`MAX_MINMAX_ARGUMENTS`
  arguments, because sympy compares their arguments pairwise when it builds them;
* the tree has at most :data:`MAX_NODES` nodes and depth :data:`MAX_DEPTH`, and
  :func:`expression_text` writes it as text that :func:`parse_expression` accepts;
* building it again from its arguments, or from its text, gives it back.

The numeric checks run after every constructor call, so an intermediate result
such as ``9**9`` in ``9**9**9`` is rejected before sympy raises it to a power.
The sympy behaviour that these rules guard against was checked with sympy 1.14.
"""

from __future__ import annotations

import ast
import functools
import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sympy
from sympy.core.relational import Relational
from sympy.functions.elementary.piecewise import ExprCondPair
from sympy.logic.boolalg import Boolean
from sympy.printing.precedence import precedence
from sympy.printing.str import StrPrinter

from ._errors import ExpressionError
from ._symbols import X

logger = logging.getLogger(__name__)

#: Maximum length of an expression text, in characters.
MAX_TEXT_LENGTH = 2000
#: Maximum number of syntax-tree nodes of an expression text, of a sympy
#: expression tree and of an expression JSON tree.
MAX_NODES = 500
#: Maximum nesting depth of those trees; a single leaf has depth 1. In text, a
#: chain such as ``a + b - c``, ``a*b/c`` or ``p & q | r`` counts as one level.
MAX_DEPTH = 40
#: Maximum absolute value of an integer literal in :func:`parse_expression`
#: text. :func:`parse_number` reads the exact numbers that ``str`` writes, so it
#: accepts integer literals of up to :data:`MAX_VALUE_DIGITS` digits.
MAX_INTEGER = 10**12
#: Maximum absolute value of a rational exponent, and of the numbers inside a
#: variable exponent or a ``log`` term of ``exp``.
MAX_EXPONENT = 64
#: Maximum number of decimal digits of the numerator and of the denominator of
#: any exact number in an expression, including numbers that sympy computes and
#: decimal literals.
MAX_NUMBER_DIGITS = 40
#: Maximum number of decimal digits of the numerator and of the denominator of a
#: value of :func:`parse_number`, such as a Taylor coefficient in a certificate.
#: ``sqrt`` of the 500-digit integers tried took 35-110 ms, and 0.2 s at 1000
#: digits (sympy 1.14, one CPU core).
MAX_VALUE_DIGITS = 500
#: Maximum total number of arguments of all ``Max`` and ``Min`` calls.
MAX_MINMAX_ARGUMENTS = 8

# Maximum length of the excerpt of an offending text or value in a message.
_EXCERPT_LENGTH = 60
# Maximum size of a number that a message shows in full, in bits (80 digits).
_SHOWN_NUMBER_BITS = 266
# Largest sympy tree that an error message prints; larger ones show a class name.
_DESCRIBE_NODES = 200

# Rebuild rounds that finish() tries before it calls an expression unstable.
_STABILIZE_ROUNDS = 3

_EXPR = "expr"
_COND = "cond"
_PAIR = "pair"
_NUMBER = "number"


@dataclass(frozen=True)
class _Signature:
    """How to build one sympy class from already built arguments.

    ``arg_kinds`` gives the kind of each argument; the last kind repeats for
    variadic functions. Kinds are ``expr`` (a sympy ``Expr``), ``cond`` (a
    ``Boolean``), ``pair`` (an ``ExprCondPair``) and ``number`` (an ``Expr``
    without ``x``).
    """

    build: Callable[..., sympy.Basic]
    min_args: int
    max_args: int | None
    arg_kinds: tuple[str, ...]


def _unary(build: Callable[..., sympy.Basic]) -> _Signature:
    return _Signature(build, 1, 1, (_EXPR,))


def _relational(build: Callable[..., sympy.Basic]) -> _Signature:
    return _Signature(build, 2, 2, (_EXPR, _EXPR))


# Keyed by the sympy class name, which is also the "f" name in expression JSON.
_SIGNATURES: dict[str, _Signature] = {
    "Add": _Signature(sympy.Add, 2, None, (_EXPR,)),
    "Mul": _Signature(sympy.Mul, 2, None, (_EXPR,)),
    "Pow": _Signature(sympy.Pow, 2, 2, (_EXPR, _EXPR)),
    "Abs": _unary(sympy.Abs),
    "Max": _Signature(sympy.Max, 1, MAX_MINMAX_ARGUMENTS, (_EXPR,)),
    "Min": _Signature(sympy.Min, 1, MAX_MINMAX_ARGUMENTS, (_EXPR,)),
    "sign": _unary(sympy.sign),
    "Heaviside": _Signature(sympy.Heaviside, 1, 2, (_EXPR, _NUMBER)),
    "Piecewise": _Signature(sympy.Piecewise, 1, None, (_PAIR,)),
    "ExprCondPair": _Signature(ExprCondPair, 2, 2, (_EXPR, _COND)),
    "exp": _unary(sympy.exp),
    "log": _unary(sympy.log),
    "sin": _unary(sympy.sin),
    "cos": _unary(sympy.cos),
    "tan": _unary(sympy.tan),
    "tanh": _unary(sympy.tanh),
    "sinh": _unary(sympy.sinh),
    "cosh": _unary(sympy.cosh),
    "atan": _unary(sympy.atan),
    "asinh": _unary(sympy.asinh),
    "erf": _unary(sympy.erf),
    "erfc": _unary(sympy.erfc),
    "Equality": _relational(sympy.Eq),
    "Unequality": _relational(sympy.Ne),
    "StrictLessThan": _relational(sympy.Lt),
    "LessThan": _relational(sympy.Le),
    "StrictGreaterThan": _relational(sympy.Gt),
    "GreaterThan": _relational(sympy.Ge),
    "And": _Signature(sympy.And, 1, None, (_COND,)),
    "Or": _Signature(sympy.Or, 1, None, (_COND,)),
    "Not": _Signature(sympy.Not, 1, 1, (_COND,)),
}

#: Class names that expression JSON may use in ``{"f": ...}``.
CLASS_NAMES: tuple[str, ...] = tuple(_SIGNATURES)

# Exact sympy classes accepted by check_expression, mapped to their signature
# key. Each build function in _SIGNATURES is the sympy class itself.
_CLASS_TO_NAME: dict[type, str] = {
    signature.build: name for name, signature in _SIGNATURES.items()
}

# Function names in expression text, mapped to signature keys. ``sqrt`` is
# built as a power with exponent 1/2.
_TEXT_FUNCTIONS: dict[str, str] = {
    "Abs": "Abs",
    "abs": "Abs",
    "Max": "Max",
    "max": "Max",
    "Min": "Min",
    "min": "Min",
    "sign": "sign",
    "Heaviside": "Heaviside",
    "Piecewise": "Piecewise",
    "exp": "exp",
    "log": "log",
    "sqrt": "Pow",
    "sin": "sin",
    "cos": "cos",
    "tan": "tan",
    "tanh": "tanh",
    "sinh": "sinh",
    "cosh": "cosh",
    "atan": "atan",
    "asinh": "asinh",
    "erf": "erf",
    "erfc": "erfc",
    "Eq": "Equality",
    "Ne": "Unequality",
    "And": "And",
    "Or": "Or",
    "Not": "Not",
}

#: Function names accepted in expression text.
FUNCTION_NAMES: tuple[str, ...] = tuple(_TEXT_FUNCTIONS)

_CONDITION_FUNCTIONS = frozenset({"Eq", "Ne", "And", "Or", "Not"})
_MINMAX_FUNCTIONS = frozenset({"Max", "max", "Min", "min"})
_CONSTANTS: dict[str, sympy.Expr] = {"pi": sympy.pi, "E": sympy.E}

_ACCEPTED = (
    "expressions may use x, numbers, pi, E, the operators + - * / ** and calls "
    "of functions such as exp(x)"
)
_FUNCTION_LIST = ", ".join(FUNCTION_NAMES)

_ARITHMETIC_OPERATORS = frozenset(
    {ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.BitAnd, ast.BitOr}
)
_COMPARISONS: dict[type, str] = {
    ast.Lt: "StrictLessThan",
    ast.LtE: "LessThan",
    ast.Gt: "StrictGreaterThan",
    ast.GtE: "GreaterThan",
}

# Syntax nodes with a fixed wording for their rejection.
_REJECTED_SYNTAX: dict[type, str] = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscript",
    ast.Lambda: "lambda",
    ast.ListComp: "comprehension",
    ast.SetComp: "comprehension",
    ast.DictComp: "comprehension",
    ast.GeneratorExp: "comprehension",
    ast.JoinedStr: "f-string",
    ast.FormattedValue: "f-string",
    ast.Starred: "starred expression",
    ast.IfExp: "conditional expression",
    ast.NamedExpr: "assignment expression",
    ast.List: "list",
    ast.Set: "set",
    ast.Dict: "dict",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
}

# Float literal text after removing underscores: digits, fraction, exponent.
_DECIMAL_PATTERN = re.compile(r"([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?")

Where = Callable[[], str]


def _excerpt(value: object) -> str:
    """Return the quoted text of ``value``, cut to _EXCERPT_LENGTH characters."""
    text = value if isinstance(value, str) else _describe(value)
    if len(text) > _EXCERPT_LENGTH:
        text = text[: _EXCERPT_LENGTH - 3] + "..."
    return repr(text)


def _describe(value: object) -> str:
    if isinstance(value, sympy.Basic):
        if _tree_size(value, _DESCRIBE_NODES) > _DESCRIBE_NODES:
            return f"{type(value).__name__}(...)"
        try:
            return expression_text(value)
        except (ValueError, TypeError, RecursionError):
            return type(value).__name__
    return repr(value)


def _tree_size(expr: sympy.Basic, limit: int) -> int:
    """Return the node count of ``expr``, or ``limit + 1`` if it is larger."""
    count = 0
    stack = [expr]
    while stack and count <= limit:
        count += 1
        stack.extend(stack.pop().args)
    return count


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


# ---------------------------------------------------------------------------
# Exact numbers


def _number_text(p: int, q: int = 1) -> str:
    """Return ``p/q`` as text, or its size for numbers too long to show."""
    if max(abs(p), q).bit_length() > _SHOWN_NUMBER_BITS:
        digits = int(max(abs(p), q).bit_length() * math.log10(2)) + 1
        return f"of about {digits} digits"
    return str(p) if q == 1 else f"{p}/{q}"


@functools.cache
def _digit_bound(max_digits: int) -> int:
    return 10**max_digits


def _check_number_size(
    p: int, q: int, where: Where, max_digits: int = MAX_NUMBER_DIGITS
) -> None:
    bound = _digit_bound(max_digits)
    if abs(p) >= bound or q >= bound:
        raise ExpressionError(
            f"number {_number_text(p, q)} {where()} is too long; exact numbers may "
            f"have at most {max_digits} digits in the numerator and in the "
            f"denominator"
        )


def decimal_to_fraction(
    text: str, where: Where, max_digits: int = MAX_NUMBER_DIGITS
) -> tuple[int, int]:
    """Convert decimal text such as ``1.5e-3`` exactly to a reduced ``(p, q)``.

    The law is ``p / q == Fraction(text)`` with ``q > 0``. The text may have a
    sign, underscores between digits and an exponent. A number with more than
    ``max_digits`` digits in its numerator or denominator is rejected,
    and a far-out exponent is rejected before any power of ten is computed.
    """
    body = text.strip().replace("_", "")
    sign = 1
    if body.startswith(("+", "-")):
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    match = _DECIMAL_PATTERN.fullmatch(body)
    if match is None or not (match.group(1) or match.group(2)):
        raise ExpressionError(
            f"decimal number {_excerpt(text)} {where()} is invalid; expected "
            f"digits with an optional fraction and exponent, such as 1.5e-3"
        )
    fraction = match.group(2) or ""
    exponent_text = match.group(3) or "0"
    digits = (match.group(1) + fraction).lstrip("0")
    if not digits:
        return 0, 1
    significant = digits.rstrip("0")
    too_large = ExpressionError(
        f"decimal number {_excerpt(text)} {where()} has too many digits or too "
        f"large an exponent; exact numbers may have at most {max_digits} "
        f"digits in their numerator and denominator"
    )
    if len(significant) > max_digits or len(exponent_text) > 6:
        raise too_large
    # value = significant * 10**scale
    scale = int(exponent_text) - len(fraction) + len(digits) - len(significant)
    if abs(scale) > 2 * max_digits:
        raise too_large
    mantissa = sign * int(significant)
    if scale >= 0:
        p, q = mantissa * 10**scale, 1
    else:
        common = math.gcd(mantissa, 10**-scale)
        p, q = mantissa // common, 10**-scale // common
    _check_number_size(p, q, where, max_digits)
    return p, q


# ---------------------------------------------------------------------------
# Checks shared by every way of building an expression


def _rationals_outside_log(expr: sympy.Basic) -> list[sympy.Rational]:
    """Return the rational numbers in ``expr``, not looking inside ``log``."""
    found = []
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, sympy.Rational):
            found.append(node)
        elif not isinstance(node, sympy.log):
            stack.extend(node.args)
    return found


def _too_large(number: sympy.Rational) -> bool:
    return abs(number.p) > MAX_EXPONENT * number.q


def _check_exp_argument(argument: sympy.Expr, where: Where) -> None:
    """Raise unless sympy can build ``exp(argument)`` at a bounded cost.

    sympy turns ``exp(c*log(b))`` into the exact power ``b**c`` (and the terms
    of a sum one by one), so a ``log`` term may carry only numbers of absolute
    value at most :data:`MAX_EXPONENT`.
    """
    for term in sympy.Add.make_args(argument):
        if not term.has(sympy.log):
            continue
        for number in _rationals_outside_log(term):
            if _too_large(number):
                raise ExpressionError(
                    f"exp argument term {_excerpt(term)} {where()} contains log and "
                    f"the number {_number_text(number.p, number.q)}; next to log, "
                    f"exp accepts numbers of absolute value at most {MAX_EXPONENT} "
                    f"because exp(c*log(b)) becomes the exact power b**c"
                )


def _check_power(base: sympy.Expr, exponent: sympy.Expr, where: Where) -> None:
    """Raise unless ``base**exponent`` is real-typed and cheap to build.

    A rational exponent must have absolute value at most :data:`MAX_EXPONENT`,
    and a numeric base must then be non-negative unless the exponent is an
    integer. Any other exponent needs a positive numeric base (``2**x`` is
    ``exp(x*log(2))``) and may contain numbers of absolute value at most
    :data:`MAX_EXPONENT` only, so evaluating it at small ``x`` stays cheap.
    """
    if isinstance(exponent, sympy.Rational):
        if _too_large(exponent):
            raise ExpressionError(
                f"exponent {_number_text(exponent.p, exponent.q)} {where()} is too "
                f"large; a power accepts a rational exponent of absolute value at "
                f"most {MAX_EXPONENT}"
            )
        if base.is_number and not exponent.is_integer:
            if base.is_nonnegative is not True:
                raise ExpressionError(
                    f"power {where()} raises the number {_excerpt(base)}, which is "
                    f"negative or of unknown sign, to a fractional exponent; that "
                    f"is not real, so a fractional power accepts only a "
                    f"non-negative numeric base"
                )
        return
    if base is sympy.E:
        _check_exp_argument(exponent, where)
        return
    if not base.is_number:
        raise ExpressionError(
            f"power {where()} has the base {_excerpt(base)}, which contains x, and "
            f"the exponent {_excerpt(exponent)}, which is not a rational number; "
            f"a base with x accepts only rational exponents of absolute value at "
            f"most {MAX_EXPONENT}, so write exp(e*log(b)) for b**e"
        )
    if base.is_positive is not True:
        raise ExpressionError(
            f"power {where()} has the base {_excerpt(base)}, which is not shown "
            f"positive, and a non-rational exponent; such a power accepts only a "
            f"positive numeric base"
        )
    # NOTE: this bounds the cost only for small x. Substituting a large number
    # for x in 2**(64*x) or exp(64*x*log(2)) still makes sympy compute a huge
    # exact power, so callers should substitute small values.
    for number in _rationals_outside_log(exponent):
        if _too_large(number):
            raise ExpressionError(
                f"exponent {_excerpt(exponent)} {where()} contains the number "
                f"{_number_text(number.p, number.q)}; a non-rational exponent "
                f"accepts numbers of absolute value at most {MAX_EXPONENT}"
            )


def _max_digits(allow_variable: bool) -> int:
    """Return the digit limit of exact numbers in expressions or in numbers."""
    return MAX_NUMBER_DIGITS if allow_variable else MAX_VALUE_DIGITS


def _kind(value: sympy.Basic) -> str:
    # A sympy Symbol is both an Expr and a Boolean; here it is always x.
    if isinstance(value, sympy.Expr):
        return _EXPR
    if isinstance(value, ExprCondPair):
        return _PAIR
    if isinstance(value, Boolean):
        return _COND
    return "other"


_KIND_WORDS = {
    _EXPR: "an expression",
    _COND: "a condition such as x > 0",
    _PAIR: "a pair (expression, condition)",
    _NUMBER: "a number without x",
}


class ExpressionBuilder:
    """Build sympy objects from checked parts, checking every result.

    Each method returns a sympy object that satisfies the invariants listed in
    the module docstring, or raises :class:`ExpressionError`. ``where`` is a
    function that returns the location phrase for messages (``in 'x**x'``,
    ``at args[1]``); it is called only when a check fails. ``allow_variable``
    is ``False`` for numbers, where ``x`` is rejected.
    """

    def __init__(self, *, allow_variable: bool = True) -> None:
        self.allow_variable = allow_variable
        self.max_digits = _max_digits(allow_variable)
        # Subtrees that already passed _inspect; sympy shares them between results.
        self._inspected: set[sympy.Basic] = set()

    def number(self, p: int, q: int, where: Where) -> sympy.Rational:
        """Return the exact number ``p/q``."""
        _check_number_size(p, q, where, self.max_digits)
        return sympy.Rational(p, q)

    def variable(self, where: Where) -> sympy.Symbol:
        """Return :data:`symgroups._symbols.X`."""
        if not self.allow_variable:
            raise ExpressionError(
                f"variable x {where()} is not accepted in a number; a number may "
                f"use digits, pi, E, arithmetic and functions such as sqrt(2)"
            )
        return X

    def apply(
        self, name: str, args: Sequence[sympy.Basic], where: Where
    ) -> sympy.Basic:
        """Build ``name(*args)`` for a class name of :data:`CLASS_NAMES`."""
        signature = _SIGNATURES[name]

        count = len(args)
        if count < signature.min_args or (
            signature.max_args is not None and count > signature.max_args
        ):
            raise ExpressionError(
                f"{name} {where()} takes "
                f"{_arity_text(signature.min_args, signature.max_args)}, got {count}"
            )
        for index, argument in enumerate(args):
            kind = signature.arg_kinds[min(index, len(signature.arg_kinds) - 1)]
            self._check_kind(name, index, argument, kind, where)

        if name == "Pow":
            _check_power(args[0], args[1], where)
        elif name == "exp":
            _check_exp_argument(args[0], where)

        # NOTE: sympy decides the sign of numeric arguments of Abs, sign,
        # Heaviside, Max, Min and comparisons numerically. For a value that is
        # zero but not visibly so, such as sqrt(5 + 2*sqrt(6)) - sqrt(2) - sqrt(3),
        # that took 50-100 ms each (sympy 1.14, one CPU core, cold cache), and
        # only MAX_NODES bounds how many one expression contains.
        try:
            result = signature.build(*args)
        except (TypeError, ValueError, ArithmeticError, NotImplementedError) as error:
            logger.debug("sympy failed to build %s %s", name, where(), exc_info=True)
            raise ExpressionError(
                f"sympy could not build {name} {where()}: {_first_line(error)}"
            ) from error

        self._inspect(result, where)
        return result

    @staticmethod
    def _check_kind(
        name: str, index: int, argument: sympy.Basic, kind: str, where: Where
    ) -> None:
        actual = _kind(argument)
        if kind == _NUMBER:
            ok = actual == _EXPR and not argument.free_symbols
        else:
            ok = actual == kind
        if not ok:
            raise ExpressionError(
                f"argument {index + 1} of {name} {where()} is "
                f"{_excerpt(argument)}; expected {_KIND_WORDS[kind]}"
            )

    def _inspect(self, result: sympy.Basic, where: Where) -> None:
        """Check every node of ``result`` that no earlier call has checked."""
        stack = [result]
        while stack:
            node = stack.pop()
            if node in self._inspected:
                continue
            _check_node(node, where, allow_variable=self.allow_variable)
            self._inspected.add(node)
            stack.extend(node.args)

    def finish(self, result: sympy.Basic, where: Where) -> sympy.Expr:
        """Check a finished expression and return its stable form.

        sympy does not always reach its final form in one pass: ``Abs(-Abs(x))``
        evaluates to ``Abs(Abs(x))``, which evaluates to ``Abs(x)`` when built
        again, and ``2*((x + 1)*sin(x))`` prints as text that parses to
        ``(2*x + 2)*sin(x)``. The returned ``e`` is therefore rebuilt from its
        arguments and from :func:`expression_text` until both give ``e`` back,
        which makes the text and JSON round trips exact.
        """
        self._check_finished(result, where)
        for _ in range(_STABILIZE_ROUNDS):
            rebuilt = _SympyTranslator(self).rebuild(result)
            text = expression_text(rebuilt)
            try:
                reparsed = _build_from_text(text, allow_variable=self.allow_variable)
            except ExpressionError as error:
                raise ExpressionError(
                    f"the expression {where()} fails a check once sympy evaluates "
                    f"it: {error}"
                ) from error
            if rebuilt == result and reparsed == result:
                return result
            result = reparsed
            self._check_finished(result, where)
        raise ExpressionError(
            f"the expression {where()} has no stable form: sympy evaluates it "
            f"differently each time it is rebuilt; write it in a simpler form"
        )

    def _check_finished(self, result: sympy.Basic, where: Where) -> None:
        if _kind(result) != _EXPR:
            raise ExpressionError(
                f"the expression {where()} is a condition; expected an expression, "
                f"and conditions are accepted only inside Piecewise"
            )
        self._inspect(result, where)
        _check_tree(result, where)
        if not self.allow_variable and result.is_real is not True:
            raise ExpressionError(
                f"the value {where()} is not shown to be a finite real number; "
                f"expected a real number such as 1/3"
            )


def _text_arity(name: str) -> tuple[int, int | None]:
    """Return the minimum and maximum argument count of a text function."""
    if name == "sqrt":
        return 1, 1
    signature = _SIGNATURES[_TEXT_FUNCTIONS[name]]
    return signature.min_args, signature.max_args


def _arity_text(low: int, high: int | None) -> str:
    if high is None:
        return f"at least {low} argument{'s' if low != 1 else ''}"
    if low == high:
        return f"{low} argument{'s' if low != 1 else ''}"
    return f"{low} to {high} arguments"


_NON_REAL_ATOMS = {
    sympy.zoo: "complex infinity (zoo), as from a division by zero",
    sympy.nan: "an undefined value (nan)",
    sympy.oo: "infinity",
    -sympy.oo: "negative infinity",
    sympy.I: "the imaginary unit I",
}


def _check_node(node: sympy.Basic, where: Where, *, allow_variable: bool) -> None:
    """Check one node against the whitelist and the numeric limits."""
    if isinstance(node, sympy.Rational):
        max_digits = _max_digits(allow_variable)
        _check_number_size(int(node.p), int(node.q), where, max_digits)
        return
    if node is sympy.pi or node is sympy.E or node is sympy.true or node is sympy.false:
        return
    if node == X:
        if not allow_variable:
            raise ExpressionError(
                f"the value {where()} contains x; a number may not contain x"
            )
        return
    name = _CLASS_TO_NAME.get(type(node))
    if name is None:
        reason = _NON_REAL_ATOMS.get(node)
        if reason is not None:
            raise ExpressionError(
                f"the expression {where()} evaluates to {_excerpt(node)}, which is "
                f"{reason}; expressions must be real and finite"
            )
        raise ExpressionError(
            f"the expression {where()} evaluates to {_excerpt(node)}, whose "
            f"{type(node).__name__} is not accepted; the accepted functions are "
            f"{_FUNCTION_LIST}"
        )
    if name == "Pow":
        _check_power(node.base, node.exp, where)
    elif name == "exp":
        _check_exp_argument(node.args[0], where)


def _check_tree(expr: sympy.Basic, where: Where) -> None:
    """Check node count, depth, condition placement and the Max/Min budget."""
    count = 0
    minmax_arguments = 0
    stack: list[tuple[sympy.Basic, int, bool]] = [(expr, 1, False)]
    while stack:
        node, depth, condition_allowed = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ExpressionError(
                f"the expression {where()} has more than {MAX_NODES} nodes once "
                f"sympy evaluates it; at most {MAX_NODES} are accepted"
            )
        if depth > MAX_DEPTH:
            raise ExpressionError(
                f"the expression {where()} is nested deeper than {MAX_DEPTH} levels "
                f"once sympy evaluates it; at most {MAX_DEPTH} are accepted"
            )
        kind = _kind(node)
        if kind == _COND and not condition_allowed:
            raise ExpressionError(
                f"the expression {where()} contains the condition "
                f"{_excerpt(node)} outside a Piecewise condition; conditions are "
                f"accepted only as the second item of a Piecewise pair"
            )
        if isinstance(node, (sympy.Max, sympy.Min)):
            minmax_arguments += len(node.args)
        if kind == _PAIR:
            stack.append((node.args[0], depth + 1, False))
            stack.append((node.args[1], depth + 1, True))
        else:
            child_allowed = kind == _COND and not isinstance(node, Relational)
            stack.extend((child, depth + 1, child_allowed) for child in node.args)
    if minmax_arguments > MAX_MINMAX_ARGUMENTS:
        raise ExpressionError(
            f"the expression {where()} passes {minmax_arguments} arguments to Max "
            f"and Min; at most {MAX_MINMAX_ARGUMENTS} in total are accepted because "
            f"sympy compares them pairwise"
        )


# ---------------------------------------------------------------------------
# Text: syntax checks without sympy


def _segment(text: str, node: ast.AST) -> str:
    segment = ast.get_source_segment(text, node)
    return segment if segment is not None else ast.unparse(node)


def _check_text(
    text: str, *, allow_variable: bool
) -> tuple[ast.expr, dict[int, tuple[int, int]]]:
    """Parse ``text`` and check its syntax tree without any sympy work.

    Returns the body of the tree and the exact ``(p, q)`` of each float literal,
    keyed by ``id`` of its node.
    """
    if not isinstance(text, str):
        raise ExpressionError(
            f"expression must be a str, got {type(text).__name__} {_excerpt(text)}"
        )
    if len(text) > MAX_TEXT_LENGTH:
        raise ExpressionError(
            f"expression {_excerpt(text)} has {len(text)} characters; at most "
            f"{MAX_TEXT_LENGTH} are accepted"
        )
    if not text.strip():
        raise ExpressionError(
            f"expression {text!r} is empty; expected a formula in x such as 'tanh(x)'"
        )
    stripped = text.strip()
    try:
        tree = ast.parse(stripped, mode="eval")
    except SyntaxError as error:
        raise ExpressionError(
            f"expression {_excerpt(text)} has a syntax error"
            f"{_error_location(text, error)} ({error.msg}); {_ACCEPTED}"
        ) from None
    except (ValueError, MemoryError, RecursionError) as error:
        raise ExpressionError(
            f"expression {_excerpt(text)} cannot be parsed ({_first_line(error)}); "
            f"{_ACCEPTED}"
        ) from None
    checker = _SyntaxChecker(stripped, allow_variable)
    checker.run(tree.body)
    return tree.body, checker.decimals


def _error_location(text: str, error: SyntaxError) -> str:
    """Return `` at column N`` (or line and column) of ``error`` in ``text``."""
    if error.offset is None or error.lineno is None:
        return ""
    if error.offset == 0:
        return " at the end of the text"
    line = error.lineno
    column = error.offset
    if line == 1:
        column += len(text) - len(text.lstrip())
    if "\n" in text.strip():
        return f" at line {line}, column {column}"
    return f" at column {column}"


# Binary operators that chain without nesting, as in a + b - c or a*b/c.
_OPERATOR_GROUPS: dict[type, int] = {
    ast.Add: 0,
    ast.Sub: 0,
    ast.Mult: 1,
    ast.Div: 1,
    ast.BitAnd: 2,
    ast.BitOr: 2,
}


def _continues_chain(parent: ast.AST, child: ast.AST) -> bool:
    """Return whether ``child`` is the left operand of a same-group chain."""
    if not isinstance(parent, ast.BinOp) or not isinstance(child, ast.BinOp):
        return False
    group = _OPERATOR_GROUPS.get(type(child.op))
    return (
        child is parent.left
        and group is not None
        and group == _OPERATOR_GROUPS.get(type(parent.op))
    )


def _unchain(node: ast.BinOp) -> list[ast.BinOp]:
    """Return the operations of the chain that ``node`` ends, innermost first.

    For ``a + b - c`` that is ``[a + b, a + b - c]``, and the first operand is
    the ``left`` of the first operation. Walking chains in a loop keeps the
    recursion as deep as the nesting, not as long as the chain.
    """
    chain = [node]
    while _continues_chain(chain[-1], chain[-1].left):
        chain.append(chain[-1].left)
    chain.reverse()
    return chain


_VALUE = "value"
_FUNCTION = "function"
_PIECE = "piece"


class _SyntaxChecker:
    """Walk a syntax tree iteratively and reject whatever is not whitelisted."""

    def __init__(self, text: str, allow_variable: bool) -> None:
        self.text = text
        self.allow_variable = allow_variable
        self.decimals: dict[int, tuple[int, int]] = {}

    def _fail(self, construct: str, node: ast.AST, accepted: str = _ACCEPTED) -> None:
        snippet = _excerpt(_segment(self.text, node))
        raise ExpressionError(f"{construct} {snippet} is not accepted; {accepted}")

    def run(self, body: ast.expr) -> None:
        count = 0
        minmax_arguments = 0
        stack: list[tuple[ast.AST, int, str]] = [(body, 1, _VALUE)]
        while stack:
            node, depth, role = stack.pop()
            count += 1
            if count > MAX_NODES:
                raise ExpressionError(
                    f"expression {_excerpt(self.text)} has more than {MAX_NODES} "
                    f"syntax nodes; at most {MAX_NODES} are accepted"
                )
            if depth > MAX_DEPTH:
                raise ExpressionError(
                    f"expression {_excerpt(self.text)} is nested deeper than "
                    f"{MAX_DEPTH} levels; at most {MAX_DEPTH} are accepted"
                )
            children = self._check(node, role)
            if isinstance(node, ast.Call) and node.func.id in _MINMAX_FUNCTIONS:
                minmax_arguments += len(node.args)
            for child, child_role in children:
                # The left operand of a chain such as a + b - c stays on its level.
                level = depth if _continues_chain(node, child) else depth + 1
                stack.append((child, level, child_role))
        if minmax_arguments > MAX_MINMAX_ARGUMENTS:
            raise ExpressionError(
                f"expression {_excerpt(self.text)} passes {minmax_arguments} "
                f"arguments to Max and Min; at most {MAX_MINMAX_ARGUMENTS} in total "
                f"are accepted because sympy compares them pairwise"
            )

    def _check(self, node: ast.AST, role: str) -> list[tuple[ast.AST, str]]:
        """Check one node and return its children with their roles."""
        if role == _PIECE and not isinstance(node, ast.Tuple):
            self._fail(
                "Piecewise argument",
                node,
                "Piecewise takes pairs (expression, condition), as in "
                "Piecewise((x, x > 0), (0, True))",
            )
        if role == _FUNCTION:
            return self._check_function_name(node)

        if isinstance(node, ast.Constant):
            self._check_constant(node)
            return []
        if isinstance(node, ast.Name):
            self._check_name(node)
            return []
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Not):
                self._fail("'not' in", node, "negate a condition with ~ or Not(...)")
            return [(node.operand, _VALUE)]
        if isinstance(node, ast.BinOp):
            if type(node.op) not in _ARITHMETIC_OPERATORS:
                self._fail(
                    "operator in",
                    node,
                    "the operators are + - * / ** on expressions and & | on conditions",
                )
            return [(node.left, _VALUE), (node.right, _VALUE)]

        if isinstance(node, ast.Compare):
            return self._check_compare(node)
        if isinstance(node, ast.Call):
            return self._check_call(node)
        if isinstance(node, ast.Tuple):
            if role != _PIECE:
                self._fail(
                    "tuple",
                    node,
                    "a tuple is accepted only as a Piecewise pair (expression, "
                    "condition)",
                )
            if len(node.elts) != 2:
                self._fail(
                    "Piecewise pair",
                    node,
                    "a Piecewise pair has exactly two items (expression, condition)",
                )
            return [(element, _VALUE) for element in node.elts]

        if isinstance(node, ast.BoolOp):
            self._fail(
                "'and'/'or' in",
                node,
                "join conditions with & and | or with And(...) and Or(...)",
            )
        construct = _REJECTED_SYNTAX.get(type(node), f"syntax {type(node).__name__}")
        self._fail(construct, node)
        raise AssertionError("unreachable")  # pragma: no cover

    def _check_constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, bool):
            return
        if isinstance(value, int):
            if self.allow_variable and abs(value) > MAX_INTEGER:
                self._fail(
                    "integer",
                    node,
                    f"integers may have absolute value at most {MAX_INTEGER}; "
                    f"write a larger one as a power such as 10**13 or as a decimal "
                    f"such as 1e13",
                )
            max_digits = _max_digits(self.allow_variable)
            if abs(value) >= _digit_bound(max_digits):
                self._fail(
                    "integer", node, f"integers may have at most {max_digits} digits"
                )
            return
        if isinstance(value, float):
            segment = _segment(self.text, node)
            self.decimals[id(node)] = decimal_to_fraction(
                segment,
                lambda: f"in {_excerpt(self.text)}",
                _max_digits(self.allow_variable),
            )
            return
        if isinstance(value, complex):
            self._fail(
                "complex number",
                node,
                "expressions are real-valued, so only real numbers are accepted",
            )
        if isinstance(value, (str, bytes)):
            self._fail(
                "string constant",
                node,
                "write the expression itself, without quotes, as in tanh(x)",
            )
        self._fail("constant", node)

    def _check_name(self, node: ast.Name) -> None:
        name = node.id
        if name in _CONSTANTS:
            return
        if name == "x":
            if self.allow_variable:
                return
            raise ExpressionError(
                f"variable x in {_excerpt(self.text)} is not accepted in a number; "
                f"a number may use digits, pi, E, arithmetic and functions such as "
                f"sqrt(2)"
            )
        if name in _TEXT_FUNCTIONS:
            raise ExpressionError(
                f"function {name!r} in {_excerpt(self.text)} is not called; call it "
                f"with arguments, as in {name}(x)"
            )
        if name == "I":
            raise ExpressionError(
                f"the imaginary unit 'I' in {_excerpt(self.text)} is not accepted; "
                f"expressions are real-valued"
            )
        if self.allow_variable:
            raise ExpressionError(
                f"unknown name {name!r}: the only variable is x; constants are pi and E"
            )
        raise ExpressionError(
            f"unknown name {name!r} in {_excerpt(self.text)}: a number has no "
            f"variable; constants are pi and E"
        )

    def _check_function_name(self, node: ast.AST) -> list[tuple[ast.AST, str]]:
        if isinstance(node, ast.Attribute):
            self._fail("attribute access", node)
        if not isinstance(node, ast.Name):
            self._fail(
                "call of", node, "only a function name can be called, as in exp(x)"
            )
        if node.id not in _TEXT_FUNCTIONS:
            raise ExpressionError(
                f"unknown function {node.id!r} in {_excerpt(self.text)}; the "
                f"accepted functions are {_FUNCTION_LIST}"
            )
        return []

    def _check_call(self, node: ast.Call) -> list[tuple[ast.AST, str]]:
        self._check_function_name(node.func)
        name = node.func.id
        if node.keywords:
            self._fail(
                "keyword argument in",
                node,
                f"pass the arguments of {name} by position",
            )
        if any(isinstance(argument, ast.Starred) for argument in node.args):
            self._fail(
                "starred argument in", node, f"pass the arguments of {name} one by one"
            )
        low, high = _text_arity(name)
        count = len(node.args)
        if count < low or (high is not None and count > high):
            self._fail(
                "call",
                node,
                f"{name} takes {_arity_text(low, high)}, got {count}",
            )
        role = _PIECE if name == "Piecewise" else _VALUE
        children: list[tuple[ast.AST, str]] = [(node.func, _FUNCTION)]
        children.extend((argument, role) for argument in node.args)
        return children

    def _check_compare(self, node: ast.Compare) -> list[tuple[ast.AST, str]]:
        for operator in node.ops:
            if isinstance(operator, (ast.Eq, ast.NotEq)):
                self._fail(
                    "comparison with == or != in",
                    node,
                    "write Eq(a, b) or Ne(a, b) for equality tests",
                )
            if type(operator) not in _COMPARISONS:
                self._fail("comparison", node, "the comparisons are < <= > >=")
        children: list[tuple[ast.AST, str]] = [(node.left, _VALUE)]
        children.extend((comparator, _VALUE) for comparator in node.comparators)
        return children


# ---------------------------------------------------------------------------
# Text: building sympy objects from a checked syntax tree


class _TextTranslator:
    """Build a sympy expression from a syntax tree that passed _SyntaxChecker."""

    def __init__(
        self,
        text: str,
        decimals: dict[int, tuple[int, int]],
        builder: ExpressionBuilder,
    ) -> None:
        self.text = text
        self.decimals = decimals
        self.builder = builder

    def _where(self, node: ast.AST) -> Where:
        return lambda: f"in {_excerpt(_segment(self.text, node))}"

    def _fail(self, node: ast.AST, message: str) -> None:
        raise ExpressionError(
            f"{_excerpt(_segment(self.text, node))} is not accepted here; {message}"
        )

    def expression(self, node: ast.AST) -> sympy.Basic:
        where = self._where(node)
        build = self.builder.apply
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool):
                self._fail(
                    node, "True and False are accepted only as Piecewise conditions"
                )
            if isinstance(value, int):
                return self.builder.number(value, 1, where)
            p, q = self.decimals[id(node)]
            return self.builder.number(p, q, where)
        if isinstance(node, ast.Name):
            if node.id == "x":
                return self.builder.variable(where)
            return _CONSTANTS[node.id]
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Invert):
                self._fail(node, "~ negates conditions only, as in ~(x > 0)")
            operand = self.expression(node.operand)
            if isinstance(node.op, ast.UAdd):
                return operand
            return build("Mul", [sympy.Integer(-1), operand], where)
        if isinstance(node, ast.BinOp):
            return self._arithmetic(node, where)
        if isinstance(node, ast.Compare):
            self._fail(
                node,
                "a comparison is accepted only as a Piecewise condition, as in "
                "Piecewise((x, x > 0), (0, True))",
            )
        if isinstance(node, ast.Call):
            return self._call(node, where)
        self._fail(node, _ACCEPTED)
        raise AssertionError("unreachable")  # pragma: no cover

    def _arithmetic(self, node: ast.BinOp, where: Where) -> sympy.Basic:
        if isinstance(node.op, (ast.BitAnd, ast.BitOr)):
            self._fail(
                node,
                "& and | join conditions only, and they bind tighter than "
                "comparisons, so write (x > 0) & (x < 1)",
            )
        chain = _unchain(node)
        result = self.expression(chain[0].left)
        for operation in chain:
            right = self.expression(operation.right)
            result = self._combine(operation.op, result, right, self._where(operation))
        return result

    def _combine(
        self,
        operator: ast.operator,
        left: sympy.Basic,
        right: sympy.Basic,
        where: Where,
    ) -> sympy.Basic:
        build = self.builder.apply
        if isinstance(operator, ast.Add):
            return build("Add", [left, right], where)
        if isinstance(operator, ast.Sub):
            negated = build("Mul", [sympy.Integer(-1), right], where)
            return build("Add", [left, negated], where)
        if isinstance(operator, ast.Mult):
            return build("Mul", [left, right], where)
        if isinstance(operator, ast.Div):
            inverse = build("Pow", [right, sympy.Integer(-1)], where)
            return build("Mul", [left, inverse], where)
        return build("Pow", [left, right], where)

    def _call(self, node: ast.Call, where: Where) -> sympy.Basic:
        name = node.func.id
        if name in _CONDITION_FUNCTIONS:
            self._fail(
                node, f"{name} makes a condition, accepted only inside Piecewise"
            )
        if name == "Piecewise":
            pairs = [self._pair(argument) for argument in node.args]
            return self.builder.apply("Piecewise", pairs, where)
        args = [self.expression(argument) for argument in node.args]
        if name == "sqrt":
            return self.builder.apply("Pow", [args[0], sympy.Rational(1, 2)], where)
        return self.builder.apply(_TEXT_FUNCTIONS[name], args, where)

    def _pair(self, node: ast.Tuple) -> sympy.Basic:
        value = self.expression(node.elts[0])
        condition = self.condition(node.elts[1])
        return self.builder.apply("ExprCondPair", [value, condition], self._where(node))

    def condition(self, node: ast.AST) -> sympy.Basic:
        where = self._where(node)
        build = self.builder.apply
        if isinstance(node, ast.Constant) and isinstance(node.value, bool):
            return sympy.true if node.value else sympy.false
        if isinstance(node, ast.Compare):
            operands = [self.expression(node.left)]
            operands.extend(self.expression(item) for item in node.comparators)
            parts = []
            for index, operator in enumerate(node.ops):
                pair = [operands[index], operands[index + 1]]
                parts.append(build(_COMPARISONS[type(operator)], pair, where))
            return parts[0] if len(parts) == 1 else build("And", parts, where)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitAnd, ast.BitOr)):
            chain = _unchain(node)
            result = self.condition(chain[0].left)
            for operation in chain:
                right = self.condition(operation.right)
                name = "And" if isinstance(operation.op, ast.BitAnd) else "Or"
                result = build(name, [result, right], self._where(operation))
            return result
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Invert):
            return build("Not", [self.condition(node.operand)], where)
        if isinstance(node, ast.Call) and node.func.id in _CONDITION_FUNCTIONS:
            name = node.func.id
            if name in ("Eq", "Ne"):
                args = [self.expression(argument) for argument in node.args]
            else:
                args = [self.condition(argument) for argument in node.args]
            return build(_TEXT_FUNCTIONS[name], args, where)
        self._fail(
            node,
            "a Piecewise condition is expected here, such as x > 0, "
            "(x > 0) & (x < 1), Eq(x, 0) or True",
        )
        raise AssertionError("unreachable")  # pragma: no cover


def _build_from_text(text: str, *, allow_variable: bool) -> sympy.Basic:
    """Check and build ``text`` without the final checks of ``finish``."""
    body, decimals = _check_text(text, allow_variable=allow_variable)
    builder = ExpressionBuilder(allow_variable=allow_variable)
    translator = _TextTranslator(text.strip(), decimals, builder)
    return translator.expression(body)


def _parse(text: str, *, allow_variable: bool) -> sympy.Expr:
    result = _build_from_text(text, allow_variable=allow_variable)
    builder = ExpressionBuilder(allow_variable=allow_variable)
    return builder.finish(result, lambda: _excerpt(text.strip()))


def parse_expression(text: str) -> sympy.Expr:
    """Parse activation text in the variable ``x`` into an exact sympy expression.

    The text is read with ``ast.parse`` and never reaches ``eval``, ``sympify``
    or ``parse_expr``. ``x`` becomes :data:`symgroups._symbols.X`, and ``pi`` and
    ``E`` are the sympy constants. A decimal literal is converted exactly from
    its source text, so ``0.2`` is ``1/5`` and ``1e-3`` is ``1/1000``. Comparisons,
    ``&``, ``|``, ``~``, ``True``, ``False``, ``Eq``, ``Ne``, ``And``, ``Or`` and
    ``Not`` are accepted only in Piecewise conditions. ``b**e`` needs a rational
    ``e`` with ``|e| <= MAX_EXPONENT``, or a positive numeric ``b``, in which case
    ``e`` may contain ``x`` (``2**x``).

    The result satisfies ``parse_expression(expression_text(e)) == e``.

    Parameters
    ----------
    text : str
        The expression, at most :data:`MAX_TEXT_LENGTH` characters.

    Returns
    -------
    sympy.Expr
        The expression as sympy evaluates it, for example ``Max(x, x/5)`` for
        ``Max(x, 0.2*x)``.

    Raises
    ------
    ExpressionError
        With a one-line message that names the rejected construct, for text that
        uses anything outside the whitelist or exceeds a limit.
    """
    return _parse(text, allow_variable=True)


def parse_number(text: str) -> sympy.Expr:
    """Parse text without variables into an exact finite real number.

    The rules are those of :func:`parse_expression` without ``x``, so ``1/3``,
    ``0.01``, ``sqrt(2)``, ``-1`` and ``log(3)/log(2)`` are accepted. Integer
    literals and all exact numbers may have up to :data:`MAX_VALUE_DIGITS`
    digits, in place of :data:`MAX_INTEGER` and :data:`MAX_NUMBER_DIGITS`, so
    ``parse_number(str(v)) == v`` for every rational ``v`` within that limit.
    The result ``v`` has no free symbols and ``v.is_real`` is ``True``.

    Raises
    ------
    ExpressionError
        For text that uses ``x`` or anything outside the whitelist, exceeds a
        limit, or whose value sympy cannot show to be finite and real.
    """
    return _parse(text, allow_variable=False)


# ---------------------------------------------------------------------------
# sympy objects built in Python


class _SympyTranslator:
    """Rebuild a user's sympy tree through :class:`ExpressionBuilder`."""

    def __init__(self, builder: ExpressionBuilder) -> None:
        self.builder = builder
        self.rebuilt: dict[sympy.Basic, sympy.Basic] = {}

    def scan(self, expr: sympy.Basic) -> None:
        """Check size, classes and numbers of the input before building."""
        count = 0
        minmax_arguments = 0
        stack: list[tuple[sympy.Basic, int]] = [(expr, 1)]
        while stack:
            node, depth = stack.pop()
            count += 1
            if count > MAX_NODES:
                raise ExpressionError(
                    f"expression has more than {MAX_NODES} nodes; at most "
                    f"{MAX_NODES} are accepted"
                )
            if depth > MAX_DEPTH:
                raise ExpressionError(
                    f"expression is nested deeper than {MAX_DEPTH} levels; at most "
                    f"{MAX_DEPTH} are accepted"
                )
            if not node.args:
                self._check_atom(node)
                continue
            if type(node) not in _CLASS_TO_NAME:
                raise ExpressionError(
                    f"sympy object {type(node).__name__} in {_excerpt(node)} is not "
                    f"accepted; the accepted functions are {_FUNCTION_LIST}"
                )
            if isinstance(node, (sympy.Max, sympy.Min)):
                minmax_arguments += len(node.args)
            stack.extend((child, depth + 1) for child in node.args)
        if minmax_arguments > MAX_MINMAX_ARGUMENTS:
            raise ExpressionError(
                f"expression passes {minmax_arguments} arguments to Max and Min; at "
                f"most {MAX_MINMAX_ARGUMENTS} in total are accepted because sympy "
                f"compares them pairwise"
            )

    def _check_atom(self, node: sympy.Basic) -> None:
        where = self._where(node)
        if isinstance(node, sympy.Float):
            self._float(node)
        elif isinstance(node, sympy.Rational):
            _check_number_size(int(node.p), int(node.q), where)
        elif isinstance(node, sympy.Symbol):
            if node.name != "x":
                raise ExpressionError(
                    f"symbol {node.name!r} is not accepted: the only variable is x; "
                    f"constants are pi and E"
                )
            self.builder.variable(where)
        elif not (
            node is sympy.pi
            or node is sympy.E
            or node is sympy.true
            or node is sympy.false
        ):
            _check_node(node, where, allow_variable=self.builder.allow_variable)

    @staticmethod
    def _where(node: sympy.Basic) -> Where:
        return lambda: f"in {_excerpt(node)}"

    def _float(self, node: sympy.Float) -> sympy.Rational:
        # str() of a Float gives its decimal digits, so Float(0.01) becomes 1/100.
        p, q = decimal_to_fraction(str(node), self._where(node))
        return self.builder.number(p, q, self._where(node))

    def rebuild(self, node: sympy.Basic) -> sympy.Basic:
        done = self.rebuilt.get(node)
        if done is not None:
            return done
        if not node.args:
            if isinstance(node, sympy.Float):
                result: sympy.Basic = self._float(node)
            elif isinstance(node, sympy.Symbol):
                result = self.builder.variable(self._where(node))
            else:
                result = node
        else:
            args = [self.rebuild(child) for child in node.args]
            name = _CLASS_TO_NAME[type(node)]
            result = self.builder.apply(name, args, self._where(node))
        self.rebuilt[node] = result
        return result


def check_expression(expr: sympy.Basic) -> sympy.Expr:
    """Validate a sympy expression built in Python and return its exact form.

    Only the functions of :data:`FUNCTION_NAMES`, numbers, ``pi``, ``E``,
    arithmetic and, inside Piecewise, relationals and booleans are accepted. The
    one allowed symbol must be named ``x`` and may carry any assumptions; it is
    replaced by :data:`symgroups._symbols.X`. Each ``sympy.Float`` becomes the
    rational of its decimal text, so ``Float(0.01)`` becomes ``1/100``. The
    input's size is checked with a bounded traversal before any rebuilding.

    The result ``r`` satisfies the invariants of this module, so
    ``check_expression(r) == r`` and ``parse_expression(expression_text(r)) == r``.

    Raises
    ------
    ExpressionError
        If ``expr`` is not a sympy object, uses anything outside the whitelist,
        has another symbol, or exceeds a limit.
    """
    if not isinstance(expr, sympy.Basic):
        raise ExpressionError(
            f"expression must be a sympy expression, got {type(expr).__name__} "
            f"{_excerpt(expr)}"
        )
    builder = ExpressionBuilder()
    translator = _SympyTranslator(builder)
    translator.scan(expr)
    result = translator.rebuild(expr)
    return builder.finish(result, lambda: f"{_excerpt(expr)}")


# ---------------------------------------------------------------------------
# Text output


class _TextPrinter(StrPrinter):
    """sympy's str printer, with numbers that :func:`parse_expression` accepts.

    An integer above :data:`MAX_INTEGER` is written as a decimal literal such as
    ``10000000000000.0``, which the parser reads back exactly.
    """

    def _print_Integer(self, expr: sympy.Integer) -> str:
        return _integer_text(int(expr.p))

    def _print_Rational(self, expr: sympy.Rational) -> str:
        if expr.q == 1:
            return _integer_text(int(expr.p))
        decimal = _long_decimal(expr)
        if decimal is not None:
            return decimal
        return f"{_integer_text(int(expr.p))}/{_integer_text(int(expr.q))}"

    def _print_Mul(self, expr: sympy.Mul) -> str:
        # A long constant such as SELU's scale reads better as its decimal
        # (1.0507009873554804934193349852946*x) than as a ratio of integers.
        coefficient, rest = expr.as_coeff_Mul()
        if isinstance(coefficient, sympy.Rational) and rest != 1:
            decimal = _long_decimal(coefficient)
            if decimal is not None:
                factor = self.parenthesize(rest, precedence(expr), strict=False)
                return f"{decimal}*{factor}"
        return super()._print_Mul(expr)


def _long_decimal(value: sympy.Rational) -> str | None:
    """Write a rational with a long numerator or denominator as its exact
    decimal, when it has one (denominator ``2**a * 5**b``); else None."""
    p, q = int(value.p), int(value.q)
    if q == 1 or max(abs(p), q) <= MAX_INTEGER:
        return None
    twos = fives = 0
    rest = q
    while rest % 2 == 0:
        rest //= 2
        twos += 1
    while rest % 5 == 0:
        rest //= 5
        fives += 1
    if rest != 1:
        return None
    places = max(twos, fives)
    digits = str(abs(p) * 10**places // q).rjust(places + 1, "0")
    sign = "-" if p < 0 else ""
    return f"{sign}{digits[:-places]}.{digits[-places:]}"


def _integer_text(value: int) -> str:
    if abs(value) > MAX_INTEGER:
        return f"{value}.0"
    return str(value)


def expression_text(expr: sympy.Basic) -> str:
    """Write ``expr`` as text in ``x``.

    For every expression ``e`` that :func:`parse_expression`,
    :func:`check_expression` or :func:`symgroups._exprjson.expression_from_json`
    returns, ``parse_expression(expression_text(e)) == e``. The text is sympy's
    ``str`` form except that integers above :data:`MAX_INTEGER` are written as
    decimal literals.
    """
    # A printer keeps state while it prints, so each call gets its own.
    return _TextPrinter().doprint(expr)

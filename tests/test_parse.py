"""Tests of the safe expression parser, check_expression and expression_text."""

from __future__ import annotations

import pytest
import sympy
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from symgroups._errors import ExpressionError
from symgroups._exprjson import expression_from_json, expression_to_json
from symgroups._parse import (
    FUNCTION_NAMES,
    MAX_DEPTH,
    MAX_EXPONENT,
    MAX_INTEGER,
    MAX_MINMAX_ARGUMENTS,
    MAX_NODES,
    MAX_NUMBER_DIGITS,
    MAX_TEXT_LENGTH,
    MAX_VALUE_DIGITS,
    check_expression,
    expression_text,
    parse_expression,
    parse_number,
)
from symgroups._symbols import X

half = sympy.Rational(1, 2)

ACCEPTED = [
    ("0.5*x*(1 + erf(x/sqrt(2)))", half * X * (1 + sympy.erf(X / sympy.sqrt(2)))),
    ("x*tanh(log(1+exp(x)))", X * sympy.tanh(sympy.log(1 + sympy.exp(X)))),
    ("Max(x, 0.2*x)", sympy.Max(X, X / 5)),
    (
        "Piecewise((x, x > 0), (exp(x) - 1, True))",
        sympy.Piecewise((X, X > 0), (sympy.exp(X) - 1, True)),
    ),
    ("Piecewise((x, x > 0), (0, True))", sympy.Piecewise((X, X > 0), (0, True))),
    ("Heaviside(x, 0)", sympy.Heaviside(X, 0)),
    ("Heaviside(x)", sympy.Heaviside(X)),
    ("Abs(x)/(1+Abs(x))", sympy.Abs(X) / (1 + sympy.Abs(X))),
    ("x**3 + x", X**3 + X),
    ("exp(-x**2)", sympy.exp(-(X**2))),
    ("x**(1/3)", X ** sympy.Rational(1, 3)),
    ("x**-1", 1 / X),
    ("x**64", X**64),
    ("x**-64", X**-64),
    ("2**x", sympy.Integer(2) ** X),
    ("E**x", sympy.exp(X)),
    ("pi*x + E", sympy.pi * X + sympy.E),
    (
        "abs(x) + max(x, 1) - min(x, 0)",
        sympy.Abs(X) + sympy.Max(X, 1) - sympy.Min(X, 0),
    ),
    (
        "sign(x)*sin(x)*cos(x)*tan(x)",
        sympy.sign(X) * sympy.sin(X) * sympy.cos(X) * sympy.tan(X),
    ),
    (
        "sinh(x) + cosh(x) + atan(x) + asinh(x)",
        sympy.sinh(X) + sympy.cosh(X) + sympy.atan(X) + sympy.asinh(X),
    ),
    ("erfc(x) - erf(x)", sympy.erfc(X) - sympy.erf(X)),
    ("exp(x*log(x))", sympy.exp(X * sympy.log(X))),
    ("+x", X),
    ("10**12*x", sympy.Integer(10**12) * X),
    ("-10**12", sympy.Integer(-(10**12))),
    ("0x10*x", 16 * X),
    ("1_000.5*x", sympy.Rational(2001, 2) * X),
    (
        "Piecewise((x, (x > 0) & (x < 1)), (0, True))",
        sympy.Piecewise((X, (X > 0) & (X < 1)), (0, True)),
    ),
    (
        "Piecewise((x, 0 < x <= 1), (0, True))",
        sympy.Piecewise((X, (X > 0) & (X <= 1)), (0, True)),
    ),
    ("Piecewise((x, ~(x >= 0)), (1, True))", sympy.Piecewise((X, X < 0), (1, True))),
    (
        "Piecewise((1, Eq(x, 0)), (x, Ne(x, 2) | (x > 5)), (0, True))",
        sympy.Piecewise((1, sympy.Eq(X, 0)), (X, sympy.Ne(X, 2) | (X > 5)), (0, True)),
    ),
    (
        "Piecewise((x, And(x > 0, Or(x < 1, Not(x < 2)))), (0, True))",
        sympy.Piecewise((X, sympy.And(X > 0, sympy.Or(X < 1, X >= 2))), (0, True)),
    ),
    ("Piecewise((x, False), (1, True))", sympy.Integer(1)),
]


@pytest.mark.parametrize(("text", "expected"), ACCEPTED, ids=[t for t, _ in ACCEPTED])
def test_parse_accepted_examples(text: str, expected: sympy.Expr) -> None:
    assert parse_expression(text) == expected


def test_parse_max_example_text() -> None:
    assert str(parse_expression("Max(x, 0.2*x)")) == "Max(x/5, x)"


def test_parse_only_symbol_is_x() -> None:
    expr = parse_expression("x*exp(x) + Piecewise((x, x > 0), (0, True))")
    assert expr.free_symbols == {X}
    assert next(iter(expr.free_symbols)) is X
    assert X.is_real


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.2", sympy.Rational(1, 5)),
        ("1e-3", sympy.Rational(1, 1000)),
        ("1.", sympy.Integer(1)),
        (".5", half),
        ("2.5E2", sympy.Integer(250)),
        (
            "0.1000000000000000055511151231257827",
            sympy.Rational(1000000000000000055511151231257827, 10**34),
        ),
        ("1e13", sympy.Integer(10**13)),
        (
            "1.0507009873554804934193349852946",
            sympy.Rational(10507009873554804934193349852946, 10**31),
        ),
        ("0.0", sympy.Integer(0)),
    ],
)
def test_parse_decimals_exact(text: str, expected: sympy.Expr) -> None:
    assert parse_number(text) == expected


# Texts that must be rejected, with a regular expression for the message.
REJECTED = [
    (
        "__import__('os').system('id')",
        r"attribute access .* is not accepted; expressions may use x",
    ),
    ("().__class__.__bases__[0]", r"subscript .* is not accepted"),
    ("lambda: 1", r"lambda 'lambda: 1' is not accepted"),
    ("[x for x in ()]", r"comprehension .* is not accepted"),
    ("(x for x in ())", r"comprehension .* is not accepted"),
    ("f'{x}'", r"f-string .* is not accepted"),
    ("'x'", r"string constant \"'x'\" is not accepted; write the expression itself"),
    ("b'x'", r"string constant .* is not accepted"),
    ("x.is_real", r"attribute access 'x.is_real' is not accepted"),
    (
        "exp(x=1)",
        r"keyword argument in 'exp\(x=1\)' is not accepted; pass the arguments",
    ),
    ("exp(**{'x': 1})", r"keyword argument .* is not accepted"),
    ("exp(*[x])", r"starred argument .* is not accepted"),
    ("y + x", r"unknown name 'y': the only variable is x; constants are pi and E"),
    ("e*x", r"unknown name 'e': the only variable is x"),
    ("foo(x)", r"unknown function 'foo' .*; the accepted functions are Abs, abs, Max"),
    ("x(1)", r"unknown function 'x'"),
    ("(exp)(x)(x)", r"call of .* is not accepted; only a function name can be called"),
    ("exp", r"function 'exp' in 'exp' is not called; call it with arguments"),
    ("9**9**9", r"exponent 387420489 in '9\*\*9\*\*9' is too large; a power accepts"),
    ("10**10**6", r"exponent 1000000 .* is too large"),
    ("x**65", r"exponent 65 .* is too large; .* at most 64"),
    ("x**(-129/2)", r"exponent -129/2 .* is too large"),
    ("(x**64)**2", r"exponent 128 .* is too large"),
    ("x**64*x**64", r"exponent 128 .* is too large"),
    (
        "x**x",
        r"power in 'x\*\*x' has the base 'x', which contains x, .* not a rational",
    ),
    ("x**pi", r"power in 'x\*\*pi' has the base 'x'"),
    ("(-2)**x", r"base '-2', which is not shown positive"),
    (
        "(-8)**(1/3)",
        r"raises the number '-8', which is negative .* fractional exponent",
    ),
    ("sqrt(-1)", r"raises the number '-1', which is negative"),
    (
        "2**(x + 10**12)",
        r"exponent 'x \+ 1000000000000' .* contains the number 1000000000000",
    ),
    (
        "exp(10**12*log(2))",
        r"exp argument term .* contains log and the number 1000000000000",
    ),
    ("exp(x + 100*log(3))", r"exp argument term '100\*log\(3\)'"),
    (
        "(10**12)**64",
        r"number of about 769 digits .* is too long; exact numbers may have at most 40",
    ),
    ("2**64**64", r"number of about 116 digits in '64\*\*64' is too long"),
    ("1j", r"complex number '1j' is not accepted; expressions are real-valued"),
    ("I*x", r"the imaginary unit 'I' .* is not accepted"),
    (
        "log(-2)",
        r"evaluates to 'I', which is the imaginary unit I; expressions must be real",
    ),
    ("1/0", r"evaluates to 'zoo', which is complex infinity"),
    ("log(0)", r"evaluates to 'zoo'"),
    ("tan(pi/2)", r"evaluates to 'zoo'"),
    ("", r"expression '' is empty; expected a formula in x"),
    ("   ", r"expression '   ' is empty"),
    ("x +", r"has a syntax error at the end of the text \(invalid syntax\)"),
    ("x $ 1", r"has a syntax error at column 3 \(invalid syntax\)"),
    ("  x $ 1", r"has a syntax error at column 5"),
    ("exp(x", r"has a syntax error .*'\(' was never closed"),
    ("x\x00", r"has a syntax error \(source code string cannot contain null bytes\)"),
    (
        "10000000000000",
        r"integer '10000000000000' is not accepted; integers may have absolute "
        r"value at most 1000000000000",
    ),
    ("1e41", r"number 10{41} in '1e41' is too long; exact numbers may have at most 40"),
    ("1e81", r"decimal number '1e81' .* too many digits or too large an exponent"),
    ("1e-300", r"decimal number '1e-300'"),
    ("1e999999999", r"decimal number '1e999999999'"),
    ("0." + "1" * 41, r"decimal number .* too many digits"),
    (
        "x > 0",
        r"'x > 0' is not accepted here; a comparison is accepted only as a Piecewise",
    ),
    ("x >= 0 & x < 1", r"a comparison is accepted only as a Piecewise condition"),
    ("(x > 0) & (x < 1)", r"& and \| join conditions only"),
    (
        "Piecewise((x, x > 0 & x < 1), (0, True))",
        r"& and \| join conditions only, and they bind tighter",
    ),
    ("~x", r"~ negates conditions only"),
    ("True", r"True and False are accepted only as Piecewise conditions"),
    ("Eq(x, 1)", r"Eq makes a condition, accepted only inside Piecewise"),
    ("x == 1", r"comparison with == or != .* write Eq\(a, b\) or Ne\(a, b\)"),
    (
        "Piecewise((x, x is 0), (0, True))",
        r"comparison .* the comparisons are < <= > >=",
    ),
    ("not x", r"'not' in 'not x' is not accepted; negate a condition with ~"),
    ("x and x", r"'and'/'or' in 'x and x' is not accepted"),
    (
        "x // 2",
        r"operator in 'x // 2' is not accepted; the operators are \+ - \* / \*\*",
    ),
    ("x % 2", r"operator in 'x % 2' is not accepted"),
    ("x @ x", r"operator in 'x @ x' is not accepted"),
    ("x if x else 1", r"conditional expression .* is not accepted"),
    ("(x := 1)", r"assignment expression .* is not accepted"),
    ("[x]", r"list '\[x\]' is not accepted"),
    ("{x}", r"set '\{x\}' is not accepted"),
    ("{x: 1}", r"dict .* is not accepted"),
    (
        "(x, 1)",
        r"tuple '\(x, 1\)' is not accepted; a tuple is accepted only as a "
        r"Piecewise pair",
    ),
    ("None", r"constant 'None' is not accepted"),
    ("...", r"constant '...' is not accepted"),
    ("Piecewise(x)", r"Piecewise argument 'x' is not accepted; Piecewise takes pairs"),
    ("Piecewise((x, x > 0, 1))", r"Piecewise pair .* has exactly two items"),
    ("Piecewise((x, x))", r"a Piecewise condition is expected here"),
    (
        "Piecewise((x > 0, True))",
        r"comparison is accepted only as a Piecewise condition",
    ),
    ("log(x, 2)", r"call 'log\(x, 2\)' is not accepted; log takes 1 argument, got 2"),
    ("sqrt(x, 2)", r"sqrt takes 1 argument, got 2"),
    ("exp()", r"exp takes 1 argument, got 0"),
    ("Heaviside(x, 0, 1)", r"Heaviside takes 1 to 2 arguments, got 3"),
    ("Heaviside(x, x)", r"argument 2 of Heaviside .* expected a number without x"),
    ("Eq(x)", r"call 'Eq\(x\)' is not accepted; Eq takes 2 arguments, got 1"),
    ("Max(x, 1, 2, 3, 4, 5, 6, 7, 8)", r"Max takes 1 to 8 arguments, got 9"),
    (
        "Max(x, 1, 2, 3, 4) + Min(x, 1, 2, 3, 4)",
        r"passes 10 arguments to Max and Min; at most 8 in total",
    ),
    (
        "Piecewise((x, Piecewise((x, x > 0), (0, True)) > 1), (0, True))",
        r"evaluates to 'ITE\(.*whose ITE is not accepted",
    ),
]


@pytest.mark.parametrize(("text", "message"), REJECTED, ids=[t for t, _ in REJECTED])
def test_parse_rejects(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        parse_expression(text)


def test_parse_rejects_non_string() -> None:
    with pytest.raises(ExpressionError, match=r"expression must be a str, got int '5'"):
        parse_expression(5)  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "_"), REJECTED, ids=[t for t, _ in REJECTED])
def test_parse_messages_one_line(text: str, _: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_expression(text)
    assert "\n" not in str(caught.value)


def test_limit_text_length() -> None:
    text = "x" + " " * (MAX_TEXT_LENGTH - 1)
    assert parse_expression(text) == X
    with pytest.raises(ExpressionError, match=r"has 2001 characters; at most 2000"):
        parse_expression(text + " ")


def test_limit_text_length_before_parsing() -> None:
    # Invalid syntax past the length limit reports the length, not the syntax.
    with pytest.raises(ExpressionError, match=r"characters; at most 2000"):
        parse_expression("(" * (MAX_TEXT_LENGTH + 1))


def test_limit_syntax_nodes() -> None:
    # x+x+...+x with n terms has 2n - 1 expression nodes.
    assert parse_expression("+".join(["x"] * 250)) == 250 * X
    with pytest.raises(ExpressionError, match=r"more than 500 syntax nodes"):
        parse_expression("+".join(["x"] * 251))


def test_limit_depth() -> None:
    # Each sin( adds one level, and the innermost x is one more.
    assert parse_expression("sin(" * (MAX_DEPTH - 1) + "x" + ")" * (MAX_DEPTH - 1))
    with pytest.raises(ExpressionError, match=r"nested deeper than 40 levels"):
        parse_expression("sin(" * MAX_DEPTH + "x" + ")" * MAX_DEPTH)


def test_limit_depth_counts_chains_once() -> None:
    # A chain a + b - c is one level, but parentheses on the right nest.
    assert parse_expression(" - ".join(["sin(x)"] * 60)) == -58 * sympy.sin(X)
    assert parse_expression("*".join(["x"] * 60) + "/x") == X**59
    nested = "x + (" * MAX_DEPTH + "x" + ")" * MAX_DEPTH
    with pytest.raises(ExpressionError, match=r"nested deeper than 40 levels"):
        parse_expression(nested)


def test_condition_chain_accepted() -> None:
    pieces = " & ".join(f"(x > {k})" for k in range(50))
    expected = sympy.And(*[X > k for k in range(50)])
    assert parse_expression(f"Piecewise((x, {pieces}), (0, True))") == sympy.Piecewise(
        (X, expected), (0, True)
    )


def test_limit_depth_long_unary_chain() -> None:
    with pytest.raises(ExpressionError, match=r"nested deeper than 40 levels"):
        parse_expression("-" * (MAX_TEXT_LENGTH - 1) + "x")


def test_limit_integer_literal() -> None:
    assert parse_expression(f"{MAX_INTEGER}*x") == MAX_INTEGER * X
    assert parse_expression(f"{-MAX_INTEGER}*x") == -MAX_INTEGER * X
    with pytest.raises(
        ExpressionError, match=r"integer '1000000000001' is not accepted"
    ):
        parse_expression(f"{MAX_INTEGER + 1}*x")


def test_parse_number_reads_str_output() -> None:
    # Exact numbers stored with str() may have integers above MAX_INTEGER.
    selu_scale = sympy.Rational(10507009873554804934193349852946, 10**31)
    long_fraction = selu_scale**4 / 3**40
    values = [selu_scale, -selu_scale, long_fraction, sympy.Integer(2) ** 64]
    for value in values:
        assert parse_number(str(value)) == value
    with pytest.raises(ExpressionError, match=r"integer '\d+\.\.\.' is not accepted"):
        parse_expression(str(long_fraction) + "*x")
    with pytest.raises(ExpressionError, match=r"integers may have at most 500 digits"):
        parse_number("1" * (MAX_VALUE_DIGITS + 1))


def test_limit_exponent() -> None:
    assert parse_expression(f"x**{MAX_EXPONENT}") == X**MAX_EXPONENT
    assert parse_expression(f"x**(-{MAX_EXPONENT})") == X**-MAX_EXPONENT
    assert parse_expression("x**(127/2)") == X ** sympy.Rational(127, 2)
    with pytest.raises(ExpressionError, match=r"exponent 65 .* is too large"):
        parse_expression(f"x**{MAX_EXPONENT + 1}")


def test_limit_number_digits() -> None:
    largest = "9" * MAX_NUMBER_DIGITS + ".0"
    assert parse_expression(f"{largest}*x") == (10**MAX_NUMBER_DIGITS - 1) * X
    with pytest.raises(ExpressionError, match=r"is too long; exact numbers may"):
        parse_expression("1" + "0" * MAX_NUMBER_DIGITS + ".0*x")
    with pytest.raises(
        ExpressionError, match=r"number 10{48} in '\(10\*\*12\)\*\*4' is too long"
    ):
        parse_expression("x*(10**12)**4")


def test_limit_number_digits_in_numbers() -> None:
    assert parse_number("(10**12)**4") == 10**48
    assert parse_number("1" * MAX_VALUE_DIGITS) == int("1" * MAX_VALUE_DIGITS)
    with pytest.raises(ExpressionError, match=r"is too long; exact numbers may have"):
        parse_number("(10**12)**42")


def test_limit_minmax_arguments() -> None:
    arguments = ", ".join(["x"] + [str(k) for k in range(1, MAX_MINMAX_ARGUMENTS)])
    assert parse_expression(f"Max({arguments})") == sympy.Max(
        X, MAX_MINMAX_ARGUMENTS - 1
    )


def test_limit_nodes_after_evaluation() -> None:
    # sympy writes tan(pi/240) as nested radicals with several hundred nodes.
    with pytest.raises(
        ExpressionError, match=r"more than 500 nodes once sympy evaluates"
    ):
        parse_expression("x*tan(pi/240)")


@pytest.mark.parametrize(
    "bomb",
    [
        "9**9**9",
        "10**10**6",
        "2**64**64",
        "(10**12)**64",
        "((x*10**12)**64)**64",
        "exp(10**12*log(2))",
        "exp(64*(64*log(2) + log(3)))",
        "2**(x + 10**12)/2**x",
        "2**(64*64*64*x)",
        "1e999999999",
        "Max(" + ", ".join(f"{k}*x + {k * k}" for k in range(1, 40)) + ")",
    ],
)
def test_parse_rejects_bombs(bomb: str) -> None:
    with pytest.raises(ExpressionError):
        parse_expression(bomb)


# ---------------------------------------------------------------------------
# parse_number


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1/3", sympy.Rational(1, 3)),
        ("0.01", sympy.Rational(1, 100)),
        ("sqrt(2)", sympy.sqrt(2)),
        ("-1", sympy.Integer(-1)),
        ("log(3)/log(2)", sympy.log(3) / sympy.log(2)),
        ("pi/4", sympy.pi / 4),
        ("exp(1)", sympy.E),
        ("2**(1/3)", sympy.Integer(2) ** sympy.Rational(1, 3)),
    ],
)
def test_parse_number_accepts(text: str, expected: sympy.Expr) -> None:
    value = parse_number(text)
    assert value == expected
    assert value.is_real
    assert not value.free_symbols


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x", r"variable x in 'x' is not accepted in a number"),
        ("2*x", r"variable x .* is not accepted in a number"),
        ("y", r"unknown name 'y' in 'y': a number has no variable"),
        ("1/0", r"evaluates to 'zoo'"),
        ("log(-1)", r"imaginary unit I"),
        ("", r"is empty"),
        ("1 +", r"syntax error"),
    ],
)
def test_parse_number_rejects(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        parse_number(text)


# ---------------------------------------------------------------------------
# check_expression

x_plain = sympy.Symbol("x")
x_positive = sympy.Symbol("x", positive=True)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (sympy.Float(0.01) * x_plain, X / 100),
        (sympy.Float("1e-20") * x_plain, X / 10**20),
        (x_plain ** sympy.Float(2.0), X**2),
        (sympy.Max(x_plain, 0), sympy.Max(X, 0)),
        (sympy.sqrt(x_plain**2), sympy.Abs(X)),
        (sympy.exp(x_positive) - 1, sympy.exp(X) - 1),
        (
            sympy.Piecewise((x_plain, x_plain > 0), (0, True)),
            sympy.Piecewise((X, X > 0), (0, True)),
        ),
        (sympy.Heaviside(x_plain), sympy.Heaviside(X)),
        (sympy.Integer(3), sympy.Integer(3)),
        (sympy.pi * X, sympy.pi * X),
        (2 * ((x_plain + 1) * sympy.sin(x_plain)), (2 * X + 2) * sympy.sin(X)),
    ],
)
def test_check_expression_accepts(expr: sympy.Basic, expected: sympy.Expr) -> None:
    checked = check_expression(expr)
    assert checked == expected
    assert checked.free_symbols <= {X}


def test_check_expression_converts_floats() -> None:
    checked = check_expression(sympy.Float(0.25) * x_plain + sympy.Float(0.1))
    assert checked == X / 4 + sympy.Rational(1, 10)
    assert not checked.has(sympy.Float)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        (sympy.Symbol("y") + 1, r"symbol 'y' is not accepted: the only variable is x"),
        (x_plain + sympy.Symbol("z"), r"symbol 'z' is not accepted"),
        (sympy.floor(x_plain), r"sympy object floor in 'floor\(x\)' is not accepted"),
        (sympy.Tuple(1, 2), r"sympy object Tuple .* is not accepted"),
        (sympy.I * x_plain, r"the imaginary unit I"),
        (sympy.oo * x_plain, r"which is infinity"),
        (sympy.EulerGamma * x_plain, r"whose EulerGamma is not accepted"),
        (x_plain > 0, r"is a condition; expected an expression"),
        (sympy.Integer(10) ** 100, r"is too long; exact numbers may have at most 40"),
        (x_plain ** sympy.Float(1e12), r"exponent 1000000000000 .* is too large"),
        (
            sympy.exp(sympy.Float(1e12) * sympy.log(2) * x_plain),
            r"contains log and the number",
        ),
        (
            sympy.Max(
                *[x_plain**k for k in range(1, MAX_MINMAX_ARGUMENTS + 2)],
                evaluate=False,
            ),
            r"arguments to Max and Min",
        ),
    ],
)
def test_check_expression_rejects(expr: sympy.Basic, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        check_expression(expr)


def test_check_expression_rejects_non_sympy() -> None:
    with pytest.raises(ExpressionError, match=r"must be a sympy expression, got int"):
        check_expression(3)  # type: ignore[arg-type]


def test_check_expression_node_limit() -> None:
    wide = sympy.Add(*[sympy.sin(k * x_plain) for k in range(1, MAX_NODES)])
    with pytest.raises(ExpressionError, match=r"expression has more than 500 nodes"):
        check_expression(wide)


def test_check_expression_depth_limit() -> None:
    deep = x_plain
    for _ in range(MAX_DEPTH):
        deep = sympy.sin(deep)
    with pytest.raises(ExpressionError, match=r"nested deeper than 40 levels"):
        check_expression(deep)


def test_check_expression_idempotent() -> None:
    for _, expected in ACCEPTED:
        assert check_expression(expected) == expected


# ---------------------------------------------------------------------------
# expression_text


TEXT_CASES = [text for text, _ in ACCEPTED] + [
    "Heaviside(x - 1, 1/2)",
    "Piecewise((x, x > 1/3), (-x/7, x < -2/3), (0, True))",
    "Piecewise((x, ~((x > 0) & (x < 1))), (1, True))",
    "E**2*x + pi**2",
    "x/3**30",
    "10**13*x - 10**20",
    "x**(-2/3) + 2**(-x)",
    "1.0507009873554804934193349852946*Piecewise((x, x > 0), (exp(x) - 1, True))",
    "2*((x + 1)*sin(x))",
    "abs(-abs(x))",
    "sqrt(2)*x/2 - 1/sqrt(x)",
]


@pytest.mark.parametrize("text", TEXT_CASES)
def test_text_round_trip(text: str) -> None:
    expr = parse_expression(text)
    assert parse_expression(expression_text(expr)) == expr


@pytest.mark.parametrize(
    ("text", "written"),
    [
        (
            "Piecewise((x, (x > 0) & (x < 1)), (0, True))",
            "Piecewise((x, (x > 0) & (x < 1)), (0, True))",
        ),
        ("Heaviside(x, 0)", "Heaviside(x, 0)"),
        ("Heaviside(x)", "Heaviside(x)"),
        ("10**13*x", "10000000000000.0*x"),
        ("x/3**30", "x/205891132094649.0"),
        ("E*x", "E*x"),
        ("x/5", "x/5"),
    ],
)
def test_text_form(text: str, written: str) -> None:
    assert expression_text(parse_expression(text)) == written


def test_function_names_listed() -> None:
    for name in (
        "Abs",
        "Max",
        "Min",
        "sign",
        "Heaviside",
        "Piecewise",
        "exp",
        "log",
        "sqrt",
        "sin",
        "cos",
        "tan",
        "tanh",
        "sinh",
        "cosh",
        "atan",
        "asinh",
        "erf",
        "erfc",
        "Eq",
        "Ne",
        "And",
        "Or",
        "Not",
        "abs",
        "max",
        "min",
    ):
        assert name in FUNCTION_NAMES


# ---------------------------------------------------------------------------
# Random whitelisted trees

_LEAVES = st.sampled_from(
    ["x", "x", "x", "1", "2", "0", "-3", "0.5", "1/3", "pi", "E", "0.2", "10", "1e-3"]
)
_UNARY = [
    "exp",
    "log",
    "sin",
    "cos",
    "tan",
    "tanh",
    "sinh",
    "cosh",
    "atan",
    "asinh",
    "erf",
    "erfc",
    "Abs",
    "abs",
    "sign",
    "sqrt",
    "Heaviside",
]
_EXPONENTS = ["2", "3", "-1", "1/2", "1/3", "-2", "0.5", "64"]


def _conditions(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    comparison = st.tuples(
        children, st.sampled_from(["<", "<=", ">", ">="]), children
    ).map(lambda t: f"({t[0]}) {t[1]} ({t[2]})")
    return st.one_of(
        comparison,
        st.tuples(comparison, st.sampled_from(["&", "|"]), comparison).map(
            lambda t: f"({t[0]}) {t[1]} ({t[2]})"
        ),
        comparison.map(lambda c: f"~({c})"),
        st.tuples(st.sampled_from(["Eq", "Ne"]), children, children).map(
            lambda t: f"{t[0]}({t[1]}, {t[2]})"
        ),
        st.just("True"),
    )


def _compound(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, st.sampled_from(["+", "-", "*", "/"]), children).map(
            lambda t: f"({t[0]}) {t[1]} ({t[2]})"
        ),
        st.tuples(children, st.sampled_from(_EXPONENTS)).map(
            lambda t: f"({t[0]})**({t[1]})"
        ),
        st.tuples(st.sampled_from(_UNARY), children).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(st.sampled_from(["Max", "Min"]), children, children).map(
            lambda t: f"{t[0]}({t[1]}, {t[2]})"
        ),
        st.tuples(children, st.sampled_from(["0", "1", "1/2"])).map(
            lambda t: f"Heaviside({t[0]}, {t[1]})"
        ),
        st.tuples(children, _conditions(children), children).map(
            lambda t: f"Piecewise(({t[0]}, {t[1]}), ({t[2]}, True))"
        ),
        children.map(lambda c: f"2**({c})"),
        children.map(lambda c: f"-({c})"),
    )


expression_texts = st.recursive(_LEAVES, _compound, max_leaves=10)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=expression_texts)
def test_random_trees_round_trip(text: str) -> None:
    try:
        expr = parse_expression(text)
    except ExpressionError:
        assume(False)
        raise
    assert parse_expression(expression_text(expr)) == expr
    assert expression_from_json(expression_to_json(expr)) == expr
    assert check_expression(expr) == expr


_TOKENS = [
    "x",
    "(",
    ")",
    "+",
    "-",
    "*",
    "/",
    "**",
    ",",
    "exp",
    "log",
    "Max",
    "Piecewise",
    "1",
    "0",
    "2.5",
    "pi",
    "E",
    "<",
    ">",
    "&",
    "|",
    "~",
    "True",
    "sqrt",
    "Heaviside",
    "Eq",
    "abs",
    "64",
    "9",
    "1e-3",
    "y",
    ".",
    "[",
    "]",
    "lambda",
    ":",
    "'a'",
    " ",
]


@settings(max_examples=300, deadline=None)
@given(text=st.lists(st.sampled_from(_TOKENS), max_size=40).map("".join))
def test_random_text_raises_only_expression_error(text: str) -> None:
    try:
        expr = parse_expression(text)
    except ExpressionError as error:
        assert "\n" not in str(error)
    else:
        assert parse_expression(expression_text(expr)) == expr

"""Tests of the JSON expression tree: format, round trips and rejections."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symgroups._errors import ExpressionError
from symgroups._exprjson import expression_from_json, expression_to_json
from symgroups._parse import (
    CLASS_NAMES,
    MAX_DEPTH,
    MAX_MINMAX_ARGUMENTS,
    MAX_NODES,
    MAX_NUMBER_DIGITS,
    expression_text,
    parse_expression,
)
from symgroups._symbols import X

SYM = {"sym": "x"}


def call(name: str, *args: dict[str, Any]) -> dict[str, Any]:
    """Return the JSON node ``{"f": name, "args": [...]}``."""
    return {"f": name, "args": list(args)}


def integer(value: int) -> dict[str, Any]:
    return {"int": str(value)}


def test_encode_leaves() -> None:
    assert expression_to_json(X) == SYM
    assert expression_to_json(sympy.Integer(-12)) == {"int": "-12"}
    assert expression_to_json(sympy.Rational(1, 5)) == {"rat": ["1", "5"]}
    assert expression_to_json(sympy.pi) == {"const": "pi"}
    assert expression_to_json(sympy.E) == {"const": "E"}


def test_encode_big_integer_exact() -> None:
    value = sympy.Integer(10) ** 30 + 7
    assert expression_to_json(value) == {"int": "1000000000000000000000000000007"}


def test_encode_piecewise() -> None:
    expr = parse_expression("Piecewise((x, x > 0), (exp(x) - 1, True))")
    expected = call(
        "Piecewise",
        call("ExprCondPair", SYM, call("StrictGreaterThan", SYM, integer(0))),
        call(
            "ExprCondPair",
            call("Add", integer(-1), call("exp", SYM)),
            {"bool": True},
        ),
    )
    assert expression_to_json(expr) == expected


def test_encode_heaviside_keeps_value_at_zero() -> None:
    assert expression_to_json(parse_expression("Heaviside(x)")) == call(
        "Heaviside", SYM, {"rat": ["1", "2"]}
    )
    assert expression_to_json(parse_expression("Heaviside(x, 0)")) == call(
        "Heaviside", SYM, integer(0)
    )


def test_decode_matches_constructors() -> None:
    obj = call("Max", SYM, call("Mul", {"rat": ["1", "5"]}, SYM))
    assert expression_from_json(obj) == sympy.Max(X, X / 5)


EXAMPLES = [
    "0.5*x*(1 + erf(x/sqrt(2)))",
    "x*tanh(log(1+exp(x)))",
    "Max(x, 0.2*x)",
    "Min(6, Max(0, x + 3))/6",
    "Piecewise((x, x > 0), (exp(x) - 1, True))",
    "Piecewise((x, (x > 0) & (x < 1) | Eq(x, 2)), (0, True))",
    "Piecewise((x, ~((x > 0) & (x < 1))), (1, True))",
    "Piecewise((1, Ne(x, 0)), (0, True))",
    "Piecewise((x, x <= -1/2), (x**2, x >= 1/2), (0, True))",
    "Heaviside(x, 0)",
    "Abs(x)/(1+Abs(x))",
    "x**3 + x",
    "exp(-x**2)",
    "2**x + pi*sign(x) - E",
    "1.0507009873554804934193349852946*x",
    "x/3**30 + 10**13",
    "sin(x) + cos(x) + tan(x) + sinh(x) + cosh(x) + atan(x) + asinh(x) + erfc(x)",
]


@pytest.mark.parametrize("text", EXAMPLES)
def test_json_round_trip(text: str) -> None:
    expr = parse_expression(text)
    obj = json.loads(json.dumps(expression_to_json(expr)))
    assert expression_from_json(obj) == expr


@pytest.mark.parametrize("text", EXAMPLES)
def test_json_is_canonical(text: str) -> None:
    obj = expression_to_json(parse_expression(text))
    assert expression_to_json(expression_from_json(obj)) == obj


# (JSON value, regular expression for the message)
REJECTED: list[tuple[Any, str]] = [
    ([], r"at the top level: expected an object .*; got list"),
    ("x", r"at the top level: expected an object .*; got str"),
    ({}, r"at the top level: a node has exactly one of the keys .*; found none"),
    ({"sym": "x", "int": "1"}, r"found 'sym', 'int'"),
    ({"sym": "x", "foo": 1}, r"at foo: unknown key 'foo'; a 'sym' node has only"),
    (call("Add", SYM, {"sym": "x", "g": 1}), r"at args\[1\]\.g: unknown key 'g'"),
    ({"f": "exp", "args": [SYM], "extra": 1}, r"at extra: unknown key 'extra'"),
    ({1: "x", "sym": "x"}, r"at 1: unknown key 1"),
    ({"sym": "y"}, r"at sym: unknown symbol 'y'; the only variable is 'x'"),
    (
        call("Add", SYM, call("Foo", SYM)),
        r"at args\[1\]\.f: unknown function 'Foo'; the accepted",
    ),
    (call("sqrt", SYM), r"at f: unknown function 'sqrt'"),
    ({"f": 3, "args": []}, r"at f: unknown function 3"),
    ({"f": "exp"}, r"at the top level: the exp node has no 'args' list"),
    ({"f": "exp", "args": {"a": 1}}, r"at args: expected a list of nodes, got dict"),
    ({"int": 5}, r"at int: expected an integer string .* got 5"),
    ({"int": True}, r"at int: expected an integer string"),
    (
        {"int": "01"},
        r"at int: expected an integer string .* no leading zeros, got '01'",
    ),
    ({"int": "-0"}, r"at int: expected an integer string"),
    ({"int": "1e3"}, r"at int: expected an integer string"),
    (
        {"int": "1" * (MAX_NUMBER_DIGITS + 1)},
        r"at int: expected an integer string .* at most 40",
    ),
    ({"rat": ["2", "4"]}, r"at rat: 2/4 is not a rational in lowest terms"),
    ({"rat": ["1", "1"]}, r"at rat: 1/1 is not a rational in lowest terms"),
    ({"rat": ["1", "-3"]}, r"at rat: 1/-3 is not a rational in lowest terms"),
    ({"rat": ["0", "3"]}, r"at rat: 0/3 is not a rational in lowest terms"),
    ({"rat": ["1"]}, r"at rat: expected a list of two integer strings"),
    ({"rat": "1/5"}, r"at rat: expected a list of two integer strings"),
    ({"rat": ["x", "5"]}, r"at rat\[0\]: expected an integer string"),
    ({"const": "e"}, r"at const: unknown constant 'e'; the constants are 'pi' and 'E'"),
    ({"const": "I"}, r"at const: unknown constant 'I'"),
    ({"bool": 1}, r"at bool: expected true or false, got 1"),
    ({"bool": True}, r"decoded from JSON is a condition; expected an expression"),
    (call("Add", SYM, {"bool": True}), r"argument 2 of Add at the top level is 'True'"),
    (call("Add", SYM), r"Add at the top level takes at least 2 arguments, got 1"),
    (call("exp", SYM, SYM), r"exp at the top level takes 1 argument, got 2"),
    (call("Pow", SYM, integer(65)), r"exponent 65 at the top level is too large"),
    (call("Pow", integer(2), integer(10**12)), r"exponent 1000000000000 .* too large"),
    (call("Pow", SYM, SYM), r"power at the top level has the base 'x'"),
    (
        call("exp", call("Mul", integer(10**12), call("log", integer(2)))),
        r"exp argument term .* contains log and the number 1000000000000",
    ),
    (
        call("Pow", integer(10**12), integer(64)),
        r"number of about 769 digits at the top",
    ),
    (call("Mul", integer(-1), call("log", integer(-1))), r"imaginary unit I"),
    (call("Pow", integer(0), integer(-1)), r"complex infinity"),
    (
        call("Piecewise", SYM),
        r"argument 1 of Piecewise at the top level is 'x'; expected a pair",
    ),
    (
        call("Piecewise", call("ExprCondPair", SYM, SYM)),
        r"argument 2 of ExprCondPair at args\[0\] is 'x'; expected a condition",
    ),
    (
        call("StrictLessThan", SYM, integer(0)),
        r"is a condition; expected an expression",
    ),
    (
        call("Heaviside", SYM, SYM),
        r"argument 2 of Heaviside .* expected a number without x",
    ),
    (
        call(
            "Max",
            *[call("Pow", SYM, integer(k)) for k in range(1, MAX_MINMAX_ARGUMENTS + 2)],
        ),
        r"passes 9 arguments to Max and Min; at most 8 in total",
    ),
]


@pytest.mark.parametrize(
    ("obj", "message"), REJECTED, ids=[str(o)[:40] for o, _ in REJECTED]
)
def test_decode_rejects(obj: Any, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        expression_from_json(obj)


def test_decode_node_limit() -> None:
    wide = call(
        "Add", *[call("sin", call("Mul", integer(k), SYM)) for k in range(1, 200)]
    )
    with pytest.raises(ExpressionError, match=r"the tree has more than 500 nodes"):
        expression_from_json(wide)


def test_decode_node_limit_exact() -> None:
    terms = [call("Pow", SYM, integer(k)) for k in range(1, 65)]
    accepted = call("Add", *terms[:49])  # 1 + 49*3 nodes
    assert expression_from_json(accepted) == sympy.Add(*[X**k for k in range(1, 50)])
    too_many = call("Add", *([SYM] * MAX_NODES))
    with pytest.raises(ExpressionError, match=r"more than 500 nodes"):
        expression_from_json(too_many)


def test_decode_depth_limit() -> None:
    node: dict[str, Any] = SYM
    for _ in range(MAX_DEPTH - 1):
        node = call("sin", node)
    assert expression_from_json(node).count(sympy.sin) == MAX_DEPTH - 1
    with pytest.raises(ExpressionError, match=r"at args\[0\]\..*nested deeper than 40"):
        expression_from_json(call("sin", node))


def test_decode_cyclic_tree() -> None:
    loop: dict[str, Any] = {"f": "exp", "args": []}
    loop["args"].append(loop)
    with pytest.raises(ExpressionError, match=r"nested deeper than 40|more than 500"):
        expression_from_json(loop)


def test_decode_error_one_line() -> None:
    for obj, _ in REJECTED:
        with pytest.raises(ExpressionError) as caught:
            expression_from_json(obj)
        assert "\n" not in str(caught.value)


def test_decode_stabilizes() -> None:
    # Built once, Abs(-Abs(x)) is Abs(Abs(x)); decoding returns the stable Abs(x).
    obj = call("Abs", call("Mul", integer(-1), call("Abs", SYM)))
    assert expression_from_json(obj) == sympy.Abs(X)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        (sympy.Float(0.5) * X, r"is not in the form that decoding rebuilds"),
        (sympy.Symbol("x") + 1, r"is not in the form that decoding rebuilds"),
        (sympy.Add(X, X, evaluate=False), r"is not in the form that decoding rebuilds"),
        (sympy.floor(X), r"sympy object floor .* is not accepted"),
        (sympy.Symbol("y"), r"symbol 'y' is not accepted"),
    ],
)
def test_encode_rejects(expr: sympy.Basic, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        expression_to_json(expr)


# ---------------------------------------------------------------------------
# Random trees, as an untrusted certificate could contain them

_LEAVES = st.one_of(
    st.just(SYM),
    st.integers(-70, 70).map(integer),
    st.sampled_from(
        [
            {"rat": ["1", "2"]},
            {"rat": ["-1", "3"]},
            {"rat": ["7", "1000000000000000000000"]},
            {"const": "pi"},
            {"const": "E"},
            {"bool": True},
            {"bool": False},
        ]
    ),
)
_TREES = st.recursive(
    _LEAVES,
    lambda children: st.tuples(
        st.sampled_from(CLASS_NAMES), st.lists(children, min_size=1, max_size=3)
    ).map(lambda pair: call(pair[0], *pair[1])),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(obj=_TREES)
def test_random_trees_decode_safely(obj: dict[str, Any]) -> None:
    try:
        expr = expression_from_json(obj)
    except ExpressionError as error:
        assert "\n" not in str(error)
        return
    encoded = expression_to_json(expr)
    assert expression_from_json(json.loads(json.dumps(encoded))) == expr
    assert expression_to_json(expression_from_json(encoded)) == encoded
    assert parse_expression(expression_text(expr)) == expr

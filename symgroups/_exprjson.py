"""Expression trees as JSON objects, for certificates from untrusted sources.

Each node is a JSON object with exactly one of these forms:

* ``{"sym": "x"}`` for the variable :data:`symgroups._symbols.X`;
* ``{"int": "12"}`` for an integer, as a string so that big integers stay exact;
* ``{"rat": ["1", "5"]}`` for a rational in lowest terms with denominator >= 2;
* ``{"const": "pi"}`` or ``{"const": "E"}``;
* ``{"bool": true}`` or ``{"bool": false}``, only as a Piecewise condition;
* ``{"f": NAME, "args": [...]}`` for a sympy class of
  :data:`symgroups._parse.CLASS_NAMES`: arithmetic (``Add``, ``Mul``, ``Pow``),
  functions (``exp``, ``Max``, ...), relationals (``StrictLessThan``,
  ``Equality``, ...), booleans (``And``, ``Or``, ``Not``) and ``Piecewise``,
  whose arguments are ``ExprCondPair`` nodes with an expression and a condition.

Decoding never evaluates text. It checks the tree's size before building
anything, then builds it with sympy constructors through
:class:`symgroups._parse.ExpressionBuilder`, so a decoded expression satisfies
the same whitelist and limits as a parsed one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import sympy

from ._errors import ExpressionError
from ._parse import (
    CLASS_NAMES,
    MAX_DEPTH,
    MAX_MINMAX_ARGUMENTS,
    MAX_NODES,
    MAX_NUMBER_DIGITS,
    ExpressionBuilder,
    check_expression,
)
from ._symbols import X

_KIND_KEYS = ("sym", "int", "rat", "const", "bool", "f")
_CONSTANTS: dict[str, sympy.Expr] = {"pi": sympy.pi, "E": sympy.E}
# A canonical integer: no sign on zero, no leading zeros, at most
# MAX_NUMBER_DIGITS digits.
_INTEGER_PATTERN = re.compile(rf"0|-?[1-9][0-9]{{0,{MAX_NUMBER_DIGITS - 1}}}")
_NODE_FORMS = (
    'an object {"sym": "x"}, {"int": "12"}, {"rat": ["1", "5"]}, '
    '{"const": "pi"}, {"bool": true} or {"f": NAME, "args": [...]}'
)


def expression_to_json(expr: sympy.Basic) -> dict[str, Any]:
    """Encode an accepted expression as a JSON tree.

    The law is ``expression_from_json(expression_to_json(e)) == e`` for every
    ``e`` that :func:`symgroups._parse.parse_expression`,
    :func:`symgroups._parse.check_expression` or :func:`expression_from_json`
    returns. Other input is first passed through ``check_expression``.

    Raises
    ------
    ExpressionError
        If ``check_expression`` rejects ``expr``, or changes it (for example a
        ``Float``, a symbol other than :data:`symgroups._symbols.X`, or a node
        built with ``evaluate=False``), because the JSON would then not decode
        to ``expr``.
    """
    checked = check_expression(expr)
    if checked != expr:
        raise ExpressionError(
            f"expression {_short(str(expr))} is not in the form that decoding "
            f"rebuilds; encode check_expression(expr), which is "
            f"{_short(str(checked))}, instead"
        )
    return _encode(checked)


def _encode(node: sympy.Basic) -> dict[str, Any]:
    if isinstance(node, sympy.Integer):
        return {"int": str(node.p)}
    if isinstance(node, sympy.Rational):
        return {"rat": [str(node.p), str(node.q)]}
    if node == X:
        return {"sym": "x"}
    if node is sympy.pi:
        return {"const": "pi"}
    if node is sympy.E:
        return {"const": "E"}
    if node is sympy.true or node is sympy.false:
        return {"bool": bool(node)}
    # check_expression accepted every class, and each class name is its key.
    return {"f": type(node).__name__, "args": [_encode(arg) for arg in node.args]}


def expression_from_json(obj: Any) -> sympy.Expr:
    """Decode a JSON expression tree from an untrusted source.

    The tree is first checked without sympy: node shapes and keys, number
    syntax, at most :data:`symgroups._parse.MAX_NODES` nodes, depth at most
    :data:`symgroups._parse.MAX_DEPTH`, and the ``Max``/``Min`` budget. It is
    then built bottom up with the checks of
    :class:`symgroups._parse.ExpressionBuilder` (exponents, number sizes,
    argument kinds) before each constructor call.

    Parameters
    ----------
    obj : Any
        The parsed JSON value, as ``json.loads`` returns it.

    Returns
    -------
    sympy.Expr
        An expression ``e`` with ``expression_to_json(e) == obj`` whenever
        ``obj`` is already in the canonical form that the encoder writes.

    Raises
    ------
    ExpressionError
        With the JSON path of the offending node (such as ``args[1].f``).
    """
    _scan(obj)
    builder = ExpressionBuilder()
    result = _decode(obj, (), builder)
    return builder.finish(result, lambda: "decoded from JSON")


def _path_text(path: Sequence[str]) -> str:
    return ".".join(path) if path else "the top level"


def _invalid(path: Sequence[str], message: str) -> ExpressionError:
    return ExpressionError(f"invalid expression JSON at {_path_text(path)}: {message}")


def _scan(obj: Any) -> None:
    """Check shapes, keys, numbers and size of the tree without sympy."""
    count = 0
    minmax_arguments = 0
    stack: list[tuple[Any, tuple[str, ...], int]] = [(obj, (), 1)]
    while stack:
        node, path, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise _invalid(
                (),
                f"the tree has more than {MAX_NODES} nodes; at most {MAX_NODES} "
                f"are accepted",
            )
        if depth > MAX_DEPTH:
            raise _invalid(
                path,
                f"the tree is nested deeper than {MAX_DEPTH} levels; at most "
                f"{MAX_DEPTH} are accepted",
            )
        kind = _node_kind(node, path)
        value = node[kind]
        if kind == "sym":
            if value != "x":
                raise _invalid(
                    (*path, "sym"),
                    f"unknown symbol {value!r}; the only variable is 'x'",
                )
        elif kind == "int":
            _parse_integer(value, (*path, "int"))
        elif kind == "rat":
            _parse_rational(value, (*path, "rat"))
        elif kind == "const":
            if not isinstance(value, str) or value not in _CONSTANTS:
                raise _invalid(
                    (*path, "const"),
                    f"unknown constant {value!r}; the constants are 'pi' and 'E'",
                )
        elif kind == "bool":
            if not isinstance(value, bool):
                raise _invalid(
                    (*path, "bool"), f"expected true or false, got {value!r}"
                )
        else:
            args = _function_args(node, path)
            if value in ("Max", "Min"):
                minmax_arguments += len(args)
            stack.extend(
                (child, (*path, f"args[{index}]"), depth + 1)
                for index, child in enumerate(args)
            )
    if minmax_arguments > MAX_MINMAX_ARGUMENTS:
        raise _invalid(
            (),
            f"the tree passes {minmax_arguments} arguments to Max and Min; at most "
            f"{MAX_MINMAX_ARGUMENTS} in total are accepted because sympy compares "
            f"them pairwise",
        )


def _node_kind(node: Any, path: tuple[str, ...]) -> str:
    """Return the one form key of ``node``, rejecting any other key."""
    if not isinstance(node, dict):
        raise _invalid(path, f"expected {_NODE_FORMS}; got {type(node).__name__}")
    kinds = [key for key in _KIND_KEYS if key in node]
    if len(kinds) != 1:
        found = ", ".join(repr(key) for key in kinds) or "none"
        raise _invalid(
            path,
            f"a node has exactly one of the keys sym, int, rat, const, bool, f; "
            f"found {found}",
        )
    kind = kinds[0]
    allowed = {"f", "args"} if kind == "f" else {kind}
    for key in node:
        if key not in allowed:
            key_text = key if isinstance(key, str) else repr(key)
            raise _invalid(
                (*path, key_text),
                f"unknown key {key!r}; a {kind!r} node has only the keys "
                f"{', '.join(sorted(allowed))}",
            )
    return kind


def _function_args(node: dict[str, Any], path: tuple[str, ...]) -> list[Any]:
    name = node["f"]
    if not isinstance(name, str) or name not in CLASS_NAMES:
        raise _invalid(
            (*path, "f"),
            f"unknown function {name!r}; the accepted names are "
            f"{', '.join(CLASS_NAMES)}",
        )
    if "args" not in node:
        raise _invalid(path, f"the {name} node has no 'args' list")
    args = node["args"]
    if not isinstance(args, list):
        raise _invalid(
            (*path, "args"), f"expected a list of nodes, got {type(args).__name__}"
        )
    return args


def _parse_integer(value: Any, path: Sequence[str]) -> int:
    if not isinstance(value, str) or _INTEGER_PATTERN.fullmatch(value) is None:
        raise _invalid(
            path,
            f'expected an integer string such as "-12" with at most '
            f"{MAX_NUMBER_DIGITS} digits and no leading zeros, got {_short(value)}",
        )
    return int(value)


def _parse_rational(value: Any, path: tuple[str, ...]) -> tuple[int, int]:
    if not isinstance(value, list) or len(value) != 2:
        raise _invalid(
            path,
            f"expected a list of two integer strings [numerator, denominator], "
            f"got {_short(value)}",
        )
    p = _parse_integer(value[0], (*path[:-1], f"{path[-1]}[0]"))
    q = _parse_integer(value[1], (*path[:-1], f"{path[-1]}[1]"))
    if q < 2 or p == 0 or math.gcd(p, q) != 1:
        raise _invalid(
            path,
            f"{p}/{q} is not a rational in lowest terms with a denominator of at "
            f'least 2; write integers as {{"int": ...}}',
        )
    return p, q


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _decode(
    node: dict[str, Any], path: tuple[str, ...], builder: ExpressionBuilder
) -> sympy.Basic:
    def where() -> str:
        return f"at {_path_text(path)}"

    if "sym" in node:
        return builder.variable(where)
    if "int" in node:
        return builder.number(int(node["int"]), 1, where)
    if "rat" in node:
        p, q = (int(part) for part in node["rat"])
        return builder.number(p, q, where)
    if "const" in node:
        return _CONSTANTS[node["const"]]
    if "bool" in node:
        return sympy.true if node["bool"] else sympy.false
    args = [
        _decode(child, (*path, f"args[{index}]"), builder)
        for index, child in enumerate(node["args"])
    ]
    return builder.apply(node["f"], args, where)

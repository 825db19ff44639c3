"""Black-box numeric discovery of callables, and the Lie-algebra check."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.special
import sympy
import torch

import symgroups
from symgroups import X
from symgroups._blackbox import (
    LIE_RTOL,
    as_float64_function,
    expected_lie_dimension,
)
from symgroups._group import Character, GroupDescription
from symgroups._numeric import (
    compile_numpy,
    discover_callable,
    discover_numerically,
    find_breakpoints,
)
from symgroups.cli import main

x = X


def log_periodic(t):
    """``t (2 + sin(2 pi log2 |t|))``, which ``t -> 2 t`` and ``t -> -t`` fix."""
    with np.errstate(divide="ignore", invalid="ignore"):
        value = t * (2.0 + np.sin(2.0 * np.pi * np.log2(np.abs(t))))
    return np.where(t == 0.0, 0.0, value)


def monomial(scalars, power=0, sign=0, generators=()):
    return GroupDescription(
        "monomial", scalars, generators=generators, character=Character(sign, power)
    )


def test_discover_log_periodic_generator():
    result = symgroups.discover(log_periodic)
    assert result.status == "numerically_verified"
    assert result.group.kind == "monomial"
    assert result.group.scalars == "discrete"
    assert set(result.group.generators) == {sympy.Integer(-1), sympy.Integer(2)}
    assert result.group.character.power == 1
    assert result.evidence["passed"] is True
    label = f"{__name__}.log_periodic"
    assert result.evidence["discovery"]["callable"] == label
    assert result.evidence["lie_algebra"]["measured"] == 0
    assert result.evidence["lie_algebra"]["agrees"] is True
    assert result.activation.name == f"callable: {label}"
    assert result.notes == []


@pytest.mark.parametrize(
    ("fn", "scalars", "power"),
    [
        (np.tanh, "sign", 0),
        (lambda t: np.maximum(t, 0.2 * t), "positive", 1),
        (lambda t: t**3, "nonzero", 3),
        (scipy.special.expit, "trivial", 0),
    ],
)
def test_discover_numpy_callables(fn, scalars, power):
    result = symgroups.discover(fn)
    assert result.status == "numerically_verified"
    assert result.group.scalars == scalars
    assert result.group.character.power == power


def test_discover_affine_and_constant():
    affine = symgroups.discover(lambda t: 2.0 * t + 1.0)
    assert affine.group.kind == "affine_stabilizer"
    assert affine.evidence["lie_algebra"]["measured"] == 3 * 3 - 3
    constant = symgroups.discover(lambda t: np.full_like(t, 3.0))
    assert constant.group.kind == "degenerate"
    assert constant.evidence["lie_algebra"]["measured"] == 2 * 9 - 3
    assert constant.evidence["lie_algebra"]["agrees"] is True


def test_discover_torch_module_and_function():
    torch = pytest.importorskip("torch")
    gelu = symgroups.discover(torch.nn.GELU())
    assert gelu.status == "numerically_verified"
    assert gelu.group == symgroups.query("gelu").group
    relu = symgroups.discover(lambda t: torch.relu(t), seed=3)
    assert relu.group == symgroups.query("relu").group
    assert relu.evidence["discovery"]["seed"] == 3


def test_discover_does_not_mutate_input():
    torch = pytest.importorskip("torch")
    f = as_float64_function(torch.nn.ReLU(inplace=True))
    t = np.array([-1.0, 2.0, -3.0])
    assert np.array_equal(f(t), [0.0, 2.0, 0.0])
    assert np.array_equal(t, [-1.0, 2.0, -3.0])


def test_discover_rejects_non_elementwise():
    torch = pytest.importorskip("torch")
    with pytest.raises(symgroups.ExpressionError, match="not elementwise"):
        symgroups.discover(torch.nn.Softmax(dim=-1))
    with pytest.raises(symgroups.ExpressionError, match="not elementwise"):
        symgroups.discover(lambda t: t / np.linalg.norm(t))


def test_discover_rejects_bad_arguments():
    with pytest.raises(symgroups.ParameterError, match="callable"):
        symgroups.discover(3)
    with pytest.raises(symgroups.ParameterError, match="seed"):
        symgroups.discover(np.tanh, seed=-1)
    with pytest.raises(symgroups.ExpressionError, match="cannot evaluate"):
        symgroups.discover(lambda t: t.nonexistent_method())


@pytest.mark.parametrize(
    "expr",
    [
        sympy.Max(x, x / 5),
        sympy.tanh(x),
        x * (1 + sympy.erf(x / sympy.sqrt(2))) / 2,
        sympy.Min(sympy.Max(x, -1), 1),
    ],
)
def test_expression_and_callable_share_discovery(expr):
    group, record = discover_numerically(expr)
    f = compile_numpy(expr)
    same_group, same_record = discover_callable(
        f, label=str(expr), breakpoints=find_breakpoints(expr)
    )
    assert same_group == group
    assert same_record.pop("callable") == record.pop("expression")
    assert json.dumps(same_record) == json.dumps(record)


#: (name, sigma, Lie-algebra dimension of the intertwiner group on R^n).
LIE_CASES = [
    ("relu", sympy.Max(0, x), lambda n: n),
    ("tanh", sympy.tanh(x), lambda n: 0),
    ("gelu", x * (1 + sympy.erf(x / sympy.sqrt(2))) / 2, lambda n: 0),
    ("identity", x, lambda n: n * n),
    ("cube", x**3, lambda n: n),
    ("affine", 2 * x + 1, lambda n: n * n - n),
    ("exp", sympy.exp(x), lambda n: 0),
]


@pytest.mark.parametrize(("name", "expr", "dimension"), LIE_CASES)
@pytest.mark.parametrize("n", [2, 3])
def test_lie_check_matches_group(name, expr, dimension, n):
    result = symgroups.query(expr)
    f = compile_numpy(expr)
    record = symgroups.lie_algebra_check(
        f, result.group, n=n, breakpoints=find_breakpoints(expr)
    )
    assert record["expected"] == dimension(n)
    assert record["measured"] == dimension(n)
    assert record["agrees"] is True
    assert record["note"] == ""
    assert record["unknowns"] == 2 * n * n


def test_lie_check_separates_zero_from_nonzero():
    for expr in (sympy.Max(0, x), sympy.tanh(x), x**3):
        record = symgroups.lie_algebra_check(compile_numpy(expr), None)
        if record["largest_zero"] is not None:
            assert record["largest_zero"] < LIE_RTOL * 1e-3
        assert record["smallest_nonzero"] > 1e-2


def test_lie_check_black_box():
    record = symgroups.lie_algebra_check(
        log_periodic, monomial("discrete", 1, 1, generators=(2, -1))
    )
    assert record["measured"] == 0
    assert record["agrees"] is True


def test_lie_check_reports_mismatch():
    wrong = monomial("trivial")
    record = symgroups.lie_algebra_check(lambda t: np.maximum(t, 0.0), wrong, n=3)
    assert record["measured"] == 3
    assert record["expected"] == 0
    assert record["agrees"] is False
    assert "3-dimensional" in record["note"]
    assert "0-dimensional" in record["note"]


def test_lie_check_drops_kinks():
    hardtanh = compile_numpy(sympy.Min(sympy.Max(x, -1), 1))
    record = symgroups.lie_algebra_check(hardtanh, monomial("sign"), n_samples=2000)
    assert record["measured"] == 0
    assert record["agrees"] is True


def test_lie_check_rejects_bad_arguments():
    with pytest.raises(symgroups.ParameterError, match="n must be"):
        symgroups.lie_algebra_check(np.tanh, None, n=0)
    with pytest.raises(symgroups.ParameterError, match="n_samples"):
        symgroups.lie_algebra_check(np.tanh, None, n=3, n_samples=5)


def test_expected_lie_dimension_table():
    n = 4
    assert expected_lie_dimension(GroupDescription("general_linear"), n) == 16
    assert expected_lie_dimension(GroupDescription("affine_stabilizer"), n) == 12
    assert expected_lie_dimension(GroupDescription("degenerate"), n, 0.0) == 32
    assert expected_lie_dimension(GroupDescription("degenerate"), n, 2.0) == 28
    assert expected_lie_dimension(monomial("positive", 1), n) == 4
    assert expected_lie_dimension(monomial("nonzero", 3, 1), n) == 4
    assert expected_lie_dimension(monomial("sign", 0, 1), n) == 0
    assert expected_lie_dimension(monomial("trivial"), n) == 0
    discrete = monomial("discrete", 1, generators=(2,))
    assert expected_lie_dimension(discrete, n) == 0


def test_cli_lie_check_text(capsys):
    assert main(["query", "relu", "--lie-check"]) == 0
    out = capsys.readouterr().out
    assert "lie check" in out
    assert "null space dimension 3 on R^3, Lie algebra of the group 3: agrees" in out


def test_cli_lie_check_json(capsys):
    assert main(["query", "x**3", "--lie-check", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    lie = payload["lie_algebra_check"]
    assert lie["measured"] == 3
    assert lie["expected"] == 3
    assert lie["rtol"] == LIE_RTOL


def test_torch_code_after_parallel_parent_op():
    # The forked worker must not hang on a thread pool that the parent's
    # parallel matrix product started.
    matrix = torch.randn(512, 512)
    assert torch.isfinite(matrix @ matrix).all()
    result = symgroups.discover(lambda t: torch.tanh(t), timeout=60)
    assert result.status == "numerically_verified"
    assert result.group == symgroups.query("tanh").group


def test_module_of_fixed_width_rejected():
    # A layer that is not elementwise fails on a 13-value probe and is
    # reported as bad input, not discovered.
    layer = torch.nn.Linear(3, 3)
    with pytest.raises(symgroups.ExpressionError, match="elementwise activation"):
        symgroups.discover(layer)

"""Activations given as PyTorch code: tracing, translation and the fallback."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import sympy

torch = pytest.importorskip("torch")
F = torch.nn.functional
nn = torch.nn

import symgroups  # noqa: E402
from symgroups import CATALOGUE, X  # noqa: E402
from symgroups._fx import load_code, translate  # noqa: E402
from symgroups.cli import main  # noqa: E402

x = X


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_catalogue_module_translates_exactly(name):
    entry = CATALOGUE[name]
    translation = translate(entry.torch_module())
    assert translation.untranslatable == ()
    assert translation.expr == entry.expression()


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_catalogue_module_gives_catalogue_group(name):
    module = CATALOGUE[name].torch_module()
    result = symgroups.query(module)
    expected = symgroups.query(name)
    assert result.status == expected.status
    assert result.group == expected.group
    assert result.describe() == expected.describe()
    assert result.activation.name == f"torch: {type(module).__module__}." + (
        type(module).__qualname__
    )


def test_module_at_other_parameters_is_proved():
    result = symgroups.query(nn.LeakyReLU(0.2))
    expected = symgroups.query("leaky_relu", {"negative_slope": "0.2"})
    assert result.activation.expr == sympy.Max(x, x / 5)
    assert result.status == "proved"
    assert result.group == expected.group


def test_handwritten_mish_translates():
    def mish(t):
        return t * torch.tanh(F.softplus(t))

    translation = translate(mish)
    softplus = CATALOGUE["softplus"].expression()
    assert translation.expr == x * sympy.tanh(softplus)
    result = symgroups.query(mish)
    assert result.status == "proved"
    assert result.group == symgroups.query("mish").group
    assert result.activation.name.startswith("torch: ")


def test_where_leaky_relu_is_exact():
    def leaky(t):
        return torch.where(t > 0, t, 0.1 * t)

    translation = translate(leaky)
    assert translation.expr == sympy.Piecewise((x, x > 0), (x / 10, True))
    result = symgroups.query(leaky)
    assert result.status == "proved"
    assert result.group.scalars == "positive"
    assert result.group.character.power == 1


def test_methods_clamps_and_operators():
    def mixed(t):
        a = t.clamp(min=0) - t.neg()
        b = t.tanh().sigmoid() - 1 / (t**2 + 1)
        c = torch.rsub(t, 2) * torch.reciprocal(torch.exp(t) + 1)
        return a + b + c

    expr = translate(mixed).expr
    expected = (
        sympy.Max(x, 0)
        + x
        + 1 / (1 + sympy.exp(-sympy.tanh(x)))
        - 1 / (x**2 + 1)
        + (2 - x) / (sympy.exp(x) + 1)
    )
    assert sympy.simplify(expr - expected) == 0


def test_clip_and_maximum_with_tensor_constant():
    def clipped(t):
        return torch.clip(t, -1, 1) + torch.maximum(t, torch.tensor(0.5))

    expr = translate(clipped).expr
    expected = sympy.Min(sympy.Max(x, -1), 1) + sympy.Max(x, sympy.Rational(1, 2))
    assert expr == expected


def test_functions_of_the_input():
    def smooth(t):
        u = torch.log1p(t**2) + torch.expm1(-(t**2)) + torch.sqrt(t**2 + 1)
        return u + torch.erf(t) + torch.erfc(t) + torch.abs(t) * torch.sin(t)

    expr = translate(smooth).expr
    expected = (
        sympy.log(1 + x**2)
        + sympy.exp(-(x**2))
        - 1
        + sympy.sqrt(x**2 + 1)
        + sympy.erf(x)
        + sympy.erfc(x)
        + sympy.Abs(x) * sympy.sin(x)
    )
    assert sympy.simplify(expr - expected) == 0


def test_submodule_and_parameter_scalar():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.tensor(0.1))
            self.act = nn.ELU(alpha=0.5)

        def forward(self, t):
            return self.scale * self.act(t) + F.gelu(t, approximate="tanh")

    expr = translate(Scaled()).expr
    elu = CATALOGUE["elu"].expression({"alpha": "0.5"})
    gelu_tanh = CATALOGUE["gelu_tanh"].expression()
    assert expr == elu / 10 + gelu_tanh


def test_float_constants_are_decimal():
    expr = translate(lambda t: 0.2 * t + 0.044715 * t**3).expr
    assert expr == sympy.Rational(1, 5) * x + sympy.Rational(8943, 200000) * x**3


def test_reduction_max_is_not_elementwise():
    translation = translate(lambda t: torch.max(t, 0)[0] + t)
    assert translation.expr is None
    assert any("reduction" in op for op in translation.untranslatable)


def test_softplus_keeps_torch_threshold():
    expr = translate(lambda t: F.softplus(t, beta=2.0, threshold=10.0)).expr
    expected = sympy.Piecewise(
        (x, 2 * x > 10), (sympy.log(1 + sympy.exp(2 * x)) / 2, True)
    )
    assert expr == expected


def test_untranslatable_ops_fall_back(caplog):
    def rounded(t):
        return torch.round(t) + torch.special.i0(t) * 0 + t

    translation = translate(rounded)
    assert translation.expr is None
    assert "torch.round" in translation.untranslatable
    assert "torch.special.i0" in translation.untranslatable
    with caplog.at_level(logging.WARNING, logger="symgroups._fx"):
        result = symgroups.query(rounded)
    assert result.status == "numerically_verified"
    assert result.group.kind == "monomial"
    assert result.group.scalars == "sign"
    assert "torch.round" in result.notes[0]
    assert "torch.special.i0" in result.notes[0]
    assert "numeric discovery" in result.notes[0]
    assert any("torch.round" in r.getMessage() for r in caplog.records)
    assert result.evidence["discovery"]["method"] == "numeric"
    assert result.activation.name == f"torch: {__name__}.{rounded.__qualname__}"


def test_resolve_activation_lists_untranslatable():
    activation = symgroups.resolve_activation(nn.Tanh())
    assert activation.expr == sympy.tanh(x)
    with pytest.raises(symgroups.ExpressionError, match="torch.round"):
        symgroups.resolve_activation(lambda t: torch.round(t))


def test_data_dependent_control_flow_falls_back():
    def branchy(t):
        if t.sum() > 0:
            return t
        return t

    translation = translate(branchy)
    assert translation.expr is None
    assert translation.untranslatable[0].startswith("torch.fx.symbolic_trace")


def test_module_is_not_changed():
    module = nn.PReLU(init=0.1)
    before = module.weight.detach().clone()
    symgroups.query(module)
    assert module.weight.dtype == torch.float32
    assert torch.equal(module.weight.detach(), before)
    assert translate(module).expr == sympy.Max(x, x / 10)


ACTIVATIONS_MODULE = textwrap.dedent(
    """
    import torch
    from torch import nn


    class Leaky(nn.Module):
        def forward(self, x):
            return torch.where(x > 0, x, 0.2 * x)


    def rounded(x):
        return torch.round(x) + x


    def fails(x):
        raise RuntimeError("broken")


    NOT_CALLABLE = 3


    class NeedsArguments(nn.Module):
        def __init__(self, k):
            super().__init__()
    """
)


@pytest.fixture
def code_module(tmp_path, monkeypatch):
    (tmp_path / "custom_acts.py").write_text(ACTIVATIONS_MODULE)
    (tmp_path / "broken_acts.py").write_text("raise RuntimeError('import broken')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("custom_acts", "broken_acts"):
        sys.modules.pop(name, None)
    yield tmp_path
    for name in ("custom_acts", "broken_acts"):
        sys.modules.pop(name, None)


def test_load_code_instantiates_module_class(code_module):
    module = load_code("custom_acts:Leaky")
    assert isinstance(module, nn.Module)
    assert callable(load_code("custom_acts:rounded"))


def test_cli_module_reference(code_module, capsys):
    assert main(["query", "custom_acts:Leaky", "--json", "--lie-check"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["name"] == "torch: custom_acts.Leaky"
    assert payload["status"] == "proved"
    assert payload["group"]["scalars"] == "positive"
    assert payload["lie_algebra_check"]["measured"] == 3
    assert payload["lie_algebra_check"]["agrees"] is True


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module_xyz:f", "cannot import module 'no_such_module_xyz'"),
        ("custom_acts:missing", "has no attribute 'missing'"),
        ("custom_acts:NOT_CALLABLE", "is not callable"),
        ("custom_acts:NeedsArguments", "cannot instantiate"),
        ("broken_acts:f", "RuntimeError: import broken"),
    ],
)
def test_cli_bad_module_reference(code_module, capsys, spec, message):
    assert main(["query", spec]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert message in lines[0]
    assert captured.out == ""


def test_cli_code_that_raises(code_module, capsys):
    assert main(["query", "custom_acts:fails"]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1
    assert "broken" in captured.err


def test_cli_subprocess_fallback(code_module):
    env = dict(os.environ, PYTHONPATH=str(code_module))
    script = shutil.which("symgroups")
    if script is None:
        pytest.skip("the symgroups console script is not installed")
    completed = subprocess.run(
        [script, "query", "custom_acts:rounded"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert completed.returncode == 0, completed.stderr
    assert "numerically_verified" in completed.stdout
    assert "torch.round" in completed.stdout
    assert "torch.round" in completed.stderr


def test_cli_certify_rejects_black_box(code_module, tmp_path, capsys):
    target = tmp_path / "rounded.json"
    assert main(["certify", "custom_acts:rounded", "-o", str(target)]) == 2
    captured = capsys.readouterr()
    assert "cannot certify torch: custom_acts.rounded" in captured.err
    assert captured.err.count("\n") == 1
    assert not target.exists()

"""The prover and the claim checker on exact sympy expressions."""

from __future__ import annotations

import pytest
import sympy

from symgroups import GroupDescription, VerificationError, query
from symgroups._analysis import prove_group
from symgroups._claims import check_step, deduce
from symgroups._group import Character
from symgroups._symbols import X

R = sympy.Rational


def monomial(scalars: str, sign_exponent: int = 0, power=0) -> GroupDescription:
    return GroupDescription(
        "monomial", scalars, character=Character(sign_exponent, power)
    )


# The table of known results: identity, ReLU, LeakyReLU, GELU, x^d, exp(-x^2),
# and the standard tanh, sin, sigmoid, softplus, SiLU and ELU.
KNOWN = [
    ("identity", X, GroupDescription("general_linear")),
    ("relu", sympy.Max(0, X), monomial("positive", 0, 1)),
    ("leaky_relu", sympy.Max(X, X / 100), monomial("positive", 0, 1)),
    (
        "leaky_relu_steep",
        sympy.Piecewise((X, X > 0), (3 * X, True)),
        monomial("positive", 0, 1),
    ),
    ("gelu", X / 2 * (1 + sympy.erf(X / sympy.sqrt(2))), monomial("trivial")),
    ("square", X**2, monomial("nonzero", 0, 2)),
    ("cube", X**3, monomial("nonzero", 1, 3)),
    ("fifth", X**5, monomial("nonzero", 1, 5)),
    ("gaussian", sympy.exp(-(X**2)), monomial("sign", 0, 0)),
    ("tanh", sympy.tanh(X), monomial("sign", 1, 0)),
    ("sin", sympy.sin(X), monomial("sign", 1, 0)),
    ("sigmoid", 1 / (1 + sympy.exp(-X)), monomial("trivial")),
    ("softplus", sympy.log(1 + sympy.exp(X)), monomial("trivial")),
    ("silu", X / (1 + sympy.exp(-X)), monomial("trivial")),
    ("elu", sympy.Piecewise((X, X > 0), (sympy.exp(X) - 1, True)), monomial("trivial")),
    ("abs", sympy.Abs(X), monomial("nonzero", 0, 1)),
    ("sign", sympy.sign(X), monomial("nonzero", 1, 0)),
    ("heaviside", sympy.Heaviside(X), monomial("positive", 0, 0)),
    ("hardtanh", sympy.Min(1, sympy.Max(-1, X)), monomial("sign", 1, 0)),
    ("softsign", X / (1 + sympy.Abs(X)), monomial("sign", 1, 0)),
    ("relu6", sympy.Min(6, sympy.Max(0, X)), monomial("trivial")),
    ("exp", sympy.exp(X), monomial("trivial")),
    ("atan", sympy.atan(X), monomial("sign", 1, 0)),
    ("cubic_plus_linear", X**3 + X, monomial("sign", 1, 0)),
    ("tanhshrink", X - sympy.tanh(X), monomial("sign", 1, 0)),
    ("mish", X * sympy.tanh(sympy.log(1 + sympy.exp(X))), monomial("trivial")),
    ("cosh", sympy.exp(X) + sympy.exp(-X), monomial("sign", 0, 0)),
    ("tiny_square", sympy.Rational(1, 10**30) * X**2, monomial("nonzero", 0, 2)),
    ("power_64", X**64, monomial("nonzero", 0, 64)),
    ("power_64_plus_cube", X**64 + X**3, monomial("trivial")),
    ("abs_cubed", sympy.Abs(X) ** 3, monomial("nonzero", 0, 3)),
    (
        "real_cube_root",
        sympy.Piecewise((-((-X) ** R(1, 3)), X < 0), (X ** R(1, 3), True)),
        monomial("nonzero", 1, R(1, 3)),
    ),
    ("x_heaviside", X * sympy.Heaviside(X), monomial("positive", 0, 1)),
    ("shifted_relu", sympy.Max(0, X - 1), monomial("trivial")),
    ("affine", 2 * X + 1, GroupDescription("affine_stabilizer")),
    ("scaled_identity", -3 * X, GroupDescription("general_linear")),
    ("constant", sympy.Integer(3) + 0 * X, GroupDescription("degenerate")),
    (
        "pure_constant",
        sympy.sin(X) ** 2 + sympy.cos(X) ** 2,
        GroupDescription("degenerate"),
    ),
]


@pytest.mark.parametrize(("name", "expr", "expected"), KNOWN, ids=[k[0] for k in KNOWN])
def test_known_groups_are_proved(name, expr, expected):
    analysis = prove_group(expr)
    assert analysis.group == expected, (name, analysis.steps, analysis.notes)
    assert not analysis.timed_out


@pytest.mark.parametrize(("name", "expr", "expected"), KNOWN, ids=[k[0] for k in KNOWN])
def test_every_kept_step_rechecks(name, expr, expected):
    analysis = prove_group(expr)
    for step in analysis.steps:
        check_step(expr, step)
    assert deduce(analysis.steps).group == expected


def test_relu_proof_uses_scaling_and_witnesses():
    steps = prove_group(sympy.Max(0, X)).steps
    claims = [s["claim"] for s in steps]
    assert claims[0] == "not_affine"
    assert {"claim": "positive_scaling", "power": "1"} in steps
    assert "no_reflection" in claims


def test_gelu_proof_uses_two_taylor_degrees():
    steps = prove_group(X / 2 * (1 + sympy.erf(X / sympy.sqrt(2)))).steps
    (taylor,) = [s for s in steps if s["claim"] == "taylor"]
    assert taylor["side"] == "both"
    assert taylor["coefficients"]["1"] == "1/2"
    assert set(taylor["coefficients"]) >= {"1", "2"}


def test_kink_away_from_zero_excludes_scalings():
    steps = prove_group(sympy.Min(6, sympy.Max(0, X))).steps
    assert {"claim": "kink", "point": "6"} in steps


FALSE_CLAIMS = [
    (sympy.tanh(X), {"claim": "positive_scaling", "power": "1"}),
    (sympy.Max(0, X), {"claim": "reflection", "mu": "1"}),
    (sympy.Max(0, X), {"claim": "reflection", "mu": "-1"}),
    (sympy.tanh(X), {"claim": "reflection", "mu": "1"}),
    (sympy.tanh(X), {"claim": "affine", "slope": "1", "intercept": "0"}),
    (X, {"claim": "not_affine", "points": ["-1", "0", "1"]}),
    (sympy.Max(0, X), {"claim": "not_affine", "points": ["-1", "1/2", "1"]}),
    (sympy.tanh(X), {"claim": "no_reflection", "points": ["1", "1"]}),
    (sympy.tanh(X), {"claim": "taylor", "side": "both", "coefficients": {"1": "2"}}),
    (sympy.tanh(X), {"claim": "taylor", "side": "both", "coefficients": {"2": "1"}}),
    (sympy.Max(0, X), {"claim": "taylor", "side": "both", "coefficients": {"1": "1"}}),
    (sympy.Max(0, X), {"claim": "kink", "point": "1"}),
    (sympy.Max(0, X - 1) - sympy.Max(0, X - 1), {"claim": "kink", "point": "1"}),
]


@pytest.mark.parametrize(("expr", "step"), FALSE_CLAIMS)
def test_false_claims_are_rejected(expr, step):
    with pytest.raises(VerificationError):
        check_step(expr, step)


def test_spurious_breakpoint_is_not_a_kink():
    # Both pieces equal 1, so 1 is a breakpoint of the formula but not a kink.
    one = sympy.sin(X) ** 2 + sympy.cos(X) ** 2
    expr = sympy.Piecewise((one, X > 1), (1, True)) + sympy.Max(0, X)
    with pytest.raises(VerificationError, match="not provably non-analytic"):
        check_step(expr, {"claim": "kink", "point": "1"})


def test_contradictory_steps_are_rejected():
    steps = [
        {"claim": "not_affine", "points": ["-1", "0", "1"]},
        {"claim": "positive_scaling", "power": "1"},
        {"claim": "kink", "point": "6"},
    ]
    with pytest.raises(VerificationError, match="contradict"):
        deduce(steps)


def test_steps_without_reflection_decide_nothing():
    steps = [
        {"claim": "not_affine", "points": ["-1", "0", "1"]},
        {"claim": "positive_scaling", "power": "1"},
    ]
    deduction = deduce(steps)
    assert deduction.group is None
    assert deduction.positive == "all"
    assert deduction.reflection is None


def test_step_deadline_gives_undecided():
    result = query("x*tanh(log(1+exp(x)))", step_timeout=1e-4, use_cache=False)
    assert result.status == "undecided"
    assert result.group is None
    assert any("deadline" in note for note in result.notes)


def test_hard_deadline_gives_undecided():
    result = query("x*tanh(log(1+exp(x))) + sin(x)", timeout=0.05, use_cache=False)
    assert result.status == "undecided"
    assert result.group is None
    assert any("deadline" in note for note in result.notes)


def test_log_periodic_function_is_numerically_verified():
    # x (2 + sin(2 pi log2 |x|)) is fixed by x -> 2x and is odd: its scalar
    # group is generated by -1 and 2, which no symbolic step here can prove.
    text = "Piecewise((0, Eq(x, 0)), (x*(2 + sin(2*pi*log(Abs(x))/log(2))), True))"
    result = query(text, use_cache=False)
    assert result.status == "numerically_verified"
    assert result.group.scalars == "discrete"
    assert sorted(float(g) for g in result.group.generators) == [-1.0, 2.0]
    assert result.evidence["passed"] is True


def test_cosh_evidence_passes():
    # exp grows so fast that a wrong row hides behind the others unless each
    # output coordinate is judged on its own scale.
    result = query("exp(x) + exp(-x)", use_cache=False)
    assert result.status == "proved"
    assert result.evidence["passed"] is True

"""Tests of symgroups._group: descriptions, characters and matrix groups."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from symgroups import intertwiner_group
from symgroups._errors import (
    DegenerateActivationError,
    NotInGroupError,
    ParameterError,
)
from symgroups._group import Character, GroupDescription, IntertwinerGroup

SEEDS = st.integers(min_value=0, max_value=2**32 - 1)
DIMS = st.integers(min_value=1, max_value=6)


def monomial(scalars, e=1, p=1, generators=()):
    return GroupDescription(
        "monomial", scalars, generators=generators, character=Character(e, p)
    )


#: One description of every shape the product uses, keyed by a short name.
DESCRIPTIONS = {
    "trivial": monomial("trivial", 0, 0),
    "sign odd": monomial("sign", 1, 0),
    "sign even": monomial("sign", 0, 0),
    "positive p=1": monomial("positive", 0, 1),
    "positive p=2": monomial("positive", 0, 2),
    "nonzero cube": monomial("nonzero", 1, 3),
    "nonzero abs": monomial("nonzero", 0, 1),
    "nonzero cbrt": monomial("nonzero", 1, sympy.Rational(1, 3)),
    "discrete -1,2": monomial("discrete", 1, 1, (-1, 2)),
    "discrete 2": monomial("discrete", 0, 2, (2,)),
    "discrete -2": monomial("discrete", 1, 1, (-2,)),
    "discrete sqrt2": monomial("discrete", 1, 1, (-1, sympy.sqrt(2))),
    "general_linear": GroupDescription("general_linear"),
    "affine_stabilizer": GroupDescription("affine_stabilizer"),
}
NAMES = sorted(DESCRIPTIONS)

#: Tolerance of float64 identities between products of a few matrices.
RTOL = 1e-10
ATOL = 1e-12


# --------------------------------------------------------------------------
# Character
# --------------------------------------------------------------------------


def test_character_mu_values():
    cube = Character(1, 3)
    np.testing.assert_allclose(cube.mu([-2.0, 0.5, 3.0]), [-8.0, 0.125, 27.0])
    even = Character(0, 2)
    np.testing.assert_allclose(even.mu([-2.0, 3.0]), [4.0, 9.0])
    root = Character(1, sympy.Rational(1, 3))
    np.testing.assert_allclose(root.mu([-8.0, 27.0]), [-2.0, 3.0])


def test_character_mu_exact():
    character = Character(1, 3)
    assert character.mu_exact(sympy.Integer(-2)) == -8
    assert character.mu_exact(sympy.Rational(1, 2)) == sympy.Rational(1, 8)


@settings(max_examples=50)
@given(
    a=st.floats(0.05, 20.0),
    b=st.floats(0.05, 20.0),
    sa=st.sampled_from([-1.0, 1.0]),
    sb=st.sampled_from([-1.0, 1.0]),
    e=st.sampled_from([0, 1]),
    p=st.sampled_from([0, 1, 2, 3, -1, sympy.Rational(1, 3)]),
)
def test_character_is_homomorphism(a, b, sa, sb, e, p):
    character = Character(e, p)
    lam1, lam2 = sa * a, sb * b
    product = character.mu(lam1 * lam2)
    np.testing.assert_allclose(
        product, character.mu(lam1) * character.mu(lam2), rtol=1e-12
    )


@pytest.mark.parametrize("bad", [2, -1])
def test_character_rejects_sign_exponent(bad):
    with pytest.raises(ParameterError, match="sign_exponent must be 0 or 1, got"):
        Character(bad, 1)


def test_character_rejects_complex_power():
    with pytest.raises(ParameterError, match="power must be a real number"):
        Character(0, sympy.I)


def test_character_rejects_symbolic_power():
    with pytest.raises(ParameterError, match="expected a number without variables"):
        Character(0, sympy.Symbol("q"))


def test_character_rejects_bool_power():
    with pytest.raises(ParameterError, match="expected an exact number, got True"):
        Character(0, True)


def test_character_float_power_is_exact():
    assert Character(0, 0.5).power == sympy.Rational(1, 2)
    assert Character(0, 0.1).power == sympy.Rational(1, 10)


def test_character_to_json():
    assert Character(1, sympy.Rational(1, 3)).to_json() == {
        "sign_exponent": 1,
        "power": "1/3",
    }


def test_character_rejects_nan_power():
    with pytest.raises(ParameterError):
        Character(0, float("nan"))


def test_character_sympy_float_power_equal():
    assert Character(0, sympy.Float(0.5)) == Character(0, sympy.Rational(1, 2))


# --------------------------------------------------------------------------
# GroupDescription: validation and canonical form
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "orthogonal"}, "kind must be one of"),
        ({"kind": "monomial", "scalars": "real"}, "scalars must be one of"),
        ({"kind": "monomial", "scalars": "positive"}, "needs a character"),
        (
            {"kind": "general_linear", "scalars": "positive"},
            "a general_linear group has no scalars or character",
        ),
        (
            {"kind": "affine_stabilizer", "character": Character(0, 1)},
            "a affine_stabilizer group has no scalars or character",
        ),
        (
            {"kind": "degenerate", "generators": (2,)},
            "a degenerate group has no generators",
        ),
        (
            {
                "kind": "monomial",
                "scalars": "positive",
                "generators": (2,),
                "character": Character(0, 1),
            },
            "only discrete scalar groups have generators",
        ),
        (
            {"kind": "monomial", "scalars": "discrete", "character": Character(0, 1)},
            "needs at least one generator",
        ),
        (
            {
                "kind": "monomial",
                "scalars": "discrete",
                "generators": (0,),
                "character": Character(0, 1),
            },
            "generators must be nonzero reals",
        ),
        (
            {
                "kind": "monomial",
                "scalars": "discrete",
                "generators": (2, 3),
                "character": Character(0, 1),
            },
            r"written as \[c\], \[-c\] or \[-1, c\]",
        ),
        (
            {
                "kind": "monomial",
                "scalars": "discrete",
                "generators": (-1,),
                "character": Character(0, 1),
            },
            r"written as \[c\], \[-c\] or \[-1, c\]",
        ),
        (
            {
                "kind": "monomial",
                "scalars": "discrete",
                "generators": (1, 2),
                "character": Character(0, 1),
            },
            "the second generator of a discrete group must be -1",
        ),
        (
            {
                "kind": "monomial",
                "scalars": "discrete",
                "generators": (True,),
                "character": Character(0, 1),
            },
            "expected an exact number, got True",
        ),
        (
            {
                "kind": "monomial",
                "scalars": "discrete",
                "generators": ([2],),
                "character": Character(0, 1),
            },
            r"expected an exact number \(int, str or sympy number\), got \[2\]",
        ),
    ],
)
def test_description_validation(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        GroupDescription(**kwargs)


def test_canonical_drops_sign_without_negatives():
    assert monomial("positive", 1, 2).character == Character(0, 2)
    assert monomial("trivial", 1, 0).character == Character(0, 0)
    assert monomial("discrete", 1, 1, (2,)).character == Character(0, 1)


def test_canonical_keeps_sign_with_negatives():
    assert monomial("nonzero", 1, 2).character == Character(1, 2)
    assert monomial("sign", 1, 0).character == Character(1, 0)
    assert monomial("discrete", 1, 1, (-2,)).character == Character(1, 1)
    assert monomial("discrete", 1, 1, (-1, 2)).character == Character(1, 1)


def test_canonical_drops_power_for_unit_scalars():
    assert monomial("trivial", 0, 5).character == Character(0, 0)
    assert monomial("sign", 1, 7).character == Character(1, 0)
    assert monomial("sign", 1, 7) == monomial("sign", 1, 0)


def test_canonical_keeps_power_otherwise():
    assert monomial("positive", 0, 3).character.power == 3
    assert monomial("nonzero", 1, -1).character.power == -1


def test_message_does_not_affect_equality():
    a = GroupDescription("general_linear", message="linear")
    b = GroupDescription("general_linear")
    assert a == b


def test_has_negative_scalars():
    expected = {
        "trivial": False,
        "sign odd": True,
        "positive p=1": False,
        "nonzero abs": True,
        "discrete -1,2": True,
        "discrete 2": False,
        "discrete -2": True,
    }
    for name, value in expected.items():
        assert DESCRIPTIONS[name].has_negative_scalars is value, name


def test_discrete_inverse_generator_equal():
    assert monomial("discrete", 0, 1, (2,)) == monomial(
        "discrete", 0, 1, (sympy.Rational(1, 2),)
    )


# --------------------------------------------------------------------------
# Scalar membership
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "inside", "outside"),
    [
        ("trivial", [1.0], [-1.0, 2.0, 1.0 + 1e-6]),
        ("sign odd", [1.0, -1.0], [2.0, -0.5]),
        ("positive p=1", [0.01, 1.0, 7.5, 1e6], [-1.0, -3.0]),
        ("nonzero abs", [-5.0, 1e-9, 3.0], []),
        ("discrete -1,2", [2.0, 0.25, -4.0, -1.0, 1024.0], [3.0, -3.0, 2.0**0.5]),
        ("discrete 2", [2.0, 0.5, 8.0], [-2.0, -1.0, 3.0]),
        ("discrete -2", [-2.0, 4.0, -0.5, 0.25, -8.0], [2.0, -4.0, -1.0, 0.5]),
        ("discrete sqrt2", [2.0**0.5, -2.0, 2.0**-1.5], [3.0, 2.0**0.25]),
    ],
)
def test_scalar_contains(name, inside, outside):
    description = DESCRIPTIONS[name]
    for lam in inside:
        assert description.scalar_contains(lam), lam
    for lam in outside:
        assert not description.scalar_contains(lam), lam


@pytest.mark.parametrize("lam", [0.0, float("inf"), float("-inf"), float("nan")])
def test_scalar_contains_rejects_non_finite(lam):
    assert not DESCRIPTIONS["nonzero abs"].scalar_contains(lam)


def test_scalar_contains_tolerance():
    description = DESCRIPTIONS["discrete -1,2"]
    assert description.scalar_contains(2.0 * (1 + 1e-12))
    assert not description.scalar_contains(2.0 * (1 + 1e-6))
    assert description.scalar_contains(2.0 * (1 + 1e-6), tol=1e-4)


def test_scalar_contains_requires_monomial():
    with pytest.raises(ParameterError, match="a general_linear group has no scalar"):
        GroupDescription("general_linear").scalar_contains(2.0)


def test_mu_requires_character():
    with pytest.raises(ParameterError, match="a affine_stabilizer group has no"):
        GroupDescription("affine_stabilizer").mu(2.0)


# --------------------------------------------------------------------------
# describe()
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("description", "text"),
    [
        (DESCRIPTIONS["trivial"], "permutation matrices, phi(A) = A"),
        (DESCRIPTIONS["sign odd"], "signed permutation matrices, phi(A) = A"),
        (
            DESCRIPTIONS["sign even"],
            "signed permutation matrices, phi(A) = |A| (entrywise absolute value)",
        ),
        (
            DESCRIPTIONS["positive p=1"],
            "positively scaled permutation matrices, phi(A) = A",
        ),
        (
            DESCRIPTIONS["positive p=2"],
            "positively scaled permutation matrices, phi(A) = A**2 (entrywise power)",
        ),
        (
            DESCRIPTIONS["nonzero cube"],
            "permutation matrices times invertible diagonal matrices, "
            "phi(A) = A**3 (entrywise power)",
        ),
        (
            DESCRIPTIONS["nonzero abs"],
            "permutation matrices times invertible diagonal matrices, "
            "phi(A) = |A| (entrywise absolute value)",
        ),
        (
            DESCRIPTIONS["discrete -1,2"],
            "permutation matrices times diagonal matrices with entries in the "
            "group generated by -1, 2, phi(A) = A",
        ),
        (
            DESCRIPTIONS["general_linear"],
            "all invertible matrices GL_n, phi(A) = A",
        ),
        (
            DESCRIPTIONS["affine_stabilizer"],
            "invertible matrices whose rows sum to 1 (A 1 = 1), phi(A) = A",
        ),
    ],
)
def test_describe_text(description, text):
    assert description.describe() == text


def test_describe_degenerate():
    text = GroupDescription("degenerate").describe()
    assert text.startswith("no group: the activation is constant")


def test_matrix_group_describe_names_dimension():
    group = DESCRIPTIONS["trivial"].matrix_group(3)
    assert group.describe() == "permutation matrices, phi(A) = A (n = 3)"


def test_describe_power_zero_positive():
    # For Heaviside, mu = 1 on the positive scalars, so phi(P diag(d)) = P.
    description = monomial("positive", 0, 0)
    group = description.matrix_group(2)
    A = np.diag([2.0, 3.0])
    np.testing.assert_array_equal(group.phi(A), np.eye(2))
    assert "|A|" not in description.describe()


def test_describe_negative_power():
    description = monomial("nonzero", 1, -1)
    assert "A**-1" not in description.describe()


def test_describe_fraction_power_bracketed():
    description = DESCRIPTIONS["nonzero cbrt"]
    assert "|d|**(1/3)" in description.describe()


# --------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------


def test_to_json_fields():
    assert DESCRIPTIONS["discrete sqrt2"].to_json() == {
        "kind": "monomial",
        "scalars": "discrete",
        "generators": ["-1", "sqrt(2)"],
        "character": {"sign_exponent": 1, "power": "1"},
    }
    assert GroupDescription("general_linear").to_json() == {
        "kind": "general_linear",
        "scalars": None,
        "generators": [],
        "character": None,
    }


@pytest.mark.parametrize("name", NAMES + ["degenerate"])
def test_json_round_trip(name):
    # Reading numbers back goes through the safe parser of symgroups._parse.
    description = DESCRIPTIONS.get(name, GroupDescription("degenerate"))
    text = json.dumps(description.to_json())
    assert GroupDescription.from_json(json.loads(text)) == description


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ([], "a group must be a JSON object, got"),
        ({"kind": "monomial"}, "a group object needs exactly the fields"),
        (
            {
                "kind": "monomial",
                "scalars": "discrete",
                "generators": [2],
                "character": None,
            },
            "generators must be a list of strings, got",
        ),
        (
            {
                "kind": "monomial",
                "scalars": "positive",
                "generators": [],
                "character": {"power": "1"},
            },
            "character must be null or an object with sign_exponent and power",
        ),
        (
            {
                "kind": "monomial",
                "scalars": "positive",
                "generators": [],
                "character": {"sign_exponent": 0, "power": 1},
            },
            "character power must be a string, got 1",
        ),
        (
            {
                "kind": "monomial",
                "scalars": "positive",
                "generators": [],
                "character": {"sign_exponent": True, "power": "1"},
            },
            "character sign_exponent must be 0 or 1, got True",
        ),
    ],
)
def test_from_json_validation(obj, message):
    with pytest.raises(ParameterError, match=message):
        GroupDescription.from_json(obj)


# --------------------------------------------------------------------------
# IntertwinerGroup: construction and membership
# --------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, -2, True, 2.0, "3"])
def test_dimension_validation(n):
    with pytest.raises(ParameterError, match="dimension must be a positive integer"):
        IntertwinerGroup(DESCRIPTIONS["trivial"], n)


def test_dimension_accepts_numpy_integer():
    assert IntertwinerGroup(DESCRIPTIONS["trivial"], np.int64(3)).n == 3


def test_degenerate_has_no_matrix_group():
    with pytest.raises(DegenerateActivationError, match="the activation is constant"):
        GroupDescription("degenerate").matrix_group(2)


def test_wrong_shape_rejected():
    group = DESCRIPTIONS["trivial"].matrix_group(2)
    with pytest.raises(
        ParameterError, match=r"expected a 2x2 matrix, got shape \(3, 3\)"
    ):
        group.contains(np.eye(3))


def test_contains_monomial_examples():
    group = DESCRIPTIONS["sign odd"].matrix_group(3)
    P = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, 1.0], [-1.0, 0.0, 0.0]])
    assert group.contains(P)
    assert not group.contains(2.0 * P)
    extra = P.copy()
    extra[0, 0] = 0.3
    assert not group.contains(extra)
    assert not group.contains(np.zeros((3, 3)))
    singular = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert not group.contains(singular)


def test_contains_rejects_non_finite():
    group = DESCRIPTIONS["nonzero abs"].matrix_group(2)
    assert not group.contains(np.array([[np.inf, 0.0], [0.0, 1.0]]))
    assert not group.contains(np.array([[np.nan, 0.0], [0.0, 1.0]]))


def test_contains_general_linear():
    group = GroupDescription("general_linear").matrix_group(2)
    assert group.contains(np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert not group.contains(np.array([[1.0, 2.0], [2.0, 4.0]]))


def test_contains_affine_stabilizer():
    group = GroupDescription("affine_stabilizer").matrix_group(2)
    assert group.contains(np.array([[2.0, -1.0], [0.5, 0.5]]))
    assert not group.contains(np.array([[2.0, -0.9], [0.5, 0.5]]))
    assert not group.contains(np.array([[0.5, 0.5], [0.5, 0.5]]))


def test_discrete_membership_matrices():
    group = DESCRIPTIONS["discrete -1,2"].matrix_group(2)
    assert group.contains(np.array([[0.0, -4.0], [0.5, 0.0]]))
    assert not group.contains(np.array([[0.0, 3.0], [1.0, 0.0]]))
    assert not group.contains(np.diag([2.0**0.5, 1.0]))


def test_monomial_factors():
    group = DESCRIPTIONS["nonzero abs"].matrix_group(3)
    A = np.array([[0.0, 0.0, -2.0], [3.0, 0.0, 0.0], [0.0, 0.5, 0.0]])
    perm, d = group.monomial_factors(A)
    np.testing.assert_array_equal(perm, [1, 2, 0])
    np.testing.assert_array_equal(d, [3.0, 0.5, -2.0])
    assert group.monomial_factors(np.ones((3, 3))) is None
    assert group.monomial_factors(np.zeros((3, 3))) is None


def test_phi_monomial_examples():
    cube = DESCRIPTIONS["nonzero cube"].matrix_group(2)
    A = np.array([[0.0, -2.0], [0.5, 0.0]])
    np.testing.assert_allclose(cube.phi(A), [[0.0, -8.0], [0.125, 0.0]])
    even = DESCRIPTIONS["sign even"].matrix_group(2)
    np.testing.assert_array_equal(even.phi(np.diag([-1.0, 1.0])), np.eye(2))


def test_phi_rejects_non_member():
    group = DESCRIPTIONS["positive p=1"].matrix_group(2)
    with pytest.raises(NotInGroupError, match="matrix is not in the group of"):
        group.phi(np.diag([-1.0, 1.0]))
    with pytest.raises(NotInGroupError, match="matrix is not in the group of"):
        group.inverse(np.diag([-1.0, 1.0]))


def test_phi_linear_kinds_is_identity_map():
    A = np.array([[2.0, -1.0], [0.5, 0.5]])
    for name in ("general_linear", "affine_stabilizer"):
        group = DESCRIPTIONS[name].matrix_group(2)
        np.testing.assert_array_equal(group.phi(A), A)


# --------------------------------------------------------------------------
# IntertwinerGroup: group laws on sampled elements
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=25, deadline=None)
@given(n=DIMS, seed_a=SEEDS, seed_b=SEEDS)
def test_samples_are_members(name, n, seed_a, seed_b):
    group = DESCRIPTIONS[name].matrix_group(n)
    assert group.contains(group.sample(seed_a))
    assert group.contains(group.sample(seed_b))


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=25, deadline=None)
@given(n=DIMS, seed_a=SEEDS, seed_b=SEEDS)
def test_products_stay_in_group(name, n, seed_a, seed_b):
    group = DESCRIPTIONS[name].matrix_group(n)
    A, B = group.sample(seed_a), group.sample(seed_b)
    assert group.contains(group.multiply(A, B))
    np.testing.assert_array_equal(group.multiply(A, B), A @ B)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=25, deadline=None)
@given(n=DIMS, seed_a=SEEDS, seed_b=SEEDS)
def test_phi_is_homomorphism(name, n, seed_a, seed_b):
    group = DESCRIPTIONS[name].matrix_group(n)
    A, B = group.sample(seed_a), group.sample(seed_b)
    np.testing.assert_allclose(
        group.phi(A @ B), group.phi(A) @ group.phi(B), rtol=RTOL, atol=ATOL
    )
    np.testing.assert_allclose(group.phi(group.identity()), np.eye(n))


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=25, deadline=None)
@given(n=DIMS, seed=SEEDS)
def test_inverse_and_phi_of_inverse(name, n, seed):
    group = DESCRIPTIONS[name].matrix_group(n)
    A = group.sample(seed)
    inverse = group.inverse(A)
    assert group.contains(inverse)
    np.testing.assert_allclose(inverse @ A, np.eye(n), atol=ATOL)
    np.testing.assert_allclose(A @ inverse, np.eye(n), atol=ATOL)
    np.testing.assert_allclose(
        group.phi(inverse), np.linalg.inv(group.phi(A)), rtol=RTOL, atol=ATOL
    )


@settings(max_examples=25, deadline=None)
@given(n=DIMS, seed=SEEDS)
def test_monomial_inverse_is_exact(n, seed):
    group = DESCRIPTIONS["discrete -1,2"].matrix_group(n)
    A = group.sample(seed)
    # Powers of 2 and permutations invert without rounding.
    np.testing.assert_array_equal(group.inverse(A) @ A, np.eye(n))


@pytest.mark.parametrize("name", NAMES)
def test_sample_is_deterministic(name):
    group = DESCRIPTIONS[name].matrix_group(4)
    np.testing.assert_array_equal(group.sample(7), group.sample(7))
    first = group.sample(np.random.default_rng(3))
    second = group.sample(np.random.default_rng(3))
    np.testing.assert_array_equal(first, second)


@settings(max_examples=40, deadline=None)
@given(n=DIMS, seed=SEEDS)
def test_affine_sample_keeps_ones_fixed(n, seed):
    group = GroupDescription("affine_stabilizer").matrix_group(n)
    A = group.sample(seed)
    np.testing.assert_allclose(A @ np.ones(n), np.ones(n), atol=1e-12)
    np.testing.assert_allclose(A.T @ A, np.eye(n), atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(n=DIMS, seed=SEEDS)
def test_general_linear_sample_is_orthogonal(n, seed):
    A = GroupDescription("general_linear").matrix_group(n).sample(seed)
    np.testing.assert_allclose(A.T @ A, np.eye(n), atol=1e-12)


def test_affine_sample_is_not_only_permutations():
    group = GroupDescription("affine_stabilizer").matrix_group(3)
    A = group.sample(0)
    assert group.monomial_factors(A) is None


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("trivial", {1.0}),
        ("sign odd", {1.0, -1.0}),
        ("discrete 2", {0.25, 0.5, 1.0, 2.0, 4.0}),
        ("discrete -2", {0.25, -0.5, 1.0, -2.0, 4.0}),
    ],
)
def test_sample_scalars_values(name, allowed):
    group = DESCRIPTIONS[name].matrix_group(1)
    values = group.sample_scalars(np.random.default_rng(0), 200)
    assert set(values.tolist()) <= allowed


def test_sample_scalars_signs():
    rng = np.random.default_rng(0)
    positive = DESCRIPTIONS["positive p=1"].matrix_group(1).sample_scalars(rng, 200)
    assert (positive > 0).all()
    nonzero = DESCRIPTIONS["nonzero abs"].matrix_group(1).sample_scalars(rng, 200)
    assert (nonzero > 0).any()
    assert (nonzero < 0).any()


def test_contains_scales_far_apart():
    # The zero threshold is per column, so scales nine orders of magnitude
    # apart are still one monomial matrix.
    group = intertwiner_group("relu", 3)
    assert group.contains(np.diag([1e9, 1.0, 1.0]))
    assert group.contains(np.diag([1e-9, 1.0, 1.0]))
    assert not group.contains(np.array([[1.0, 1e-3, 0.0], [0, 1, 0], [0, 0, 1]]))


def test_contains_rejects_complex():
    group = intertwiner_group("relu", 2)
    with pytest.raises(ParameterError, match="complex"):
        group.contains(np.eye(2) * (1 + 1j))

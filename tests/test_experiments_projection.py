"""project_to_group and representation_group on the experiments' groups."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torch import nn

import symgroups
from nn_bridge._errors import InvalidArgumentError
from nn_bridge.experiments.projection import (
    nearest_scalars,
    project_to_group,
    representation_group,
)
from symgroups import Character, GroupDescription

MODULES = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def group_of(name: str) -> GroupDescription:
    activation = symgroups.activation_from_torch_module(MODULES[name]())
    return symgroups.query(activation).group


def monomial(scalars: str, generators: tuple = ()) -> GroupDescription:
    return GroupDescription(
        "monomial", scalars=scalars, generators=generators, character=Character(1, 1)
    )


SYNTHETIC = {
    "nonzero": monomial("nonzero"),
    "discrete": monomial("discrete", (2,)),
    "discrete signed": monomial("discrete", (-1, 3)),
}


@pytest.mark.parametrize("name", list(MODULES))
def test_activation_groups_from_symgroups(name: str) -> None:
    expected = {
        "relu": "positive",
        "leaky_relu": "positive",
        "gelu": "trivial",
        "tanh": "sign",
        "sigmoid": "trivial",
    }[name]
    group = group_of(name)
    assert group.kind == "monomial"
    assert group.scalars == expected
    assert representation_group(group).scalars == expected


@pytest.mark.parametrize("name", list(MODULES))
@pytest.mark.parametrize("seed", range(5))
def test_group_element_projects_to_itself(name: str, seed: int) -> None:
    group = group_of(name)
    element = group.matrix_group(7).sample(seed)
    projected, distance = project_to_group(element, group)
    np.testing.assert_allclose(projected, element, atol=1e-12)
    assert distance == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("label", list(SYNTHETIC))
def test_synthetic_element_projects_to_itself(label: str) -> None:
    group = SYNTHETIC[label]
    element = group.matrix_group(6).sample(3)
    projected, distance = project_to_group(element, group)
    np.testing.assert_allclose(projected, element, rtol=1e-12)
    assert distance == pytest.approx(0.0, abs=1e-12)


def brute_force_distance(M: np.ndarray, group: GroupDescription) -> float:
    """Search every permutation, with the best scalar of each entry."""
    n = M.shape[0]
    floor = 1e-8 * float(np.max(np.abs(M)))
    best = np.inf
    for perm in itertools.permutations(range(n)):
        A = np.zeros_like(M)
        rows = np.arange(n)
        cols = np.array(perm)
        A[rows, cols] = nearest_scalars(M[rows, cols], group, floor)
        best = min(best, float(np.linalg.norm(M - A)))
    return best / float(np.linalg.norm(M))


finite = st.floats(-3.0, 3.0, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, (4, 4), elements=finite), st.sampled_from(list(MODULES)))
def test_projection_matches_brute_force(M: np.ndarray, name: str) -> None:
    if np.linalg.norm(M) < 1e-6:
        M = M + np.eye(4)
    group = group_of(name)
    A, distance = project_to_group(M, group)
    assert group.matrix_group(4).contains(A, tol=1e-12)
    assert distance == pytest.approx(brute_force_distance(M, group), abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.float64, (5, 5), elements=finite),
    st.sampled_from(["relu", "tanh", "gelu"]),
    st.integers(0, 2**31),
)
def test_projection_beats_sampled_elements(M: np.ndarray, name: str, seed: int) -> None:
    if np.linalg.norm(M) < 1e-6:
        M = M + np.eye(5)
    group = group_of(name)
    _, distance = project_to_group(M, group)
    other = group.matrix_group(5).sample(seed)
    sampled = np.linalg.norm(M - other) / np.linalg.norm(M)
    assert distance <= sampled + 1e-12


def test_positive_projection_avoids_negative_entries() -> None:
    # |M| would match the -5 entries, but positive scalars cannot reach them.
    M = np.array([[-5.0, 1.0], [1.0, -5.0]])
    A, distance = project_to_group(M, group_of("relu"))
    np.testing.assert_allclose(A, np.eye(2)[::-1])
    assert distance == pytest.approx(np.sqrt(50.0 / 52.0))


def test_sign_projection_uses_absolute_values() -> None:
    M = np.array([[0.1, -2.0], [3.0, 0.2]])
    A, _ = project_to_group(M, group_of("tanh"))
    np.testing.assert_array_equal(A, np.array([[0.0, -1.0], [1.0, 0.0]]))


def test_positive_floor_for_nonpositive_matrix() -> None:
    M = -np.eye(3)
    A, distance = project_to_group(M, group_of("relu"))
    assert group_of("relu").matrix_group(3).contains(A)
    assert np.all(A[A != 0] > 0)
    assert distance == pytest.approx(1.0, abs=1e-6)


def test_general_linear_projection_keeps_invertible() -> None:
    group = GroupDescription("general_linear")
    M = np.array([[1.0, 2.0], [3.0, 4.0]])
    A, distance = project_to_group(M, group)
    np.testing.assert_allclose(A, M)
    assert distance == pytest.approx(0.0, abs=1e-12)


def test_affine_stabilizer_projection_fixes_ones() -> None:
    group = GroupDescription("affine_stabilizer")
    M = np.array([[2.0, 0.5], [0.0, 3.0]])
    A, _ = project_to_group(M, group)
    np.testing.assert_allclose(A.sum(axis=1), np.ones(2))


def test_representation_group_applies_character() -> None:
    # phi(P diag(d)) = P diag(|d|) maps signed scalings to positive ones.
    abs_character = GroupDescription(
        "monomial", scalars="nonzero", character=Character(0, 1)
    )
    assert representation_group(abs_character).scalars == "positive"
    trivial_image = GroupDescription(
        "monomial", scalars="sign", character=Character(0, 0)
    )
    assert representation_group(trivial_image).scalars == "trivial"


def test_projection_rejects_zero_matrix() -> None:
    with pytest.raises(InvalidArgumentError, match="zero matrix"):
        project_to_group(np.zeros((3, 3)), group_of("relu"))


def test_projection_rejects_non_square() -> None:
    with pytest.raises(InvalidArgumentError, match=r"shape \(2, 3\)"):
        project_to_group(np.ones((2, 3)), group_of("relu"))


def test_projection_rejects_nan() -> None:
    M = np.eye(2)
    M[0, 1] = np.nan
    with pytest.raises(InvalidArgumentError, match="finite entries"):
        project_to_group(M, group_of("relu"))


def test_projection_rejects_non_group() -> None:
    with pytest.raises(InvalidArgumentError, match="GroupDescription"):
        project_to_group(np.eye(2), "relu")


def test_projection_rejects_degenerate() -> None:
    with pytest.raises(InvalidArgumentError, match="constant activation"):
        project_to_group(np.eye(2), GroupDescription("degenerate"))

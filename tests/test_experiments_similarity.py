"""Invariances of linear CKA, Procrustes and the group dissimilarity.

Each measure must ignore the maps it is built to ignore and must change under
the others. The representations come from real trained MLPs.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest

import symgroups
from nn_bridge._errors import InvalidArgumentError
from nn_bridge.experiments import (
    TrainConfig,
    align_to_group,
    group_dissimilarity,
    linear_cka,
    load_digits_split,
    procrustes_distance,
    representation_group,
    train_model,
)
from nn_bridge.experiments.similarity import as_unit_matrix
from nn_bridge.experiments.stitching import capture, layer_group

#: Values at or below this count as unchanged by a transform.
INVARIANT_TOL = 1e-6

#: A change above this shows that a measure is not invariant.
CHANGED = 1e-2


@functools.cache
def representation(activation: str, seed: int, family: str = "mlp") -> np.ndarray:
    model = train_model(family, activation, seed, TrainConfig(epochs=5)).build()
    data = load_digits_split()
    X = as_unit_matrix(capture(model, "act1", data.x_test).numpy())
    X.setflags(write=False)
    return X


@pytest.fixture(scope="module")
def tanh_x() -> np.ndarray:
    return representation("tanh", 0)


@pytest.fixture(scope="module")
def relu_x() -> np.ndarray:
    return representation("relu", 0)


def group(name: str) -> symgroups.GroupDescription:
    return symgroups.query(name).group


def haar(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    Q, R = np.linalg.qr(rng.normal(size=(n, n)))
    return Q * np.sign(np.diag(R))


def signed_permutation(n: int, seed: int) -> np.ndarray:
    return group("tanh").matrix_group(n).sample(seed)


def scaled_permutation(n: int, seed: int) -> np.ndarray:
    return group("relu").matrix_group(n).sample(seed)


def test_tanh_measure_ignores_signed_permutations(tanh_x: np.ndarray) -> None:
    n = tanh_x.shape[1]
    for seed in range(3):
        g = signed_permutation(n, seed)
        assert group_dissimilarity(tanh_x, tanh_x @ g, group("tanh")) < INVARIANT_TOL
        assert group_dissimilarity(tanh_x @ g, tanh_x, group("tanh")) < INVARIANT_TOL


def test_tanh_measure_sees_rotation(tanh_x: np.ndarray) -> None:
    Q = haar(tanh_x.shape[1], 1)
    assert group_dissimilarity(tanh_x, tanh_x @ Q, group("tanh")) > CHANGED


def test_tanh_measure_sees_scaling(tanh_x: np.ndarray) -> None:
    n = tanh_x.shape[1]
    assert group_dissimilarity(tanh_x, 2.0 * tanh_x, group("tanh")) > CHANGED
    assert (
        group_dissimilarity(tanh_x, tanh_x @ scaled_permutation(n, 0), group("tanh"))
        > CHANGED
    )


def test_relu_measure_ignores_scaled_permutations(relu_x: np.ndarray) -> None:
    n = relu_x.shape[1]
    for seed in range(3):
        g = scaled_permutation(n, seed)
        assert group_dissimilarity(relu_x, relu_x @ g, group("relu")) < INVARIANT_TOL
        assert group_dissimilarity(relu_x @ g, relu_x, group("relu")) < INVARIANT_TOL


def test_relu_measure_sees_sign_flips(relu_x: np.ndarray) -> None:
    n = relu_x.shape[1]
    flips = np.diag(np.where(np.arange(n) % 2 == 0, -1.0, 1.0))
    assert group_dissimilarity(relu_x, relu_x @ flips, group("relu")) > CHANGED
    assert (
        group_dissimilarity(relu_x, relu_x @ signed_permutation(n, 0), group("relu"))
        > CHANGED
    )


def test_relu_measure_sees_rotation(relu_x: np.ndarray) -> None:
    Q = haar(relu_x.shape[1], 2)
    assert group_dissimilarity(relu_x, relu_x @ Q, group("relu")) > CHANGED


def test_permutation_measure_sees_signs(tanh_x: np.ndarray) -> None:
    n = tanh_x.shape[1]
    perm = np.eye(n)[np.random.default_rng(0).permutation(n)]
    assert group_dissimilarity(tanh_x, tanh_x @ perm, group("gelu")) < INVARIANT_TOL
    assert group_dissimilarity(tanh_x, -tanh_x, group("gelu")) > CHANGED


@pytest.mark.parametrize("measure", ["cka", "procrustes"])
def test_cka_procrustes_ignore_orthogonal(relu_x: np.ndarray, measure: str) -> None:
    Y = representation("relu", 1)
    Q = haar(relu_x.shape[1], 3)
    if measure == "cka":
        assert linear_cka(relu_x @ Q, Y) == pytest.approx(
            linear_cka(relu_x, Y), abs=1e-9
        )
        assert 1.0 - linear_cka(relu_x, relu_x @ Q) < INVARIANT_TOL
    else:
        assert procrustes_distance(relu_x @ Q, Y) == pytest.approx(
            procrustes_distance(relu_x, Y), abs=1e-6
        )
        assert procrustes_distance(relu_x, relu_x @ Q) < INVARIANT_TOL


def test_cka_ignores_isotropic_scaling(tanh_x: np.ndarray) -> None:
    Y = representation("tanh", 1)
    assert linear_cka(3.0 * tanh_x, Y) == pytest.approx(
        linear_cka(tanh_x, Y), abs=1e-12
    )
    assert procrustes_distance(3.0 * tanh_x, Y) == pytest.approx(
        procrustes_distance(tanh_x, Y), abs=1e-9
    )


def test_cka_procrustes_see_unit_scalings(relu_x: np.ndarray) -> None:
    n = relu_x.shape[1]
    scales = np.diag(np.exp(np.linspace(-1.5, 1.5, n)))
    assert 1.0 - linear_cka(relu_x, relu_x @ scales) > CHANGED
    assert procrustes_distance(relu_x, relu_x @ scales) > CHANGED


def test_measures_are_bounded_across_seeds(tanh_x: np.ndarray) -> None:
    Y = representation("tanh", 1)
    cka = linear_cka(tanh_x, Y)
    assert 0.0 < cka < 1.0
    assert 0.0 < procrustes_distance(tanh_x, Y) < np.sqrt(2.0)
    assert group_dissimilarity(tanh_x, Y, group("tanh")) > CHANGED
    assert procrustes_distance(tanh_x, Y) == pytest.approx(
        procrustes_distance(Y, tanh_x)
    )


def test_relu_dissimilarity_at_most_one(relu_x: np.ndarray) -> None:
    Y = representation("relu", 1)
    value = group_dissimilarity(relu_x, Y, group("relu"))
    assert 0.0 < value <= 1.0


@pytest.mark.parametrize("name", ["tanh", "gelu", "relu"])
def test_alignment_matches_brute_force(name: str) -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(30, 4))
    Y = rng.normal(size=(30, 4))
    image = representation_group(group(name))
    g = align_to_group(X, Y, image)
    assert image.matrix_group(4).contains(g)
    found = np.linalg.norm(X @ g - Y)
    best = np.inf
    for perm in itertools.permutations(range(4)):
        for j_signs in itertools.product([-1.0, 1.0], repeat=4):
            P = np.zeros((4, 4))
            P[list(perm), range(4)] = 1.0
            if image.scalars == "trivial" and any(s < 0 for s in j_signs):
                continue
            if image.scalars == "sign":
                best = min(best, np.linalg.norm(X @ (P * np.array(j_signs)) - Y))
            elif image.scalars == "positive":
                cols = X[:, list(perm)]
                d = np.maximum((cols * Y).sum(axis=0) / (cols**2).sum(axis=0), 0.0)
                best = min(best, np.linalg.norm(cols * d - Y))
            else:
                best = min(best, np.linalg.norm(X @ P - Y))
    assert found == pytest.approx(best, rel=1e-6)


def test_cnn_representation_uses_channels() -> None:
    model = train_model("cnn", "tanh", 0, TrainConfig(epochs=1)).build()
    data = load_digits_split()
    h = capture(model, "act1", data.x_test)
    X = as_unit_matrix(h.numpy())
    assert X.shape == (h.shape[0] * 64, h.shape[1])
    g = signed_permutation(X.shape[1], 4)
    G = layer_group(model, "act1")
    assert group_dissimilarity(X, X @ g, G) < INVARIANT_TOL


def test_dissimilarity_rejects_shape_mismatch() -> None:
    with pytest.raises(InvalidArgumentError, match=r"X \(3, 2\) and Y \(3, 4\)"):
        group_dissimilarity(np.ones((3, 2)), np.ones((3, 4)), group("tanh"))


def test_cka_rejects_non_finite() -> None:
    X = np.ones((3, 2))
    X[0, 0] = np.inf
    with pytest.raises(InvalidArgumentError, match="invalid X: expected finite"):
        linear_cka(X, np.ones((3, 2)))


def test_unit_matrix_rejects_vector() -> None:
    with pytest.raises(InvalidArgumentError, match=r"shape \(3,\)"):
        as_unit_matrix(np.ones(3))

"""Similarity of hidden representations: linear CKA, Procrustes and a group-aware one.

Representations are arrays of shape ``(samples, units)``; a convolutional
representation of shape ``(n, channels, h, w)`` is first reshaped by
:func:`as_unit_matrix` to ``(n * h * w, channels)``, because the group of a
convolutional layer acts on channels. The measures differ in what they ignore:
:func:`linear_cka` ignores orthogonal maps, isotropic scaling and translation,
:func:`procrustes_distance` the same, and :func:`group_dissimilarity` ignores
exactly the group ``phi(G)`` of the layer's activation.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import orthogonal_procrustes
from scipy.optimize import linear_sum_assignment

from symgroups import GroupDescription

from .._errors import InvalidArgumentError
from .projection import POSITIVE_FLOOR, nearest_scalars, representation_group

#: Scalar groups that contain every positive scaling, so that rescaling each
#: unit to unit norm quotients out nothing that the group does not contain.
CONTINUOUS_SCALARS = ("positive", "nonzero")


def as_unit_matrix(representation: np.ndarray) -> np.ndarray:
    """Reshape activations to ``(samples, units)`` with units on axis 1.

    A 2-D array is returned as float64; an array ``(n, c, *spatial)`` becomes
    ``(n * prod(spatial), c)``, one row per sample and position.
    """
    array = np.asarray(representation, dtype=np.float64)
    if array.ndim < 2:
        raise InvalidArgumentError(
            f"invalid representation of shape {array.shape!r}: expected at least "
            "2 dimensions (samples, units, ...)"
        )
    if array.ndim == 2:
        return array
    moved = np.moveaxis(array, 1, -1)
    return moved.reshape(-1, array.shape[1])


def _check_pair(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    for name, array in (("X", X), ("Y", Y)):
        if array.ndim != 2 or 0 in array.shape:
            raise InvalidArgumentError(
                f"invalid {name} of shape {array.shape!r}: expected a non-empty "
                "(samples, units) matrix"
            )
        if not np.isfinite(array).all():
            raise InvalidArgumentError(f"invalid {name}: expected finite entries")
    if X.shape != Y.shape:
        raise InvalidArgumentError(
            f"invalid shapes X {X.shape!r} and Y {Y.shape!r}: expected equal "
            "(samples, units) shapes"
        )
    return X, Y


def _centred(X: np.ndarray) -> np.ndarray:
    return X - X.mean(axis=0, keepdims=True)


def linear_cka(X: np.ndarray, Y: np.ndarray) -> float:
    """Return linear centred kernel alignment, in [0, 1], 1 for equal representations.

    ``CKA = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)`` with ``Xc``,
    ``Yc`` the column-centred representations. Law: ``linear_cka(X Q a + 1 t^T,
    Y) == linear_cka(X, Y)`` for every orthogonal ``Q``, nonzero ``a`` and
    translation ``t``. A constant representation has CKA 0 with everything.
    """
    X, Y = _check_pair(X, Y)
    Xc = _centred(X)
    Yc = _centred(Y)
    cross = np.linalg.norm(Yc.T @ Xc) ** 2
    denominator = np.linalg.norm(Xc.T @ Xc) * np.linalg.norm(Yc.T @ Yc)
    if denominator == 0.0:
        return 0.0
    return float(cross / denominator)


def _unit_frobenius(X: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(X)
    return X / norm if norm > 0 else X


def procrustes_distance(X: np.ndarray, Y: np.ndarray) -> float:
    """Return the orthogonal Procrustes distance, in [0, sqrt(2)] for equal widths.

    Both representations are column-centred and scaled to unit Frobenius
    norm, then ``d = min over orthogonal Q of ||Xn Q - Yn||_F``, which equals
    ``sqrt(2 - 2 ||Xn^T Yn||_*)`` (nuclear norm). Law: ``d(X Q a + 1 t^T, Y) ==
    d(X, Y) == d(Y, X)`` for orthogonal ``Q``, ``a > 0`` and translation ``t``.
    """
    X, Y = _check_pair(X, Y)
    Xn = _unit_frobenius(_centred(X))
    Yn = _unit_frobenius(_centred(Y))
    nuclear = np.linalg.svd(Xn.T @ Yn, compute_uv=False).sum()
    return float(np.sqrt(max(0.0, 2.0 - 2.0 * nuclear)))


def orthogonal_alignment(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Return the orthogonal ``Q`` minimising ``||X Q - Y||_F`` (no centring)."""
    X, Y = _check_pair(X, Y)
    Q, _ = orthogonal_procrustes(X, Y)
    return Q


def align_to_group(
    X: np.ndarray, Y: np.ndarray, representation_group: GroupDescription
) -> np.ndarray:
    """Return the element ``g`` of a monomial group minimising ``||X g - Y||_F``.

    ``g`` acts on the right of ``(samples, units)`` matrices, so column ``j``
    of ``X g`` is ``d_j X[:, pi(j)]``. The objective splits into one term per
    matched pair ``(i, j)``, ``min over d in Lambda of ||d x_i - y_j||^2``, whose
    best ``d`` is the element of ``Lambda`` nearest to ``<x_i, y_j> /
    ||x_i||^2``; a linear assignment on these costs gives the minimum.
    The minimum is exact for permutation and sign groups. For positive scalings
    a matched pair with ``<x_i, y_j> <= 0`` has the unattained infimum ``d -> 0``
    and gets a small positive ``d`` (see
    :data:`~nn_bridge.experiments.projection.POSITIVE_FLOOR`). A unit that is
    zero on every sample (a dead ReLU unit) gets ``d`` nearest to 1.

    Pass the group acting on the representation, ``phi(G)`` (see
    :func:`~nn_bridge.experiments.projection.representation_group`).
    """
    X, Y = _check_pair(X, Y)
    if representation_group.kind != "monomial":
        raise InvalidArgumentError(
            f"invalid group {representation_group.describe()!r}: expected a "
            "monomial group"
        )
    squared_x = np.einsum("ij,ij->j", X, X)
    squared_y = np.einsum("ij,ij->j", Y, Y)
    inner = X.T @ Y
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(squared_x[:, None] > 0, inner / squared_x[:, None], 1.0)
    floor = POSITIVE_FLOOR * max(float(np.max(np.abs(ratio))), 1.0)
    scale = nearest_scalars(ratio, representation_group, floor)
    cost = squared_x[:, None] * scale**2 - 2.0 * scale * inner + squared_y[None, :]
    rows, cols = linear_sum_assignment(cost)
    g = np.zeros((X.shape[1], X.shape[1]))
    g[rows, cols] = scale[rows, cols]
    return g


def _unit_columns(X: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(X, axis=0)
    return X / np.where(norms > 0, norms, 1.0)


def group_dissimilarity(X: np.ndarray, Y: np.ndarray, group: GroupDescription) -> float:
    """Return ``min over g in phi(G) of ||X g - Y||_F / sqrt(||X||_F ||Y||_F)``.

    ``group`` is the intertwiner group ``G`` of the layer's activation, as
    :func:`symgroups.query` returns it, and the minimum is over ``phi(G)``,
    the group acting on ``sigma(z)``, by :func:`align_to_group`. No centring is
    applied, because translations are not in ``phi(G)``.

    For permutation and sign groups the value is the exact minimum, and it is
    symmetric and invariant under ``phi(G)`` acting on either argument,
    because those elements are orthogonal. It is not invariant under other
    maps, such as rotations or isotropic scaling. For groups with continuous
    scalings (positive or nonzero) each unit of ``X`` and of ``Y`` is first
    scaled to unit norm, which removes exactly the scalings in the group, and
    the value is the exact infimum over the permutations and sign choices
    that remain (sign choices only for nonzero scalars), in [0, 1].

    NOTE: for discrete scalar groups the columns are not normalised, so the
    value is invariant under the group acting on ``X`` only.

    Raises
    ------
    InvalidArgumentError
        If the shapes differ, an entry is not finite or ``group`` is not a
        monomial or degenerate group description.
    """
    X, Y = _check_pair(X, Y)
    image = representation_group(group)
    if image.kind != "monomial":
        raise InvalidArgumentError(
            f"invalid group {group.describe()!r}: expected a monomial group"
        )
    if image.scalars in CONTINUOUS_SCALARS:
        X = _unit_columns(X)
        Y = _unit_columns(Y)
    g = align_to_group(X, Y, image)
    denominator = np.sqrt(np.linalg.norm(X) * np.linalg.norm(Y))
    if denominator == 0.0:
        return 0.0
    return float(np.linalg.norm(X @ g - Y) / denominator)

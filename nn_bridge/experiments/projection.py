"""Nearest elements of intertwiner groups, and the group acting on ``sigma(z)``.

For a monomial group (every ``P diag(d)`` with ``P`` a permutation and each
``d_i`` in a scalar group ``Lambda``) the nearest element of a matrix ``M``
in Frobenius norm is exact and cheap. Because
``||M - P D||_F^2 = ||M||_F^2 - sum over the support of P of gain(M_ij)``
with ``gain(m) = m**2 - min over lam in Lambda of (m - lam)**2``, the best
support is a linear assignment that maximises the summed gains, and the best
scalar of each chosen entry is the element of ``Lambda`` nearest to it.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import linear_sum_assignment

from symgroups import Character, GroupDescription

from .._errors import InvalidArgumentError

#: Relative size of the positive scalar that stands in for an unattained
#: infimum: the nearest positive scalar to an entry ``m <= 0`` would be 0, which
#: is not in the group, so such entries get ``POSITIVE_FLOOR * max|M|``.
POSITIVE_FLOOR = 1e-8

#: Singular values below this fraction of the largest count as zero when a
#: matrix is projected onto ``GL_n``.
SINGULAR_FLOOR = 1e-8


def representation_group(group: GroupDescription) -> GroupDescription:
    """Return ``phi(G)``, the group that acts on the activation's output ``sigma(z)``.

    For a monomial ``G``, ``phi(P diag(d)) = P diag(mu(d))``, so ``phi(G)`` is
    the monomial group whose scalars are ``mu(Lambda)``, with the identity
    character. ``general_linear`` and ``affine_stabilizer`` groups have
    ``phi(A) = A`` and are returned unchanged. For ReLU, LeakyReLU and tanh
    ``phi(G) = G``, while for GELU and sigmoid ``G`` already has trivial scalars.

    Raises
    ------
    InvalidArgumentError
        If ``group`` is not a :class:`symgroups.GroupDescription` or is
        ``degenerate`` (a constant activation has no ``phi``).
    """
    _check_group(group)
    if group.kind != "monomial":
        return group
    assert group.character is not None
    sign_exponent = group.character.sign_exponent
    power = group.character.power
    scalars = group.scalars
    generators: tuple = ()
    if scalars == "discrete":
        images = [group.character.mu_exact(g) for g in group.generators]
        images = [image for image in images if image != 1]
        if all(abs(image) == 1 for image in images):
            scalars = "sign" if images else "trivial"
        else:
            scalars = "discrete"
            generators = tuple(images)
    elif scalars in ("positive", "nonzero") and power == 0:
        scalars = "sign" if scalars == "nonzero" and sign_exponent else "trivial"
    elif scalars == "nonzero" and not sign_exponent:
        scalars = "positive"
    elif scalars == "sign" and not sign_exponent:
        scalars = "trivial"
    return GroupDescription(
        "monomial",
        scalars=scalars,
        generators=generators,
        character=Character(1, 1),
    )


def _check_group(group: object) -> None:
    if not isinstance(group, GroupDescription):
        raise InvalidArgumentError(
            f"invalid group {group!r}: expected a symgroups.GroupDescription"
        )
    if group.kind == "degenerate":
        raise InvalidArgumentError(
            f"invalid group {group.describe()!r}: a constant activation has no "
            "group elements to project onto"
        )


def _check_square(name: str, matrix: object) -> np.ndarray:
    array = np.asarray(matrix, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != array.shape[1] or array.shape[0] == 0:
        raise InvalidArgumentError(
            f"invalid {name} of shape {array.shape!r}: expected a non-empty "
            "square matrix"
        )
    if not np.isfinite(array).all():
        raise InvalidArgumentError(
            f"invalid {name}: expected finite entries, got {array!r}"
        )
    return array


def nearest_scalars(
    values: np.ndarray, group: GroupDescription, floor: float
) -> np.ndarray:
    """Return, entry by entry, the element of the scalar group nearest to ``values``.

    ``trivial`` gives 1 and ``sign`` gives the entry's sign (1 at zero).
    ``positive`` gives the entry where it is at least ``floor`` and ``floor``
    elsewhere, because the nearest point 0 is not in the group; ``nonzero``
    does the same with ``floor`` replacing only entries of magnitude below it.
    ``discrete`` gives the nearest power ``c**k`` (times a sign where -1 is a
    generator), with ``floor`` standing in for zero. ``floor`` must be positive.
    """
    values = np.asarray(values, dtype=np.float64)
    scalars = group.scalars
    if scalars == "trivial":
        return np.ones_like(values)
    if scalars == "sign":
        return np.where(values < 0, -1.0, 1.0)
    if scalars == "positive":
        return np.maximum(values, floor)
    if scalars == "nonzero":
        return np.where(np.abs(values) < floor, floor, values)
    if scalars == "discrete":
        return _nearest_discrete(values, group, floor)
    raise InvalidArgumentError(
        f"invalid group {group.describe()!r}: expected a monomial group"
    )


def _nearest_discrete(
    values: np.ndarray, group: GroupDescription, floor: float
) -> np.ndarray:
    (base,) = [float(g) for g in group.generators if abs(g) != 1]
    has_minus_one = any(g == -1 for g in group.generators)
    log_base = math.log(abs(base))
    magnitudes = np.maximum(np.abs(values), floor)
    centre = np.floor(np.log(magnitudes) / log_base)
    best = np.full(values.shape, np.nan)
    best_error = np.full(values.shape, np.inf)
    # The nearest power is among the neighbours of log|m| / log|c|, and with a
    # negative c and no -1 the sign fixes the parity of k, so try k +- 2.
    for offset in (-2.0, -1.0, 0.0, 1.0, 2.0):
        k = centre + offset
        candidate = np.power(abs(base), k)
        if has_minus_one:
            candidate = np.where(values < 0, -candidate, candidate)
        elif base < 0:
            candidate = np.where(k % 2 == 1, -candidate, candidate)
        error = np.abs(values - candidate)
        better = error < best_error
        best = np.where(better, candidate, best)
        best_error = np.where(better, error, best_error)
    return best


def project_to_group(
    M: np.ndarray, group_description: GroupDescription
) -> tuple[np.ndarray, float]:
    """Return the nearest group element ``A`` to ``M`` and ``||M - A||_F / ||M||_F``.

    For a monomial group the support of ``A`` maximises the summed gains
    ``gain(m) = m**2 - (m - lam(m))**2`` by
    :func:`scipy.optimize.linear_sum_assignment`, where ``lam(m)`` is the
    scalar from :func:`nearest_scalars`. Written out, the score matrix is
    ``2 M - 1`` for ``trivial`` scalars (the assignment on ``M``),
    ``2 |M| - 1`` for ``sign`` (the assignment on ``|M|``), ``max(M, 0)**2``
    for ``positive`` and ``M**2`` for ``nonzero``. An assignment on ``|M|``
    would be wrong for positive scalars, which cannot match a negative entry,
    and for nonzero scalars, where the gain grows with ``m**2``. The result is
    the exact nearest element, except that a chosen entry with no admissible
    scalar (``m <= 0`` for ``positive``) gets the small scalar
    ``POSITIVE_FLOOR * max|M|``, so the distance is then above the unattained
    infimum by at most that much per entry.

    ``general_linear`` returns ``M`` with singular values below
    ``SINGULAR_FLOOR`` times the largest raised to that level, and
    ``affine_stabilizer`` returns the orthogonal projection onto ``A 1 = 1``,
    which is the nearest element whenever it is invertible.

    Law: for ``A`` in the group, ``project_to_group(A, g) == (A, 0.0)`` up to
    rounding, and the distance of any ``M`` is at most that of every sampled
    group element.

    Raises
    ------
    InvalidArgumentError
        If ``M`` is not a finite, non-empty, nonzero square matrix or the group
        is not a non-degenerate :class:`symgroups.GroupDescription`.
    """
    _check_group(group_description)
    M = _check_square("M", M)
    norm = float(np.linalg.norm(M))
    if norm == 0.0:
        raise InvalidArgumentError(
            "invalid M: the zero matrix has no relative distance; expected a "
            "nonzero matrix"
        )
    kind = group_description.kind
    if kind == "general_linear":
        U, singular, Vt = np.linalg.svd(M)
        singular = np.maximum(singular, SINGULAR_FLOOR * singular[0])
        A = (U * singular) @ Vt
    elif kind == "affine_stabilizer":
        n = M.shape[0]
        A = M + np.outer(1.0 - M.sum(axis=1), np.ones(n)) / n
    else:
        floor = POSITIVE_FLOOR * float(np.max(np.abs(M)))
        lam = nearest_scalars(M, group_description, floor)
        gain = M**2 - (M - lam) ** 2
        rows, cols = linear_sum_assignment(gain, maximize=True)
        A = np.zeros_like(M)
        A[rows, cols] = lam[rows, cols]
    distance = float(np.linalg.norm(M - A)) / norm
    return A, distance

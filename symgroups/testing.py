"""Assertions and Hypothesis strategies for code that uses intertwiner groups.

The law under test is ``sigma(A x) = B sigma(x)`` for every ``x``, with
``B = phi(A)`` for a group element ``A``. This module imports Hypothesis, so
it is meant for test suites; ``import symgroups`` does not import it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st

from ._errors import ParameterError
from ._group import IntertwinerGroup
from ._numeric import rotation_matrix, scalars_outside

__all__ = ["assert_intertwines", "group_elements", "near_misses"]

#: Columns drawn by :func:`assert_intertwines` when no ``x`` is given.
DEFAULT_BATCH = 256

#: Coordinates of the default batch: both signs, log-uniform magnitudes in this
#: range, and exact zeros. The range stops short of the magnitudes where
#: ``exp`` overflows, which would compare ``inf`` with ``0 * inf``.
DEFAULT_MAGNITUDES = (1e-6, 30.0)
ZERO_SHARE = 0.05

#: Relative size range of the extra off-support entry of a near miss.
EXTRA_ENTRY_SIZES = (0.1, 1.0)

#: Angle range of the rotations that make a near miss not monomial.
ROTATION_ANGLES = (math.pi / 8, 3 * math.pi / 8)

_SEEDS = st.integers(min_value=0, max_value=2**32 - 1)


def _default_batch(rng: np.random.Generator, n: int) -> np.ndarray:
    low, high = (math.log(v) for v in DEFAULT_MAGNITUDES)
    magnitudes = np.exp(rng.uniform(low, high, size=(n, DEFAULT_BATCH)))
    signs = rng.choice([-1.0, 1.0], size=(n, DEFAULT_BATCH))
    zeros = rng.random(size=(n, DEFAULT_BATCH)) < ZERO_SHARE
    return np.where(zeros, 0.0, signs * magnitudes)


def _square(name: str, value: Any) -> np.ndarray:
    matrix = np.asarray(value, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ParameterError(
            f"{name} must be a square matrix, got shape {matrix.shape!r}"
        )
    return matrix


def assert_intertwines(
    sigma: Callable[[np.ndarray], np.ndarray],
    A: Any,
    B: Any,
    x: Any = None,
    *,
    rtol: float = 1e-9,
    atol: float = 1e-12,
    seed: int = 0,
) -> None:
    """Assert ``sigma(A x) = B sigma(x)`` on a batch of vectors ``x``.

    Each entry must satisfy ``|lhs - rhs| <= atol + rtol * |rhs|``, as in
    :func:`numpy.testing.assert_allclose`: NaN equals NaN, and an infinity
    equals only the same infinity.

    Parameters
    ----------
    sigma : callable
        An elementwise numpy function, such as
        :func:`symgroups._numeric.compile_numpy` returns.
    A, B : array_like
        Square matrices of the same size ``n``.
    x : array_like, optional
        One vector of shape ``(n,)`` or columns of shape ``(n, k)``. By
        default ``DEFAULT_BATCH`` random columns drawn with ``seed``.
    rtol, atol : float
        Relative and absolute tolerance.
    seed : int
        Seed of the default batch.

    Raises
    ------
    AssertionError
        With the maximum deviation, the worst column ``x`` and both sides there.
    ParameterError
        When the shapes of ``A``, ``B`` and ``x`` do not fit together.
    """
    A = _square("A", A)
    B = _square("B", B)
    if A.shape != B.shape:
        raise ParameterError(
            f"A and B must have the same shape, got {A.shape!r} and {B.shape!r}"
        )
    n = A.shape[0]
    if x is None:
        x = _default_batch(np.random.default_rng(seed), n)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] != n:
        raise ParameterError(f"x must have shape ({n},) or ({n}, k), got {x.shape!r}")
    lhs = np.asarray(sigma(A @ x), dtype=np.float64)
    rhs = B @ np.asarray(sigma(x), dtype=np.float64)
    with np.errstate(invalid="ignore"):
        deviation = np.abs(lhs - rhs)
        allowed = atol + rtol * np.abs(rhs)
    both_nan = np.isnan(lhs) & np.isnan(rhs)
    same_infinity = np.isinf(lhs) & (lhs == rhs)
    bad = ~(both_nan | same_infinity) & ~(deviation <= allowed)
    if not bad.any():
        return
    # Rank the failures by how far they exceed their allowance. A NaN ranks first.
    excess = np.where(bad, np.nan_to_num(deviation / allowed, nan=np.inf), -1.0)
    row, column = np.unravel_index(int(np.argmax(excess)), excess.shape)
    finite = deviation[bad & np.isfinite(deviation)]
    if finite.size:
        largest = f"max deviation {float(finite.max()):.3g}"
    else:
        largest = "every failing entry is NaN or infinite on one side"
    raise AssertionError(
        f"sigma(A x) != B sigma(x) at {int(bad.sum())} of {bad.size} entries "
        f"(rtol={rtol:g}, atol={atol:g}); {largest}; worst entry {row} of x = "
        f"{np.array2string(x[:, column], precision=17)}: "
        f"sigma(A x) = {float(lhs[row, column])!r}, "
        f"B sigma(x) = {float(rhs[row, column])!r}"
    )


def group_elements(group: IntertwinerGroup) -> st.SearchStrategy[np.ndarray]:
    """Return a strategy of elements of ``group``, drawn by ``group.sample``.

    Hypothesis draws the seed, so a failing example shrinks to a small seed
    and replays exactly.
    """
    if not isinstance(group, IntertwinerGroup):
        raise ParameterError(f"group must be an IntertwinerGroup, got {group!r}")
    return _SEEDS.map(group.sample)


def _monomial_near_miss(
    group: IntertwinerGroup, kind: str, rng: np.random.Generator
) -> np.ndarray:
    n = group.n
    A = group.sample(rng)
    perm, d = group.monomial_factors(A)
    if kind == "extra entry":
        column = int(rng.integers(n))
        row = int(rng.choice([r for r in range(n) if r != perm[column]]))
        size = rng.uniform(*EXTRA_ENTRY_SIZES) * abs(d[column])
        A[row, column] = rng.choice([-1.0, 1.0]) * size
        return A
    if kind == "rotation":
        i, j = (int(v) for v in rng.choice(n, size=2, replace=False))
        return A @ rotation_matrix(n, i, j, rng.uniform(*ROTATION_ANGLES))
    lam = float(rng.choice(scalars_outside(group.description)))
    A[:, int(rng.integers(n))] *= lam
    return A


def _linear_near_miss(
    group: IntertwinerGroup, kind: str, rng: np.random.Generator
) -> np.ndarray:
    n = group.n
    A = group.sample(rng)
    if kind == "singular":
        # Replacing one column by a combination of the others leaves rank n - 1.
        column = int(rng.integers(n))
        weights = rng.normal(size=n)
        weights[column] = 0.0
        A[:, column] = A @ weights
        return A
    row = int(rng.integers(n))
    A[row, :] += rng.uniform(*EXTRA_ENTRY_SIZES) / n
    return A


def near_misses(group: IntertwinerGroup) -> st.SearchStrategy[np.ndarray]:
    """Return a strategy of matrices just outside ``group``.

    Each draw starts from a sampled element and changes it slightly:

    * monomial groups: one extra off-support entry, 0.1 to 1 times the
      entry of its column. Or a rotation that mixes two coordinates, or one
      column scaled by a scalar outside the scalar group, such as 2 for a
      sign group or -1 for a positive one;
    * ``general_linear``: one column replaced by a combination of the
      others, so the matrix is singular;
    * ``affine_stabilizer``: one row shifted so that ``A 1 != 1``, or the
      singular change above.

    Raises
    ------
    ParameterError
        When ``group`` has no such matrices: a ``nonzero`` monomial group with
        ``n = 1`` contains every invertible 1x1 matrix.
    """
    if not isinstance(group, IntertwinerGroup):
        raise ParameterError(f"group must be an IntertwinerGroup, got {group!r}")
    kind = group.description.kind
    if kind == "general_linear":
        kinds = ["singular"]
        build = _linear_near_miss
    elif kind == "affine_stabilizer":
        kinds = ["row sum", "singular"]
        build = _linear_near_miss
    else:
        kinds = ["extra entry", "rotation"] if group.n >= 2 else []
        if scalars_outside(group.description):
            kinds.append("scalar")
        build = _monomial_near_miss
    if not kinds:
        raise ParameterError(
            f"group {group.describe()!r} has no matrices just outside it; "
            "use n >= 2 or a smaller scalar group"
        )
    return st.builds(
        lambda kind, seed: build(group, kind, np.random.default_rng(seed)),
        st.sampled_from(kinds),
        _SEEDS,
    )

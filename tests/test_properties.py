"""Hypothesis property tests of the intertwining law for every catalogue entry.

For every activation and random ``n``: random elements ``A`` of the computed
group satisfy ``sigma(A x) = phi(A) sigma(x)``; products and inverses stay in
the group; ``phi`` is a homomorphism; and matrices just outside the group fail
both the membership test and the intertwining equation.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symgroups import CATALOGUE, query
from symgroups._numeric import compile_numpy

NAMES = list(CATALOGUE)

#: Relative tolerance of the float64 intertwining law.
LAW_RTOL = 1e-9

#: A near miss must break the law by more than this relative deviation.
MISS_MIN_DEVIATION = 1e-6

PROPERTY_SETTINGS = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def law_deviation(sigma, A, B, x):
    """Relative deviation of ``sigma(A x) = B sigma(x)`` on a batch of columns."""
    left = sigma(A @ x)
    right = B @ sigma(x)
    finite = np.isfinite(left).all(axis=0) & np.isfinite(right).all(axis=0)
    left, right = left[:, finite], right[:, finite]
    scale = np.maximum(np.abs(left), np.abs(right)).max() + 1e-300
    return float(np.abs(left - right).max() / scale)


def probe_points(rng, n, count=64):
    """Columns of ``R^n`` covering both signs and several magnitudes."""
    scales = np.array([1e-3, 0.3, 1.0, 3.0, 10.0])
    x = rng.normal(size=(n, count)) * rng.choice(scales, size=(1, count))
    return x


@functools.cache
def result_of(name):
    # A cache instead of a fixture keeps hypothesis reports short.
    return query(name)


@pytest.mark.parametrize("name", NAMES)
def test_catalogue_entry_is_proved(name):
    assert result_of(name).status == "proved", result_of(name).notes


@pytest.mark.parametrize("name", NAMES)
@PROPERTY_SETTINGS
@given(n=st.integers(1, 6), seed=st.integers(0, 2**32 - 1))
def test_group_elements_intertwine(name, n, seed):
    result = result_of(name)
    if result.group.kind == "degenerate":
        return
    group = result.matrix_group(n)
    sigma = compile_numpy(result.activation.expr)
    rng = np.random.default_rng(seed)
    A = group.sample(rng)
    assert group.contains(A)
    x = probe_points(rng, n)
    assert law_deviation(sigma, A, group.phi(A), x) <= LAW_RTOL


@pytest.mark.parametrize("name", NAMES)
@PROPERTY_SETTINGS
@given(n=st.integers(1, 6), seed=st.integers(0, 2**32 - 1))
def test_products_inverses_and_homomorphism(name, n, seed):
    result = result_of(name)
    if result.group.kind == "degenerate":
        return
    group = result.matrix_group(n)
    rng = np.random.default_rng(seed)
    A, B = group.sample(rng), group.sample(rng)
    AB = group.multiply(A, B)
    assert group.contains(AB)
    A_inv = group.inverse(A)
    assert group.contains(A_inv)
    np.testing.assert_allclose(A @ A_inv, np.eye(n), atol=1e-12)
    np.testing.assert_allclose(
        group.phi(AB), group.phi(A) @ group.phi(B), rtol=1e-9, atol=1e-12
    )
    np.testing.assert_allclose(
        group.phi(A_inv), np.linalg.inv(group.phi(A)), rtol=1e-9, atol=1e-12
    )


def near_misses(group, rng):
    """Matrices just outside a monomial group, each paired with its name."""
    n = group.n
    A = group.sample(rng)
    misses = []
    if n >= 2:
        extra = A.copy()
        i, j = rng.choice(n, size=2, replace=False)
        column = int(np.argmax(np.abs(extra[i])))
        off = (column + 1) % n
        extra[i, off] += 0.5
        misses.append(("extra off-support entry", extra))
    description = group.description
    for lam in (2.0, -1.0, -2.0, 0.5, 3.0):
        if not description.scalar_contains(lam):
            scaled = A.copy()
            column = 0
            row = int(np.argmax(np.abs(scaled[:, column])))
            scaled[row, column] *= lam
            misses.append((f"scaling by {lam}", scaled))
            break
    return misses


@pytest.mark.parametrize("name", NAMES)
@PROPERTY_SETTINGS
@given(n=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_near_misses_fail_membership_and_law(name, n, seed):
    result = result_of(name)
    if result.group.kind != "monomial":
        return
    group = result.matrix_group(n)
    sigma = compile_numpy(result.activation.expr)
    rng = np.random.default_rng(seed)
    x = probe_points(rng, n, count=256)
    for label, M in near_misses(group, rng):
        assert not group.contains(M), label
        # No B can fix the law; the best B in the least-squares sense fails
        # on some probe point, relative to that point's own magnitude.
        left = sigma(M @ x)
        right = sigma(x)
        finite = np.isfinite(left).all(axis=0) & np.isfinite(right).all(axis=0)
        left, right = left[:, finite], right[:, finite]
        B, *_ = np.linalg.lstsq(right.T, left.T, rcond=None)
        error = np.abs(left - B.T @ right).max(axis=0)
        scale = np.abs(left).max(axis=0) + np.abs(B.T @ right).max(axis=0) + 1e-300
        residual = float((error / scale).max())
        assert residual > MISS_MIN_DEVIATION, (label, residual)

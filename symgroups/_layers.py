"""Symmetry groups of non-elementwise layers: norms, softmax, GLU and pooling.

For a layer ``f`` the group is every pair ``(A, B)`` of invertible matrices with
``f(A x) = B f(x)`` for all ``x``. Each :class:`LayerGroup` tests membership,
computes the canonical ``B`` (:meth:`LayerGroup.phi`), draws random elements
and carries its derivation; the full proofs are on the docs page
``docs/layers.md``. The reference implementations of the layers act on axis 0
of an array, so ``A @ x`` applies ``A`` to every column of ``x``.

Everything here is numpy and the symgroups engine; torch is never imported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._errors import DegenerateActivationError, NotInGroupError, ParameterError

#: Relative tolerance of :meth:`LayerGroup.contains` for float64 matrices.
DEFAULT_LAYER_TOL = 1e-9

#: Standard deviation of ``log c`` when sampling positive scalings.
SAMPLE_LOG_SCALE_STD = 0.5

#: Standard deviation of the entries of ``v`` in sampled shears ``I + 1 v^T``.
SAMPLE_SHEAR_STD = 0.3

#: Sampled shears ``I + 1 v^T`` keep ``|1 + v^T 1|`` at least this large, so
#: that they stay well conditioned.
SAMPLE_SHEAR_MIN_DET = 0.2

#: The layer names that :func:`layer_group` accepts, and the gate of each GLU variant.
GLU_GATES = {"glu": "sigmoid", "swiglu": "silu", "geglu": "gelu", "reglu": "relu"}
LAYER_NAMES = (
    "rmsnorm",
    "layernorm",
    "softmax",
    *GLU_GATES,
    "maxpool",
    "avgpool",
)

DOCS_PAGE = "layers.md"


@dataclass(frozen=True)
class LayerElement:
    """One element ``(A, B)`` of a layer group: ``f(A x) = B f(x)`` for all ``x``."""

    A: np.ndarray
    B: np.ndarray


def random_orthogonal(
    n: int, seed: int | np.random.Generator | None = None, *, fix_ones: bool = False
) -> np.ndarray:
    """Draw a Haar-random orthogonal ``n x n`` matrix ``Q`` (``Q^T Q = I``).

    With ``fix_ones=True`` the matrix also satisfies ``Q 1 = 1``: it is
    ``H diag(1, R) H`` for a Haar-random ``R`` in ``O(n - 1)`` and the
    Householder reflection ``H`` that swaps ``e_1`` and ``1 / sqrt(n)``, so it
    is Haar-random in the subgroup of ``O(n)`` that fixes the all-ones vector.
    """
    n = _check_dimension(n)
    rng = _generator(seed)
    if not fix_ones:
        return _haar(rng, n)
    H = _householder_ones(n)
    block = np.eye(n)
    if n > 1:
        block[1:, 1:] = _haar(rng, n - 1)
    return H @ block @ H


def _haar(rng: np.random.Generator, n: int) -> np.ndarray:
    Z = rng.normal(size=(n, n))
    Q, R = np.linalg.qr(Z)
    # Fixing the signs of diag(R) makes the QR factor Haar-distributed.
    return Q * np.sign(np.diag(R))


def _householder_ones(n: int) -> np.ndarray:
    """Return the symmetric orthogonal ``H`` with ``H e_1 = 1 / sqrt(n)``."""
    v = -np.ones(n) / math.sqrt(n)
    v[0] += 1.0
    norm = np.linalg.norm(v)
    if norm < 1e-15:
        return np.eye(n)
    v /= norm
    return np.eye(n) - 2.0 * np.outer(v, v)


def ones_complement_basis(n: int) -> np.ndarray:
    """Return an ``n x (n - 1)`` matrix whose columns are an orthonormal basis of
    the hyperplane orthogonal to the all-ones vector."""
    return _householder_ones(n)[:, 1:]


def _generator(seed: Any) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (
        isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0
    ):
        return np.random.default_rng(seed)
    raise ParameterError(
        f"seed must be None, a nonnegative integer or a numpy Generator, got {seed!r}"
    )


def _check_dimension(n: Any, minimum: int = 1) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < minimum:
        raise ParameterError(f"dimension must be an integer >= {minimum}, got {n!r}")
    return int(n)


def _as_square(A: Any, label: str = "A") -> np.ndarray:
    try:
        A = np.asarray(A, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError(
            f"{label} must be a real square matrix, got {A!r}"
        ) from None
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] == 0:
        raise ParameterError(f"{label} must be a square matrix, got shape {A.shape}")
    return A


def _scale(A: np.ndarray) -> float:
    return max(1.0, float(np.abs(A).max()))


def _close(X: np.ndarray, Y: np.ndarray, tol: float) -> bool:
    return bool(np.abs(X - Y).max() <= tol * max(_scale(X), _scale(Y)))


def _invertible(M: np.ndarray, tol: float) -> bool:
    singular = np.linalg.svd(M, compute_uv=False)
    return bool(singular[-1] > tol * max(1.0, singular[0]))


def _positive_scales(rng: np.random.Generator, size: int) -> np.ndarray:
    return np.exp(rng.normal(0.0, SAMPLE_LOG_SCALE_STD, size=size))


def _random_invertible(rng: np.random.Generator, n: int) -> np.ndarray:
    """Draw a well-conditioned invertible matrix ``Q1 diag(d) Q2``."""
    return _haar(rng, n) @ np.diag(_positive_scales(rng, n)) @ _haar(rng, n)


def _random_shear(rng: np.random.Generator, n: int) -> np.ndarray:
    """Draw a shear ``I + 1 v^T``, which moves each ``x`` along the all-ones vector."""
    while True:
        v = rng.normal(0.0, SAMPLE_SHEAR_STD, size=n) / math.sqrt(n)
        if abs(1.0 + v.sum()) >= SAMPLE_SHEAR_MIN_DET:
            return np.eye(n) + np.outer(np.ones(n), v)


class LayerGroup:
    """The group of pairs ``(A, B)`` with ``f(A x) = B f(x)`` for a layer ``f``.

    Subclasses set the fields below and implement :meth:`apply`,
    :meth:`_phi_or_none` (the canonical ``B`` of ``A``, or ``None`` when
    ``A`` is outside the group) and :meth:`_sample`.

    Attributes
    ----------
    name
        The name that :func:`layer_group` accepts, such as ``"rmsnorm"``.
    formula
        The layer ``f`` in plain text.
    description
        The group and its ``B`` in one line.
    derivation
        A short proof or derivation; the full one is on the docs page.
    docs
        The docs page section with the full proof, such as ``layers.md#rmsnorm``.
    status
        ``"proved"`` when the group is proved exactly; a GLU group inherits
        the status of its gate's query otherwise.
    params
        The layer parameters (``eps``, ``gate``, ``kernel_size``, ``stride``).
    """

    name: str = ""
    formula: str = ""
    description: str = ""
    derivation: str = ""
    law: str = "f(A x) = B f(x) for all x"
    status: str = "proved"
    min_dim: int = 1

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}

    @property
    def docs(self) -> str:
        return f"{DOCS_PAGE}#{self.name}"

    def input_dim(self, n: int) -> int:
        """Return the size of ``A`` for a layer of dimension ``n`` (GLU: ``2 n``)."""
        return n

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Evaluate the layer in float64 on axis 0 of ``x``."""
        raise NotImplementedError

    def _phi_or_none(self, A: np.ndarray, tol: float) -> np.ndarray | None:
        raise NotImplementedError

    def _sample(self, rng: np.random.Generator, n: int) -> LayerElement:
        raise NotImplementedError

    def _check_A(self, A: Any) -> np.ndarray:
        A = _as_square(A)
        n = A.shape[0]
        if self.input_dim(1) == 2 and n % 2:
            raise ParameterError(
                f"A of a {self.name} group acts on (gate, linear) pairs and must have "
                f"an even size, got shape {A.shape}"
            )
        if n // self.input_dim(1) < self.min_dim:
            raise ParameterError(
                f"a {self.name} group needs dimension >= {self.min_dim}, got A of "
                f"shape {A.shape}"
            )
        return A

    def contains(self, A: Any, B: Any = None, tol: float = DEFAULT_LAYER_TOL) -> bool:
        """Test whether ``A`` is in the group and, given ``B``, whether
        ``f(A x) = B f(x)`` holds for all ``x``.

        Tolerances are relative to ``max(1, max|A|)``. A ``B`` of the wrong
        shape is not a match.
        """
        A = self._check_A(A)
        if not np.isfinite(A).all():
            return False
        canonical = self._phi_or_none(A, tol)
        if canonical is None:
            return False
        if B is None:
            return True
        B = np.asarray(B, dtype=np.float64)
        if B.shape != canonical.shape or not np.isfinite(B).all():
            return False
        return self._matches_phi(B, canonical, tol)

    def _matches_phi(self, B: np.ndarray, canonical: np.ndarray, tol: float) -> bool:
        """Test whether ``B`` satisfies the law, given the canonical ``B``."""
        return _close(B, canonical, tol)

    def phi(self, A: Any, tol: float = DEFAULT_LAYER_TOL) -> np.ndarray:
        """Return the canonical ``B`` with ``f(A x) = B f(x)`` for all ``x``.

        Raises :class:`NotInGroupError` when ``A`` is not in the group.
        """
        A = self._check_A(A)
        canonical = self._phi_or_none(A, tol) if np.isfinite(A).all() else None
        if canonical is None:
            raise NotInGroupError(
                f"matrix is not in the {self.name} group ({self.description})",
                evidence=A,
            )
        return canonical

    def sample(
        self, n: int, seed: int | np.random.Generator | None = None
    ) -> LayerElement:
        """Draw a random element for a layer of dimension ``n``.

        ``A`` has size :meth:`input_dim` ``(n)``; the same seed gives the same
        element.
        """
        n = _check_dimension(n, self.min_dim)
        return self._sample(_generator(seed), n)

    def describe(self) -> str:
        """Describe the layer and its group in one line."""
        return f"{self.formula}: {self.description}"

    def to_json(self) -> dict[str, Any]:
        """Return the object that ``symgroups layer --json`` prints."""
        return {
            "name": self.name,
            "formula": self.formula,
            "params": {k: _json_value(v) for k, v in self.params.items()},
            "status": self.status,
            "group": self.description,
            "law": self.law,
            "derivation": self.derivation,
            "docs": self.docs,
        }


def _json_value(value: Any) -> Any:
    return (
        value if isinstance(value, (int, float, str)) or value is None else str(value)
    )


def _check_eps(eps: Any) -> float:
    if (
        isinstance(eps, bool)
        or not isinstance(eps, (int, float))
        or not math.isfinite(eps)
        or eps < 0
    ):
        raise ParameterError(f"eps must be a finite number >= 0, got {eps!r}")
    return float(eps)


class RMSNormGroup(LayerGroup):
    """``f(x) = x / sqrt(mean(x**2) + eps)``: scaled orthogonal matrices.

    For ``eps = 0`` the group is every ``A = c Q`` with ``c > 0`` and ``Q``
    orthogonal, and ``B = Q``; for ``eps > 0`` it is the orthogonal group,
    ``B = A``. ``f(0)`` is taken as ``0``.
    """

    name = "rmsnorm"

    def __init__(self, eps: float = 0.0) -> None:
        super().__init__()
        self.eps = _check_eps(eps)
        self.params = {"eps": self.eps}
        self.formula = "f(x) = x / sqrt(mean(x**2) + eps)"
        if self.eps == 0:
            self.description = (
                "A = c Q with c > 0 and Q orthogonal, B = Q: every orthogonal "
                "matrix, and positive scalars act trivially"
            )
            self.derivation = (
                "f(x) = sqrt(n) x / |x|, so f(A x) = B f(x) makes B x a positive "
                "multiple of A x for every x; then A^-1 B = c I, so |A x| = |x| / c "
                "for all x and c A is orthogonal. Conversely f(c Q x) = Q f(x)."
            )
        else:
            self.description = "the orthogonal group O(n), B = A"
            self.derivation = (
                "As for eps = 0, B = c A with c A orthogonal; letting x -> 0 in "
                "|A x|**2 / n + eps = (|x|**2 / n + eps) / c**2 gives c = 1."
            )

    def apply(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        rms = np.sqrt(np.mean(x * x, axis=0, keepdims=True) + self.eps)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(rms > 0, x / np.where(rms > 0, rms, 1.0), 0.0)

    def _phi_or_none(self, A: np.ndarray, tol: float) -> np.ndarray | None:
        singular = np.linalg.svd(A, compute_uv=False)
        top, bottom = float(singular[0]), float(singular[-1])
        if bottom <= 0 or top - bottom > tol * max(1.0, top):
            return None
        if self.eps > 0:
            return A.copy() if abs(top - 1.0) <= tol * max(1.0, top) else None
        return A / top

    def _sample(self, rng: np.random.Generator, n: int) -> LayerElement:
        Q = _haar(rng, n)
        c = 1.0 if self.eps > 0 else float(_positive_scales(rng, 1)[0])
        return LayerElement(c * Q, Q)


class LayerNormGroup(LayerGroup):
    """``f(x) = C x / sqrt(mean((C x)**2) + eps)`` with ``C = I - 1 1^T / n``.

    The group is every ``A = c Q (I + 1 v^T)`` with ``Q`` orthogonal,
    ``Q 1 = 1``, ``1 + v^T 1 != 0`` and ``c > 0`` (``c = 1`` when
    ``eps > 0``). ``B`` is fixed only on the hyperplane ``1^T u = 0``, where
    it equals ``Q``; the canonical ``B`` is ``Q`` itself.
    """

    name = "layernorm"
    min_dim = 2

    def __init__(self, eps: float = 0.0) -> None:
        super().__init__()
        self.eps = _check_eps(eps)
        self.params = {"eps": self.eps}
        self.formula = "f(x) = C x / sqrt(mean((C x)**2) + eps), C = I - 1 1^T / n"
        scaling = "c = 1" if self.eps > 0 else "c > 0"
        self.description = (
            f"A = c Q (I + 1 v^T) with Q orthogonal, Q 1 = 1, 1 + v^T 1 != 0 and "
            f"{scaling}; B = Q on the hyperplane 1^T u = 0 (canonical B = Q): "
            "orthogonal matrices fixing 1, with translations along 1"
            + (" and positive scalars" if self.eps == 0 else "")
            + " acting trivially"
        )
        self.derivation = (
            "f depends on C x only, so A must map the line of 1 to itself, and on "
            "the hyperplane U orthogonal to 1 the RMSNorm argument makes C A a "
            "positive multiple of an isometry of U; the part of A that moves x "
            "along 1 is the shear I + 1 v^T, which f ignores."
        )

    def apply(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        centred = x - x.mean(axis=0, keepdims=True)
        scale = np.sqrt(np.mean(centred * centred, axis=0, keepdims=True) + self.eps)
        return np.where(scale > 0, centred / np.where(scale > 0, scale, 1.0), 0.0)

    def _phi_or_none(self, A: np.ndarray, tol: float) -> np.ndarray | None:
        n = A.shape[0]
        scale = _scale(A)
        ones = np.ones(n)
        image = A @ ones
        a = float(image.mean())
        if np.abs(image - a).max() > tol * scale * math.sqrt(n):
            return None
        if abs(a) <= tol * scale:
            return None
        U = ones_complement_basis(n)
        block = U.T @ A @ U
        singular = np.linalg.svd(block, compute_uv=False)
        top, bottom = float(singular[0]), float(singular[-1])
        if bottom <= 0 or top - bottom > tol * max(1.0, top):
            return None
        if self.eps > 0 and abs(top - 1.0) > tol * max(1.0, top):
            return None
        # Q acts as block / c on U and fixes 1.
        return U @ (block / top) @ U.T + np.outer(ones, ones) / n

    def _matches_phi(self, B: np.ndarray, canonical: np.ndarray, tol: float) -> bool:
        # f only takes values in U, so B is free along 1 as long as it is
        # invertible.
        U = ones_complement_basis(B.shape[0])
        return _close(B @ U, canonical @ U, tol) and _invertible(B, tol)

    def _sample(self, rng: np.random.Generator, n: int) -> LayerElement:
        Q = random_orthogonal(n, rng, fix_ones=True)
        c = 1.0 if self.eps > 0 else float(_positive_scales(rng, 1)[0])
        return LayerElement(c * Q @ _random_shear(rng, n), Q)


class SoftmaxGroup(LayerGroup):
    """``f(x) = exp(x) / sum(exp(x))``: permutations, up to shears along 1.

    The group is every ``A = P (I + 1 v^T) = P + 1 v^T`` with ``P`` a
    permutation matrix and ``1 + v^T 1 != 0``, and ``B = P``.
    """

    name = "softmax"
    min_dim = 2
    formula = "f(x) = exp(x) / sum(exp(x))"
    description = (
        "A = P + 1 v^T with P a permutation matrix and 1 + v^T 1 != 0, B = P: "
        "permutations, with translations along 1 acting trivially"
    )
    derivation = (
        "f maps R^n onto the open probability simplex, so B is a linear bijection "
        "of the simplex and permutes its vertices: B = P. Then f(P^-1 A x) = f(x), "
        "and f(y) = f(x) only when y - x is a multiple of 1, so P^-1 A = I + 1 v^T."
    )

    def apply(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        shifted = np.exp(x - x.max(axis=0, keepdims=True))
        return shifted / shifted.sum(axis=0, keepdims=True)

    def _phi_or_none(self, A: np.ndarray, tol: float) -> np.ndarray | None:
        n = A.shape[0]
        # Column j of P + 1 v^T is v_j everywhere except v_j + 1 at row pi(j).
        perm = np.argmax(A, axis=0)
        if len(set(perm.tolist())) != n:
            return None
        P = np.zeros((n, n))
        P[perm, np.arange(n)] = 1.0
        rest = A - P
        v = rest[0]
        if np.abs(rest - v).max() > tol * _scale(A):
            return None
        if abs(1.0 + v.sum()) <= tol * _scale(A):
            return None
        return P

    def _sample(self, rng: np.random.Generator, n: int) -> LayerElement:
        P = np.eye(n)[:, rng.permutation(n)]
        return LayerElement(P @ _random_shear(rng, n), P)


class GLUGroup(LayerGroup):
    """``f(x, y) = g(x) * y`` for a gate activation ``g``, ``x, y`` in ``R^m``.

    ``A`` acts on the stacked input ``(x, y)`` and keeps the two branches
    apart: ``A = diag(P D_gate, P D_lin)`` with one permutation ``P``, each
    gate scaling in the scalar group ``Lambda`` of ``g``, and any nonzero
    linear scalings; then ``B = P mu(D_gate) D_lin``.
    """

    def __init__(self, name: str = "glu", gate: Any = None) -> None:
        super().__init__()
        from ._query import query

        if gate is None:
            if name not in GLU_GATES:
                raise ParameterError(
                    f"unknown GLU variant {name!r}; expected one of "
                    f"{sorted(GLU_GATES)} or a gate"
                )
            gate = GLU_GATES[name]
        self.name = name
        result = query(gate)
        if result.group is None:
            raise ParameterError(
                f"the group of the gate {result.activation.text} is undecided, so the "
                f"{name} group is too: " + "; ".join(result.notes)
            )
        description = result.group
        if description.kind == "degenerate":
            raise DegenerateActivationError(
                f"the gate {result.activation.text} is constant, so the {name} layer "
                "is linear in y alone and has no gate group"
            )
        if description.kind in ("general_linear", "affine_stabilizer"):
            # With g(t) = a t the layer is the bilinear a x * y, and swapping
            # the branches is a symmetry that the block-diagonal form misses.
            raise ParameterError(
                f"the gate {result.activation.text} is affine, so the {name} layer "
                "is bilinear and its group mixes the two branches, which this "
                "derivation does not cover; use a nonlinear gate"
            )
        self.gate = result.activation.text
        self.gate_description = description
        self.status = result.status
        self.params = {"gate": self.gate}
        self._sigma = _gate_function(result.activation.expr)
        self.formula = f"f(x, y) = g(x) * y with g(x) = {self.gate}"
        self.description = (
            "A = diag(P D_gate, P D_lin) on the stacked input (x, y), with one "
            "permutation P for both branches, D_lin any invertible diagonal and "
            f"D_gate in the gate group ({description.describe()}); "
            "B = P mu(D_gate) D_lin"
        )
        self.derivation = (
            "Row i of g(A_x x) * (A_y y) = B (g(x) * y) is linear in y: wherever "
            "(A_y)_ij != 0, g((A_x x)_i) depends on x_j alone, so row i of A_x is "
            "c_i e_j and of A_y is d_i e_j; then g(c_i t) = mu(c_i) g(t) puts c_i in "
            "the gate's scalar group. The group of the gate comes from "
            f"symgroups.query ({result.status})."
        )

    @property
    def docs(self) -> str:
        return f"{DOCS_PAGE}#glu"

    def input_dim(self, n: int) -> int:
        return 2 * n

    def apply(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.shape[0] % 2:
            raise ParameterError(
                f"a GLU input stacks (gate, linear) halves and needs an even size on "
                f"axis 0, got shape {x.shape}"
            )
        m = x.shape[0] // 2
        return self._sigma(x[:m]) * x[m:]

    def _gate_group(self, m: int) -> Any:
        return self.gate_description.matrix_group(m)

    def _phi_or_none(self, A: np.ndarray, tol: float) -> np.ndarray | None:
        m = A.shape[0] // 2
        scale = _scale(A)
        # NOTE: the group is proved only for A that keeps the gate and linear
        # branches apart; a mixing A is rejected here without a proof that it
        # breaks the law.
        if max(np.abs(A[:m, m:]).max(), np.abs(A[m:, :m]).max()) > tol * scale:
            return None
        group = self._gate_group(m)
        gate_part, linear_part = A[:m, :m], A[m:, m:]
        if not group.contains(gate_part, tol):
            return None
        gate_factors = group.monomial_factors(gate_part, tol)
        linear_factors = group.monomial_factors(linear_part, tol)
        if gate_factors is None or linear_factors is None:
            return None
        if not np.array_equal(gate_factors[0], linear_factors[0]):
            return None
        return group.phi(gate_part, tol) @ np.diag(linear_factors[1])

    def _sample(self, rng: np.random.Generator, n: int) -> LayerElement:
        group = self._gate_group(n)
        gate_part = group.sample(rng)
        perm, _ = group.monomial_factors(gate_part)
        d_lin = rng.choice([-1.0, 1.0], size=n) * _positive_scales(rng, n)
        linear_part = np.zeros((n, n))
        linear_part[perm, np.arange(n)] = d_lin
        A = np.zeros((2 * n, 2 * n))
        A[:n, :n] = gate_part
        A[n:, n:] = linear_part
        return LayerElement(A, group.phi(gate_part) @ np.diag(d_lin))


def _gate_function(expr: Any) -> Any:
    from ._numeric import compile_numpy

    function = compile_numpy(expr)

    def sigma(t: np.ndarray) -> np.ndarray:
        return np.asarray(function(t), dtype=np.float64) * np.ones_like(t)

    return sigma


def _check_window(kernel_size: Any, stride: Any) -> tuple[int, int]:
    for label, value in (("kernel_size", kernel_size), ("stride", stride)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ParameterError(f"{label} must be a positive integer, got {value!r}")
        if value < 1:
            raise ParameterError(f"{label} must be a positive integer, got {value!r}")
    return int(kernel_size), int(stride)


class _PoolGroup(LayerGroup):
    """Pooling over windows of axis 1 of a ``(channels, length)`` array.

    ``A`` mixes channels and acts the same at every position (a 1x1
    convolution or a linear layer does), so the layer's dimension is the
    number of channels.
    """

    def __init__(self, kernel_size: int = 2, stride: int | None = None) -> None:
        super().__init__()
        stride = kernel_size if stride is None else stride
        self.kernel_size, self.stride = _check_window(kernel_size, stride)
        self.params = {"kernel_size": self.kernel_size, "stride": self.stride}

    def _windows(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim < 2 or x.shape[1] < self.kernel_size:
            raise ParameterError(
                f"pooling needs an array of shape (channels, length >= "
                f"{self.kernel_size}, ...), got shape {x.shape}"
            )
        count = (x.shape[1] - self.kernel_size) // self.stride + 1
        starts = np.arange(count) * self.stride
        index = starts[:, None] + np.arange(self.kernel_size)[None, :]
        return x[:, index]


class MaxPoolGroup(_PoolGroup):
    """Max pooling: positively scaled channel permutations, ``B = A``.

    With ``kernel_size = 1`` the layer is the identity and the group is
    ``GL_n``.
    """

    name = "maxpool"

    def __init__(self, kernel_size: int = 2, stride: int | None = None) -> None:
        super().__init__(kernel_size, stride)
        self.formula = (
            f"f(x)[c, w] = max of x[c, t] over window w (size {self.kernel_size}, "
            f"stride {self.stride})"
        )
        if self.kernel_size == 1:
            self.description = "every invertible channel map, B = A (no pooling)"
            self.derivation = "A window of one position is the identity map."
        else:
            self.description = (
                "A = P D with P a channel permutation and D a positive diagonal, B = A"
            )
            self.derivation = (
                "Put signals in one window only: x_k = e_1 gives "
                "max(A_ck, 0) = B_ck, x_k = -e_1 gives A_ck >= 0, and x_k = e_1, "
                "x_l = e_2 gives max(A_ck, A_cl) = A_ck + A_cl, so each row of A has "
                "one positive entry. Conversely max commutes with P and positive D."
            )

    def apply(self, x: np.ndarray) -> np.ndarray:
        return self._windows(x).max(axis=2)

    def _phi_or_none(self, A: np.ndarray, tol: float) -> np.ndarray | None:
        if self.kernel_size == 1:
            return A.copy() if _invertible(A, tol) else None
        scale = _scale(A)
        support = np.abs(A) > tol * scale
        if not (support.sum(axis=0) == 1).all() or not (support.sum(axis=1) == 1).all():
            return None
        if (A[support] <= 0).any():
            return None
        return A.copy()

    def _sample(self, rng: np.random.Generator, n: int) -> LayerElement:
        if self.kernel_size == 1:
            A = _random_invertible(rng, n)
            return LayerElement(A, A.copy())
        A = np.zeros((n, n))
        A[rng.permutation(n), np.arange(n)] = _positive_scales(rng, n)
        return LayerElement(A, A.copy())


class AvgPoolGroup(_PoolGroup):
    """Average pooling: every invertible channel map, ``B = A``."""

    name = "avgpool"
    description = "every invertible channel map (GL_n), B = A"

    def __init__(self, kernel_size: int = 2, stride: int | None = None) -> None:
        super().__init__(kernel_size, stride)
        self.formula = (
            f"f(x)[c, w] = mean of x[c, t] over window w (size {self.kernel_size}, "
            f"stride {self.stride})"
        )
        self.derivation = (
            "Average pooling is linear and acts on each channel alone, so it "
            "commutes with any map that mixes channels the same way at every "
            "position; B = A is forced by taking x constant along the length."
        )

    def apply(self, x: np.ndarray) -> np.ndarray:
        return self._windows(x).mean(axis=2)

    def _phi_or_none(self, A: np.ndarray, tol: float) -> np.ndarray | None:
        return A.copy() if _invertible(A, tol) else None

    def _sample(self, rng: np.random.Generator, n: int) -> LayerElement:
        A = _random_invertible(rng, n)
        return LayerElement(A, A.copy())


def layer_group(
    name: str,
    *,
    eps: float = 0.0,
    gate: Any = None,
    kernel_size: int = 2,
    stride: int | None = None,
) -> LayerGroup:
    """Return the symmetry group of a layer: every ``(A, B)`` with
    ``f(A x) = B f(x)`` for all ``x``.

    Parameters
    ----------
    name
        One of :data:`LAYER_NAMES`: ``rmsnorm``, ``layernorm`` (without gain
        and bias), ``softmax``, ``glu`` (sigmoid gate), ``swiglu`` (SiLU),
        ``geglu`` (GELU), ``reglu`` (ReLU), ``maxpool`` or ``avgpool``.
    eps
        The epsilon under the square root of ``rmsnorm`` and ``layernorm``;
        with ``eps > 0`` positive scalars no longer act trivially.
    gate
        A GLU gate for ``glu``: a catalogue name or an expression in ``x``,
        read with the safe parser. It replaces the variant's own gate.
    kernel_size, stride
        The pooling window along the length; ``stride`` defaults to
        ``kernel_size``.

    Raises
    ------
    ParameterError
        For an unknown name or an invalid parameter.
    """
    if not isinstance(name, str):
        raise ParameterError(f"layer name must be a string, got {name!r}")
    key = name.strip().lower().replace("-", "_")
    if key not in LAYER_NAMES:
        raise ParameterError(
            f"unknown layer {name!r}; expected one of {', '.join(LAYER_NAMES)}"
        )
    if gate is not None and key not in GLU_GATES:
        raise ParameterError(f"gate applies only to the GLU layers, not to {key!r}")
    if key == "rmsnorm":
        return RMSNormGroup(eps)
    if key == "layernorm":
        return LayerNormGroup(eps)
    if key == "softmax":
        return SoftmaxGroup()
    if key in GLU_GATES:
        return GLUGroup(key, gate)
    if key == "maxpool":
        return MaxPoolGroup(kernel_size, stride)
    return AvgPoolGroup(kernel_size, stride)

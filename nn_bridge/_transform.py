"""Group elements of a :class:`SymmetrySpec` and their algebra.

An element of a unit site is ``A = P diag(d)`` with ``A[perm[j], j] = d[j]``,
one ``d`` per component, or a dense matrix. An element of an attention site
maps head ``h`` to head ``perm[h]`` and applies ``M_h`` (query/key) and
``N_h`` (value/output) inside it. Products follow matrix multiplication:
applying ``t1 @ t2`` equals applying ``t2`` first and then ``t1``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from symgroups._files import atomic_write  # noqa: F401  (re-exported for nn_bridge)

from ._errors import TransformError
from ._scalars import ScalarGroup

if TYPE_CHECKING:
    from ._spec import Site, SymmetrySpec

#: Standard deviation of ``log |d|`` for sampled continuous scalings, as in
#: :data:`symgroups._group.DEFAULT_LOG_SCALE_STD`.
LOG_SCALE_STD = 0.5

#: Standard deviation of the exponent ``k`` of dyadic scalings ``2**k``.
DYADIC_EXPONENT_STD = 1.0

#: How :func:`sample_scalars` draws continuous magnitudes: ``dyadic`` gives
#: powers of two, which multiply float32 and float64 weights without
#: rounding; ``lognormal`` gives ``exp(N(0, LOG_SCALE_STD))``.
SCALING_MODES = ("dyadic", "lognormal")

#: Powers ``k`` of a discrete generator ``c`` drawn by sampling: ``|k| <= 2``.
DISCRETE_SAMPLE_RANGE = 2

#: Tolerance of the orthogonality test ``max |A^T A - I|`` for tied tensors.
ORTHOGONAL_TOL = 1e-8

#: Largest condition number accepted for a general linear block.
MAX_CONDITION = 1e10


@dataclass
class SiteElement:
    """One site's part of a :class:`Transform`.

    ``perm`` (units or heads) and ``scales`` (one array per component) for
    monomial and attention sites, ``matrix`` for general linear sites, and
    ``qk`` / ``vo`` (arrays ``(heads, dim, dim)`` or None for identity
    blocks) for attention sites.
    """

    perm: np.ndarray | None = None
    scales: tuple[np.ndarray, ...] = ()
    matrix: np.ndarray | None = None
    qk: np.ndarray | None = None
    vo: np.ndarray | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        if self.perm is not None:
            out["perm"] = self.perm
        for index, scale in enumerate(self.scales):
            out[f"scale{index}"] = scale
        for key in ("matrix", "qk", "vo"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> SiteElement:
        scales = []
        while f"scale{len(scales)}" in arrays:
            scales.append(np.asarray(arrays[f"scale{len(scales)}"], dtype=np.float64))
        perm = arrays.get("perm")
        return cls(
            perm=None if perm is None else np.asarray(perm, dtype=np.int64),
            scales=tuple(scales),
            matrix=_float_or_none(arrays.get("matrix")),
            qk=_float_or_none(arrays.get("qk")),
            vo=_float_or_none(arrays.get("vo")),
        )


def _float_or_none(value: Any) -> np.ndarray | None:
    return None if value is None else np.asarray(value, dtype=np.float64)


def _compose_blocks(
    perm1: np.ndarray,
    blocks1: np.ndarray | None,
    perm2: np.ndarray,
    blocks2: np.ndarray | None,
) -> np.ndarray | None:
    """Blocks of ``A1 A2``: block ``j`` is ``B1[perm2[j]] @ B2[j]``."""
    if blocks1 is None and blocks2 is None:
        return None
    if blocks1 is None:
        return blocks2.copy()
    if blocks2 is None:
        return blocks1[perm2].copy()
    return np.einsum("hij,hjk->hik", blocks1[perm2], blocks2)


def _invert_blocks(perm: np.ndarray, blocks: np.ndarray | None) -> np.ndarray | None:
    """Blocks of ``A^-1``: block ``i`` is ``B[perm^-1[i]]^-1``."""
    if blocks is None:
        return None
    inverse_perm = np.argsort(perm)
    return np.linalg.inv(blocks[inverse_perm])


@dataclass
class Transform:
    """An element of a spec's group: one :class:`SiteElement` per site.

    ``fingerprint`` is :meth:`SymmetrySpec.fingerprint` of the spec it was
    made for; :func:`apply_transform` rejects a transform of another spec.
    """

    elements: dict[str, SiteElement]
    fingerprint: str
    metadata: dict[str, str] = field(default_factory=dict)

    # ------------------------------------------------------------------
    # Algebra

    @classmethod
    def identity(cls, spec: SymmetrySpec) -> Transform:
        """Return the identity element of ``spec``'s group."""
        elements = {}
        for site in spec.sites:
            elements[site.name] = _identity_element(site)
        return cls(elements, spec.fingerprint())

    def __matmul__(self, other: Transform) -> Transform:
        return self.compose(other)

    def compose(self, other: Transform) -> Transform:
        """Return ``self @ other``: apply ``other`` first, then ``self``."""
        if not isinstance(other, Transform):
            raise TransformError(f"can only compose with a Transform, got {other!r}")
        if other.fingerprint != self.fingerprint or set(other.elements) != set(
            self.elements
        ):
            raise TransformError(
                "cannot compose transforms of different specs "
                f"(fingerprints {self.fingerprint!r} and {other.fingerprint!r})"
            )
        elements = {}
        for name, first in self.elements.items():
            second = other.elements[name]
            if first.matrix is not None:
                elements[name] = SiteElement(matrix=first.matrix @ second.matrix)
                continue
            perm = first.perm[second.perm]
            scales = tuple(
                s1[second.perm] * s2
                for s1, s2 in zip(first.scales, second.scales, strict=True)
            )
            elements[name] = SiteElement(
                perm=perm,
                scales=scales,
                qk=_compose_blocks(first.perm, first.qk, second.perm, second.qk),
                vo=_compose_blocks(first.perm, first.vo, second.perm, second.vo),
            )
        return Transform(elements, self.fingerprint)

    def inverse(self) -> Transform:
        """Return the inverse element: ``t @ t.inverse()`` is the identity."""
        elements = {}
        for name, element in self.elements.items():
            if element.matrix is not None:
                elements[name] = SiteElement(matrix=np.linalg.inv(element.matrix))
                continue
            inverse_perm = np.argsort(element.perm)
            elements[name] = SiteElement(
                perm=inverse_perm,
                scales=tuple(1.0 / s[inverse_perm] for s in element.scales),
                qk=_invert_blocks(element.perm, element.qk),
                vo=_invert_blocks(element.perm, element.vo),
            )
        return Transform(elements, self.fingerprint)

    def is_identity(self, tol: float = 1e-12) -> bool:
        for element in self.elements.values():
            if element.matrix is not None:
                if not np.allclose(
                    element.matrix, np.eye(len(element.matrix)), atol=tol
                ):
                    return False
                continue
            if not np.array_equal(element.perm, np.arange(len(element.perm))):
                return False
            if any(not np.allclose(s, 1.0, atol=tol) for s in element.scales):
                return False
            for blocks in (element.qk, element.vo):
                if blocks is not None:
                    eye = np.broadcast_to(np.eye(blocks.shape[-1]), blocks.shape)
                    if not np.allclose(blocks, eye, atol=tol):
                        return False
        return True

    # ------------------------------------------------------------------
    # Membership

    def check_fits(self, spec: SymmetrySpec) -> None:
        """Raise :class:`TransformError` unless this is in ``spec``'s group."""
        if self.fingerprint != spec.fingerprint():
            raise TransformError(
                f"transform fingerprint {self.fingerprint!r} does not match the "
                f"spec's {spec.fingerprint()!r}; sample it from this spec"
            )
        for site in spec.sites:
            element = self.elements.get(site.name)
            if element is None:
                raise TransformError(f"transform has no element for site {site.name!r}")
            _check_element(site, element)

    # ------------------------------------------------------------------
    # Serialisation

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (arrays as nested lists)."""
        return {
            "fingerprint": self.fingerprint,
            "metadata": dict(self.metadata),
            "elements": {
                name: {key: value.tolist() for key, value in element.arrays().items()}
                for name, element in self.elements.items()
            },
        }

    @classmethod
    def from_json(cls, obj: Any) -> Transform:
        if isinstance(obj, str):
            try:
                obj = json.loads(obj)
            except json.JSONDecodeError as error:
                raise TransformError(
                    f"transform text is not valid JSON: {error}"
                ) from None
        if not isinstance(obj, dict) or set(obj) != {
            "fingerprint",
            "metadata",
            "elements",
        }:
            raise TransformError(
                "transform JSON must be an object with fingerprint, metadata and "
                f"elements, got {type(obj).__name__}"
            )
        try:
            elements = {
                name: SiteElement.from_arrays(
                    {k: np.asarray(v) for k, v in arrays.items()}
                )
                for name, arrays in obj["elements"].items()
            }
        except (TypeError, ValueError, AttributeError) as error:
            raise TransformError(f"malformed transform JSON: {error!r}") from None
        return cls(elements, str(obj["fingerprint"]), dict(obj["metadata"]))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the element's arrays to a safetensors file, atomically.

        Keys are ``SITE/perm``, ``SITE/scale0``, ``SITE/matrix`` ...; the
        fingerprint is stored in the file's metadata.
        """
        from safetensors.numpy import save_file

        tensors = {
            f"{name}/{key}": np.ascontiguousarray(value)
            for name, element in self.elements.items()
            for key, value in element.arrays().items()
        }
        metadata = {"fingerprint": self.fingerprint, **self.metadata}
        atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Transform:
        """Read a file written by :meth:`save`."""
        from safetensors import safe_open

        grouped: dict[str, dict[str, np.ndarray]] = {}
        with safe_open(os.fspath(path), framework="numpy") as handle:
            metadata = dict(handle.metadata() or {})
            for key in handle.keys():
                site, _, part = key.rpartition("/")
                grouped.setdefault(site, {})[part] = handle.get_tensor(key)
        if "fingerprint" not in metadata:
            raise TransformError(f"{os.fspath(path)!r} has no transform fingerprint")
        fingerprint = metadata.pop("fingerprint")
        elements = {
            name: SiteElement.from_arrays(arrays) for name, arrays in grouped.items()
        }
        return cls(elements, fingerprint, metadata)


# ----------------------------------------------------------------------
# Sampling and membership


def sample_scalars(
    group: ScalarGroup, rng: np.random.Generator, size: int, scalings: str = "dyadic"
) -> np.ndarray:
    """Draw ``size`` elements of ``group``.

    Signs are uniform. Continuous magnitudes are ``2**k`` with ``k`` a rounded
    ``N(0, DYADIC_EXPONENT_STD)`` (``scalings="dyadic"``) or
    ``exp(N(0, LOG_SCALE_STD))`` (``"lognormal"``). Discrete groups give
    ``c**k`` with ``|k| <= DISCRETE_SAMPLE_RANGE``.
    """
    if scalings not in SCALING_MODES:
        raise TransformError(
            f"scalings must be one of {SCALING_MODES}, got {scalings!r}"
        )
    if group.kind == "trivial":
        return np.ones(size)
    signs = rng.choice([-1.0, 1.0], size=size)
    if group.kind == "sign":
        return signs
    if scalings == "dyadic":
        magnitudes = np.exp2(np.rint(rng.normal(0.0, DYADIC_EXPONENT_STD, size=size)))
    else:
        magnitudes = np.exp(rng.normal(0.0, LOG_SCALE_STD, size=size))
    if group.kind == "positive":
        return magnitudes
    if group.kind == "nonzero":
        return signs * magnitudes
    generators = group.generators
    (c,) = [g for g in generators if abs(abs(g) - 1.0) > 1e-12][:1]
    k = rng.integers(-DISCRETE_SAMPLE_RANGE, DISCRETE_SAMPLE_RANGE + 1, size=size)
    values = np.power(c, k.astype(np.float64))
    if any(abs(g + 1.0) <= 1e-12 for g in generators):
        values = signs * np.abs(values)
    return values


def haar_orthogonal(rng: np.random.Generator, n: int) -> np.ndarray:
    """Draw a Haar-random orthogonal ``n x n`` matrix (QR of a Gaussian matrix)."""
    q, r = np.linalg.qr(rng.normal(size=(n, n)))
    return q * np.sign(np.diag(r))


def sample_permutation(
    rng: np.random.Generator,
    size: int,
    colours: np.ndarray | None,
    permute_colours: bool = False,
) -> np.ndarray:
    """Draw a uniform permutation that maps every unit to one of its colour.

    With ``permute_colours`` the colour classes are first shuffled among the
    classes of equal size, so unit ``i`` goes to a uniform unit of the class
    that its own class is mapped onto.
    """
    if colours is None:
        return rng.permutation(size)
    perm = np.arange(size)
    classes = [np.flatnonzero(colours == colour) for colour in np.unique(colours)]
    targets = list(range(len(classes)))
    if permute_colours:
        for width in {len(members) for members in classes}:
            same = [i for i, members in enumerate(classes) if len(members) == width]
            for source, target in zip(same, rng.permutation(same), strict=True):
                targets[source] = int(target)
    for source, members in enumerate(classes):
        perm[members] = rng.permutation(classes[targets[source]])
    return perm


def sample_site(
    site: Site, rng: np.random.Generator, scalings: str = "dyadic"
) -> SiteElement:
    """Draw a random element of one site's group."""
    if site.kind == "general_linear":
        return SiteElement(matrix=haar_orthogonal(rng, site.size))
    if site.kind == "attention":
        perm = (
            rng.permutation(site.size) if site.permute_heads else np.arange(site.size)
        )
        qk = vo = None
        if site.qk_group == "general_linear":
            qk = np.stack([haar_orthogonal(rng, site.qk_dim) for _ in range(site.size)])
        if site.vo_group == "general_linear":
            vo = np.stack([haar_orthogonal(rng, site.vo_dim) for _ in range(site.size)])
        return SiteElement(perm=perm, qk=qk, vo=vo)
    perm = sample_permutation(rng, site.size, site.colours, site.permute_colours)
    scales = tuple(
        sample_scalars(c.scalars, rng, site.size, scalings) for c in site.components
    )
    return SiteElement(perm=perm, scales=scales)


def _identity_element(site: Site) -> SiteElement:
    if site.kind == "general_linear":
        return SiteElement(matrix=np.eye(site.size))
    perm = np.arange(site.size)
    if site.kind == "attention":
        return SiteElement(perm=perm)
    return SiteElement(
        perm=perm, scales=tuple(np.ones(site.size) for _ in site.components)
    )


def _check_permutation(site: Site, perm: np.ndarray | None) -> None:
    if perm is None or perm.shape != (site.size,):
        raise TransformError(
            f"site {site.name!r} needs a permutation of {site.size} entries, got "
            f"{None if perm is None else perm.shape}"
        )
    if not np.array_equal(np.sort(perm), np.arange(site.size)):
        raise TransformError(f"site {site.name!r}: perm is not a permutation: {perm!r}")
    if site.kind == "attention" and not site.permute_heads:
        if not np.array_equal(perm, np.arange(site.size)):
            raise TransformError(f"site {site.name!r} does not allow head permutations")
    if site.colours is None:
        return
    if site.permute_colours:
        # Each class must land inside one class, and no two on the same.
        images = []
        for colour in np.unique(site.colours):
            landed = np.unique(site.colours[perm[site.colours == colour]])
            if len(landed) != 1:
                raise TransformError(
                    f"site {site.name!r}: the permutation splits group {int(colour)}"
                )
            images.append(int(landed[0]))
        if len(set(images)) != len(images):
            raise TransformError(
                f"site {site.name!r}: the permutation merges two groups"
            )
    elif not np.array_equal(site.colours[perm], site.colours):
        raise TransformError(
            f"site {site.name!r}: the permutation moves units between groups"
        )


def _check_blocks(
    site: Site, blocks: np.ndarray | None, group: str, dim: int, label: str
) -> None:
    if blocks is None:
        return
    if group != "general_linear":
        raise TransformError(f"site {site.name!r} allows no {label} matrices")
    if blocks.shape != (site.size, dim, dim):
        raise TransformError(
            f"site {site.name!r}: {label} blocks must have shape "
            f"{(site.size, dim, dim)}, got {blocks.shape}"
        )
    if (
        not np.all(np.isfinite(blocks))
        or np.max(np.linalg.cond(blocks)) > MAX_CONDITION
    ):
        raise TransformError(f"site {site.name!r}: a {label} block is singular")


def _check_element(site: Site, element: SiteElement) -> None:
    if site.kind == "general_linear":
        matrix = element.matrix
        if matrix is None or matrix.shape != (site.size, site.size):
            raise TransformError(
                f"site {site.name!r} needs a {site.size}x{site.size} matrix"
            )
        if not np.all(np.isfinite(matrix)) or np.linalg.cond(matrix) > MAX_CONDITION:
            raise TransformError(f"site {site.name!r}: the matrix is singular")
        if site.orthogonal:
            deviation = np.abs(matrix.T @ matrix - np.eye(site.size)).max()
            if deviation > ORTHOGONAL_TOL:
                raise TransformError(
                    f"site {site.name!r} acts on a tied tensor from both sides, so "
                    f"its matrix must be orthogonal; max |A^T A - I| = {deviation:.3g}"
                )
        return
    _check_permutation(site, element.perm)
    if site.kind == "attention":
        _check_blocks(site, element.qk, site.qk_group, site.qk_dim, "query/key")
        _check_blocks(site, element.vo, site.vo_group, site.vo_dim, "value/output")
        return
    if len(element.scales) != len(site.components):
        raise TransformError(
            f"site {site.name!r} has {len(site.components)} components, the element "
            f"{len(element.scales)} scale vectors"
        )
    for component, scale in zip(site.components, element.scales, strict=True):
        if scale.shape != (site.size,):
            raise TransformError(
                f"site {site.name!r}: scales of {component.name!r} must have shape "
                f"({site.size},), got {scale.shape}"
            )
        bad = [float(v) for v in scale if not component.scalars.contains(float(v))]
        if bad:
            raise TransformError(
                f"site {site.name!r}: scale {bad[0]!r} of {component.name!r} is not in "
                f"its group ({component.scalars.describe()})"
            )

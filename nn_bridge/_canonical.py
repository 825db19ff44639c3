"""Canonical forms of a model modulo its symmetry group, and their fingerprints.

:func:`canonicalize` moves a model to a representative of its orbit that
depends only on the orbit: every model ``t @ model`` with ``t`` in the
spec's group has the same canonical weights (up to rounding). The rule runs
site by site, in an order where each site's reference tensors (its usable
actions, below) no longer change under the sites still to come:

1. Scale: for every component with positive or nonzero scalings, the
   log-magnitudes ``x`` solve the least-squares system
   ``sigma_a p_a . x = -log ||row_a||`` over the usable actions ``a``, where
   ``p_a`` are the powers of the action's character and ``sigma_a`` is +1 for
   ``out`` and -1 for ``in``. With one probe this gives unit-norm incoming
   weights, and the scale moves to the outgoing side.
2. Sign: for every component whose group contains -1, the sign makes the
   largest-magnitude entry positive in the first usable action that
   isolates the component. Entries whose magnitudes agree to
   :data:`TIE_RTOL` form a tie class, and the first class whose signs do
   not cancel decides.
3. Order: units are sorted lexicographically by the sums and sums of
   squares of their rows in the usable actions, each rounded to
   :data:`KEY_DIGITS` significant digits.
4. Orthogonal blocks (general linear and attention sites): the stacked rows
   ``X`` of the block are replaced by ``U^T X`` from the SVD ``X = U S V^T``,
   with the sign of each singular vector fixed by step 2's rule, and heads
   are sorted by their singular values. Only the orthogonal subgroup is
   canonicalized, so two models that differ by a non-orthogonal block
   matrix get different canonical forms.

An action of a site is usable once every other axis of its tensor is acted
on only by sites already canonicalized (or by none): then its rows are fixed
up to the permutation and signs of this site alone.

Where the rule is ambiguous the result depends on the input: units whose
keys agree in every digit (duplicate units) keep their relative order, a
unit whose reference rows are all zero keeps its scale and sign, repeated
singular values leave a rotation inside their eigenspace, and a key within
rounding distance of a digit boundary may round differently for two members
of one orbit.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ._align import (
    apply_element_dict,
    apply_site,
    compose_elements,
    float_tensors,
    site_rows,
)
from ._apply import apply_transform
from ._errors import InvalidArgumentError
from ._spec import Action, Site, SymmetrySpec
from ._transform import SiteElement, Transform

logger = logging.getLogger(__name__)

#: Scalar group kinds whose magnitudes are normalized.
MAGNITUDE_KINDS = ("positive", "nonzero")

#: Rows with a norm at most this are treated as zero: they carry no scale.
ZERO_NORM = 1e-300

#: Relative tolerance under which two entry magnitudes form a tie in the
#: sign rule.
TIE_RTOL = 1e-9

#: Significant decimal digits of the sort keys of the unit order.
KEY_DIGITS = 9

#: Significant decimal digits, relative to the largest entry of each tensor,
#: kept by :func:`fingerprint`. Each tensor is rounded to a grid of step
#: ``10**(floor(log10(max|T|)) - FINGERPRINT_DIGITS + 1)``.
FINGERPRINT_DIGITS = 6


@dataclass
class CanonicalForm:
    """Result of :func:`canonicalize`.

    ``model`` is the canonical copy, ``transform`` the group element with
    ``apply_transform(original, spec, transform) == model``, and
    ``fingerprint`` the :func:`fingerprint` of the canonical weights.
    ``ambiguous`` lists the sites where a tie or a zero row left the rule
    undecided for some unit.
    """

    model: nn.Module
    transform: Transform
    fingerprint: str
    spec: SymmetrySpec
    ambiguous: list[str]

    def summary(self) -> dict[str, Any]:
        """Return the JSON-serialisable fields."""
        return {"fingerprint": self.fingerprint, "ambiguous": list(self.ambiguous)}


# ----------------------------------------------------------------------
# Order of the sites


def _axis_sites(spec: SymmetrySpec) -> dict[tuple[str, int], set[str]]:
    acting: dict[tuple[str, int], set[str]] = {}
    for site in spec.sites:
        for action in site.actions:
            acting.setdefault((action.tensor, action.axis), set()).add(site.name)
    return acting


def usable_actions(
    spec: SymmetrySpec,
    site: Site,
    done: set[str],
    acting: dict[tuple[str, int], set[str]] | None = None,
) -> list[Action]:
    """Actions of ``site`` whose other tensor axes only ``done`` sites act on."""
    acting = acting if acting is not None else _axis_sites(spec)
    usable = []
    for action in site.actions:
        rank = len(spec.tensors[action.tensor].shape)
        ok = True
        for axis in range(rank):
            if axis == action.axis:
                continue
            others = acting.get((action.tensor, axis), set())
            if others - done:
                ok = False
                break
        if ok:
            usable.append(action)
    return usable


def _magnitude_components(site: Site) -> list[int]:
    if site.kind != "monomial":
        return []
    return [
        i for i, c in enumerate(site.components) if c.scalars.kind in MAGNITUDE_KINDS
    ]


def _exponents(action: Action, components: list[int]) -> np.ndarray:
    """Row of the log-magnitude system: ``sigma_a * p_a`` over ``components``."""
    sigma = 1.0 if action.side == "out" else -1.0
    row = np.zeros(len(components))
    for component, char in action.factors:
        if component in components:
            row[components.index(component)] += float(char.power)
    return sigma * row


def _ready(site: Site, usable: list[Action]) -> bool:
    """True when ``usable`` determines every scale and provides a sort key.

    Blocks of general linear and attention sites need every action, because
    a rotation fitted to a subset (biases alone, say) is not determined.
    """
    if not usable:
        return False
    if site.kind != "monomial":
        return len(usable) == len(site.actions)
    components = _magnitude_components(site)
    if not components:
        return True
    needed = np.array([_exponents(a, components) for a in site.actions])
    have = np.array([_exponents(a, components) for a in usable])
    return np.linalg.matrix_rank(have) == np.linalg.matrix_rank(needed)


def site_order(spec: SymmetrySpec) -> list[tuple[Site, list[Action], bool]]:
    """Sites in canonicalization order with their usable actions.

    Each entry is ``(site, usable actions, exact)``. ``exact`` is False when
    no remaining site was ready, so the first one was taken with the actions
    it had and its rule may depend on sites that come later.
    """
    acting = _axis_sites(spec)
    done: set[str] = set()
    remaining = list(spec.sites)
    order = []
    while remaining:
        chosen = None
        for site in remaining:
            usable = usable_actions(spec, site, done, acting)
            if _ready(site, usable):
                chosen = (site, usable, True)
                break
        if chosen is None:
            site = remaining[0]
            usable = usable_actions(spec, site, done, acting) or list(site.actions)
            logger.warning(
                "site %r depends on later sites; its canonical rule is not exact",
                site.name,
            )
            chosen = (site, usable, False)
        order.append(chosen)
        done.add(chosen[0].name)
        remaining.remove(chosen[0])
    return order


# ----------------------------------------------------------------------
# Step 1: scales


def _log_norms(tensors: dict[str, torch.Tensor], actions: list[Action]) -> np.ndarray:
    """``log ||row||`` per action and unit; ``nan`` for zero rows."""
    norms = np.array(
        [site_rows(tensors[a.tensor], a).norm(dim=1).numpy() for a in actions]
    )
    with np.errstate(divide="ignore"):
        logs = np.log(np.where(norms > ZERO_NORM, norms, np.nan))
    return logs


def solve_scales(
    site: Site, tensors: dict[str, torch.Tensor], usable: list[Action]
) -> tuple[SiteElement, bool]:
    """Return the element that normalizes one site's magnitudes.

    The second value is True when some unit's system was rank-deficient
    (zero rows), so its scale is the minimum-norm solution.
    """
    components = _magnitude_components(site)
    scales = [np.ones(site.size) for _ in site.components]
    identity = np.arange(site.size)
    if not components:
        return SiteElement(perm=identity, scales=tuple(scales)), False
    actions = [a for a in usable if np.any(_exponents(a, components) != 0)]
    if not actions:
        return SiteElement(perm=identity, scales=tuple(scales)), False
    matrix = np.array([_exponents(a, components) for a in actions])
    rank = np.linalg.matrix_rank(matrix)
    logs = _log_norms(tensors, actions)
    solution = np.zeros((len(components), site.size))
    valid = ~np.isnan(logs)
    degenerate = False
    patterns, inverse = np.unique(valid.T, axis=0, return_inverse=True)
    for index, pattern in enumerate(patterns):
        units = np.flatnonzero(inverse.ravel() == index)
        if not pattern.any():
            degenerate = True
            continue
        system = matrix[pattern]
        if np.linalg.matrix_rank(system) < rank:
            degenerate = True
        solution[:, units] = np.linalg.lstsq(
            system, -logs[pattern][:, units], rcond=None
        )[0]
    for row, component in enumerate(components):
        scales[component] = np.exp(solution[row])
    return SiteElement(perm=identity, scales=tuple(scales)), degenerate


def normalize_scales(spec: SymmetrySpec, tensors: dict[str, torch.Tensor]) -> Transform:
    """Return the element that gives every scalable unit its canonical scale.

    The law: for every group element ``t`` and tensors ``T``,
    ``normalize_scales(t T) T`` and ``normalize_scales(T) T`` differ only by
    permutations, signs and orthogonal blocks, provided every site is
    ``exact`` in :func:`site_order`. ``tensors`` is not modified.
    """
    current = dict(tensors)
    elements = dict(Transform.identity(spec).elements)
    for site, usable, _ in site_order(spec):
        element, _ = solve_scales(site, current, usable)
        elements[site.name] = element
        current = apply_site(current, site, element)
    return Transform(elements, spec.fingerprint())


# ----------------------------------------------------------------------
# Step 2: signs


def row_signs(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signs that make each row's largest-magnitude entry positive.

    Entries whose magnitudes agree with the largest to :data:`TIE_RTOL` form
    a tie class, and a class whose signs cancel passes the decision to the
    next class by magnitude. Returns the signs and a mask of the rows left
    undecided (zero rows or rows whose every class cancels), which get +1.
    """
    count = rows.shape[0]
    signs = np.ones(count)
    undecided = np.zeros(count, dtype=bool)
    if rows.size == 0:
        undecided[:] = True
        return signs, undecided
    magnitudes = np.abs(rows)
    largest = magnitudes.max(axis=1)
    index = magnitudes.argmax(axis=1)
    first = rows[np.arange(count), index]
    near = magnitudes >= largest[:, None] * (1.0 - TIE_RTOL)
    opposite = near & (np.sign(rows) != np.sign(first)[:, None])
    signs = np.where(first < 0, -1.0, 1.0)
    for unit in np.flatnonzero(opposite.any(axis=1) | (largest <= ZERO_NORM)):
        signs[unit], undecided[unit] = _sign_by_classes(rows[unit])
    return signs, undecided


def _sign_by_classes(row: np.ndarray) -> tuple[float, bool]:
    magnitudes = np.abs(row)
    order = np.argsort(-magnitudes, kind="stable")
    start = 0
    while start < len(order) and magnitudes[order[start]] > ZERO_NORM:
        top = magnitudes[order[start]]
        stop = start
        while stop < len(order) and magnitudes[order[stop]] >= top * (1.0 - TIE_RTOL):
            stop += 1
        total = float(np.sum(np.sign(row[order[start:stop]])))
        if total != 0.0:
            return (1.0 if total > 0 else -1.0), False
        start = stop
    return 1.0, True


def _sign_exponent(action: Action, component: int) -> int:
    return sum(ch.sign_exponent for c, ch in action.factors if c == component) % 2


def solve_signs(
    site: Site, tensors: dict[str, torch.Tensor], usable: list[Action]
) -> tuple[SiteElement, bool]:
    """Return the element that applies the sign rule to one unit site.

    Components are fixed one at a time. Each is fixed with the usable
    actions whose sign depends on it and on no component still open. The
    second value is True when some unit stayed undecided.
    """
    from ._align import sign_components

    signed = sign_components(site)
    scales = [np.ones(site.size) for _ in site.components]
    open_components = list(signed)
    current = dict(tensors)
    ambiguous = False
    while open_components:
        progress = False
        for component in list(open_components):
            probes = [
                a
                for a in usable
                if _sign_exponent(a, component)
                and not any(
                    _sign_exponent(a, other)
                    for other in open_components
                    if other != component
                )
            ]
            if not probes:
                continue
            signs = np.ones(site.size)
            pending = np.ones(site.size, dtype=bool)
            for probe in probes:
                rows = site_rows(current[probe.tensor], probe).numpy()
                found, undecided = row_signs(rows)
                take = pending & ~undecided
                signs[take] = found[take]
                pending &= undecided
                if not pending.any():
                    break
            ambiguous |= bool(pending.any())
            scales[component] = signs
            element = SiteElement(
                perm=np.arange(site.size),
                scales=tuple(
                    signs if i == component else np.ones(site.size)
                    for i in range(len(site.components))
                ),
            )
            current = apply_site(current, site, element)
            open_components.remove(component)
            progress = True
        if not progress:
            ambiguous = True
            break
    return SiteElement(perm=np.arange(site.size), scales=tuple(scales)), ambiguous


# ----------------------------------------------------------------------
# Step 3: order


def round_to_grid(values: np.ndarray, digits: int) -> np.ndarray:
    """Round to a grid of ``digits`` significant digits of ``max|values|``."""
    values = np.asarray(values, dtype=np.float64)
    largest = float(np.max(np.abs(values))) if values.size else 0.0
    if largest == 0.0 or not np.isfinite(largest):
        return values + 0.0
    step = 10.0 ** (np.floor(np.log10(largest)) - digits + 1)
    # Adding 0.0 turns -0.0 into 0.0, so equal values hash equally.
    return np.rint(values / step) * step + 0.0


def unit_keys(tensors: dict[str, torch.Tensor], usable: list[Action]) -> np.ndarray:
    """Sort keys ``(2 * actions, units)``: row sums and sums of squares."""
    keys = []
    for action in usable:
        rows = site_rows(tensors[action.tensor], action).numpy()
        keys.append(round_to_grid(rows.sum(axis=1), KEY_DIGITS))
        keys.append(round_to_grid((rows**2).sum(axis=1), KEY_DIGITS))
    return np.array(keys)


def sorting_perm(
    keys: np.ndarray, colours: np.ndarray | None
) -> tuple[np.ndarray, bool]:
    """Permutation ``perm`` sending each unit to its rank by ``keys``.

    ``keys[0]`` is the primary key. Units only change places within their
    colour. The second value is True when two units have equal keys.
    """
    size = keys.shape[1]
    colours = np.zeros(size, dtype=np.int64) if colours is None else colours
    perm = np.empty(size, dtype=np.int64)
    tied = False
    for colour in np.unique(colours):
        members = np.flatnonzero(colours == colour)
        local = keys[:, members]
        # np.lexsort sorts by its last key first.
        ranked = members[np.lexsort(local[::-1])]
        perm[ranked] = members
        columns = local[:, np.lexsort(local[::-1])]
        if len(members) > 1 and np.any(
            np.all(columns[:, 1:] == columns[:, :-1], axis=0)
        ):
            tied = True
    return perm, tied


# ----------------------------------------------------------------------
# Step 4: orthogonal blocks


def _rotation(rows: np.ndarray) -> np.ndarray:
    """Orthogonal ``M`` with ``M @ rows = S V^T`` and signs by :func:`row_signs`."""
    u, _, vt = np.linalg.svd(rows, full_matrices=False)
    if u.shape[1] < u.shape[0]:
        # Fewer columns than rows: complete U to a square orthogonal matrix.
        q, _ = np.linalg.qr(np.concatenate([u, np.eye(len(u))], axis=1))
        u = np.concatenate([u, q[:, u.shape[1] :]], axis=1)
    rotated = u.T @ rows
    signs, _ = row_signs(rotated)
    return signs[:, None] * u.T


def _linear_element(
    site: Site, tensors: dict[str, torch.Tensor], usable: list[Action]
) -> SiteElement:
    rows = np.concatenate(
        [site_rows(tensors[a.tensor], a).numpy() for a in usable], axis=1
    )
    return SiteElement(matrix=_rotation(rows))


def _attention_element(
    site: Site, tensors: dict[str, torch.Tensor], usable: list[Action]
) -> tuple[SiteElement, bool]:
    heads = site.size
    blocks: dict[str, np.ndarray | None] = {"q": None, "v": None}
    spectra = []
    for fibres, group, dim in (
        (("q", "k"), site.qk_group, site.qk_dim),
        (("v",), site.vo_group, site.vo_dim),
    ):
        parts = [
            site_rows(tensors[a.tensor], a).numpy().reshape(heads, dim, -1)
            for a in usable
            if a.fibre in fibres
        ]
        if not parts:
            continue
        stacked = np.concatenate(parts, axis=2)
        spectra.append(np.linalg.svd(stacked, compute_uv=False))
        if group == "general_linear":
            blocks[fibres[0]] = np.stack([_rotation(stacked[h]) for h in range(heads)])
    perm = np.arange(heads)
    tied = False
    if site.permute_heads and spectra:
        keys = np.concatenate(spectra, axis=1).T
        keys = np.array([round_to_grid(k, KEY_DIGITS) for k in keys])
        perm, tied = sorting_perm(keys, None)
    return SiteElement(perm=perm, qk=blocks["q"], vo=blocks["v"]), tied


# ----------------------------------------------------------------------
# Public entry points


def canonical_element(
    spec: SymmetrySpec, tensors: dict[str, torch.Tensor]
) -> tuple[Transform, dict[str, torch.Tensor], list[str]]:
    """Return the canonicalizing element, the canonical tensors and ambiguous sites.

    ``tensors`` (float64, by name) is not modified.
    """
    current = dict(tensors)
    elements: dict[str, SiteElement] = {}
    ambiguous: list[str] = []
    for site, usable, exact in site_order(spec):
        unclear = not exact
        if site.kind == "monomial":
            scale, degenerate = solve_scales(site, current, usable)
            current = apply_site(current, site, scale)
            sign, undecided = solve_signs(site, current, usable)
            current = apply_site(current, site, sign)
            perm, tied = sorting_perm(unit_keys(current, usable), site.colours)
            order = SiteElement(
                perm=perm, scales=tuple(np.ones(site.size) for _ in site.components)
            )
            current = apply_site(current, site, order)
            element = compose_elements(site, order, sign, scale)
            unclear |= degenerate or undecided or tied
        elif site.kind == "general_linear":
            element = _linear_element(site, current, usable)
            current = apply_site(current, site, element)
        else:
            element, tied = _attention_element(site, current, usable)
            current = apply_site(current, site, element)
            unclear |= tied
        elements[site.name] = element
        if unclear:
            ambiguous.append(site.name)
    return Transform(elements, spec.fingerprint()), current, ambiguous


def fingerprint(tensors: dict[str, Any]) -> str:
    """Return the hex SHA-256 of tensors rounded to :data:`FINGERPRINT_DIGITS`.

    Each tensor is converted to float64 and rounded with
    :func:`round_to_grid`; the hash covers, in sorted name order, the name,
    the shape, the grid step and the rounded values as int64 multiples of
    the step.
    """
    digest = hashlib.sha256()
    for name in sorted(tensors):
        values = tensors[name]
        if isinstance(values, torch.Tensor):
            values = values.detach().to("cpu", torch.float64).numpy()
        values = np.asarray(values, dtype=np.float64)
        largest = float(np.max(np.abs(values))) if values.size else 0.0
        exponent = 0
        if largest > 0.0 and np.isfinite(largest):
            exponent = int(np.floor(np.log10(largest))) - FINGERPRINT_DIGITS + 1
        steps = np.rint(values / 10.0**exponent).astype(np.int64)
        digest.update(f"{name}|{values.shape}|{exponent}|".encode())
        digest.update(np.ascontiguousarray(steps).tobytes())
    return digest.hexdigest()


def canonicalize(
    model: nn.Module,
    example_inputs: Any,
    *,
    spec: SymmetrySpec | None = None,
    check: bool = True,
) -> CanonicalForm:
    """Move ``model`` to the canonical representative of its orbit.

    The law: for every element ``t`` of the spec's group,
    ``canonicalize(t @ model).model`` has the weights of
    ``canonicalize(model).model`` up to rounding, and the fingerprints are
    equal when the rounding stays below the fingerprint grid (exact
    permutations, signs and power-of-two scalings in any dtype; any element
    in float64 barring a value within rounding of a grid boundary). The
    canonical model computes ``model``'s function (checked on
    ``example_inputs`` when ``check=True``). ``model`` is not modified.

    The fingerprint covers every floating-point tensor of the model
    (invariant ones included) and the spec's structure; integer buffers
    such as ``num_batches_tracked`` are left out.
    """
    from ._discover import find_symmetries

    if not isinstance(model, nn.Module):
        raise InvalidArgumentError(
            f"model must be a torch.nn.Module, got {type(model).__name__}"
        )
    if spec is None:
        spec = find_symmetries(model, example_inputs)
    elif not isinstance(spec, SymmetrySpec):
        raise InvalidArgumentError(f"spec must be a SymmetrySpec, got {spec!r}")
    tensors = float_tensors(model, spec)
    transform, canonical, ambiguous = canonical_element(spec, tensors)
    transform.metadata = {"canonical": "1"}
    result = apply_transform(
        model, spec, transform, check=check, example_inputs=example_inputs
    )
    hashed = dict(canonical)
    for name, info in spec.tensors.items():
        if name not in hashed and info.is_float:
            hashed[name] = spec_tensor(model, name)
    hashed["<spec>"] = np.frombuffer(spec.fingerprint().encode(), dtype=np.uint8)
    if ambiguous:
        logger.info("canonical rule undecided for some units of %s", ambiguous)
    return CanonicalForm(result, transform, fingerprint(hashed), spec, ambiguous)


def spec_tensor(model: nn.Module, name: str) -> torch.Tensor:
    """Return the model tensor ``name`` as float64."""
    from ._apply import model_tensors

    return model_tensors(model)[name].detach().to("cpu", torch.float64)


__all__ = [
    "CanonicalForm",
    "canonicalize",
    "fingerprint",
    "normalize_scales",
    "apply_element_dict",
]

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
   largest-magnitude entry of the first usable action that isolates it
   positive; entries whose magnitudes agree to :data:`TIE_RTOL` form a tie
   class, and the first class whose signs do not cancel decides.
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
    """True when ``usable`` determines every scale and provides a sort key."""
    if not usable:
        return False
    components = _magnitude_components(site)
    if not components:
        return True
    needed = np.array([_exponents(a, components) for a in site.actions])
    have = np.array([_exponents(a, components) for a in usable])
    return np.linalg.matrix_rank(have) == np.linalg.matrix_rank(needed)


def site_order(spec: SymmetrySpec) -> list[tuple[Site, list[Action], bool]]:
    """Sites in canonicalization order with their usable actions.

    Each entry is ``(site, usable actions, exact)``; ``exact`` is False when
    no remaining site was ready and one was taken with the actions it had,
    so its rule may depend on sites that come later.
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
    norms = np.array([site_rows(tensors[a.tensor], a).norm(dim=1).numpy() for a in actions])
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
        solution[:, units] = np.linalg.lstsq(system, -logs[pattern][:, units], rcond=None)[0]
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

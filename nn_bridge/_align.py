"""Align model B to model A modulo the whole symmetry group of their spec.

:func:`align` returns a group element ``t`` such that
``apply_transform(model_b, spec, t)`` computes the same function as
``model_b`` while its weights come as close as the search finds to
``model_a``'s. The search works in three steps:

1. Both models are brought to a canonical scale
   (:func:`nn_bridge._canonical.normalize_scales`): every unit of a site with
   positive or nonzero scalings gets unit-norm slices, the scale being pushed
   into the tensors on the other side. Two models that differ by a group
   element differ by a permutation and signs after this step.
2. Coordinate descent over the sites matches the rest. A unit site solves a
   linear assignment problem (``scipy.optimize.linear_sum_assignment``) in
   which two units score the best similarity over the allowed sign
   patterns. A general linear block (one per head for attention sites)
   solves an orthogonal Procrustes problem. The first run starts from a
   greedy pass in dependency order, further runs from random permutations
   and site orders, and the best objective is kept.
3. The result is ``g_A^-1 @ h @ g_B``: B's normalization, the match, and the
   inverse of A's normalization.
4. Where some site has scalings, step 2 also runs on the original weights
   (permutations and signs only, starting from the match of step 2), and
   the candidate with the smaller distance on the original weights is
   returned. On independently trained models the normalized match can pair
   units of very different original magnitudes, which raises the loss
   barrier of the interpolation path.

The objective is the relative squared distance
``sum_T ||T_A - T_B'||^2 / sum_T ||T_A||^2`` over every floating-point
tensor that some site acts on.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from ._apply import _apply_action, apply_transform, model_tensors
from ._errors import InvalidArgumentError, ModelMismatchError
from ._spec import Action, Site, SymmetrySpec
from ._transform import SiteElement, Transform, sample_permutation

logger = logging.getLogger(__name__)

#: Alignment methods of :func:`align`.
METHODS = ("weights", "activations")

#: Default number of coordinate-descent runs: the first starts from a greedy
#: pass in dependency order, the others from random permutations and orders.
DEFAULT_RESTARTS = 3

#: Upper bound on sweeps over all sites in one coordinate-descent run. A run
#: stops earlier at the first sweep that changes no site or barely helps.
MAX_SWEEPS = 50

#: Penalty added to the cost of pairing units of different colours, so that
#: the assignment never moves a unit out of its colour class.
COLOUR_PENALTY = 1e30

#: A run stops when a sweep lowers the distance by at most this fraction,
#: which ends the slow drift of alternating orthogonal Procrustes steps.
CONVERGED_RTOL = 1e-9

#: A step of a general linear or attention site counts as the identity when
#: its blocks differ from the identity matrix by at most this.
BLOCK_CHANGE_TOL = 1e-9

#: A run whose relative distance is at most this has matched B to A up to
#: float64 rounding, so the remaining restarts are skipped.
EXACT_DISTANCE = 1e-24

#: Multiply-adds above which a cross-covariance of a unit site is computed
#: in float32 (:func:`_cross`): about a 1024-wide square layer.
FLOAT32_CROSS_SIZE = 2**30

#: Rows of the cross-covariance computed at once, to bound the temporary
#: memory of one matrix product to about ``CHUNK_ROWS * width`` numbers.
CHUNK_ROWS = 2048

ProgressCallback = Callable[[str, int, int], None]


class ArchitectureMismatchError(ModelMismatchError):
    """Two models that should share one architecture differ in a tensor."""


@dataclass(frozen=True)
class SiteStatistics:
    """Statistics of one site after alignment.

    ``moved`` counts units (heads, for attention) that changed position,
    ``flipped`` the units whose scale became negative, and ``similarity``
    is the cosine between A's and the aligned B's slices of the site's
    tensors, in the coordinates of the candidate that won: scale-normalized
    or original weights (:func:`align`).
    """

    name: str
    kind: str
    size: int
    moved: int
    flipped: int
    similarity: float


@dataclass
class AlignmentResult:
    """Result of :func:`align`.

    ``transform`` maps model B towards model A and ``aligned`` is
    ``apply_transform(model_b, spec, transform)``. ``objective_before`` and
    ``objective_after`` are the relative squared distance
    ``sum ||T_A - T_B||^2 / sum ||T_A||^2`` over the tensors the spec acts
    on, before and after. ``iterations`` counts coordinate-descent sweeps of
    the best run and ``restarts`` the runs tried.
    """

    transform: Transform
    aligned: nn.Module
    spec: SymmetrySpec
    method: str
    objective_before: float
    objective_after: float
    iterations: int
    restarts: int
    seconds: float
    sites: list[SiteStatistics] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Return the JSON-serialisable numbers of the result."""
        return {
            "method": self.method,
            "objective_before": self.objective_before,
            "objective_after": self.objective_after,
            "iterations": self.iterations,
            "restarts": self.restarts,
            "seconds": self.seconds,
            "sites": [vars(s) for s in self.sites],
        }


# ----------------------------------------------------------------------
# Tensors and site elements


def float_tensors(model: nn.Module, spec: SymmetrySpec) -> dict[str, torch.Tensor]:
    """Return float64 copies of the tensors that the spec's sites act on."""
    tensors = model_tensors(model)
    names = {action.tensor for site in spec.sites for action in site.actions}
    return {
        name: tensors[name].detach().to("cpu", torch.float64).clone()
        for name in sorted(names)
    }


def apply_site(
    tensors: dict[str, torch.Tensor], site: Site, element: SiteElement
) -> dict[str, torch.Tensor]:
    """Return ``tensors`` with one site's element applied (the rest shared)."""
    result = dict(tensors)
    with torch.no_grad():
        for action in site.actions:
            result[action.tensor] = _apply_action(
                result[action.tensor], site, action, element
            )
    return result


def apply_element_dict(
    tensors: dict[str, torch.Tensor], spec: SymmetrySpec, transform: Transform
) -> dict[str, torch.Tensor]:
    """Return ``tensors`` moved by every site of ``transform``."""
    result = dict(tensors)
    for site in spec.sites:
        result = apply_site(result, site, transform.elements[site.name])
    return result


def site_rows(tensor: torch.Tensor, action: Action) -> torch.Tensor:
    """Return the slices of ``action`` as a matrix ``(rows, replicas * rest)``."""
    moved = tensor.movedim(action.axis, 0)
    index = torch.as_tensor(action.positions.ravel(), device=tensor.device)
    rows = action.positions.shape[0]
    return moved.index_select(0, index).reshape(rows, -1)


def relative_distance(
    reference: dict[str, torch.Tensor], other: dict[str, torch.Tensor]
) -> float:
    """Return ``sum ||a - b||^2 / sum ||a||^2`` over the names of ``reference``."""
    numerator = 0.0
    denominator = 0.0
    for name, a in reference.items():
        numerator += float(torch.sum((a - other[name]) ** 2))
        denominator += float(torch.sum(a**2))
    return numerator / max(denominator, np.finfo(float).tiny)


def sign_components(site: Site) -> list[int]:
    """Indices of the components whose scalar group contains -1."""
    return [i for i, c in enumerate(site.components) if c.scalars.contains(-1.0)]


def _cross(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Return ``a @ b.T`` (float64) computed in row chunks of :data:`CHUNK_ROWS`.

    Products of more than :data:`FLOAT32_CROSS_SIZE` multiply-adds run in
    float32, which halves their time; an assignment only compares the
    similarities, so their relative error of about 1e-6 only matters for
    near-ties.
    """
    if a.shape[0] * b.shape[0] * a.shape[1] > FLOAT32_CROSS_SIZE:
        a, b = a.to(torch.float32), b.to(torch.float32)
    if a.shape[0] <= CHUNK_ROWS:
        return (a @ b.T).to(torch.float64)
    return torch.cat(
        [
            (a[i : i + CHUNK_ROWS] @ b.T).to(torch.float64)
            for i in range(0, len(a), CHUNK_ROWS)
        ]
    )


# ----------------------------------------------------------------------
# Architecture check


def check_same_architecture(model_a: nn.Module, model_b: nn.Module) -> None:
    """Raise :class:`ArchitectureMismatchError` naming the first differing tensor.

    Both models must have the same parameter and buffer names, in the same
    order, with equal shapes and dtypes.
    """
    for label, model in (("model_a", model_a), ("model_b", model_b)):
        if not isinstance(model, nn.Module):
            raise InvalidArgumentError(
                f"{label} must be a torch.nn.Module, got {type(model).__name__}"
            )
    tensors_a = model_tensors(model_a)
    tensors_b = model_tensors(model_b)
    for name_a, name_b in zip(tensors_a, tensors_b, strict=False):
        if name_a != name_b:
            raise ArchitectureMismatchError(
                f"models differ at tensor {name_a!r}: model_b has {name_b!r} in its "
                "place; both models must share one architecture"
            )
        a, b = tensors_a[name_a], tensors_b[name_b]
        if a.shape != b.shape or a.dtype != b.dtype:
            raise ArchitectureMismatchError(
                f"models differ at tensor {name_a!r}: {tuple(a.shape)} {a.dtype} in "
                f"model_a, {tuple(b.shape)} {b.dtype} in model_b"
            )
    if len(tensors_a) != len(tensors_b):
        longer, label = (
            (tensors_a, "model_a")
            if len(tensors_a) > len(tensors_b)
            else (tensors_b, "model_b")
        )
        first = list(longer)[min(len(tensors_a), len(tensors_b))]
        raise ArchitectureMismatchError(
            f"models differ at tensor {first!r}: only {label} has it; both models "
            "must share one architecture"
        )


# ----------------------------------------------------------------------
# One site of the weight matching


def _sign_choices(count: int) -> np.ndarray:
    """All sign choices of ``count`` components, shape ``(2**count, count)``."""
    codes = np.arange(2**count)[:, None] >> np.arange(count)[None, :]
    return np.where(codes & 1, -1.0, 1.0).reshape(2**count, count)


def _sign_pattern(action: Action, signed: list[int]) -> tuple[int, ...]:
    """Indices into ``signed`` of the components whose sign ``action`` carries.

    A component counts when the sign exponents of its factors in the action
    add up to an odd number.
    """
    pattern = []
    for index, component in enumerate(signed):
        exponent = sum(ch.sign_exponent for c, ch in action.factors if c == component)
        if exponent % 2:
            pattern.append(index)
    return tuple(pattern)


def _solve_monomial(
    site: Site, tensors_a: dict[str, torch.Tensor], tensors_b: dict[str, torch.Tensor]
) -> SiteElement:
    """Best permutation and signs of one unit site, the others held fixed.

    The similarity of A's unit ``i`` and B's unit ``j`` for signs ``s`` is
    ``sum_a s_a <A_a[i], B_a[j]>`` over the site's actions, where ``s_a`` is
    the action's sign factor; each pair takes its best ``s``, and the
    assignment maximizes the total similarity.
    """
    signed = sign_components(site)
    # Actions with equal sign patterns share one summed cross-covariance.
    grouped: dict[tuple[int, ...], torch.Tensor] = {}
    for action in site.actions:
        pattern = _sign_pattern(action, signed)
        cross = _cross(
            site_rows(tensors_a[action.tensor], action),
            site_rows(tensors_b[action.tensor], action),
        )
        grouped[pattern] = grouped[pattern] + cross if pattern in grouped else cross
    choices = _sign_choices(len(signed))
    best = None
    best_choice = None
    for index, choice in enumerate(choices):
        total = torch.zeros(site.size, site.size, dtype=torch.float64)
        for pattern, cross in grouped.items():
            factor = float(np.prod(choice[list(pattern)])) if pattern else 1.0
            total = total + factor * cross
        if best is None:
            best = total
            best_choice = torch.zeros(site.size, site.size, dtype=torch.int64)
        else:
            better = total > best
            best = torch.where(better, total, best)
            best_choice = torch.where(better, index, best_choice)
    similarity = best.numpy()
    if site.colours is not None:
        different = site.colours[:, None] != site.colours[None, :]
        similarity = similarity - COLOUR_PENALTY * different
    rows, cols = linear_sum_assignment(similarity, maximize=True)
    perm = np.empty(site.size, dtype=np.int64)
    perm[cols] = rows
    chosen = best_choice.numpy()[rows, cols]
    scales = []
    for component in range(len(site.components)):
        scale = np.ones(site.size)
        if component in signed:
            scale[cols] = choices[chosen, signed.index(component)]
        scales.append(scale)
    return SiteElement(perm=perm, scales=tuple(scales))


def _procrustes(cross: np.ndarray) -> np.ndarray:
    """Return the orthogonal ``M`` maximizing ``trace(M @ cross.T)``."""
    u, _, vt = np.linalg.svd(cross)
    return u @ vt


def _solve_linear(
    site: Site, tensors_a: dict[str, torch.Tensor], tensors_b: dict[str, torch.Tensor]
) -> SiteElement:
    """Best orthogonal matrix of a general linear site (orthogonal Procrustes)."""
    cross = torch.zeros(site.size, site.size, dtype=torch.float64)
    for action in site.actions:
        cross += _cross(
            site_rows(tensors_a[action.tensor], action),
            site_rows(tensors_b[action.tensor], action),
        )
    return SiteElement(matrix=_procrustes(cross.numpy()))


def _head_cross(
    site: Site,
    fibres: Sequence[str],
    tensors_a: dict[str, torch.Tensor],
    tensors_b: dict[str, torch.Tensor],
) -> np.ndarray:
    """Cross-covariances ``(heads_a, heads_b, dim, dim)`` of the given fibres."""
    dim = site.vo_dim if fibres[0] == "v" else site.qk_dim
    heads = site.size
    total = torch.zeros(heads, heads, dim, dim, dtype=torch.float64)
    for action in site.actions:
        if action.fibre not in fibres:
            continue
        a = site_rows(tensors_a[action.tensor], action).reshape(heads, dim, -1)
        b = site_rows(tensors_b[action.tensor], action).reshape(heads, dim, -1)
        total += torch.einsum("hir,gjr->hgij", a, b)
    return total.numpy()


def _solve_attention(
    site: Site, tensors_a: dict[str, torch.Tensor], tensors_b: dict[str, torch.Tensor]
) -> SiteElement:
    """Best head permutation and orthogonal per-head blocks of an attention site.

    Pairing A's head ``h`` with B's head ``g`` scores the nuclear norm of
    the cross-covariance of their blocks (the best orthogonal fit) where the
    block group is general linear, and its trace where it is the identity.
    """
    heads = site.size
    score = np.zeros((heads, heads))
    crosses = {}
    for fibres, group in ((("q", "k"), site.qk_group), (("v",), site.vo_group)):
        cross = _head_cross(site, fibres, tensors_a, tensors_b)
        crosses[fibres[0]] = cross
        if group == "general_linear":
            score += np.linalg.svd(cross, compute_uv=False).sum(axis=-1)
        else:
            score += np.trace(cross, axis1=-2, axis2=-1)
    if site.permute_heads:
        rows, cols = linear_sum_assignment(score, maximize=True)
    else:
        rows = cols = np.arange(heads)
    perm = np.empty(heads, dtype=np.int64)
    perm[cols] = rows
    blocks: dict[str, np.ndarray | None] = {"q": None, "v": None}
    for fibre, group in (("q", site.qk_group), ("v", site.vo_group)):
        if group == "general_linear":
            blocks[fibre] = np.stack(
                [_procrustes(crosses[fibre][perm[j], j]) for j in range(heads)]
            )
    return SiteElement(perm=perm, qk=blocks["q"], vo=blocks["v"])


def solve_site(
    site: Site, tensors_a: dict[str, torch.Tensor], tensors_b: dict[str, torch.Tensor]
) -> SiteElement:
    """Return the element of ``site`` that brings ``tensors_b`` closest to A.

    Every other site is held fixed. Monomial sites get a permutation and
    signs (magnitudes are left to the scale normalization), general linear
    and attention sites orthogonal blocks.
    """
    if site.kind == "monomial":
        return _solve_monomial(site, tensors_a, tensors_b)
    if site.kind == "general_linear":
        return _solve_linear(site, tensors_a, tensors_b)
    return _solve_attention(site, tensors_a, tensors_b)


def _has_scalings(spec: SymmetrySpec) -> bool:
    """True when some unit site of ``spec`` has positive or nonzero scalings."""
    from ._canonical import _magnitude_components

    return any(
        site.kind == "monomial" and _magnitude_components(site) for site in spec.sites
    )


def _is_identity_element(element: SiteElement) -> bool:
    """True when ``element`` moves nothing (blocks to :data:`BLOCK_CHANGE_TOL`)."""
    if element.matrix is not None:
        eye = np.eye(len(element.matrix))
        return bool(np.abs(element.matrix - eye).max() <= BLOCK_CHANGE_TOL)
    if not np.array_equal(element.perm, np.arange(len(element.perm))):
        return False
    if any(np.any(scale != 1.0) for scale in element.scales):
        return False
    for blocks in (element.qk, element.vo):
        if blocks is not None:
            eye = np.broadcast_to(np.eye(blocks.shape[-1]), blocks.shape)
            if np.abs(blocks - eye).max() > BLOCK_CHANGE_TOL:
                return False
    return True


def compose_elements(site: Site, *elements: SiteElement) -> SiteElement:
    """Product ``elements[0] @ elements[1] @ ...`` of one site's elements."""
    product = Transform({site.name: elements[0]}, "")
    for element in elements[1:]:
        product = product @ Transform({site.name: element}, "")
    return product.elements[site.name]


def _random_start(
    spec: SymmetrySpec, rng: np.random.Generator
) -> dict[str, SiteElement]:
    """Random permutations (within colours), identity scales and blocks."""
    start = {}
    for site in spec.sites:
        identity = Transform.identity(spec).elements[site.name]
        if site.kind == "monomial":
            identity.perm = sample_permutation(rng, site.size, site.colours)
        elif site.kind == "attention" and site.permute_heads:
            identity.perm = rng.permutation(site.size)
        start[site.name] = identity
    return start


def _greedy_start(
    spec: SymmetrySpec,
    tensors_a: dict[str, torch.Tensor],
    tensors_b: dict[str, torch.Tensor],
    fixed: dict[str, SiteElement],
) -> dict[str, SiteElement]:
    """Match the sites once in dependency order, each on its usable actions.

    A site is matched only on the tensors whose other axes belong to sites
    matched before it (:func:`nn_bridge._canonical.site_order`), so the
    first sites see no noise from unmatched neighbours. When B is a group
    element applied to A, this pass alone finds it.
    """
    from ._canonical import site_order

    elements = Transform.identity(spec).elements
    elements.update({name: copy.deepcopy(e) for name, e in fixed.items()})
    current = apply_element_dict(
        tensors_b, spec, Transform(elements, spec.fingerprint())
    )
    for site, usable, _ in site_order(spec):
        if site.name in fixed:
            continue
        partial = dataclasses.replace(site, actions=usable)
        element = solve_site(partial, tensors_a, current)
        current = apply_site(current, site, element)
        elements[site.name] = element
    return elements


def coordinate_descent(
    spec: SymmetrySpec,
    tensors_a: dict[str, torch.Tensor],
    tensors_b: dict[str, torch.Tensor],
    *,
    restarts: int = DEFAULT_RESTARTS,
    seed: int = 0,
    fixed: dict[str, SiteElement] | None = None,
    progress: ProgressCallback | None = None,
    start: Transform | None = None,
) -> tuple[Transform, int]:
    """Search the element ``h`` minimizing ``||A - h B||`` by coordinate descent.

    Run 0 starts from ``start`` when given, else from :func:`_greedy_start`,
    and sweeps in spec order; runs 1 to ``restarts - 1`` start from random
    permutations and visit the sites in a random order. Sites named in
    ``fixed`` keep their element. Returns the best element found and the
    sweeps its run took.
    """
    rng = np.random.default_rng(seed)
    fixed = dict(fixed or {})
    best: tuple[float, Transform, int] | None = None
    free = [site for site in spec.sites if site.name not in fixed]
    for run in range(max(1, restarts)):
        if run == 0 and start is not None:
            elements = {n: copy.deepcopy(e) for n, e in start.elements.items()}
            order = list(free)
        elif run == 0:
            elements = _greedy_start(spec, tensors_a, tensors_b, fixed)
            order = list(free)
        else:
            elements = _random_start(spec, rng)
            order = [free[i] for i in rng.permutation(len(free))]
        elements.update({name: copy.deepcopy(e) for name, e in fixed.items()})
        current = apply_element_dict(
            tensors_b, spec, Transform(elements, spec.fingerprint())
        )
        sweeps = 0
        distance = relative_distance(tensors_a, current)
        # A distance at rounding level is the global minimum: no sweep can
        # improve it, so the confirming sweep is skipped.
        while distance > EXACT_DISTANCE and sweeps < MAX_SWEEPS:
            sweeps += 1
            changed = False
            for site in order:
                # The site's other tensors axes are the same in ``current`` and
                # in B without this site, so the step solved on ``current``
                # composes with the old element.
                step = solve_site(site, tensors_a, current)
                if _is_identity_element(step):
                    continue
                current = apply_site(current, site, step)
                elements[site.name] = compose_elements(site, step, elements[site.name])
                changed = True
            if progress is not None:
                progress("sweep", run, sweeps)
            previous, distance = distance, relative_distance(tensors_a, current)
            if not changed or previous - distance <= CONVERGED_RTOL * previous:
                break
        logger.debug("run %d: %d sweeps, distance %.6g", run, sweeps, distance)
        if best is None or distance < best[0]:
            best = (distance, Transform(elements, spec.fingerprint()), sweeps)
        if distance <= EXACT_DISTANCE:
            break
    assert best is not None
    return best[1], best[2]


# ----------------------------------------------------------------------
# Activation matching


def _producer_module(
    model: nn.Module, site: Site
) -> tuple[str, int, np.ndarray] | None:
    """Module whose output holds the site's units, its unit axis and channels.

    The producer is an ``out`` action on the ``weight`` (axis 0) of a
    ``Linear`` or convolution; its output carries unit ``i`` in channel
    ``positions[i, 0]``. Returns None when the site has no such producer.
    """
    for action in site.actions:
        if action.side != "out" or action.axis != 0:
            continue
        module_name, _, leaf = action.tensor.rpartition(".")
        if leaf != "weight" or action.positions.shape[1] != 1:
            continue
        try:
            module = model.get_submodule(module_name)
        except AttributeError:
            continue
        if isinstance(module, nn.Linear):
            return module_name, -1, action.positions[:, 0]
        if isinstance(module, nn.modules.conv._ConvNd):
            return module_name, 1, action.positions[:, 0]
    return None


def _capture(
    model: nn.Module, modules: dict[str, tuple[str, int, np.ndarray]], inputs: Any
) -> dict[str, torch.Tensor]:
    """Run ``model`` once and return each site's activations ``(samples, units)``."""
    from ._check import split_inputs

    captured: dict[str, torch.Tensor] = {}
    handles = []

    def hook_for(site_name: str, axis: int, channels: np.ndarray) -> Any:
        def hook(module: nn.Module, args: Any, output: torch.Tensor) -> None:
            values = output.detach().to(torch.float64).movedim(axis, -1)
            values = values.reshape(-1, values.shape[-1])
            captured[site_name] = values[:, torch.as_tensor(channels)]

        return hook

    for site_name, (module_name, axis, channels) in modules.items():
        module = model.get_submodule(module_name)
        handles.append(
            module.register_forward_hook(hook_for(site_name, axis, channels))
        )
    args, kwargs = split_inputs(inputs)
    try:
        with torch.no_grad():
            model(*args, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    return captured


def _correlation(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Pearson correlations ``(units_a, units_b)`` of two activation matrices."""
    a = a - a.mean(0)
    b = b - b.mean(0)
    a = a / a.norm(dim=0).clamp_min(np.finfo(float).tiny)
    b = b / b.norm(dim=0).clamp_min(np.finfo(float).tiny)
    return (a.T @ b).numpy()


def _activation_elements(
    spec: SymmetrySpec, model_a: nn.Module, model_b: nn.Module, inputs: Any
) -> dict[str, SiteElement]:
    """Permutations and signs of the unit sites from activation correlations.

    Only sites with one sign-capable component or none are matched here,
    because a correlation shows one sign per unit; the other sites are left
    to weight matching.
    """
    modules = {}
    for site in spec.sites:
        if site.kind != "monomial" or len(sign_components(site)) > 1:
            continue
        producer = _producer_module(model_a, site)
        if producer is not None:
            modules[site.name] = producer
    if not modules:
        return {}
    activations_a = _capture(model_a, modules, inputs)
    activations_b = _capture(model_b, modules, inputs)
    elements = {}
    for site in spec.sites:
        if site.name not in activations_a:
            continue
        correlation = _correlation(activations_a[site.name], activations_b[site.name])
        signed = sign_components(site)
        similarity = np.abs(correlation) if signed else correlation
        if site.colours is not None:
            different = site.colours[:, None] != site.colours[None, :]
            similarity = similarity - COLOUR_PENALTY * different
        rows, cols = linear_sum_assignment(similarity, maximize=True)
        perm = np.empty(site.size, dtype=np.int64)
        perm[cols] = rows
        scales = [np.ones(site.size) for _ in site.components]
        if signed:
            flips = np.where(correlation[rows, cols] < 0, -1.0, 1.0)
            scales[signed[0]][cols] = flips
        elements[site.name] = SiteElement(perm=perm, scales=tuple(scales))
    return elements


# ----------------------------------------------------------------------
# Public entry point


def _site_statistics(
    spec: SymmetrySpec,
    match: Transform,
    tensors_a: dict[str, torch.Tensor],
    tensors_b: dict[str, torch.Tensor],
) -> list[SiteStatistics]:
    statistics = []
    for site in spec.sites:
        element = match.elements[site.name]
        moved = 0
        if element.perm is not None:
            moved = int(np.sum(element.perm != np.arange(len(element.perm))))
        flipped = int(sum(np.sum(s < 0) for s in element.scales))
        inner = norm_a = norm_b = 0.0
        for action in site.actions:
            a = site_rows(tensors_a[action.tensor], action)
            b = site_rows(tensors_b[action.tensor], action)
            inner += float(torch.sum(a * b))
            norm_a += float(torch.sum(a * a))
            norm_b += float(torch.sum(b * b))
        denominator = max(np.sqrt(norm_a * norm_b), np.finfo(float).tiny)
        statistics.append(
            SiteStatistics(
                site.name, site.kind, site.size, moved, flipped, inner / denominator
            )
        )
    return statistics


def _progress_callback(progress: Any, restarts: int) -> tuple[Any, Any]:
    """Turn ``progress`` into a callback and a closer; tqdm for ``True``."""
    if progress is None or progress is False:
        return None, lambda: None
    if callable(progress):
        return progress, lambda: None
    if progress is True:
        import sys

        from tqdm import tqdm

        bar = tqdm(
            total=restarts,
            desc="align",
            unit="run",
            file=sys.stderr,
            disable=not sys.stderr.isatty(),
        )
        state = {"run": 0}

        def update(stage: str, run: int, sweep: int) -> None:
            if run + 1 > state["run"]:
                bar.update(run + 1 - state["run"])
                state["run"] = run + 1
            bar.set_postfix(sweep=sweep)

        return update, bar.close
    raise InvalidArgumentError(
        f"progress must be a bool or a callable(stage, run, sweep), got {progress!r}"
    )


def align(
    model_a: nn.Module,
    model_b: nn.Module,
    example_inputs: Any,
    *,
    method: str = "weights",
    restarts: int = DEFAULT_RESTARTS,
    seed: int = 0,
    spec: SymmetrySpec | None = None,
    progress: bool | ProgressCallback | None = False,
    check: bool = True,
) -> AlignmentResult:
    """Find a group element that moves ``model_b``'s weights towards ``model_a``'s.

    The law: ``result.aligned`` computes the same function as ``model_b``
    (checked on ``example_inputs`` when ``check=True``). The search
    minimizes the distance between scale-normalized weights and, where a
    site has scalings, also between the original weights, and keeps the
    candidate closer on the original weights. ``objective_after`` is
    usually, but not provably, below ``objective_before``. When
    ``model_b`` is ``t @ model_a`` for a group element ``t`` that the search
    reaches (permutations, signs, positive or nonzero scalings, orthogonal
    blocks), ``result.aligned`` has ``model_a``'s weights up to rounding.
    Neither model is modified.

    Parameters
    ----------
    model_a, model_b
        Two models of one architecture.
    example_inputs
        Inputs of the symmetry discovery and of the function check; with
        ``method="activations"`` also the batch whose hidden activations
        are correlated.
    method
        ``"weights"`` (data-free weight matching) or ``"activations"``
        (permutations and signs of unit sites from activation correlations,
        the rest by weight matching).
    restarts
        Coordinate-descent runs; the best objective is kept.
    seed
        Seed of the random starts and orders.
    spec
        The symmetry spec of ``model_a``; found with
        :func:`nn_bridge.find_symmetries` when omitted.
    progress
        ``True`` for a tqdm bar on stderr (hidden when stderr is not a
        terminal), or a callable ``(stage, run, sweep)``.
    check
        Check that the aligned model computes ``model_b``'s function.

    Raises
    ------
    ArchitectureMismatchError
        If the models' tensors differ in name, order, shape or dtype.
    InvalidArgumentError
        If ``method``, ``restarts`` or ``progress`` is invalid.
    """
    from ._canonical import normalize_scales
    from ._discover import find_symmetries

    if method not in METHODS:
        raise InvalidArgumentError(f"method must be one of {METHODS}, got {method!r}")
    if not isinstance(restarts, int) or isinstance(restarts, bool) or restarts < 1:
        raise InvalidArgumentError(
            f"restarts must be a positive integer, got {restarts!r}"
        )
    check_same_architecture(model_a, model_b)
    callback, close = _progress_callback(progress, restarts)
    started = time.perf_counter()
    if spec is None:
        spec = find_symmetries(model_a, example_inputs)
    elif not isinstance(spec, SymmetrySpec):
        raise InvalidArgumentError(f"spec must be a SymmetrySpec, got {spec!r}")
    try:
        raw_a = float_tensors(model_a, spec)
        raw_b = float_tensors(model_b, spec)
        scale_a = normalize_scales(spec, raw_a)
        scale_b = normalize_scales(spec, raw_b)
        tensors_a = apply_element_dict(raw_a, spec, scale_a)
        tensors_b = apply_element_dict(raw_b, spec, scale_b)
        fixed = None
        if method == "activations":
            fixed = _activation_elements(spec, model_a, model_b, example_inputs)
        match, sweeps = coordinate_descent(
            spec,
            tensors_a,
            tensors_b,
            restarts=restarts,
            seed=seed,
            fixed=fixed,
            progress=callback,
        )
        transform = scale_a.inverse() @ match @ scale_b
        # A normalized match at rounding level is the global minimum, so the
        # second search is skipped.
        matched = apply_element_dict(tensors_b, spec, match)
        if (
            _has_scalings(spec)
            and relative_distance(tensors_a, matched) > EXACT_DISTANCE
        ):
            # Matching normalized units finds planted scalings exactly, but
            # on independently trained models it can pair units whose
            # original magnitudes differ a lot. The same search on the
            # original weights, started from the normalized match (its
            # permutations and signs), is a second candidate, and the
            # smaller distance on the original weights wins.
            raw_match, raw_sweeps = coordinate_descent(
                spec,
                raw_a,
                raw_b,
                restarts=restarts,
                seed=seed,
                fixed=fixed,
                progress=callback,
                start=match,
            )
            normalized = relative_distance(
                raw_a, apply_element_dict(raw_b, spec, transform)
            )
            original = relative_distance(
                raw_a, apply_element_dict(raw_b, spec, raw_match)
            )
            if original < normalized:
                logger.info(
                    "matching on the original weights gives distance %.6g, "
                    "below %.6g after normalizing scales",
                    original,
                    normalized,
                )
                transform, sweeps = raw_match, raw_sweeps
                match = raw_match
                tensors_a, tensors_b = raw_a, raw_b
    finally:
        close()
    transform.metadata = {"method": method, "seed": str(seed)}
    aligned = apply_transform(
        model_b, spec, transform, check=check, example_inputs=example_inputs
    )
    matched_b = apply_element_dict(tensors_b, spec, match)
    result = AlignmentResult(
        transform=transform,
        aligned=aligned,
        spec=spec,
        method=method,
        objective_before=relative_distance(raw_a, raw_b),
        objective_after=relative_distance(raw_a, float_tensors(aligned, spec)),
        iterations=sweeps,
        restarts=restarts,
        seconds=time.perf_counter() - started,
        sites=_site_statistics(spec, match, tensors_a, matched_b),
    )
    logger.info(
        "aligned %d sites: objective %.6g -> %.6g in %.2f s",
        len(spec.sites),
        result.objective_before,
        result.objective_after,
        result.seconds,
    )
    return result

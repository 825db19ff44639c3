"""Affine symmetries of networks with biases: the next bias absorbs a constant.

At a unit site ``h = sigma(z)``, ``z = W x + c``, whose activation has a pair
``sigma(lam t + a) = mu sigma(t) + b`` (:func:`symgroups.query_affine`), the
weights

    W' = diag(lam) W,   c' = lam c + a,
    V' = V diag(1/mu),  d' = d - V diag(1/mu) b

compute the same function for every consumer ``y = V h + d``, because
``sigma(lam z + a) = mu sigma(z) + b`` gives ``V' sigma(z') + d' = V h + d``.
With a flatten between them, each unit's replica columns of ``V`` move
together, and a convolution consumer without padding sums ``V`` over its
kernel in the bias correction.

:func:`nn_bridge.find_affine_symmetries` finds these sites next to the linear spec of
:func:`nn_bridge.find_symmetries`, and :class:`AffineTransform` composes the
per-unit pairs with the linear element: the preactivation of unit ``j`` is
first mapped to ``lam_j z_j + a_j``, then the linear element acts.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ._apply import (
    _check_model_matches,
    _copy_with,
    transform_tensors,
)
from ._check import DEFAULT_ATOL, DEFAULT_RTOL, check_function_preserved
from ._errors import (
    FunctionChangedError,
    InvalidArgumentError,
    SpecError,
    TransformError,
)
from ._scalars import Char
from ._spec import Action, Site, SymmetrySpec
from ._transform import Transform

logger = logging.getLogger(__name__)

#: Version of the JSON layout of :meth:`AffineSymmetrySpec.to_json`.
AFFINE_SPEC_FORMAT = 1

#: Tolerance for deciding that ``a`` or ``b`` of every element is 0.
ZERO_TOL = 1e-12


@dataclass(frozen=True)
class Consumer:
    """A weight that reads the site's activations, and its bias (None: none)."""

    weight: str
    bias: str | None


@dataclass
class AffineSite:
    """A unit site whose activation admits pairs beyond the linear group.

    ``group`` is the activation's :class:`symgroups.AffineGroupDescription`;
    ``producer_weight`` and ``producer_bias`` compute the preactivation, and
    ``consumers`` read the activations. ``site`` names the linear site of the
    same units.
    """

    site: str
    activation: str
    status: str
    group: Any
    producer_weight: str
    producer_bias: str | None
    consumers: tuple[Consumer, ...]
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return f"{self.activation} ({self.status}): {self.group.describe()}"

    def to_json(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "activation": self.activation,
            "status": self.status,
            "group": self.group.to_json(),
            "producer_weight": self.producer_weight,
            "producer_bias": self.producer_bias,
            "consumers": [[c.weight, c.bias] for c in self.consumers],
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> AffineSite:
        from symgroups import AffineGroupDescription

        return cls(
            site=obj["site"],
            activation=obj["activation"],
            status=obj["status"],
            group=AffineGroupDescription.from_json(obj["group"]),
            producer_weight=obj["producer_weight"],
            producer_bias=obj["producer_bias"],
            consumers=tuple(Consumer(w, b) for w, b in obj["consumers"]),
            notes=list(obj["notes"]),
        )


class AffineSymmetrySpec:
    """The linear spec of a model together with its affine sites.

    ``linear`` is the :class:`SymmetrySpec` of :func:`find_symmetries`;
    ``sites`` lists the :class:`AffineSite` entries, and ``excluded`` maps
    each linear site left without an affine part to the reason.
    """

    def __init__(
        self,
        linear: SymmetrySpec,
        sites: list[AffineSite],
        excluded: dict[str, str] | None = None,
    ) -> None:
        self.linear = linear
        self.sites = list(sites)
        self.excluded = dict(excluded or {})
        self.example_inputs: Any = linear.example_inputs
        self.validate()

    def validate(self) -> None:
        """Check that every affine site names a linear site and its tensors."""
        names = {site.name for site in self.linear.sites}
        seen: set[str] = set()
        for affine in self.sites:
            if affine.site not in names:
                raise SpecError(f"affine site {affine.site!r} has no linear site")
            if affine.site in seen:
                raise SpecError(f"affine site {affine.site!r} is listed twice")
            seen.add(affine.site)
            site = self.linear.site(affine.site)
            tensors = {a.tensor for a in site.actions}
            needed = {affine.producer_weight} | {c.weight for c in affine.consumers}
            if not needed <= tensors:
                raise SpecError(
                    f"affine site {affine.site!r} names tensors "
                    f"{sorted(needed - tensors)} that its linear site does not move"
                )

    def fingerprint(self) -> str:
        """Return the linear fingerprint extended by the affine site names."""
        names = ",".join(s.site for s in self.sites)
        return f"{self.linear.fingerprint()}+affine[{names}]"

    def sample(self, seed: int | None = None) -> AffineTransform:
        """Draw a random element: the linear part and one pair per affine unit.

        Equal seeds give equal draws. The linear part is
        ``linear.sample(seed)``; the pairs come from each site's group.
        """
        linear = self.linear.sample(seed)
        rng = np.random.default_rng(None if seed is None else seed + 1)
        pairs = {}
        for affine in self.sites:
            size = self.linear.site(affine.site).size
            lam, a = affine.group.sample(rng, size)
            pairs[affine.site] = (np.asarray(lam, float), np.asarray(a, float))
        return AffineTransform(linear, pairs, self.fingerprint(), self.factors())

    def factors(self) -> dict[str, tuple[tuple[int, Char], ...]]:
        """Return the producer factors of each affine site (see AffineTransform)."""
        return {
            s.site: _producer_action(
                self.linear.site(s.site), s.producer_weight
            ).factors
            for s in self.sites
        }

    def identity(self) -> AffineTransform:
        """Return the identity element."""
        pairs = {
            s.site: (
                np.ones(self.linear.site(s.site).size),
                np.zeros(self.linear.site(s.site).size),
            )
            for s in self.sites
        }
        return AffineTransform(
            self.linear.identity(), pairs, self.fingerprint(), self.factors()
        )

    def table(self) -> str:
        """Return the linear table followed by the affine sites."""
        lines = [self.linear.table(), "", f"affine sites ({len(self.sites)}):"]
        for affine in self.sites:
            lines.append(f"  {affine.site}: {affine.describe()}")
            consumers = ", ".join(
                f"{c.weight} (bias {c.bias})" for c in affine.consumers
            )
            lines.append(
                f"      producer {affine.producer_weight} (bias "
                f"{affine.producer_bias}); consumers {consumers}"
            )
            for note in affine.notes:
                lines.append(f"      note: {note}")
        if self.excluded:
            lines.append(f"sites without an affine part ({len(self.excluded)}):")
            for name, reason in self.excluded.items():
                lines.append(f"  {name}: {reason}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict; :meth:`from_json` inverts it."""
        return {
            "format": AFFINE_SPEC_FORMAT,
            "linear": self.linear.to_json(),
            "sites": [s.to_json() for s in self.sites],
            "excluded": dict(self.excluded),
        }

    @classmethod
    def from_json(cls, obj: Any) -> AffineSymmetrySpec:
        """Rebuild a spec from :meth:`to_json` output; raises :class:`SpecError`."""
        if isinstance(obj, str):
            try:
                obj = json.loads(obj)
            except json.JSONDecodeError as error:
                raise SpecError(
                    f"affine spec text is not valid JSON: {error}"
                ) from None
        if not isinstance(obj, dict) or obj.get("format") != AFFINE_SPEC_FORMAT:
            raise SpecError(
                f"affine spec JSON must be an object with format {AFFINE_SPEC_FORMAT}"
            )
        try:
            linear = SymmetrySpec.from_json(obj["linear"])
            sites = [AffineSite.from_json(s) for s in obj["sites"]]
            excluded = dict(obj["excluded"])
        except (KeyError, TypeError, ValueError) as error:
            raise SpecError(f"malformed affine spec JSON: {error!r}") from None
        return cls(linear, sites, excluded)


@dataclass
class AffineTransform:
    """An element of an :class:`AffineSymmetrySpec`'s group.

    ``pairs[site] = (lam, a)`` maps unit ``j``'s preactivation ``z_j`` to
    ``lam[j] z_j + a[j]``; then ``linear`` acts. Products follow composition:
    applying ``t1 @ t2`` equals applying ``t2`` first and then ``t1``.
    ``factors[site]`` are the characters with which the linear element
    scales the producer rows (``nn_bridge.Action.factors``), needed to move
    a pair through a linear element.
    """

    linear: Transform
    pairs: dict[str, tuple[np.ndarray, np.ndarray]]
    fingerprint: str
    factors: dict[str, tuple[tuple[int, Char], ...]] = field(default_factory=dict)

    def __matmul__(self, other: AffineTransform) -> AffineTransform:
        return self.compose(other)

    def compose(self, other: AffineTransform) -> AffineTransform:
        """Return ``self @ other``: apply ``other`` first, then ``self``."""
        if (
            not isinstance(other, AffineTransform)
            or other.fingerprint != self.fingerprint
        ):
            raise TransformError("can only compose affine transforms of one spec")
        pairs = {}
        for name, (lam1, a1) in self.pairs.items():
            lam2, a2 = other.pairs[name]
            perm, scale = self._producer_monomial(other.linear, name)
            # Move self's pairs through other's linear element L2 = P D:
            # L2^-1 (lam1 (L2 z) + a1) has pair (lam1[perm], a1[perm] / d).
            moved_lam, moved_a = lam1[perm], a1[perm] / scale
            pairs[name] = (moved_lam * lam2, moved_lam * a2 + moved_a)
        return AffineTransform(
            self.linear @ other.linear, pairs, self.fingerprint, dict(self.factors)
        )

    def inverse(self) -> AffineTransform:
        """Return the inverse element: ``t @ t.inverse()`` is the identity."""
        inverse_linear = self.linear.inverse()
        pairs = {}
        for name, (lam, a) in self.pairs.items():
            # (L A)^-1 = L^-1 (L A^-1 L^-1), and L A^-1 L^-1 is A^-1 moved
            # through M = L^-1 as in compose.
            inv_lam, inv_a = 1.0 / lam, -a / lam
            perm, scale = self._producer_monomial(inverse_linear, name)
            pairs[name] = (inv_lam[perm], inv_a[perm] / scale)
        return AffineTransform(
            inverse_linear, pairs, self.fingerprint, dict(self.factors)
        )

    def _producer_monomial(
        self, linear: Transform, name: str
    ) -> tuple[np.ndarray, np.ndarray]:
        element = linear.elements[name]
        if element.perm is None:
            raise TransformError(f"site {name!r} is not monomial, so it has no pairs")
        scale = np.ones(len(element.perm))
        for component, char in self.factors.get(name, ()):
            scale = scale * char.evaluate(element.scales[component])
        return element.perm, scale

    def to_json(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "linear": self.linear.to_json(),
            "pairs": {
                name: {"lam": lam.tolist(), "a": a.tolist()}
                for name, (lam, a) in self.pairs.items()
            },
            "factors": {
                name: [[c, char.to_json()] for c, char in items]
                for name, items in self.factors.items()
            },
        }

    @classmethod
    def from_json(cls, obj: Any) -> AffineTransform:
        if isinstance(obj, str):
            obj = json.loads(obj)
        try:
            pairs = {
                name: (
                    np.asarray(value["lam"], dtype=np.float64),
                    np.asarray(value["a"], dtype=np.float64),
                )
                for name, value in obj["pairs"].items()
            }
            factors = {
                name: tuple((int(c), Char.from_json(ch)) for c, ch in items)
                for name, items in obj["factors"].items()
            }
            return cls(
                Transform.from_json(obj["linear"]), pairs, obj["fingerprint"], factors
            )
        except (KeyError, TypeError, ValueError) as error:
            raise TransformError(
                f"malformed affine transform JSON: {error!r}"
            ) from None

    def check_fits(self, spec: AffineSymmetrySpec) -> None:
        """Raise :class:`TransformError` unless this is in ``spec``'s group."""
        if self.fingerprint != spec.fingerprint():
            raise TransformError(
                f"affine transform fingerprint {self.fingerprint!r} does not match "
                f"the spec's {spec.fingerprint()!r}"
            )
        self.linear.check_fits(spec.linear)
        for affine in spec.sites:
            if affine.site not in self.pairs:
                raise TransformError(f"no pairs for affine site {affine.site!r}")
            lam, a = self.pairs[affine.site]
            size = spec.linear.site(affine.site).size
            if lam.shape != (size,) or a.shape != (size,):
                raise TransformError(
                    f"pairs of {affine.site!r} must have {size} entries, got "
                    f"{lam.shape} and {a.shape}"
                )
            outside = np.flatnonzero(~affine.group.contains_many(lam, a, 1e-9))
            if outside.size:
                j = int(outside[0])
                raise TransformError(
                    f"unit {j} of {affine.site!r}: (lam, a) = ({lam[j]:g}, "
                    f"{a[j]:g}) is not in {affine.group.describe()}"
                )


def _producer_action(site: Site, weight: str) -> Action:
    for action in site.actions:
        if action.tensor == weight and action.side == "out":
            return action
    raise SpecError(f"site {site.name!r} has no producer action on {weight!r}")


def _affine_parts(
    spec: AffineSymmetrySpec,
    pairs: dict[str, tuple[np.ndarray, np.ndarray]],
    tensors: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[tuple[str, int], list[_Scaling]]]:
    """Return the moved biases and the unit scalings of every weight axis.

    A bias that is both a consumer's and a producer's becomes
    ``lam (d - V diag(1/mu) b) + a``; the two maps act on different sides of
    one preactivation, so their order does not matter. The correction
    ``V diag(1/mu) b`` uses the original ``V`` in its own dtype, summed over
    the kernel of a convolution.
    """
    scalings: dict[tuple[str, int], list[_Scaling]] = {}
    shifts: dict[str, torch.Tensor] = {}
    bias_pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for affine in spec.sites:
        site = spec.linear.site(affine.site)
        lam, a = pairs[affine.site]
        mu, b = affine.group.mu_b(lam, a)
        producer = _producer_action(site, affine.producer_weight)
        scalings.setdefault((affine.producer_weight, 0), []).append(
            _Scaling(affine.site, producer.positions, lam)
        )
        if affine.producer_bias is not None:
            size = tensors[affine.producer_bias].shape[0]
            scale, offset = bias_pairs.setdefault(
                affine.producer_bias, (np.ones(size), np.zeros(size))
            )
            scale[producer.positions[:, 0]] = lam
            offset[producer.positions[:, 0]] = a
        for consumer in affine.consumers:
            action = _consumer_action(site, consumer)
            scalings.setdefault((consumer.weight, 1), []).append(
                _Scaling(affine.site, action.positions, 1.0 / mu)
            )
            correction = _correction(tensors[consumer.weight], action, b / mu)
            if correction is None:
                continue
            if consumer.bias is None:
                raise TransformError(
                    f"consumer {consumer.weight!r} has no bias to absorb b; this "
                    "spec should not contain the site"
                )
            previous = shifts.get(consumer.bias)
            shifts[consumer.bias] = (
                correction if previous is None else previous + correction
            )
    biases: dict[str, torch.Tensor] = {}
    for name in set(shifts) | set(bias_pairs):
        bias = tensors[name].detach().to(torch.float64)
        if name in shifts:
            bias = bias - shifts[name].to(torch.float64)
        if name in bias_pairs:
            scale, offset = bias_pairs[name]
            bias = bias * torch.as_tensor(scale) + torch.as_tensor(offset)
        biases[name] = bias.to(tensors[name].dtype)
    return biases, scalings


@dataclass(frozen=True)
class _Scaling:
    """Unit ``j`` of ``site`` scales the slices ``positions[j]`` by ``factor[j]``."""

    site: str
    positions: np.ndarray
    factor: np.ndarray


def _consumer_action(site: Site, consumer: Consumer) -> Action:
    (action,) = [
        x for x in site.actions if x.tensor == consumer.weight and x.side == "in"
    ]
    if action.axis != 1:
        raise TransformError(
            f"consumer {consumer.weight!r} reads the units along axis {action.axis}; "
            "only axis 1 (Linear and convolution weights) is supported"
        )
    return action


def _correction(
    weight: torch.Tensor, action: Action, unit_shift: np.ndarray
) -> torch.Tensor | None:
    """Return ``V s`` for the shift ``s`` of every unit's columns, or None if 0."""
    if not np.any(unit_shift != 0.0):
        return None
    weight = weight.detach()
    shift = np.zeros(weight.shape[1])
    replicas = action.positions.shape[1]
    shift[action.positions.ravel()] = np.repeat(unit_shift, replicas)
    reduced = weight
    if weight.ndim > 2:
        reduced = weight.sum(dim=tuple(range(2, weight.ndim)))
    return reduced @ torch.as_tensor(shift, dtype=weight.dtype, device=weight.device)


def _scale_in_place(
    tensor: torch.Tensor,
    axis: int,
    scalings: list[_Scaling],
    transform: AffineTransform,
) -> None:
    """Multiply the linear element's output by the unit scalings, moved along.

    The linear element sends unit ``j``'s slices ``positions[j]`` to
    ``positions[perm[j]]``, and diagonal scalings commute with each other,
    so scaling the output there equals scaling the input before.
    """
    vector = np.ones(tensor.shape[axis])
    for scaling in scalings:
        perm = transform.linear.elements[scaling.site].perm
        replicas = scaling.positions.shape[1]
        vector[scaling.positions[perm].ravel()] = np.repeat(scaling.factor, replicas)
    if np.all(vector == 1.0):
        return
    shape = [1] * tensor.ndim
    shape[axis] = -1
    factor = torch.as_tensor(vector, dtype=tensor.dtype, device=tensor.device)
    tensor.mul_(factor.view(shape))


def apply_affine_transform(
    model: nn.Module,
    spec: AffineSymmetrySpec,
    transform: AffineTransform,
    *,
    check: bool = True,
    example_inputs: Any = None,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
) -> nn.Module:
    """Return a copy of ``model`` with its weights moved by an affine element.

    The law: ``result(x) == model(x)`` for every input ``x``, up to rounding
    (see the module docstring for the formulas). ``model`` is not modified.
    The moved biases go into the linear element, which then writes every
    weight once; the unit scalings multiply that output in place. With
    ``check=True`` the outputs are compared on ``example_inputs`` (or the
    spec's) and :class:`FunctionChangedError` is raised on a deviation above
    ``atol + rtol * max|output|``.
    """
    if not isinstance(spec, AffineSymmetrySpec):
        raise InvalidArgumentError(f"spec must be an AffineSymmetrySpec, got {spec!r}")
    if not isinstance(transform, AffineTransform):
        raise InvalidArgumentError(
            f"transform must be an AffineTransform, got {transform!r}"
        )
    transform.check_fits(spec)
    tensors = _check_model_matches(model, spec.linear)
    with torch.no_grad():
        biases, scalings = _affine_parts(spec, transform.pairs, tensors)
        moved = transform_tensors(spec.linear, transform.linear, {**tensors, **biases})
        for (name, axis), items in scalings.items():
            value = moved.get(name)
            if value is None or value.data_ptr() == tensors[name].data_ptr():
                value = tensors[name].detach().clone()
            _scale_in_place(value, axis, items, transform)
            moved[name] = value
    result = _copy_with(model, {**biases, **moved}, tensors)
    if check:
        inputs = spec.example_inputs if example_inputs is None else example_inputs
        if inputs is None:
            raise InvalidArgumentError(
                "check=True needs example_inputs (the spec has none stored)"
            )
        report = check_function_preserved(model, result, inputs, rtol=rtol, atol=atol)
        if not report.ok:
            raise FunctionChangedError(
                f"the transformed model's outputs changed: {report.summary()}",
                evidence=report,
            )
    return result

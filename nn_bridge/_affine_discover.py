"""Find the affine sites of a model next to its linear spec.

A site qualifies when one Linear or convolution produces it, one catalogue
activation with extra affine pairs follows, and only Linear weights (through
flattens) or unpadded convolutions read the activations. The formulas that
apply the pairs are in :mod:`nn_bridge._affine`.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from torch import nn

from ._affine import (
    ZERO_TOL,
    AffineSite,
    AffineSymmetrySpec,
    Consumer,
)
from ._check import split_inputs
from ._errors import InvalidArgumentError
from ._spec import Site, SymmetrySpec

logger = logging.getLogger(__name__)

#: ATen ops that produce a site's preactivation: ``(input, weight, bias, ...)``.
PRODUCER_OPS = ("aten.linear.default", "aten.conv1d.default", "aten.conv2d.default")

#: Data-movement ops allowed between the activation and a Linear consumer.
FLATTEN_OPS = (
    "aten.flatten.using_ints",
    "aten.view.default",
    "aten.reshape.default",
    "aten._unsafe_view.default",
)


def _param_names(program: Any) -> dict[str, str]:
    return {
        spec.arg.name: spec.target
        for spec in program.graph_signature.input_specs
        if spec.kind.name in ("PARAMETER", "BUFFER")
    }


def _consumers_of(node: Any, params: dict[str, str]) -> tuple[list[Consumer], str]:
    """Consumers of an activation node, or an empty list and the reason."""
    consumers: list[Consumer] = []
    frontier = [node]
    while frontier:
        current = frontier.pop()
        for user in current.users:
            target = str(user.target)
            if target in FLATTEN_OPS and user.args[0] is current:
                frontier.append(user)
                continue
            if target not in PRODUCER_OPS or user.args[0] is not current:
                return (
                    [],
                    f"its output reaches {target}, which cannot absorb a constant",
                )
            weight = params.get(getattr(user.args[1], "name", ""))
            if weight is None:
                return [], f"{target} reads a weight that is not a model parameter"
            if target != "aten.linear.default":
                padding = user.args[4] if len(user.args) > 4 else 0
                groups = user.args[6] if len(user.args) > 6 else 1
                if any(int(p) != 0 for p in np.atleast_1d(padding)) or groups != 1:
                    return [], (
                        f"the convolution {weight} pads its input or has groups, so "
                        "a constant added to its input does not reach every output"
                    )
            bias_node = user.args[2] if len(user.args) > 2 else None
            bias = None if bias_node is None else params.get(bias_node.name)
            consumers.append(Consumer(weight, bias))
    if not consumers:
        return [], "no weight reads its output"
    return consumers, ""


def _activation_sites(program: Any) -> list[tuple[str, str | None, Any, Any, str]]:
    """``(producer weight, producer bias, activation, consumers, reason)`` rows."""
    import symgroups

    params = _param_names(program)
    rows = []
    for node in program.graph.nodes:
        if str(node.target) not in PRODUCER_OPS or len(node.users) != 1:
            continue
        weight = params.get(getattr(node.args[1], "name", ""))
        if weight is None:
            continue
        bias_node = node.args[2] if len(node.args) > 2 else None
        bias = None if bias_node is None else params.get(bias_node.name)
        (act,) = node.users
        if not act.args or act.args[0] is not node:
            continue
        try:
            activation = symgroups.activation_from_aten(
                str(act.target), tuple(act.args[1:]), dict(act.kwargs)
            )
        except symgroups.SymgroupsError:
            activation = None
        if activation is None:
            continue
        consumers, reason = _consumers_of(act, params)
        rows.append((weight, bias, activation, consumers, reason))
    return rows


def _usable(group: Any, bias: str | None, consumers: list[Consumer]) -> str:
    """Return why the pairs of ``group`` cannot be used here, or ``""``."""
    elements = group.finite_elements()
    if elements is not None:
        lam = np.array([float(e[0]) for e in elements])
        a = np.array([float(e[1]) for e in elements])
    else:
        # NOTE: an infinite group is judged by 64 sampled pairs, which find
        # a != 0 or b != 0 unless almost every pair lacks them.
        lam, a = group.sample(np.random.default_rng(0), 64)
    mu, b = group.mu_b(lam, a)
    if bias is None and np.any(np.abs(a) > ZERO_TOL):
        return "the producer has no bias (bias=False), so it cannot add a"
    missing = [c.weight for c in consumers if c.bias is None]
    if missing and np.any(np.abs(b) > ZERO_TOL):
        return (
            f"the consumer {missing[0]} has no bias (bias=False), so it cannot "
            "absorb the constant b"
        )
    return ""


def find_affine_symmetries(
    model: nn.Module, example_inputs: Any, *, linear: SymmetrySpec | None = None
) -> AffineSymmetrySpec:
    """Find the linear spec and the affine sites of ``model``.

    The law of the result: for every ``t = spec.sample()``,
    ``apply_affine_transform(model, spec, t)`` computes the same function as
    ``model``. An affine site is a linear site produced by one Linear or
    convolution, followed by a catalogue activation whose affine group
    (:func:`symgroups.query_affine`) adds pairs to the linear group, and read
    only by Linear or unpadded convolution weights (through flattens). Other
    sites keep their linear group; ``excluded`` gives the reason. ``linear`` reuses
    a spec already found for this model.
    """
    import symgroups

    from ._discover import _export, find_symmetries

    if not isinstance(model, nn.Module):
        raise InvalidArgumentError(f"model must be a torch.nn.Module, got {model!r}")
    if linear is None:
        linear = find_symmetries(model, example_inputs)
    args, kwargs = split_inputs(example_inputs)
    program = _export(model, args, kwargs)
    if isinstance(program, tuple):
        # _export returns (program, capture method) where it has a fallback.
        program = program[0]
    by_weight: dict[str, Site] = {}
    for site in linear.sites:
        for action in site.actions:
            if action.side == "out" and site.kind == "monomial":
                by_weight.setdefault(action.tensor, site)
    cache: dict[str, Any] = {}
    sites: list[AffineSite] = []
    excluded: dict[str, str] = {}
    for weight, bias, activation, consumers, reason in _activation_sites(program):
        site = by_weight.get(weight)
        if site is None:
            continue
        key = activation.cache_key()
        if key not in cache:
            cache[key] = symgroups.query_affine(activation)
        result = cache[key]
        reason = reason or _site_reason(site, result, weight, bias, consumers)
        if reason:
            excluded[site.name] = f"{key}: {reason}"
            continue
        sites.append(
            AffineSite(
                site.name,
                key,
                result.status,
                result.group,
                weight,
                bias,
                tuple(consumers),
                [result.extension],
            )
        )
    spec = AffineSymmetrySpec(linear, sites, excluded)
    spec.example_inputs = example_inputs
    return spec


def _site_reason(
    site: Site, result: Any, weight: str, bias: str | None, consumers: list[Consumer]
) -> str:
    group = result.group
    if group is None:
        return f"its affine group is undecided ({'; '.join(result.notes)})"
    if group.kind == "full":
        # TODO: translations of a linear activation need a bias on every
        # consumer; the linear group already moves these units by GL(n).
        return "the activation is affine; the linear spec already treats it"
    if result.extension.startswith("nothing"):
        return "its affine group adds nothing to the linear group"
    expected = {weight, bias} - {None}
    producers = {a.tensor for a in site.actions if a.side == "out"}
    if producers != expected:
        return (
            f"the site also moves {sorted(producers - expected)}, which the affine "
            "map does not handle"
        )
    readers = {a.tensor for a in site.actions if a.side == "in"}
    if readers != {c.weight for c in consumers}:
        return "the site's consumers differ from the weights that read the activation"
    return _usable(group, bias, consumers)

"""Find the weight-space symmetries of a model: capture, analyse, assemble."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.utils._pytree as pytree
from torch import nn

from ._analysis import Analysis, AttentionCore, RawAction, UnsupportedOp
from ._apply import model_tensors
from ._check import split_inputs
from ._errors import CaptureError, InvalidArgumentError
from ._groups import Resolver, SymgroupsResolver
from ._scalars import IDENTITY, solve_scalar_group
from ._spec import Action, Component, ExcludedSite, Site, SymmetrySpec, TensorInfo

logger = logging.getLogger(__name__)


def _inventory(model: nn.Module) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """Every parameter and buffer by canonical name, and the tied aliases."""
    infos: dict[str, TensorInfo] = {}
    canonical_of: dict[int, str] = {}
    aliases: dict[str, str] = {}
    parameters = {id(p) for p in model.parameters()}
    for name, tensor in model_tensors(model).items():
        first = canonical_of.setdefault(id(tensor), name)
        if first != name:
            aliases[name] = first
            continue
        kind = "parameter" if id(tensor) in parameters else "buffer"
        dtype = str(tensor.dtype).removeprefix("torch.")
        infos[name] = TensorInfo(tuple(tensor.shape), dtype, kind)
    return infos, aliases


def _first_line(error: BaseException) -> str:
    text = str(error)
    return text.splitlines()[0] if text else ""


def _export(model: nn.Module, args: tuple, kwargs: dict) -> Any:
    """Capture the ATen graph of ``model`` (:func:`_capture` without the method)."""
    return _capture(model, args, kwargs)[0]


def _capture(model: nn.Module, args: tuple, kwargs: dict) -> tuple[Any, str]:
    """Capture the ATen graph of ``model``; return it and the method used.

    ``torch.export`` comes first. Where it fails, ``torch.fx.symbolic_trace``
    captures a module-level graph, and ``make_fx`` lowers that graph to ATen
    ops for the analysis. A symbolic trace fails on data-dependent control
    flow, so the lowered graph is valid for every input, as an exported one
    is.
    """
    try:
        return torch.export.export(model, args, kwargs, strict=False), "torch.export"
    except Exception as error:  # torch.export raises many unrelated types
        export_error = error
    try:
        program = _trace_fx(model, args, kwargs)
    except Exception as error:  # noqa: BLE001 - both failures are reported
        raise CaptureError(
            f"torch.export could not capture {type(model).__name__}: "
            f"{type(export_error).__name__}: {_first_line(export_error)}; the "
            f"torch.fx fallback failed too: {type(error).__name__}: "
            f"{_first_line(error)}"
        ) from export_error
    logger.warning(
        "torch.export could not capture %s (%s: %s); captured it with "
        "torch.fx.symbolic_trace instead",
        type(model).__name__,
        type(export_error).__name__,
        _first_line(export_error),
    )
    return program, "torch.fx"


@dataclass(frozen=True)
class _Placeholder:
    name: str


@dataclass(frozen=True)
class _InputKind:
    name: str


@dataclass(frozen=True)
class _InputSpec:
    kind: _InputKind
    arg: _Placeholder
    target: str | None


@dataclass
class _TracedProgram:
    """The parts of a ``torch.export.ExportedProgram`` that the analysis reads."""

    graph: Any
    input_specs: list[_InputSpec]
    constants: dict[str, Any] = field(default_factory=dict)

    @property
    def graph_signature(self) -> _TracedProgram:
        return self


def _trace_fx(model: nn.Module, args: tuple, kwargs: dict) -> _TracedProgram:
    """Symbolically trace ``model`` and lower the graph to ATen ops."""
    from torch.func import functional_call
    from torch.fx.experimental.proxy_tensor import make_fx

    if kwargs:
        raise CaptureError("the torch.fx fallback takes positional inputs only")
    graph_module = torch.fx.symbolic_trace(model)
    state = dict(graph_module.named_parameters())
    state.update(graph_module.named_buffers())
    names = list(state)

    def call(tensors: list[torch.Tensor], *inputs: Any) -> Any:
        return functional_call(
            graph_module, dict(zip(names, tensors, strict=True)), inputs
        )

    with torch.no_grad():
        lowered = make_fx(call, pre_dispatch=True)(
            [t.detach() for t in state.values()], *args
        )
    placeholders = [n for n in lowered.graph.nodes if n.op == "placeholder"]
    parameters = {name for name, _ in graph_module.named_parameters()}
    specs = []
    for index, node in enumerate(placeholders):
        if index < len(names):
            kind = "PARAMETER" if names[index] in parameters else "BUFFER"
            target = names[index]
        else:
            kind, target = "USER_INPUT", None
        specs.append(_InputSpec(_InputKind(kind), _Placeholder(node.name), target))
    return _TracedProgram(lowered.graph, specs)


def _bindings(
    program: Any, model: nn.Module, args: tuple, kwargs: dict, canonical: dict[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Values for the exported graph's placeholders and their state-dict names."""
    tensors = model_tensors(model)
    user_inputs = pytree.tree_flatten((args, kwargs))[0]
    bindings: dict[str, Any] = {}
    names: dict[str, str] = {}
    user_index = 0
    for spec in program.graph_signature.input_specs:
        placeholder = spec.arg.name
        kind = spec.kind.name
        if kind in ("PARAMETER", "BUFFER"):
            tensor = tensors[spec.target].detach()
            # Buffers may be updated in place (BatchNorm statistics), so the
            # analysis runs on copies and the model stays untouched.
            bindings[placeholder] = tensor.clone() if kind == "BUFFER" else tensor
            names[placeholder] = canonical.get(spec.target, spec.target)
        elif kind == "CONSTANT_TENSOR":
            bindings[placeholder] = program.constants[spec.target]
        elif kind == "USER_INPUT":
            bindings[placeholder] = user_inputs[user_index]
            user_index += 1
        else:
            raise CaptureError(f"exported graph input kind {kind} is not supported")
    return bindings, names


def find_symmetries(
    model: nn.Module,
    example_inputs: Any,
    *,
    resolver: Resolver | None = None,
) -> SymmetrySpec:
    """Find the hidden-unit sites of ``model`` and the group acting on each.

    The law of the result: for every element ``t = spec.sample()``,
    ``apply_transform(model, spec, t)`` computes the same function as
    ``model`` on inputs shaped like ``example_inputs`` (a tensor, a tuple of
    positional arguments or a dict of keyword arguments). The graph is
    captured with ``torch.export.export(strict=False)``, or where that fails
    with ``torch.fx.symbolic_trace`` lowered to ATen ops by ``make_fx``
    (positional inputs only); ``spec.capture`` names the method. The model is
    not modified. ``resolver`` maps an elementwise ATen op to its group
    (default: :class:`SymgroupsResolver`, which calls ``symgroups.query``).

    Raises
    ------
    CaptureError
        If the graph cannot be captured.
    """
    if not isinstance(model, nn.Module):
        raise InvalidArgumentError(f"model must be a torch.nn.Module, got {model!r}")
    args, kwargs = split_inputs(example_inputs)
    infos, aliases = _inventory(model)
    canonical = dict(aliases)
    program, capture = _capture(model, args, kwargs)
    bindings, names = _bindings(program, model, args, kwargs, canonical)
    analysis = Analysis(resolver or SymgroupsResolver(), canonical, lambda node: "")
    try:
        analysis.run(program.graph, bindings, names)
    except UnsupportedOp as error:
        raise CaptureError(f"the exported graph cannot be analysed: {error}") from None
    spec = assemble(analysis, infos, aliases, capture=capture)
    spec.example_inputs = example_inputs
    spec.validate()
    return spec


# ----------------------------------------------------------------------
# Assembly


def _unique(name: str, used: set[str]) -> str:
    candidate, index = name, 2
    while candidate in used:
        candidate = f"{name}#{index}"
        index += 1
    used.add(candidate)
    return candidate


def _unit_site(
    analysis: Analysis, members: list[int], actions: list[RawAction], name: str
) -> Site:
    table = analysis.table
    roots: list[int] = []
    for member in members:
        root = table.same_root(member)
        if root not in roots:
            roots.append(root)
    index_of = {root: i for i, root in enumerate(roots)}
    size = table.spaces[members[0]].size

    # A dense matrix passes only linear ops: one scale component, no op that
    # needs monomial elements, and every factor the identity character.
    general = (
        len(roots) == 1
        and not any(m in table.monomial for m in members)
        and all(len(a.factors) == 1 and a.factors[0][1] == IDENTITY for a in actions)
    )

    notes: list[str] = []
    for member in members:
        for note in table.notes.get(member, []):
            if note not in notes:
                notes.append(note)
    colours, whole = _site_colours(table, members)
    if colours is not None:
        general = False
    if general:
        orthogonal = any(m in analysis.orthogonal for m in members)
        site_actions = [Action(a.tensor, a.axis, a.side, a.positions) for a in actions]
        return Site(
            name,
            "general_linear",
            size,
            site_actions,
            orthogonal=orthogonal,
            notes=notes,
        )

    components = []
    for root in roots:
        constraints = [
            c
            for m in members
            if table.same_root(m) == root
            for c in table.constraints.get(m, [])
        ]
        scalars, limiting = solve_scalar_group(constraints)
        origin = table.spaces[root].origin
        components.append(Component(origin, scalars))
        for reason in limiting:
            if reason not in notes and not any(reason in note for note in notes):
                notes.append(f"{origin}: scalings limited by {reason}")
    site_actions = [
        Action(
            a.tensor,
            a.axis,
            a.side,
            a.positions,
            tuple(
                (index_of[table.same_root(space)], char) for space, char in a.factors
            ),
        )
        for a in actions
    ]
    return Site(
        name,
        "monomial",
        size,
        site_actions,
        tuple(components),
        colours=colours,
        notes=notes,
        permute_colours=whole,
    )


def _site_colours(table: Any, members: list[int]) -> tuple[np.ndarray | None, bool]:
    """Colours of a unit site from the group structures of its member spaces.

    Units share a colour when every grouping puts them in the same group.
    Whole groups may move only when a single grouping is present.
    """
    found = [entry for member in members for entry in table.colours.get(member, [])]
    if not found:
        return None, False
    stacked = np.stack([colours for colours, _ in found], axis=1)
    _, inverse = np.unique(stacked, axis=0, return_inverse=True)
    # NOTE: two different groupings of one site (two GroupNorms with other
    # group counts) may allow some whole-group moves together. The colours
    # cannot express them, so only moves within classes are kept.
    single = len({colours.tobytes() for colours, _ in found}) == 1
    whole = single and all(flag for _, flag in found)
    return inverse.ravel().astype(np.int64), whole


def _attention_site(
    analysis: Analysis,
    core: AttentionCore,
    classes: dict[int, list[int]],
    actions: dict[int, list[RawAction]],
    name: str,
) -> Site | str:
    table = analysis.table
    roots = [table.coupled_root(s) for s in (core.q_space, core.k_space, core.v_space)]
    if len(set(roots)) != 3:
        return "query, key and value units are joined"
    for root in roots:
        for member in classes[root]:
            if member in table.excluded:
                return table.excluded[member]
    site_actions = []
    for root, fibre in zip(roots, ("q", "k", "v"), strict=True):
        for a in actions[root]:
            site_actions.append(
                Action(a.tensor, a.axis, a.side, a.positions, (), fibre)
            )

    def block_group(class_roots: list[int]) -> str:
        members = [m for root in class_roots for m in classes[root]]
        if not core.linear_qkv or any(m in table.monomial for m in members):
            return "identity"
        if any(len(classes[root]) != 1 for root in class_roots):
            return "identity"
        return "general_linear"

    return Site(
        name,
        "attention",
        core.heads,
        site_actions,
        qk_dim=core.qk_dim,
        vo_dim=core.vo_dim,
        permute_heads=True,
        qk_group=block_group(roots[:2]),
        vo_group=block_group(roots[2:]),
        notes=[
            f"attention with {core.heads} heads of {core.qk_dim} (query/key) "
            f"and {core.vo_dim} (value)"
        ],
    )


def assemble(
    analysis: Analysis,
    infos: dict[str, TensorInfo],
    aliases: dict[str, str],
    capture: str,
) -> SymmetrySpec:
    """Turn the analysis's spaces, actions and constraints into a spec."""
    table = analysis.table
    classes: dict[int, list[int]] = defaultdict(list)
    for space in table.spaces:
        classes[table.coupled_root(space.id)].append(space.id)
    actions: dict[int, list[RawAction]] = defaultdict(list)
    for action in analysis.actions:
        actions[table.coupled_root(action.space)].append(action)
    claimed = {}
    for core in analysis.cores:
        for space in (core.q_space, core.k_space, core.v_space):
            claimed[table.coupled_root(space)] = core
    used: set[str] = set()
    sites: list[Site] = []
    excluded: list[ExcludedSite] = []
    reasons_of_tensor: dict[str, str] = {}

    def exclude(name: str, size: int, reason: str, roots: list[int]) -> None:
        touched = sorted({a.tensor for root in roots for a in actions[root]})
        excluded.append(ExcludedSite(name, size, reason, tuple(touched)))
        for tensor in touched:
            reasons_of_tensor.setdefault(
                tensor, f"its hidden units ({name}) are excluded: {reason}"
            )

    for core in analysis.cores:
        site = _attention_site(
            analysis, core, classes, actions, _unique(core.name, used)
        )
        roots = [
            table.coupled_root(s) for s in (core.q_space, core.k_space, core.v_space)
        ]
        if isinstance(site, str):
            exclude(core.name, core.heads, site, roots)
        else:
            sites.append(site)
    for root in sorted(classes, key=lambda r: min(classes[r])):
        if root in claimed:
            continue
        members = sorted(classes[root])
        origin = table.spaces[members[0]].origin
        size = table.spaces[members[0]].size
        reasons = [table.excluded[m] for m in members if m in table.excluded]
        if reasons:
            exclude(origin, size, reasons[0], [root])
            continue
        if not actions[root]:
            continue
        sites.append(
            _unit_site(analysis, members, actions[root], _unique(origin, used))
        )
    acted = {a.tensor for site in sites for a in site.actions}
    invariant = {}
    for name, info in infos.items():
        if name in acted:
            continue
        if not info.is_float:
            invariant[name] = f"{info.dtype} tensor, not transformed"
        else:
            invariant[name] = reasons_of_tensor.get(
                name, "no hidden-unit site acts on it"
            )
    return SymmetrySpec(
        sites,
        infos,
        invariant=invariant,
        excluded=excluded,
        aliases=aliases,
        capture=capture,
        notes=analysis.notes,
    )


def capture_graph(model: nn.Module, example_inputs: Any) -> Any:
    """Return the exported graph as a ``networkx.DiGraph`` of values and ops.

    Each node is one graph value, named as in the exported graph, with the
    attributes ``kind`` (``parameter``, ``buffer``, ``constant``, ``input``,
    ``op`` or ``output``), ``target`` (the ATen op, for ops) and ``tensor``
    (the state-dict name, for parameters and buffers). An edge ``a -> b``
    means that ``b`` reads ``a``.
    """
    import networkx as nx

    if not isinstance(model, nn.Module):
        raise InvalidArgumentError(f"model must be a torch.nn.Module, got {model!r}")
    args, kwargs = split_inputs(example_inputs)
    _, aliases = _inventory(model)
    program = _export(model, args, kwargs)
    kinds = {
        "PARAMETER": "parameter",
        "BUFFER": "buffer",
        "CONSTANT_TENSOR": "constant",
        "USER_INPUT": "input",
    }
    placeholders = {
        spec.arg.name: (kinds.get(spec.kind.name, spec.kind.name.lower()), spec.target)
        for spec in program.graph_signature.input_specs
    }
    graph = nx.DiGraph()
    for node in program.graph.nodes:
        if node.op == "placeholder":
            kind, target = placeholders[node.name]
            graph.add_node(node.name, kind=kind, tensor=aliases.get(target, target))
        elif node.op == "output":
            graph.add_node(node.name, kind="output")
        else:
            graph.add_node(node.name, kind="op", target=str(node.target))
        for used in node.all_input_nodes:
            graph.add_edge(used.name, node.name)
    return graph

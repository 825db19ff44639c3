"""Label propagation over a captured graph: which tensor axes carry which units.

Every producer (a Linear, convolution or embedding output) allocates a
*space* of fresh unit ids, and every value of the graph carries an int64
tensor of the same shape that names the unit at each position (-1 for
none) plus a replica id. Data-movement ops (view, permute, flatten, cat,
slicing ...) run unchanged on these label tensors, so the labels follow a
channel through ``permute(0, 3, 2, 1).view(n, -1)`` exactly. Other ops merge
spaces (residual additions), couple them (BatchNorm), record the actions on
parameters and the constraints on each space's scalar group, or exclude the
spaces they touch when the analysis does not understand them.
"""

from __future__ import annotations

import bisect
import copy
import logging
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ._analysis_attention import AttentionRules, Scores
from ._groups import ActivationGroup, Resolver
from ._scalars import (
    IDENTITY,
    POSITIVE_GROUP,
    SIGN_GROUP,
    TRIVIAL,
    TRIVIAL_GROUP,
    Char,
    ImageConstraint,
)

logger = logging.getLogger(__name__)


@dataclass
class ParamRef:
    """A parameter or buffer used as an op argument, possibly transposed.

    ``axes[k]`` is the parameter axis that axis ``k`` of the value reads
    (None: the identity), so ``W.t()`` is ``ParamRef(name, W, (1, 0))``.
    """

    name: str
    tensor: torch.Tensor
    axes: tuple[int, ...] | None = None

    def axis(self, view_axis: int) -> int:
        return view_axis if self.axes is None else self.axes[view_axis]


@dataclass
class Labels:
    """Unit and replica ids of one value, and each space's character in it."""

    units: torch.Tensor
    reps: torch.Tensor
    chars: dict[int, Char]

    def spaces(self, table: SpaceTable) -> list[int]:
        present = np.unique(self.units.numpy())
        present = present[present >= 0]
        return sorted({int(s) for s in np.unique(table.space_of(present))})


@dataclass
class RawAction:
    """An action recorded during the analysis, before sites are assembled."""

    tensor: str
    axis: int
    side: str
    space: int
    positions: np.ndarray
    factors: list[tuple[int, Char]]


@dataclass
class AttentionCore:
    """One attention call: the query, key and value spaces and the head layout."""

    name: str
    q_space: int
    k_space: int
    v_space: int
    heads: int
    qk_dim: int
    vo_dim: int
    linear_qkv: bool


@dataclass
class Space:
    """Unit ids ``base .. base + size - 1``; ``tensor`` is the producer's weight."""

    id: int
    base: int
    size: int
    origin: str
    tensor: str = ""


class SpaceTable:
    """Spaces of units with two union-find relations.

    ``same`` joins spaces whose units are the same (one permutation and one
    scale vector); ``coupled`` joins spaces that share the permutation but
    scale independently (the two sides of a BatchNorm). Both join aligned
    spaces of equal size: unit ``i`` of one is unit ``i`` of the other.
    """

    def __init__(self) -> None:
        self.spaces: list[Space] = []
        # Bases in increasing order and the id of the space at each, so that a
        # split space keeps its id and its pieces get new ones.
        self._bases: list[int] = []
        self._ids: list[int] = []
        self._lookup: tuple[np.ndarray, np.ndarray] | None = None
        self._same: list[int] = []
        self._coupled: list[int] = []
        self.next_unit = 0
        self.excluded: dict[int, str] = {}
        self.monomial: dict[int, str] = {}
        self.constraints: dict[int, list[ImageConstraint]] = {}
        self.notes: dict[int, list[str]] = {}
        #: Per space, ``(colour of each unit, whole)`` from every op that
        #: lets units move only within groups; ``whole`` allows moving whole
        #: groups onto each other too.
        self.colours: dict[int, list[tuple[np.ndarray, bool]]] = {}

    def new(self, size: int, origin: str) -> Space:
        space = Space(len(self.spaces), self.next_unit, int(size), origin)
        self.spaces.append(space)
        self._bases.append(space.base)
        self._ids.append(space.id)
        self._lookup = None
        self._same.append(space.id)
        self._coupled.append(space.id)
        self.next_unit += space.size
        return space

    def space_of(self, units: np.ndarray) -> np.ndarray:
        if self._lookup is None:
            self._lookup = (np.asarray(self._bases), np.asarray(self._ids))
        bases, ids = self._lookup
        return ids[np.searchsorted(bases, units, side="right") - 1]

    def members(self, space: int) -> list[int]:
        """Return the spaces coupled with ``space``, itself included."""
        root = self.coupled_root(space)
        return [s.id for s in self.spaces if self.coupled_root(s.id) == root]

    def split(self, space: int, cuts: Sequence[int]) -> list[Space]:
        """Cut one space into consecutive pieces at the unit offsets ``cuts``.

        The units keep their ids. Piece ``j`` contains the units from
        ``cuts[j - 1]`` to ``cuts[j] - 1`` of the old space, and the first
        piece keeps the old id. Exclusions, constraints and notes are copied
        to every piece. Only a space joined with no other can be split,
        because a join pairs all of its units with another space's.
        """
        old = self.spaces[space]
        bounds = [0, *sorted(int(c) for c in cuts), old.size]
        if self.members(space) != [space]:
            raise UnsupportedOp(
                f"{old.origin}: its units are split into parts after being joined "
                "with other units"
            )
        pieces = [old]
        for start, stop in zip(bounds[1:-1], bounds[2:], strict=True):
            piece = Space(
                len(self.spaces), old.base + start, stop - start, old.origin, old.tensor
            )
            self.spaces.append(piece)
            self._same.append(piece.id)
            self._coupled.append(piece.id)
            index = bisect.bisect_right(self._bases, piece.base)
            self._bases.insert(index, piece.base)
            self._ids.insert(index, piece.id)
            for table in (self.excluded, self.monomial, self.constraints, self.notes):
                if space in table:
                    table[piece.id] = copy.copy(table[space])
            if space in self.colours:
                self.colours[piece.id] = [
                    (colours[start:stop], False) for colours, _ in self.colours[space]
                ]
            pieces.append(piece)
        if space in self.colours:
            self.colours[space] = [
                (colours[: bounds[1]], False) for colours, _ in self.colours[space]
            ]
        old.size = bounds[1]
        self._lookup = None
        return pieces

    @staticmethod
    def _find(parent: list[int], item: int) -> int:
        root = item
        while parent[root] != root:
            root = parent[root]
        while parent[item] != root:
            parent[item], item = root, parent[item]
        return root

    def same_root(self, space: int) -> int:
        return self._find(self._same, space)

    def coupled_root(self, space: int) -> int:
        return self._find(self._coupled, space)

    def merge_same(self, a: int, b: int) -> None:
        self._same[self.same_root(b)] = self.same_root(a)
        self.merge_coupled(a, b)

    def merge_coupled(self, a: int, b: int) -> None:
        self._coupled[self.coupled_root(b)] = self.coupled_root(a)

    def exclude(self, space: int, reason: str) -> None:
        if space not in self.excluded:
            logger.debug("excluding %s: %s", self.spaces[space].origin, reason)
            self.excluded[space] = reason

    def require_monomial(self, space: int, reason: str) -> None:
        self.monomial.setdefault(space, reason)

    def constrain(self, space: int, char: Char, bound: Any, reason: str) -> None:
        self.constraints.setdefault(space, []).append(
            ImageConstraint(char, bound, reason)
        )

    def note(self, space: int, text: str) -> None:
        notes = self.notes.setdefault(space, [])
        if text not in notes:
            notes.append(text)


class UnsupportedOp(Exception):
    """Internal: an op touches labelled values in a way the analysis rejects."""


def _op_name(target: Any) -> str:
    return str(target)


def _base_name(target: Any) -> str:
    packet = getattr(target, "overloadpacket", None)
    name = getattr(packet, "__name__", None) or getattr(target, "__name__", str(target))
    return name.rstrip("_") if name.endswith("_") and not name.startswith("_") else name


#: Ops that only move or copy data: run unchanged on the label tensors.
DATA_MOVEMENT = {
    "view",
    "_unsafe_view",
    "reshape",
    "permute",
    "transpose",
    "t",
    "unsqueeze",
    "squeeze",
    "expand",
    "flatten",
    "unflatten",
    "slice",
    "select",
    "narrow",
    "split",
    "split_with_sizes",
    "chunk",
    "unbind",
    "cat",
    "stack",
    "contiguous",
    "clone",
    "alias",
    "detach",
    "index_select",
    "index",
    "flip",
    "roll",
    "repeat",
    "movedim",
    "swapaxes",
    "lift_fresh_copy",
    "pixel_shuffle",
    "pixel_unshuffle",
    "channel_shuffle",
    "expand_as",
    "view_as",
    "reshape_as",
    "gather",
    "repeat_interleave",
    "unfold",
    "numpy_T",
    "mT",
}

#: Ops that convert dtype or device: labels pass unchanged.
CONVERSIONS = {"to", "_to_copy", "type_as", "float", "double", "half", "bfloat16"}

#: Ops that leave the values unchanged in eval mode and are random masks in
#: training mode; the check switches them off.
DROPOUTS = {
    "dropout",
    "feature_dropout",
    "alpha_dropout",
    "feature_alpha_dropout",
    "native_dropout",
}

#: Ops with no effect on values.
IGNORED = {
    "_assert_tensor_metadata",
    "_assert_scalar",
    "sym_constrain_range_for_size",
    "_assert_async",
    "sym_size",
    "sym_numel",
    "sym_stride",
}

#: Linear pooling ops (they commute with every channel-mixing matrix).
AVERAGE_POOLS = {
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool3d",
}

#: Max pooling commutes with positive scalings of channels only.
MAX_POOLS = {
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "adaptive_max_pool3d",
    "max_pool2d_with_indices",
    "max_pool3d_with_indices",
    "max_pool1d_with_indices",
}

#: Spatial dimensions of each pooling op.
POOL_DIMS = {"1d": 1, "2d": 2, "3d": 3}


class Analysis(AttentionRules):
    """Propagate labels through one graph and collect actions and constraints."""

    def __init__(
        self,
        resolver: Resolver,
        canonical: dict[str, str],
        module_paths: Callable[[Any], str],
    ) -> None:
        self.table = SpaceTable()
        self.resolver = resolver
        self.canonical = canonical
        self.module_path = module_paths
        self.actions: list[RawAction] = []
        self.cores: list[AttentionCore] = []
        self.claimed: dict[int, str] = {}
        self.notes: list[str] = []
        self._axis_actions: dict[tuple[str, int], list[int]] = {}
        #: Tensor axes that some use reads with no hidden units on them (a
        #: layer applied to the model input, say), with the reason. A shared
        #: tensor must not move along such an axis in any of its uses.
        self._pinned: dict[tuple[str, int], str] = {}
        #: Spaces that act on a tensor from both sides (tied weights), whose
        #: general linear elements must be orthogonal.
        self.orthogonal: set[int] = set()
        #: Labels of the values still in use during :meth:`run`, whose
        #: characters :meth:`split_space` extends to the new pieces.
        self._live: dict[Any, Any] = {}

    # ------------------------------------------------------------------
    # Helpers

    def fresh(
        self, shape: Sequence[int], axis: int, origin: str
    ) -> tuple[Labels, Space]:
        """Labels for a producer output: a new space along ``axis``."""
        size = shape[axis]
        space = self.table.new(size, origin)
        view = [1] * len(shape)
        view[axis] = size
        units = (space.base + torch.arange(size)).view(view).expand(*shape).contiguous()
        return Labels(units, self.fresh_reps(shape, axis), {space.id: IDENTITY}), space

    @staticmethod
    def fresh_reps(shape: Sequence[int], axis: int) -> torch.Tensor:
        other = [s for i, s in enumerate(shape) if i != axis]
        count = int(np.prod(other)) if other else 1
        reps = (
            torch.arange(count).view(*other)
            if other
            else torch.zeros((), dtype=torch.long)
        )
        return reps.unsqueeze(axis).expand(*shape).contiguous()

    def exclude_all(self, labels: Labels | None, reason: str) -> None:
        if labels is None:
            return
        for space in labels.spaces(self.table):
            self.table.exclude(space, reason)

    def axis_units(
        self, labels: Labels, axis: int, op: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """Units and replicas along ``axis``, which must not vary along other axes."""
        units = labels.units.movedim(axis, -1).reshape(-1, labels.units.shape[axis])
        reps = labels.reps.movedim(axis, -1).reshape(-1, labels.reps.shape[axis])
        if units.shape[0] and not bool((units == units[:1]).all()):
            raise UnsupportedOp(f"{op}: the hidden units vary along other axes")
        if units.shape[0] == 0:
            return np.full(labels.units.shape[axis], -1), np.zeros(
                labels.units.shape[axis], dtype=np.int64
            )
        return units[0].numpy().copy(), reps[0].numpy().copy()

    def positions(
        self, units: np.ndarray, reps: np.ndarray, space: Space, op: str
    ) -> np.ndarray:
        """Return ``positions[i, r]``, the index of replica ``r`` of unit ``i``."""
        index = np.flatnonzero(
            (units >= space.base) & (units < space.base + space.size)
        )
        local = units[index] - space.base
        counts = np.bincount(local, minlength=space.size)
        if counts.min() == 0 or counts.max() != counts.min():
            raise UnsupportedOp(
                f"{op}: only part of the units of {space.origin} reach it"
            )
        order = np.lexsort((reps[index], local))
        return index[order].reshape(space.size, counts[0])

    def record(
        self,
        tensor: str,
        axis: int,
        side: str,
        space: Space,
        positions: np.ndarray,
        factors: list[tuple[int, Char]],
    ) -> None:
        """Record an action; a second action on the same positions must agree."""
        tensor = self.canonical.get(tensor, tensor)
        key = (tensor, axis)
        if key in self._pinned:
            self.table.exclude(space.id, self._pinned[key])
        for index in self._axis_actions.get(key, []):
            other = self.actions[index]
            overlap = np.intersect1d(other.positions.ravel(), positions.ravel())
            if overlap.size == 0:
                continue
            if other.positions.shape != positions.shape or not np.array_equal(
                other.positions, positions
            ):
                for s in (other.space, space.id):
                    self.table.exclude(s, f"tensor {tensor!r} is used with two layouts")
                return
            # A tied tensor: both uses see one element, so the two factors must
            # agree (same side) or cancel (out and in).
            self.table.merge_same(other.space, space.id)
            combined = Char(0, 0)
            for _, char in other.factors:
                combined = combined * char
            for _, char in factors:
                combined = combined * (char.inverse() if side == other.side else char)
            reason = f"tied tensor {tensor!r}"
            self.table.constrain(space.id, combined, TRIVIAL_GROUP, reason)
            if side != other.side:
                self.orthogonal.add(space.id)
            return
        self._axis_actions.setdefault(key, []).append(len(self.actions))
        self.actions.append(RawAction(tensor, axis, side, space.id, positions, factors))

    def split_space(self, space: Space, cuts: Sequence[int]) -> list[Space]:
        """Split ``space`` into pieces, with its recorded actions and characters.

        Each action on the space is cut into one action per piece, with the
        rows of that piece's units, so the pieces act like separate producers.
        """
        pieces = self.table.split(space.id, cuts)
        offsets = np.cumsum([0] + [piece.size for piece in pieces])
        for index, action in enumerate(list(self.actions)):
            if action.space != space.id:
                continue
            rows = action.positions
            key = (action.tensor, action.axis)
            for piece, start, stop in zip(pieces, offsets, offsets[1:], strict=False):
                factors = [
                    (piece.id if s == space.id else s, char)
                    for s, char in action.factors
                ]
                part = RawAction(
                    action.tensor,
                    action.axis,
                    action.side,
                    piece.id,
                    rows[start:stop],
                    factors,
                )
                if piece.id == space.id:
                    self.actions[index] = part
                else:
                    self._axis_actions.setdefault(key, []).append(len(self.actions))
                    self.actions.append(part)
        if space.id in self.orthogonal:
            self.orthogonal.update(piece.id for piece in pieces)
        for value in self._live.values():
            for leaf in _leaves(value):
                for labels in _labels_in(leaf):
                    if space.id in labels.chars:
                        for piece in pieces:
                            labels.chars.setdefault(piece.id, labels.chars[space.id])
        logger.debug("split %s into %s", space.origin, [p.size for p in pieces])
        return pieces

    def space_at(self, unit: int) -> Space:
        return self.table.spaces[int(self.table.space_of(np.array([unit]))[0])]

    def spaces_along(self, units: np.ndarray) -> list[Space]:
        present = units[units >= 0]
        ids = (
            sorted({int(s) for s in self.table.space_of(present)})
            if present.size
            else []
        )
        return [self.table.spaces[i] for i in ids]

    # ------------------------------------------------------------------
    # Producers and consumers

    def pin(self, tensor: Any, axis: int, op: str) -> None:
        """Mark ``tensor``'s ``axis`` as fixed: a use reads it with no units.

        Every space with an action on that axis, recorded before or after,
        is excluded, because moving the axis would change this use.
        ``tensor`` may be a :class:`ParamRef`, a name or None (no tensor).
        """
        if isinstance(tensor, ParamRef):
            tensor = tensor.name
        if not isinstance(tensor, str):
            return
        tensor = self.canonical.get(tensor, tensor)
        key = (tensor, axis)
        reason = (
            f"{op}: tensor {tensor!r} is also used where its axis {axis} carries "
            "no hidden units"
        )
        self._pinned.setdefault(key, reason)
        for index in self._axis_actions.get(key, []):
            self.table.exclude(self.actions[index].space, reason)

    def pin_all(self, param: ParamRef, op: str) -> None:
        """:meth:`pin` every axis of ``param``."""
        for axis in range(param.tensor.dim()):
            self.pin(param.name, axis, op)

    def consume(
        self, labels: Labels | None, axis: int, tensor: str, weight_axis: int, op: str
    ) -> None:
        """Record the ``in`` actions of a weight that contracts ``axis``."""
        if labels is None:
            self.pin(tensor, weight_axis, op)
            return
        try:
            units, reps = self.axis_units(labels, axis, op)
            for space in self.spaces_along(units):
                positions = self.positions(units, reps, space, op)
                self.record(
                    tensor,
                    weight_axis,
                    "in",
                    space,
                    positions,
                    [(space.id, labels.chars[space.id])],
                )
        except UnsupportedOp as error:
            self.exclude_all(labels, str(error))

    def produce(
        self,
        shape: Sequence[int],
        axis: int,
        outputs: list[tuple[str, int]],
        origin: str,
    ) -> Labels:
        labels, space = self.fresh(shape, axis, origin)
        space.tensor = outputs[0][0] if outputs else ""
        positions = np.arange(space.size)[:, None]
        for tensor, tensor_axis in outputs:
            self.record(
                tensor, tensor_axis, "out", space, positions, [(space.id, IDENTITY)]
            )
        return labels

    # ------------------------------------------------------------------
    # Elementwise rules

    def apply_group(
        self, labels: Labels, group: ActivationGroup | None, what: str
    ) -> Labels:
        """Labels after an elementwise op with the given group (None: permutations)."""
        chars = dict(labels.chars)
        for space in labels.spaces(self.table):
            char = labels.chars[space]
            if group is not None and group.kind == "general_linear":
                continue
            self.table.require_monomial(space, what)
            if group is None or group.kind == "permutation":
                self.table.constrain(space, char, TRIVIAL_GROUP, what)
                self.table.note(space, f"{what}: permutations only")
                chars[space] = TRIVIAL
                continue
            self.table.constrain(space, char, group.scalars, group.describe())
            self.table.note(space, group.describe())
            chars[space] = group.mu.after(char)
        return Labels(labels.units, labels.reps, chars)

    def check_complete(self, labels: Labels, op: str) -> None:
        present = np.unique(labels.units.numpy())
        present = present[present >= 0]
        for space in self.spaces_along(present):
            inside = (present >= space.base) & (present < space.base + space.size)
            if int(inside.sum()) != space.size:
                self.table.exclude(
                    space.id, f"{op}: only part of the units of {space.origin} reach it"
                )

    # ------------------------------------------------------------------
    # Graph walk

    def run(
        self, graph: Any, bindings: dict[str, Any], param_names: dict[str, str]
    ) -> None:
        """Walk ``graph`` in order; ``bindings`` gives each placeholder's value.

        ``param_names`` maps placeholder names of parameters and buffers to
        their state-dict names.
        """
        nodes = list(graph.nodes)
        last_use: dict[Any, int] = {}
        for index, node in enumerate(nodes):
            for used in node.all_input_nodes:
                last_use[used] = index
        real: dict[Any, Any] = {}
        labels: dict[Any, Any] = {}
        self._live = labels
        for index, node in enumerate(nodes):
            if node.op == "placeholder":
                value = bindings[node.name]
                real[node] = value
                name = param_names.get(node.name)
                labels[node] = ParamRef(name, value) if name is not None else None
            elif node.op == "get_attr":
                value = _get_attr(graph.owning_module, node.target)
                real[node] = value
                name = param_names.get(node.target)
                labels[node] = ParamRef(name, value) if name is not None else None
            elif node.op == "call_function":
                args = _map_nodes(node.args, real)
                kwargs = _map_nodes(node.kwargs, real)
                with torch.no_grad():
                    out = node.target(*args, **kwargs)
                real[node] = out
                if not node.users and _base_name(node.target) not in ("add", "copy"):
                    labels[node] = None
                    continue
                label_args = _map_nodes(node.args, labels)
                label_kwargs = _map_nodes(node.kwargs, labels)
                try:
                    labels[node] = self.handle(
                        node, args, kwargs, label_args, label_kwargs, out
                    )
                except UnsupportedOp as error:
                    for leaf in _leaves((label_args, label_kwargs)):
                        for found in _labels_in(leaf):
                            self.exclude_all(found, str(error))
                    labels[node] = None
            elif node.op == "output":
                for leaf in _leaves(_map_nodes(node.args, labels)):
                    for found in _labels_in(leaf):
                        self.exclude_all(found, "its values reach a model output")
            else:
                raise UnsupportedOp(f"graph node kind {node.op!r} is not supported")
            for used in node.all_input_nodes:
                if last_use.get(used) == index:
                    real.pop(used, None)
                    labels.pop(used, None)

    def handle(
        self,
        node: Any,
        args: tuple,
        kwargs: dict,
        largs: tuple,
        lkwargs: dict,
        out: Any,
    ) -> Any:
        target = node.target
        name = _base_name(target)
        op = f"{_op_name(target)} ({node.name})"
        labelled = [
            leaf
            for leaf in _leaves((largs, lkwargs))
            if isinstance(leaf, (Labels, Scores))
        ]
        if target is operator.getitem:
            container = largs[0]
            if isinstance(container, (list, tuple)):
                return container[args[1]]
            if container is None or isinstance(container, ParamRef):
                return None
            return self.move(target, args, kwargs, largs, out)
        if name in IGNORED:
            return None
        if name in DATA_MOVEMENT and largs and isinstance(largs[0], ParamRef):
            moved = _moved_param(largs[0], name, args)
            if moved is None:
                self.pin_all(largs[0], op)
            return moved
        if not labelled and name not in (
            "linear",
            "addmm",
            "mm",
            "matmul",
            "embedding",
            "conv1d",
            "conv2d",
            "conv3d",
            "convolution",
        ):
            # No hidden units reach this op, so any tensor it reads must keep
            # every axis fixed in its other uses too.
            for leaf in _leaves((largs, lkwargs)):
                if isinstance(leaf, ParamRef):
                    self.pin_all(leaf, op)
            return None
        if any(isinstance(leaf, Scores) for leaf in labelled):
            if name in ("bmm", "matmul", "baddbmm"):
                return getattr(self, f"op_{name}")(
                    op, args, kwargs, largs, lkwargs, out
                )
            return self.score_op(name, op, args, kwargs, largs, out)
        if name in ("cat", "stack") and any(
            isinstance(piece, ParamRef) for piece in largs[0]
        ):
            largs = (self.params_as_data(op, args, kwargs, largs), *largs[1:])
        if name in DATA_MOVEMENT:
            return self.move(target, args, kwargs, largs, out)
        if name in CONVERSIONS:
            return largs[0]
        if name in DROPOUTS:
            return (largs[0], largs[0]) if isinstance(out, tuple) else largs[0]
        handler = getattr(self, f"op_{name}", None)
        if handler is not None:
            return handler(op, args, kwargs, largs, lkwargs, out)
        if name in AVERAGE_POOLS or name in MAX_POOLS:
            return self.pool(name, op, args, largs, out)
        if name in ("softmax", "_softmax", "log_softmax", "_log_softmax"):
            return self.apply_group(largs[0], None, f"softmax ({node.name})")
        tags = getattr(target, "tags", ())
        if torch.Tag.pointwise in tags:
            return self.pointwise(node, op, args, kwargs, largs, lkwargs, out)
        raise UnsupportedOp(f"{_op_name(target)} is not supported")

    # ------------------------------------------------------------------
    # Data movement

    def move(
        self, target: Any, args: tuple, kwargs: dict, largs: tuple, out: Any
    ) -> Any:
        first = largs[0]
        chars: dict[int, Char] = {}

        def pick(kind: str) -> Any:
            def one(label: Any, value: Any) -> Any:
                if isinstance(label, Labels):
                    for space, char in label.chars.items():
                        if space in chars and chars[space] != char:
                            self.table.constrain(
                                space,
                                chars[space] * char.inverse(),
                                TRIVIAL_GROUP,
                                "one unit appears with two characters",
                            )
                        chars.setdefault(space, char)
                    return label.units if kind == "units" else label.reps
                if isinstance(value, torch.Tensor):
                    fill = -1 if kind == "units" else 0
                    return torch.full(value.shape, fill, dtype=torch.long)
                return value

            if isinstance(first, (list, tuple)):
                return [
                    one(label, value)
                    for label, value in zip(first, args[0], strict=True)
                ]
            return one(first, args[0])

        units_arg = pick("units")
        reps_arg = pick("reps")
        units = target(units_arg, *args[1:], **kwargs)
        reps = target(reps_arg, *args[1:], **kwargs)
        if isinstance(units, (list, tuple)):
            return [Labels(u, r, dict(chars)) for u, r in zip(units, reps, strict=True)]
        return Labels(units, reps, chars)

    def params_as_data(self, op, args, kwargs, largs) -> list[Any]:
        """Give the parameters concatenated with hidden units those units.

        A class token ``cat([cls.expand(n, 1, d), tokens], 1)`` becomes part
        of the data, so it must move like the tokens it joins. It takes the
        units of a labelled piece along that piece's unit axis and gets an
        ``out`` action on the matching parameter axis.
        """
        pieces, values = list(largs[0]), args[0]
        dim = int(args[1]) if len(args) > 1 else int(kwargs.get("dim", 0))
        like = next((p for p in pieces if isinstance(p, Labels)), None)
        if like is None:
            return pieces
        varying = self._varying_axes(like)
        if len(varying) != 1 or varying[0] == dim % like.units.dim():
            raise UnsupportedOp(
                f"{op}: a parameter is concatenated with hidden units that vary "
                "along several axes or along the concatenated axis"
            )
        (axis,) = varying
        unit_row, rep_row = self.axis_units(like, axis, op)
        view = [1] * like.units.dim()
        view[axis] = len(unit_row)
        for index, piece in enumerate(pieces):
            if not isinstance(piece, ParamRef):
                continue
            value = values[index]
            param_axis = piece.axis(axis)
            if value.dim() != like.units.dim() or (
                piece.tensor.shape[param_axis] != len(unit_row)
            ):
                raise UnsupportedOp(
                    f"{op}: parameter {piece.name!r} does not line up with the "
                    "hidden units it is concatenated with"
                )
            for space in self.spaces_along(unit_row):
                positions = self.positions(unit_row, rep_row, space, op)
                self.record(
                    piece.name,
                    param_axis,
                    "out",
                    space,
                    positions,
                    [(space.id, like.chars[space.id])],
                )
            units = torch.as_tensor(unit_row).view(view).expand(*value.shape)
            reps = self.fresh_reps(value.shape, axis) + int(like.reps.max()) + 1
            pieces[index] = Labels(units.contiguous(), reps, dict(like.chars))
        return pieces

    # ------------------------------------------------------------------
    # Linear maps

    def _weight(self, value: Any, op: str) -> ParamRef:
        if isinstance(value, ParamRef):
            return value
        raise UnsupportedOp(f"{op}: the weight is not a parameter of the model")

    def _origin(self, param: ParamRef) -> str:
        name = self.canonical.get(param.name, param.name)
        return name.rsplit(".", 1)[0] if "." in name else name

    def op_linear(self, op, args, kwargs, largs, lkwargs, out):
        weight = self._weight(largs[1], op)
        bias = largs[2] if len(largs) > 2 else lkwargs.get("bias")
        self.consume(largs[0], args[0].dim() - 1, weight.name, weight.axis(1), op)
        outputs = [(weight.name, weight.axis(0))]
        if isinstance(bias, ParamRef):
            outputs.append((bias.name, 0))
        elif isinstance(args[2] if len(args) > 2 else None, torch.Tensor):
            raise UnsupportedOp(f"{op}: the bias is not a parameter of the model")
        return self.produce(out.shape, out.dim() - 1, outputs, self._origin(weight))

    def op_addmm(self, op, args, kwargs, largs, lkwargs, out):
        bias, weight = largs[0], self._weight(largs[2], op)
        self.consume(largs[1], 1, weight.name, weight.axis(0), op)
        outputs = [(weight.name, weight.axis(1))]
        if isinstance(bias, ParamRef):
            outputs.append((bias.name, 0 if bias.tensor.dim() == 1 else 1))
        elif isinstance(bias, Labels):
            raise UnsupportedOp(f"{op}: the bias carries hidden units")
        return self.produce(out.shape, 1, outputs, self._origin(weight))

    def op_mm(self, op, args, kwargs, largs, lkwargs, out):
        product = self.attention_product(op, args, largs, out)
        if product is not None:
            return product
        if not isinstance(largs[1], ParamRef) or args[1].dim() != 2:
            raise UnsupportedOp(
                f"{op}: only a product with a weight matrix is supported"
            )
        weight = largs[1]
        self.consume(largs[0], args[0].dim() - 1, weight.name, weight.axis(0), op)
        return self.produce(
            out.shape,
            out.dim() - 1,
            [(weight.name, weight.axis(1))],
            self._origin(weight),
        )

    op_matmul = op_mm
    op_bmm = op_mm

    def op_embedding(self, op, args, kwargs, largs, lkwargs, out):
        weight = self._weight(largs[0], op)
        if isinstance(largs[1], Labels):
            raise UnsupportedOp(f"{op}: the indices carry hidden units")
        return self.produce(
            out.shape, out.dim() - 1, [(weight.name, 1)], self._origin(weight)
        )

    def op_convolution(self, op, args, kwargs, largs, lkwargs, out):
        transposed = bool(args[6]) if len(args) > 6 else False
        groups = int(args[8]) if len(args) > 8 else 1
        return self._conv(op, args, largs, out, groups, transposed)

    def op_conv1d(self, op, args, kwargs, largs, lkwargs, out):
        groups = int(args[6]) if len(args) > 6 else int(kwargs.get("groups", 1))
        return self._conv(op, args, largs, out, groups, False)

    op_conv2d = op_conv1d
    op_conv3d = op_conv1d

    def _conv(self, op, args, largs, out, groups, transposed):
        weight = self._weight(largs[1], op)
        bias = largs[2] if len(largs) > 2 else None
        if transposed:
            # TODO: transposed convolutions store the weight as (in, out/groups, ...).
            raise UnsupportedOp(f"{op}: transposed convolutions are not supported")
        x = args[0]
        in_channels = x.shape[1]
        if groups == 1:
            self.consume(largs[0], 1, weight.name, 1, op)
            outputs = [(weight.name, 0)]
            if isinstance(bias, ParamRef):
                outputs.append((bias.name, 0))
            return self.produce(out.shape, 1, outputs, self._origin(weight))
        if weight.tensor.shape[1] == 1 and groups == in_channels:
            return self._depthwise(op, largs[0], weight, bias, out)
        # TODO: the input channels of group g may move by a permutation of
        # their own, which reorders axis 1 of only the rows of group g. An
        # Action moves a whole axis, so these units stay excluded.
        self.exclude_all(
            largs[0],
            f"{op}: grouped convolution with {groups} groups of several channels "
            "reads each input group with its own rows",
        )
        outputs = [(weight.name, 0)]
        if isinstance(bias, ParamRef):
            outputs.append((bias.name, 0))
        labels = self.produce(out.shape, 1, outputs, self._origin(weight))
        channels = out.shape[1]
        for space in labels.spaces(self.table):
            # Output group g reads input group g, so an output channel may
            # move only inside its group.
            colours = np.arange(channels) // (channels // groups)
            self.table.colours.setdefault(space, []).append((colours, False))
        return labels

    def _depthwise(self, op, labels, weight, bias, out):
        """Depthwise convolution: output channel ``c*m + j`` reads channel ``c``."""
        channels = out.shape[1]
        if labels is None:
            return self.produce(out.shape, 1, [], self._origin(weight))
        units, reps = self.axis_units(labels, 1, op)
        multiplier = channels // len(units)
        out_units = np.repeat(units, multiplier)
        out_reps = (
            np.repeat(reps, multiplier) * multiplier + np.arange(channels) % multiplier
        )
        for space in self.spaces_along(units):
            positions = self.positions(out_units, out_reps, space, op)
            char = labels.chars[space.id]
            self.table.require_monomial(space.id, "depthwise convolution")
            self.record(weight.name, 0, "out", space, positions, [])
            if isinstance(bias, ParamRef):
                self.record(bias.name, 0, "out", space, positions, [(space.id, char)])
        view = [1] * out.dim()
        view[1] = channels
        unit_tensor = (
            torch.as_tensor(out_units).view(view).expand(*out.shape).contiguous()
        )
        base_reps = self.fresh_reps(out.shape, 1) * multiplier
        extra = torch.as_tensor(np.arange(channels) % multiplier).view(view)
        return Labels(unit_tensor, base_reps + extra, dict(labels.chars))

    # ------------------------------------------------------------------
    # Normalisation

    def op_batch_norm(self, op, args, kwargs, largs, lkwargs, out):
        training = bool(args[5])
        return self._batch_norm(
            op, largs[0], largs[1], largs[2], largs[3], largs[4], training, out
        )

    def op__native_batch_norm_legit_no_training(
        self, op, args, kwargs, largs, lkwargs, out
    ):
        result = self._batch_norm(
            op, largs[0], largs[1], largs[2], largs[3], largs[4], False, out[0]
        )
        return (result, None, None)

    def _batch_norm(self, op, labels, weight, bias, mean, var, training, out):
        """BatchNorm ``y = gamma (x - mean) / sqrt(var + eps) + beta`` per channel.

        With ``x -> P D_in x`` and ``y -> P D_out y``: ``gamma`` moves with
        ``D_out / D_in``, ``beta`` with ``D_out``, ``running_mean`` with
        ``D_in`` and ``running_var`` only with ``P``. Batch statistics (training
        mode) see ``D_in`` through ``sqrt(D_in**2 var + eps)``, so there ``D_in``
        must be a sign. Without ``gamma`` the output keeps the input's scaling.
        """
        if labels is None:
            for tensor in (weight, bias, mean, var):
                self.pin(tensor, 0, op)
            return None
        units, reps = self.axis_units(labels, 1, op)
        out_units = units.copy()
        chars = dict(labels.chars)
        for space in self.spaces_along(units):
            positions = self.positions(units, reps, space, op)
            char = labels.chars[space.id]
            self.table.require_monomial(space.id, "BatchNorm")
            if training:
                self.table.constrain(
                    space.id,
                    char,
                    SIGN_GROUP,
                    "BatchNorm in training mode normalises by batch statistics",
                )
            if isinstance(weight, ParamRef):
                output = self.table.new(space.size, self._origin(weight))
                self.table.merge_coupled(space.id, output.id)
                self.table.require_monomial(output.id, "BatchNorm")
                self.record(
                    weight.name,
                    0,
                    "out",
                    output,
                    positions,
                    [(output.id, IDENTITY), (space.id, char.inverse())],
                )
                inside = (units >= space.base) & (units < space.base + space.size)
                out_units[inside] = units[inside] - space.base + output.base
                chars[output.id] = IDENTITY
                out_space, out_char = output, IDENTITY
            else:
                out_space, out_char = space, char
            if isinstance(bias, ParamRef):
                self.record(
                    bias.name,
                    0,
                    "out",
                    out_space,
                    positions,
                    [(out_space.id, out_char)],
                )
            if isinstance(mean, ParamRef):
                self.record(mean.name, 0, "out", space, positions, [(space.id, char)])
            if isinstance(var, ParamRef):
                self.record(var.name, 0, "out", space, positions, [])
        view = [1] * out.dim()
        view[1] = len(out_units)
        unit_tensor = (
            torch.as_tensor(out_units).view(view).expand(*out.shape).contiguous()
        )
        return Labels(unit_tensor, labels.reps, chars)

    def op_layer_norm(self, op, args, kwargs, largs, lkwargs, out):
        weight = largs[2] if len(largs) > 2 else lkwargs.get("weight")
        bias = largs[3] if len(largs) > 3 else lkwargs.get("bias")
        return self._layer_norm(op, largs[0], list(args[1]), weight, bias)

    def op_native_layer_norm(self, op, args, kwargs, largs, lkwargs, out):
        return (
            self._layer_norm(op, largs[0], list(args[1]), largs[2], largs[3]),
            None,
            None,
        )

    def _layer_norm(self, op, labels, normalized_shape, weight, bias):
        """LayerNorm: permutations of the normalised features, weight and bias."""
        if labels is None:
            for tensor in (weight, bias):
                self.pin(tensor, 0, op)
            return None
        if len(normalized_shape) != 1:
            raise UnsupportedOp(
                f"{op}: LayerNorm over {len(normalized_shape)} dimensions"
            )
        units, reps = self.axis_units(labels, labels.units.dim() - 1, op)
        for space in self.spaces_along(units):
            positions = self.positions(units, reps, space, op)
            for param in (weight, bias):
                if isinstance(param, ParamRef):
                    self.record(param.name, 0, "out", space, positions, [])
        return self.apply_group(labels, None, f"LayerNorm ({op.split(' ')[-1]})")

    def op_group_norm(self, op, args, kwargs, largs, lkwargs, out):
        weight = largs[2] if len(largs) > 2 else lkwargs.get("weight")
        bias = largs[3] if len(largs) > 3 else lkwargs.get("bias")
        return self._group_norm(op, largs[0], int(args[1]), weight, bias)

    def op_native_group_norm(self, op, args, kwargs, largs, lkwargs, out):
        result = self._group_norm(op, largs[0], int(args[6]), largs[1], largs[2])
        return (result, None, None)

    def _group_norm(self, op, labels, groups, weight, bias):
        """GroupNorm: permutations within each group and of whole groups.

        The statistics of a group are symmetric functions of its channels,
        so any permutation inside a group, and any exchange of two whole
        groups, commutes with the normalisation; ``weight`` and ``bias``
        move with the channels. Like LayerNorm it allows no scaling.
        """
        if labels is None:
            for tensor in (weight, bias):
                self.pin(tensor, 0, op)
            return None
        units, reps = self.axis_units(labels, 1, op)
        group_of = np.arange(len(units)) // (len(units) // groups)
        for space in self.spaces_along(units):
            positions = self.positions(units, reps, space, op)
            colours = group_of[positions]
            if not bool((colours == colours[:, :1]).all()):
                raise UnsupportedOp(f"{op}: a unit's replicas lie in several groups")
            colours = colours[:, 0]
            # A group with channels of another space cannot move as a whole.
            mine = np.isin(group_of, np.unique(colours))
            whole = bool(np.isin(np.flatnonzero(mine), positions.ravel()).all())
            self.table.colours.setdefault(space.id, []).append((colours, whole))
            for param in (weight, bias):
                if isinstance(param, ParamRef):
                    self.record(param.name, 0, "out", space, positions, [])
        return self.apply_group(labels, None, f"GroupNorm ({op.split(' ')[-1]})")

    # ------------------------------------------------------------------
    # Pooling and reductions

    def pool(self, name, op, args, largs, out):
        labels = largs[0]
        value = out[0] if isinstance(out, tuple) else out
        spatial = POOL_DIMS[name.replace("_with_indices", "")[-2:]]
        axis = args[0].dim() - spatial - 1
        units, _ = self.axis_units(labels, axis, op)
        self.check_complete(labels, op)
        if name in MAX_POOLS:
            for space in self.spaces_along(units):
                self.table.require_monomial(space.id, "max pooling")
                self.table.constrain(
                    space.id,
                    labels.chars[space.id],
                    POSITIVE_GROUP,
                    "max pooling commutes with positive scalings only",
                )
        view = [1] * value.dim()
        view[axis] = len(units)
        result = Labels(
            torch.as_tensor(units).view(view).expand(*value.shape).contiguous(),
            self.fresh_reps(value.shape, axis),
            dict(labels.chars),
        )
        return (result, result) if isinstance(out, tuple) else result

    def _reduce(self, op, args, kwargs, largs, out, positive):
        labels = largs[0]
        dims = args[1] if len(args) > 1 else kwargs.get("dim")
        if dims is None:
            raise UnsupportedOp(f"{op}: reduction over all dimensions")
        dims = [dims] if isinstance(dims, int) else list(dims)
        keepdim = bool(args[2]) if len(args) > 2 else bool(kwargs.get("keepdim", False))
        units = labels.units
        for dim in dims:
            first = units.narrow(dim, 0, 1)
            if not bool((units == first).all()):
                raise UnsupportedOp(f"{op}: reduction over hidden units")
        reduced = units.amax(dim=dims, keepdim=keepdim)
        if positive:
            for space in labels.spaces(self.table):
                self.table.require_monomial(space, "max reduction")
                self.table.constrain(
                    space,
                    labels.chars[space],
                    POSITIVE_GROUP,
                    "max reduction commutes with positive scalings only",
                )
        axis = _varying_axis(reduced)
        reps = (
            self.fresh_reps(reduced.shape, axis)
            if reduced.dim()
            else torch.zeros((), dtype=torch.long)
        )
        return Labels(reduced.contiguous(), reps, dict(labels.chars))

    def op_mean(self, op, args, kwargs, largs, lkwargs, out):
        return self._reduce(op, args, kwargs, largs, out, False)

    op_sum = op_mean

    def op_amax(self, op, args, kwargs, largs, lkwargs, out):
        return self._reduce(op, args, kwargs, largs, out, True)

    op_amin = op_amax

    # ------------------------------------------------------------------
    # Elementwise ops

    def _varying_axes(self, labels: Labels) -> list[int]:
        units = labels.units
        return [
            axis
            for axis in range(units.dim())
            if units.shape[axis] > 1
            and not bool((units == units.narrow(axis, 0, 1)).all())
        ]

    def _is_uniform(self, labels: Labels, value: Any, shape: Sequence[int]) -> bool:
        """Whether ``value`` is the same at every unit of ``labels``."""
        if not isinstance(value, torch.Tensor):
            return True
        expanded = value.expand(*shape) if value.dim() <= len(shape) else value
        units = labels.units.expand(*shape)
        for axis in self._varying_axes(Labels(units, units, {})):
            if not bool((expanded == expanded.narrow(axis, 0, 1)).all()):
                return False
        return True

    def _param_operand(
        self,
        op: str,
        labels: Labels,
        param: ParamRef,
        shape: Sequence[int],
        additive: bool,
    ) -> None:
        """A parameter combined elementwise with hidden units: a bias or a scale."""
        tensor = param.tensor
        units = labels.units.expand(*shape)
        varying = self._varying_axes(Labels(units, units, {}))
        offset = len(shape) - tensor.dim()
        per_unit = [
            a for a in varying if a - offset >= 0 and tensor.shape[a - offset] > 1
        ]
        if not per_unit:
            for space in labels.spaces(self.table):
                if additive:
                    self.table.require_monomial(space, op)
                    self.table.constrain(
                        space,
                        labels.chars[space],
                        TRIVIAL_GROUP,
                        f"{op} adds a value shared by all units",
                    )
            return
        if len(per_unit) != 1:
            raise UnsupportedOp(
                f"{op}: parameter {param.name!r} varies along several unit axes"
            )
        axis = per_unit[0]
        axis_labels = Labels(units, labels.reps.expand(*shape), labels.chars)
        unit_row, rep_row = self.axis_units(axis_labels, axis, op)
        for space in self.spaces_along(unit_row):
            positions = self.positions(unit_row, rep_row, space, op)
            char = labels.chars[space.id]
            if additive:
                self.record(
                    param.name,
                    axis - offset,
                    "out",
                    space,
                    positions,
                    [(space.id, char)],
                )
            else:
                self.table.require_monomial(
                    space.id, f"{op} scales each unit by its own parameter"
                )
                self.record(param.name, axis - offset, "out", space, positions, [])

    def _merge(self, op: str, a: Labels, b: Labels, shape: Sequence[int]) -> Labels:
        """Two labelled operands of one elementwise op: their units must pair up."""
        ua, ub = torch.broadcast_tensors(a.units, b.units)
        ua, ub = ua.expand(*shape), ub.expand(*shape)
        if not bool(((ua >= 0) == (ub >= 0)).all()):
            raise UnsupportedOp(
                f"{op}: hidden units meet values that the transform leaves alone"
            )
        mask = (ua >= 0).numpy()
        first_units, second_units = ua.numpy()[mask], ub.numpy()[mask]
        stride = int(self.table.next_unit) + 1
        codes = np.unique(first_units * stride + second_units)
        pairs = np.stack([codes // stride, codes % stride], axis=1)
        if len(np.unique(pairs[:, 0])) != len(pairs) or len(
            np.unique(pairs[:, 1])
        ) != len(pairs):
            raise UnsupportedOp(f"{op}: one unit meets several others")
        space_a = self.table.space_of(pairs[:, 0])
        space_b = self.table.space_of(pairs[:, 1])
        for sa, sb in {(int(x), int(y)) for x, y in zip(space_a, space_b, strict=True)}:
            first, second = self.table.spaces[sa], self.table.spaces[sb]
            rows = pairs[(space_a == sa) & (space_b == sb)]
            aligned = np.array_equal(rows[:, 0] - first.base, rows[:, 1] - second.base)
            if first.size != second.size or len(rows) != first.size or not aligned:
                raise UnsupportedOp(
                    f"{op}: units of {first.origin} and {second.origin} do not line up"
                )
            if sa != sb:
                self.table.merge_same(sa, sb)
            char_a, char_b = a.chars[sa], b.chars[sb]
            if char_a != char_b:
                self.table.constrain(
                    sa,
                    char_a * char_b.inverse(),
                    TRIVIAL_GROUP,
                    f"{op} adds units with different scalings",
                )
        chars = dict(b.chars)
        chars.update(a.chars)
        reps = torch.broadcast_tensors(a.reps, ua)[0].expand(*shape)
        return Labels(ua.contiguous(), reps.contiguous(), chars)

    def _binary(self, op, args, largs, out, kind):
        a, b = largs[0], largs[1] if len(largs) > 1 else None
        x, y = args[0], args[1] if len(args) > 1 else None
        shape = out.shape
        if isinstance(a, Labels) and isinstance(b, Labels):
            merged = self._merge(op, a, b, shape)
            if kind == "add":
                return merged
            return self.apply_group(merged, None, op)
        labels, other, other_label = (a, y, b) if isinstance(a, Labels) else (b, x, a)
        if kind == "div" and labels is b:
            return self.apply_group(_expand(labels, shape), None, op)
        if isinstance(other_label, ParamRef):
            self._param_operand(op, labels, other_label, shape, kind == "add")
            return _expand(labels, shape)
        if not self._is_uniform(labels, other, shape):
            raise UnsupportedOp(
                f"{op}: hidden units meet a tensor that differs per unit"
            )
        if kind == "add" and _is_nonzero(other):
            for space in labels.spaces(self.table):
                self.table.require_monomial(space, op)
                self.table.constrain(
                    space, labels.chars[space], TRIVIAL_GROUP, f"{op} adds a constant"
                )
        return _expand(labels, shape)

    def op_add(self, op, args, kwargs, largs, lkwargs, out):
        return self._binary(op, args, largs, out, "add")

    op_sub = op_add
    op_rsub = op_add

    def op_mul(self, op, args, kwargs, largs, lkwargs, out):
        return self._binary(op, args, largs, out, "mul")

    def op_div(self, op, args, kwargs, largs, lkwargs, out):
        return self._binary(op, args, largs, out, "div")

    def op_neg(self, op, args, kwargs, largs, lkwargs, out):
        return largs[0]

    def op_prelu(self, op, args, kwargs, largs, lkwargs, out):
        weight = largs[1]
        if not isinstance(weight, ParamRef) or weight.tensor.numel() == 1:
            return self.pointwise_activation(
                op, "aten.prelu.default", (args[1],), {}, largs[0]
            )
        labels = largs[0]
        axis = 1 if args[0].dim() >= 2 else 0
        units, reps = self.axis_units(labels, axis, op)
        for space in self.spaces_along(units):
            positions = self.positions(units, reps, space, op)
            self.table.require_monomial(space.id, "PReLU")
            self.table.constrain(
                space.id,
                labels.chars[space.id],
                POSITIVE_GROUP,
                "PReLU with per-channel slopes: positive scalings, mu(d) = d",
            )
            self.table.note(
                space.id, "PReLU with per-channel slopes: positive scalings, mu(d) = d"
            )
            self.record(weight.name, 0, "out", space, positions, [])
        return labels

    def pointwise_activation(
        self, op: str, op_name: str, rest: tuple, kwargs: dict, labels: Labels
    ) -> Labels:
        group = self.resolver(op_name, rest, kwargs)
        if group is None:
            return self.apply_group(labels, None, f"{op_name} (no catalogue entry)")
        return self.apply_group(labels, group, group.label)

    def pointwise(self, node, op, args, kwargs, largs, lkwargs, out):
        labelled = [i for i, leaf in enumerate(largs) if isinstance(leaf, Labels)]
        if labelled == [0] and not any(
            isinstance(v, (torch.Tensor, Labels, ParamRef))
            for v in list(args[1:]) + list(kwargs.values())
        ):
            return self.pointwise_activation(
                op, _op_name(node.target), tuple(args[1:]), dict(kwargs), largs[0]
            )
        shape = out.shape
        merged = None
        for index, label in enumerate(largs):
            if isinstance(label, Labels):
                merged = (
                    label if merged is None else self._merge(op, merged, label, shape)
                )
            elif isinstance(args[index], torch.Tensor) and merged is not None:
                if not self._is_uniform(merged, args[index], shape):
                    raise UnsupportedOp(
                        f"{op}: hidden units meet a tensor that differs per unit"
                    )
        for index, label in enumerate(largs):
            if isinstance(args[index], torch.Tensor) and not isinstance(label, Labels):
                if not self._is_uniform(merged, args[index], shape):
                    raise UnsupportedOp(
                        f"{op}: hidden units meet a tensor that differs per unit"
                    )
        return self.apply_group(
            _expand(merged, shape), None, f"{_op_name(node.target)}"
        )


def _moved_param(param: ParamRef, name: str, args: tuple) -> ParamRef | None:
    """Follow a transpose of a parameter; other data movement loses it."""
    axes = list(param.axes or range(param.tensor.dim()))
    if name in ("numpy_T",):
        return ParamRef(param.name, param.tensor, tuple(reversed(axes)))
    if name in ("t", "mT") and len(axes) == 2:
        return ParamRef(param.name, param.tensor, (axes[1], axes[0]))
    if name == "transpose":
        first, second = (int(a) % len(axes) for a in args[1:3])
        axes[first], axes[second] = axes[second], axes[first]
        return ParamRef(param.name, param.tensor, tuple(axes))
    if name == "permute":
        return ParamRef(
            param.name, param.tensor, tuple(axes[int(d) % len(axes)] for d in args[1])
        )
    if name == "expand" and len(args[1]) == len(axes):
        # Broadcasting size-1 axes keeps every parameter axis where it was.
        return ParamRef(param.name, param.tensor, param.axes)
    # NOTE: a parameter reshaped or sliced (a position table cut to the
    # sequence length) becomes an untransformed constant, which excludes the
    # units it meets.
    return None


def _expand(labels: Labels, shape: Sequence[int]) -> Labels:
    if tuple(labels.units.shape) == tuple(shape):
        return labels
    units, reps = torch.broadcast_tensors(labels.units, labels.reps)
    return Labels(
        units.expand(*shape).contiguous(),
        reps.expand(*shape).contiguous(),
        labels.chars,
    )


def _is_nonzero(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return bool((value != 0).any())
    return value != 0


def _varying_axis(units: torch.Tensor) -> int:
    for axis in range(units.dim()):
        if units.shape[axis] > 1 and not bool(
            (units == units.narrow(axis, 0, 1)).all()
        ):
            return axis
    return max(units.dim() - 1, 0)


def _map_nodes(value: Any, env: dict[Any, Any]) -> Any:
    import torch.fx

    if isinstance(value, torch.fx.Node):
        return env.get(value)
    if isinstance(value, tuple):
        return tuple(_map_nodes(v, env) for v in value)
    if isinstance(value, list):
        return [_map_nodes(v, env) for v in value]
    if isinstance(value, dict):
        return {k: _map_nodes(v, env) for k, v in value.items()}
    return value


def _labels_in(leaf: Any) -> list[Labels]:
    """The labels inside one leaf value: itself, or a score's query and key."""
    if isinstance(leaf, Labels):
        return [leaf]
    if isinstance(leaf, Scores):
        return leaf.labels()
    return []


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return [leaf for item in value for leaf in _leaves(item)]
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    return [value]


def _get_attr(module: Any, target: str) -> Any:
    value = module
    for part in target.split("."):
        value = getattr(value, part)
    return value

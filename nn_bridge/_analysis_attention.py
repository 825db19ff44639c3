"""Attention rules of the label analysis: fused and separate projections.

Attention reaches the graph in two forms. ``scaled_dot_product_attention``
takes the query, key and value at once. The explicit form computes the
scores ``q @ k^T`` with ``bmm`` or ``matmul``, passes them through scaling,
masking, softmax and dropout, and multiplies them with ``v``. Both end in
:meth:`AttentionRules.attention_core`, which checks the head layout and
records one :class:`~nn_bridge._analysis.AttentionCore`.

The scores do not change under ``q -> M_h q`` and ``k -> M_h^-T k`` inside
each head, and a permutation of whole heads moves them along their head
axis together with the value. So every elementwise op on the scores is
allowed, as long as its other operands are the same for every head.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from ._analysis import Labels, Space

logger = logging.getLogger(__name__)

#: Ops on attention scores that keep them usable: elementwise functions and
#: masks with the same value in every head.
SCORE_ELEMENTWISE = {
    "softmax",
    "_softmax",
    "log_softmax",
    "_log_softmax",
    "mul",
    "div",
    "add",
    "sub",
    "masked_fill",
    "where",
    "exp",
    "tanh",
    "neg",
}


@dataclass(eq=False)
class Scores:
    """Attention scores ``q @ k^T`` on their way to the product with ``v``.

    ``query`` and ``key`` carry their units on the last axis and the
    sequence on the axis before it. Scores that no op reads (the averaged
    attention weights that ``MultiheadAttention`` returns) are dropped.
    """

    query: Labels
    key: Labels
    #: True after a view or other data movement, which may mix the head and
    #: sequence axes; such scores cannot enter the product with ``v``.
    moved: bool = False

    def labels(self) -> list[Labels]:
        return [self.query, self.key]


class AttentionRules:
    """Mixin of :class:`~nn_bridge._analysis.Analysis` for attention ops."""

    def op_scaled_dot_product_attention(self, op, args, kwargs, largs, lkwargs, out):
        """``softmax(q k^T / s + mask) v`` with heads on the leading axes."""
        from ._analysis import Labels, UnsupportedOp

        q, k, v = largs[0], largs[1], largs[2]
        mask = largs[3] if len(largs) > 3 else lkwargs.get("attn_mask")
        if isinstance(mask, Labels) or not all(
            isinstance(t, Labels) for t in (q, k, v)
        ):
            reason = f"{op}: query, key and value must all carry hidden units"
            for labels in (q, k, v):
                self.exclude_all(labels, reason)
            raise UnsupportedOp(f"{op}: attention inputs without hidden units")
        if bool(kwargs.get("enable_gqa", False)):
            raise UnsupportedOp(f"{op}: grouped-query attention is not supported")
        return self.attention_core(op, q, k, v, out.shape)

    # ------------------------------------------------------------------
    # Explicit scores

    def attention_product(self, op, args, largs, out):
        """``bmm`` or ``matmul`` of hidden units: scores, or scores times ``v``.

        Returns None when the operands are not attention operands.
        """
        from ._analysis import Labels, UnsupportedOp

        first, second = largs[0], largs[1]
        if isinstance(first, Scores):
            if first.moved:
                raise UnsupportedOp(f"{op}: attention scores were reshaped")
            if not isinstance(second, Labels):
                raise UnsupportedOp(f"{op}: attention scores times a plain tensor")
            return self.attention_core(op, first.query, first.key, second, out.shape)
        if isinstance(second, Scores):
            raise UnsupportedOp(f"{op}: attention scores on the right of a product")
        if not (isinstance(first, Labels) and isinstance(second, Labels)):
            return None
        if args[0].dim() != args[1].dim() or args[0].dim() < 3:
            raise UnsupportedOp(f"{op}: a product of hidden units that is not q k^T")
        key = Labels(
            second.units.transpose(-1, -2),
            second.reps.transpose(-1, -2),
            second.chars,
        )
        return Scores(first, key)

    def op_baddbmm(self, op, args, kwargs, largs, lkwargs, out):
        """``beta * mask + alpha * (q @ k^T)``: scores with an additive mask."""
        from ._analysis import Labels, UnsupportedOp

        if isinstance(largs[0], (Labels, Scores)):
            raise UnsupportedOp(f"{op}: the added term carries hidden units")
        scores = self.attention_product(op, args[1:], largs[1:], out)
        if not isinstance(scores, Scores):
            raise UnsupportedOp(f"{op}: only q k^T plus a mask is supported")
        self.check_head_uniform(op, scores, args[0], out.shape)
        return scores

    def score_op(self, name, op, args, kwargs, largs, out):
        """Pass attention scores through an elementwise op, or raise UnsupportedOp."""
        from ._analysis import (
            CONVERSIONS,
            DATA_MOVEMENT,
            DROPOUTS,
            Labels,
            UnsupportedOp,
        )

        scores = [leaf for leaf in largs if isinstance(leaf, Scores)]
        if len(scores) != 1 or any(isinstance(leaf, Labels) for leaf in largs):
            raise UnsupportedOp(f"{op}: attention scores meet hidden units")
        (current,) = scores
        position = next(i for i, leaf in enumerate(largs) if leaf is current)
        if name in DATA_MOVEMENT and not isinstance(out, (list, tuple)):
            return Scores(current.query, current.key, moved=True)
        if name in CONVERSIONS or name in DROPOUTS:
            return (current, current) if isinstance(out, tuple) else current
        if name not in SCORE_ELEMENTWISE:
            raise UnsupportedOp(f"{op}: {name} on attention scores is not supported")
        if name in ("softmax", "_softmax", "log_softmax", "_log_softmax"):
            if int(args[1]) % out.dim() != out.dim() - 1:
                raise UnsupportedOp(f"{op}: softmax over an axis other than the keys")
            return current
        for value in list(args) + list(kwargs.values()):
            if isinstance(value, torch.Tensor) and value is not args[position]:
                self.check_head_uniform(op, current, value, out.shape)
        return current

    def check_head_uniform(
        self, op: str, scores: Scores, value: Any, shape: torch.Size
    ) -> None:
        """Reject a tensor that differs between heads (a per-head bias)."""
        from ._analysis import UnsupportedOp

        if not isinstance(value, torch.Tensor):
            return
        query = scores.query.units
        expanded = value.expand(*shape) if value.dim() <= len(shape) else value
        for axis in range(len(shape) - 2):
            varies = query.shape[axis] > 1 and not bool(
                (query == query.narrow(axis, 0, 1)).all()
            )
            if varies and not bool((expanded == expanded.narrow(axis, 0, 1)).all()):
                # NOTE: a padding mask that MultiheadAttention folds into the
                # (batch * heads) axis differs per batch element, so it fails
                # this test although it is the same in every head.
                raise UnsupportedOp(f"{op}: a term of the scores differs between heads")

    def exclude_scores(self, scores: Scores, reason: str) -> None:
        for labels in scores.labels():
            self.exclude_all(labels, reason)

    # ------------------------------------------------------------------
    # The core

    def _head_rows(self, op: str, q: Labels, k: Labels, v: Labels) -> tuple:
        from ._analysis import UnsupportedOp

        rows = []
        for labels, label in ((q, "query"), (k, "key"), (v, "value")):
            units = labels.units
            lead = units.reshape(-1, units.shape[-2], units.shape[-1])
            if not bool((lead == lead[:, :1, :]).all()):
                raise UnsupportedOp(f"{op}: {label} units vary along the sequence")
            rows.append(lead[:, 0, :].numpy())
        heads_of = []
        for row in rows:
            _, first, inverse = np.unique(
                row, axis=0, return_index=True, return_inverse=True
            )
            order = np.argsort(np.argsort(first))
            heads_of.append(order[inverse.ravel()])
        if not (
            np.array_equal(heads_of[0], heads_of[1])
            and np.array_equal(heads_of[0], heads_of[2])
        ):
            raise UnsupportedOp(f"{op}: query, key and value heads do not line up")
        return rows, heads_of[0]

    def _part_of_space(
        self, op: str, blocks: np.ndarray, label: str
    ) -> tuple[Space, int]:
        """Find the space and start offset of the consecutive units ``blocks``."""
        from ._analysis import UnsupportedOp

        found = self.spaces_along(blocks.ravel())
        if len(found) != 1:
            raise UnsupportedOp(f"{op}: the {label} comes from {len(found)} spaces")
        space = found[0]
        start = int(blocks.ravel()[0]) - space.base
        expected = space.base + start + np.arange(blocks.size).reshape(blocks.shape)
        if not np.array_equal(blocks, expected):
            raise UnsupportedOp(
                f"{op}: the {label} units are not laid out head by head"
            )
        return space, start

    def attention_core(
        self, op: str, q: Labels, k: Labels, v: Labels, shape: torch.Size
    ) -> Labels:
        """Record one attention call and return the labels of its output.

        The query, key and value each carry ``heads`` blocks of consecutive
        units, one block per head, on their last axis. They come from three
        producers or from parts of one fused producer (GPT-2's ``c_attn``,
        ``MultiheadAttention.in_proj_weight``), whose space is then split
        into the parts, so that each part acts as its own producer.
        """
        from ._analysis import AttentionCore, Labels, UnsupportedOp

        rows, heads_of = self._head_rows(op, q, k, v)
        heads = int(heads_of.max()) + 1
        parts = []
        for row, label in zip(rows, ("query", "key", "value"), strict=True):
            blocks = np.stack([row[heads_of == h][0] for h in range(heads)])
            space, start = self._part_of_space(op, blocks, label)
            parts.append((space, start, start + blocks.size))
        spans = sorted((space.id, start, stop) for space, start, stop in parts)
        for (first, _, first_stop), (second, second_start, _) in zip(
            spans, spans[1:], strict=False
        ):
            if first == second and second_start < first_stop:
                raise UnsupportedOp(f"{op}: query, key and value share units")
        spaces = self._take_parts(parts)
        q_space, k_space, v_space = spaces
        fused = len({space.id for space, _, _ in parts}) == 1
        linear = all(
            labels.chars[space.id].is_identity
            for labels, space in zip((q, k, v), spaces, strict=True)
        )
        core = AttentionCore(
            name=_core_name(q_space, fused),
            q_space=q_space.id,
            k_space=k_space.id,
            v_space=v_space.id,
            heads=heads,
            qk_dim=q_space.size // heads,
            vo_dim=v_space.size // heads,
            linear_qkv=linear,
        )
        for space in spaces:
            if space.id in self.claimed:
                raise UnsupportedOp(f"{op}: {space.origin} feeds two attention calls")
            self.claimed[space.id] = core.name
        self.cores.append(core)
        v_units = v.units
        lead_units = v_units.reshape(-1, v_units.shape[-2], v_units.shape[-1])[:, :1, :]
        out_units = lead_units.expand(
            lead_units.shape[0], shape[-2], shape[-1]
        ).reshape(shape)
        reps = (
            torch.arange(int(np.prod(shape[:-1]))).view(*shape[:-1], 1).expand(*shape)
        )
        return Labels(
            out_units.contiguous(), reps.contiguous(), {v_space.id: v.chars[v_space.id]}
        )

    def _take_parts(self, parts: list[tuple[Space, int, int]]) -> list[Space]:
        """Return the space of each part ``(space, start, stop)``, splitting spaces.

        A part that covers a whole space is that space. Otherwise its space
        is cut at every part boundary, once, and the piece that starts at the
        part's first unit is returned.
        """
        cuts: dict[int, set[int]] = {}
        for space, start, stop in parts:
            cuts.setdefault(space.id, set()).update(
                c for c in (start, stop) if 0 < c < space.size
            )
        bases = {}
        for space_id, offsets in cuts.items():
            space = self.table.spaces[space_id]
            pieces = self.split_space(space, sorted(offsets)) if offsets else [space]
            for piece in pieces:
                bases[piece.base] = piece
        return [bases[space.base + start] for space, start, _ in parts]


def _core_name(q_space: Space, fused: bool) -> str:
    """Return the site name: the module that contains the projections.

    Separate projections (``...attention.self.query``) and GPT-2's fused
    ``...attn.c_attn`` give the parent module. The fused
    ``...attn.in_proj_weight`` of ``MultiheadAttention`` gives its own.
    """
    origin = q_space.origin
    if fused and not q_space.tensor.endswith(".weight"):
        return origin
    return origin.rsplit(".", 1)[0] if "." in origin else origin

"""Attention sites: fused projections, explicit scores and the ViT residual stream."""

from __future__ import annotations

import copy

import nets
import numpy as np
import pytest
import torch
from torch import nn

from nn_bridge import (
    FunctionChangedError,
    SymmetrySpec,
    apply_transform,
    check_function_preserved,
    find_symmetries,
    fixed_group_resolver,
)
from symgroups._group import Character, GroupDescription

#: Max relative output deviation of a transform of a float64 model.
FLOAT64_RTOL = 1e-11

#: Max absolute logit deviation of a float32 model: the per-head matrices
#: round every transformed weight to float32 once.
FLOAT32_ATOL = 1e-5

RELU = GroupDescription("monomial", "positive", (), Character(1, 1))
TRIVIAL = GroupDescription("monomial", "trivial", (), Character(0, 0))
RESOLVER = fixed_group_resolver(
    {"aten.relu.default": RELU, "aten.gelu.default": TRIVIAL}
)


def without(spec: SymmetrySpec, drop) -> SymmetrySpec:
    """A copy of ``spec`` without the actions for which ``drop(action)`` is true."""
    broken = copy.deepcopy(spec)
    for site in broken.sites:
        kept = [a for a in site.actions if not drop(a)]
        for action in site.actions:
            if drop(action) and all(a.tensor != action.tensor for a in kept):
                broken.invariant[action.tensor] = "dropped by the test"
        site.actions = kept
    return broken


def assert_preserved(model: nn.Module, spec: SymmetrySpec, inputs, seeds=3) -> None:
    for seed in range(seeds):
        transformed = apply_transform(model, spec, spec.sample(seed=seed), check=False)
        report = check_function_preserved(model, transformed, inputs)
        assert report.max_rel <= FLOAT64_RTOL, f"seed {seed}: {report}"


def fibre_rows(site, tensor: str) -> dict[str, list[int]]:
    return {
        a.fibre: a.positions.ravel().tolist()
        for a in site.actions
        if a.tensor == tensor
    }


# --------------------------------------------------------------------------
# GPT-2: Conv1D c_attn with weight (in, 3 * out)


def gpt2_double() -> tuple[nn.Module, tuple[torch.Tensor]]:
    return nets.tiny_gpt2().double(), (nets.random_token_ids(),)


def test_gpt2_heads_from_fused_c_attn() -> None:
    model, ids = gpt2_double()
    spec = find_symmetries(model, ids, resolver=RESOLVER)
    for layer in (0, 1):
        site = spec.site(f"transformer.h.{layer}.attn")
        assert site.kind == "attention"
        assert (site.size, site.qk_dim, site.vo_dim) == (4, 8, 8)
        assert site.permute_heads
        assert site.qk_group == "general_linear"
        assert site.vo_group == "general_linear"
        prefix = f"transformer.h.{layer}.attn"
        weight = [a for a in site.actions if a.tensor == f"{prefix}.c_attn.weight"]
        # Conv1D stores (in, 3 * out): the query, key and value units are
        # columns 0..31, 32..63 and 64..95 of axis 1.
        assert {a.axis for a in weight} == {1}
        assert fibre_rows(site, f"{prefix}.c_attn.weight") == {
            "q": list(range(32)),
            "k": list(range(32, 64)),
            "v": list(range(64, 96)),
        }
        assert set(fibre_rows(site, f"{prefix}.c_attn.bias")) == {"q", "k", "v"}
        (proj,) = [a for a in site.actions if a.tensor == f"{prefix}.c_proj.weight"]
        assert (proj.axis, proj.side, proj.fibre) == (0, "in", "v")
    assert not [e for e in spec.excluded if "c_attn" in e.name]


def test_gpt2_transform_keeps_tie_and_logits() -> None:
    model, ids = gpt2_double()
    spec = find_symmetries(model, ids, resolver=RESOLVER)
    transform = spec.sample(seed=0)
    element = transform.elements["transformer.h.0.attn"]
    assert not np.array_equal(element.perm, np.arange(4))
    assert element.qk is not None and element.vo is not None
    transformed = apply_transform(model, spec, transform, example_inputs=ids)
    assert transformed.lm_head.weight is transformed.transformer.wte.weight
    changed = transformed.transformer.h[0].attn.c_attn.weight
    assert not torch.equal(changed, model.transformer.h[0].attn.c_attn.weight)
    assert_preserved(model, spec, ids)


def test_gpt2_float32_logits_unchanged() -> None:
    model, ids = nets.tiny_gpt2(), (nets.random_token_ids(),)
    spec = find_symmetries(model, ids)
    transformed = apply_transform(model, spec, spec.sample(seed=1), example_inputs=ids)
    with torch.no_grad():
        before = model(*ids).logits
        after = transformed(*ids).logits
    assert (before - after).abs().max().item() <= FLOAT32_ATOL
    assert transformed.lm_head.weight is transformed.transformer.wte.weight


@pytest.mark.parametrize("fibre", ["k", "v"])
def test_gpt2_fused_part_dropped_changes_logits(fibre: str) -> None:
    model, ids = gpt2_double()
    spec = find_symmetries(model, ids, resolver=RESOLVER)
    broken = without(
        spec, lambda a: a.tensor.endswith("c_attn.weight") and a.fibre == fibre
    )
    with pytest.raises(FunctionChangedError):
        apply_transform(model, broken, broken.sample(seed=0), example_inputs=ids)


# --------------------------------------------------------------------------
# ViT: class token, position embedding and MultiheadAttention


def vit_double() -> tuple[nn.Module, tuple[torch.Tensor]]:
    model = nets.tiny_vit().double()
    return model, (nets.random_input(nets.VIT_INPUT_SHAPE, dtype=torch.float64),)


def test_vit_fully_covered() -> None:
    model, x = vit_double()
    spec = find_symmetries(model, x, resolver=RESOLVER)
    # Only the head's bias, whose units reach the output, stays invariant.
    assert list(spec.invariant) == ["head.bias"]
    for block in (0, 1):
        site = spec.site(f"blocks.{block}.attn")
        assert site.kind == "attention"
        assert (site.size, site.qk_dim, site.vo_dim) == (4, 8, 8)
        assert site.qk_group == site.vo_group == "general_linear"
        assert spec.site(f"blocks.{block}.mlp.0").kind == "monomial"
    stream = spec.site("patch_embed")
    axes = {(a.tensor, a.axis) for a in stream.actions}
    assert {("cls_token", 2), ("pos_embed", 2), ("head.weight", 1)} <= axes
    assert ("blocks.1.attn.in_proj_weight", 1) in axes
    assert_preserved(model, spec, x)


@pytest.mark.parametrize("tensor", ["cls_token", "pos_embed"])
def test_vit_embedding_dropped_changes_outputs(tensor: str) -> None:
    model, x = vit_double()
    spec = find_symmetries(model, x, resolver=RESOLVER)
    broken = without(spec, lambda a: a.tensor == tensor)
    with pytest.raises(FunctionChangedError):
        apply_transform(model, broken, broken.sample(seed=0), example_inputs=x)


def test_vit_float32_transform_checks() -> None:
    model = nets.tiny_vit()
    x = (nets.random_input(nets.VIT_INPUT_SHAPE),)
    spec = find_symmetries(model, x)
    transformed = apply_transform(model, spec, spec.sample(seed=0), example_inputs=x)
    with torch.no_grad():
        assert (model(*x) - transformed(*x)).abs().max().item() <= FLOAT32_ATOL


# --------------------------------------------------------------------------
# Explicit scores: bmm or matmul, softmax, bmm or matmul


class ExplicitAttention(nn.Module):
    """Attention written out with one fused ``qkv`` Linear, as in timm's ViT."""

    def __init__(self, dim: int = 8, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.up = nn.Linear(dim, 6)
        self.down = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        width = dim // self.heads
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.heads, width)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        scores = (q @ k.transpose(-2, -1)) * width**-0.5
        weights = scores.softmax(dim=-1)
        mixed = (weights @ v).transpose(1, 2).reshape(batch, tokens, dim)
        return self.down(torch.relu(self.up(x + self.proj(mixed))))


def test_explicit_matmul_attention_found() -> None:
    torch.manual_seed(0)
    model = ExplicitAttention().double().eval()
    x = (torch.randn(2, 5, 8, dtype=torch.float64),)
    spec = find_symmetries(model, x, resolver=RESOLVER)
    site = spec.site("qkv")
    assert site.kind == "attention"
    assert (site.size, site.qk_dim, site.vo_dim) == (2, 4, 4)
    assert fibre_rows(site, "qkv.weight") == {
        "q": list(range(8)),
        "k": list(range(8, 16)),
        "v": list(range(16, 24)),
    }
    assert_preserved(model, spec, x)


class WeightsAttention(nn.Module):
    """MultiheadAttention with ``need_weights=True``: exported as bmm and softmax."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.down = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(torch.relu(self.attn(x, x, x)[0]))


def test_multihead_attention_bmm_form() -> None:
    torch.manual_seed(0)
    model = WeightsAttention().double().eval()
    x = (torch.randn(2, 4, 8, dtype=torch.float64),)
    program = torch.export.export(model, x, strict=False)
    targets = {str(node.target) for node in program.graph.nodes}
    assert "aten.bmm.default" in targets
    assert "aten.scaled_dot_product_attention.default" not in targets
    spec = find_symmetries(model, x, resolver=RESOLVER)
    site = spec.site("attn")
    assert site.kind == "attention"
    assert (site.size, site.qk_dim, site.vo_dim) == (2, 4, 4)
    assert_preserved(model, spec, x)


class HeadBiasAttention(ExplicitAttention):
    """Explicit attention with a bias per head added to the scores (ALiBi-like)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("head_bias", torch.tensor([0.0, 1.0]).view(1, 2, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        width = dim // self.heads
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.heads, width)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        scores = q @ k.transpose(-2, -1) + self.head_bias
        mixed = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(batch, tokens, dim)
        return self.down(torch.relu(self.up(x + self.proj(mixed))))


def test_per_head_score_bias_excludes_heads() -> None:
    torch.manual_seed(0)
    model = HeadBiasAttention().double().eval()
    x = (torch.randn(2, 5, 8, dtype=torch.float64),)
    spec = find_symmetries(model, x, resolver=RESOLVER)
    assert not [s for s in spec.sites if s.kind == "attention"]
    reasons = " ".join(e.reason for e in spec.excluded)
    assert "a term of the scores differs between heads" in reasons
    assert_preserved(model, spec, x)

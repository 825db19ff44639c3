"""One test per known fault of weight-space transforms, failing if it is present."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from nn_bridge import (
    Action,
    FunctionChangedError,
    NNBridgeError,
    SpecError,
    SymmetrySpec,
    apply_transform,
    check_function_preserved,
    find_symmetries,
    fixed_group_resolver,
)
from symgroups._group import Character, GroupDescription

FLOAT64_RTOL = 1e-11

#: A broken transform changes outputs by far more than this.
CHANGED_RTOL = 1e-3

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


# 1. BatchNorm statistics -------------------------------------------------


class ConvBN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.out = nn.Conv2d(6, 2, 1)

    def forward(self, x):
        return self.out(F.relu(self.bn(self.conv(x))))


def warm_conv_bn() -> nn.Module:
    torch.manual_seed(0)
    model = ConvBN().double().train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(8, 3, 5, 5, dtype=torch.float64) * 3 + 2)
    return model.eval()


def test_batchnorm_statistics_must_move() -> None:
    model = warm_conv_bn()
    x = (torch.randn(2, 3, 5, 5, dtype=torch.float64),)
    spec = find_symmetries(model, x, resolver=RESOLVER)
    transform = spec.sample(seed=0)
    good = apply_transform(model, spec, transform, example_inputs=x)
    assert check_function_preserved(model, good, x).max_rel <= FLOAT64_RTOL
    broken = without(spec, lambda a: a.tensor in ("bn.running_mean", "bn.running_var"))
    with pytest.raises(FunctionChangedError, match="outputs changed"):
        apply_transform(model, broken, broken.sample(seed=0), example_inputs=x)


# 2. and 7. Tied embedding and head ---------------------------------------


class TiedLM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(13, 8)
        self.norm = nn.LayerNorm(8)
        self.up = nn.Linear(8, 10)
        self.down = nn.Linear(10, 8)
        self.head = nn.Linear(8, 13, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, ids):
        x = self.embed(ids)
        x = x + self.down(F.gelu(self.up(self.norm(x))))
        return self.head(self.norm(x))


def test_tied_embedding_and_head_move_together() -> None:
    torch.manual_seed(0)
    model = TiedLM().double().eval()
    ids = (torch.randint(0, 13, (2, 5)),)
    spec = find_symmetries(model, ids, resolver=RESOLVER)
    assert spec.aliases == {"head.weight": "embed.weight"}
    stream = spec.site("embed")
    assert [(a.tensor, a.axis) for a in stream.actions].count(("embed.weight", 1)) == 1
    transformed = apply_transform(model, spec, spec.sample(seed=1), example_inputs=ids)
    assert transformed.head.weight is transformed.embed.weight
    assert not torch.equal(transformed.embed.weight, model.embed.weight)
    report = check_function_preserved(model, transformed, ids)
    assert report.max_rel <= FLOAT64_RTOL, str(report)


def test_untied_copy_transformed_alone_changes_logits() -> None:
    torch.manual_seed(0)
    model = TiedLM().double().eval()
    ids = (torch.randint(0, 13, (2, 5)),)
    spec = find_symmetries(model, ids, resolver=RESOLVER)
    transformed = apply_transform(model, spec, spec.sample(seed=1), check=False)
    # Transforming the embedding as if the head were an independent tensor
    # (head left as it was) changes the logits.
    independent = copy.deepcopy(transformed)
    independent.head.weight = nn.Parameter(model.embed.weight.detach().clone())
    report = check_function_preserved(model, independent, ids)
    assert report.max_rel > CHANGED_RTOL


# 3. Spec validation -------------------------------------------------------


def small_spec() -> SymmetrySpec:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    return find_symmetries(
        model, (torch.randn(2, 3, dtype=torch.float64),), resolver=RESOLVER
    )


def test_validation_rejects_duplicate_coverage() -> None:
    spec = small_spec()
    site = spec.sites[0]
    site.actions.append(dataclasses.replace(site.actions[0]))
    with pytest.raises(SpecError, match=r"'0.weight' axis 0 is covered more than once"):
        spec.validate()


def test_validation_rejects_missing_tensor() -> None:
    spec = small_spec()
    del spec.invariant["2.bias"]
    with pytest.raises(SpecError, match=r"'2.bias' is neither acted on nor listed"):
        spec.validate()


def test_validation_rejects_wrong_axis_size() -> None:
    spec = small_spec()
    site = spec.sites[0]
    site.actions[0] = dataclasses.replace(
        site.actions[0], positions=np.arange(5)[:, None]
    )
    with pytest.raises(
        SpecError, match=r"positions of shape \(5, 1\); expected \(4, replicas\)"
    ):
        spec.validate()


def test_validation_rejects_integer_tensor() -> None:
    spec = small_spec()
    spec.tensors["0.weight"].dtype = "int64"
    with pytest.raises(SpecError, match="only floating-point tensors"):
        spec.validate()


# 4. Input and output axes ----------------------------------------------------


def swapped(spec: SymmetrySpec) -> SymmetrySpec:
    broken = copy.deepcopy(spec)
    for site in broken.sites:
        site.actions = [
            dataclasses.replace(a, axis=1 - a.axis)
            if a.tensor.endswith("weight")
            else a
            for a in site.actions
        ]
    return broken


@pytest.mark.parametrize("layer", ["linear", "conv"])
def test_swapped_axes_change_outputs(layer: str) -> None:
    torch.manual_seed(0)
    if layer == "linear":
        model = nn.Sequential(
            nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4)
        )
        x = (torch.randn(3, 4, dtype=torch.float64),)
    else:
        model = nn.Sequential(
            nn.Conv2d(4, 4, 1),
            nn.ReLU(),
            nn.Conv2d(4, 4, 1),
            nn.ReLU(),
            nn.Conv2d(4, 4, 1),
        )
        x = (torch.randn(2, 4, 3, 3, dtype=torch.float64),)
    model = model.double().eval()
    spec = find_symmetries(model, x, resolver=RESOLVER)
    out_axes = {
        a.axis
        for s in spec.sites
        for a in s.actions
        if a.side == "out" and a.tensor.endswith("weight")
    }
    in_axes = {a.axis for s in spec.sites for a in s.actions if a.side == "in"}
    assert out_axes == {0}
    assert in_axes == {1}
    apply_transform(model, spec, spec.sample(seed=0), example_inputs=x)
    broken = swapped(spec)
    with pytest.raises(FunctionChangedError):
        apply_transform(model, broken, broken.sample(seed=0), example_inputs=x)


def test_gpt2_conv1d_weight_axes() -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=50,
        n_positions=16,
        n_embd=16,
        n_layer=1,
        n_head=2,
        use_cache=False,
        bos_token_id=49,
        eos_token_id=49,
    )
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config).double().eval()
    ids = (torch.randint(0, 50, (2, 6)),)
    spec = find_symmetries(model, ids, resolver=RESOLVER)
    site = spec.site("transformer.h.0.mlp.c_fc")
    sides = {(a.tensor, a.axis, a.side) for a in site.actions}
    # Conv1D stores its weight as (in, out): the hidden units are axis 1 of
    # c_fc and axis 0 of c_proj.
    assert ("transformer.h.0.mlp.c_fc.weight", 1, "out") in sides
    assert ("transformer.h.0.mlp.c_proj.weight", 0, "in") in sides
    transformed = apply_transform(model, spec, spec.sample(seed=0), example_inputs=ids)
    assert transformed.lm_head.weight is transformed.transformer.wte.weight


# 5. Dtypes, devices and integer buffers ---------------------------------------


class Mixed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("positions", torch.arange(4))
        self.register_buffer("steps", torch.tensor(3))
        self.position = nn.Embedding(4, 5)
        self.a = nn.Linear(5, 6).to(torch.float64)
        self.b = nn.Linear(6, 5)

    def forward(self, x):
        h = x + self.position(self.positions)
        h = F.relu(self.a(h.to(self.a.weight.dtype)))
        return self.b(h.to(self.b.weight.dtype))


def test_mixed_dtypes_and_integer_buffers() -> None:
    torch.manual_seed(0)
    model = Mixed().eval()
    x = (torch.randn(2, 4, 5),)
    spec = find_symmetries(model, x, resolver=RESOLVER)
    assert spec.invariant["positions"] == "int64 tensor, not transformed"
    assert spec.invariant["steps"] == "int64 tensor, not transformed"
    transformed = apply_transform(model, spec, spec.sample(seed=0), example_inputs=x)
    assert transformed.a.weight.dtype == torch.float64
    assert transformed.b.weight.dtype == torch.float32
    assert torch.equal(transformed.positions, model.positions)
    assert not torch.equal(transformed.a.weight, model.a.weight)


def test_meta_device_transform() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    spec = find_symmetries(
        model, (torch.randn(2, 3, dtype=torch.float64),), resolver=RESOLVER
    )
    meta = copy.deepcopy(model).to("meta")
    transformed = apply_transform(meta, spec, spec.sample(seed=0), check=False)
    assert transformed[0].weight.device.type == "meta"
    assert transformed[0].weight.shape == (4, 3)
    with pytest.raises(NNBridgeError, match="meta device"):
        apply_transform(meta, spec, spec.sample(seed=0), check=True)


# 6. Attention heads, query/key and value/output pairs --------------------------


def tiny_bert() -> nn.Module:
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=40,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=24,
        max_position_embeddings=16,
    )
    torch.manual_seed(0)
    return BertModel(config).double().eval()


def test_attention_heads_and_per_head_maps() -> None:
    model = tiny_bert()
    ids = {"input_ids": torch.randint(0, 40, (2, 5))}
    spec = find_symmetries(model, ids, resolver=RESOLVER)
    site = spec.site("encoder.layer.0.attention.self")
    assert site.kind == "attention"
    assert (site.size, site.qk_dim, site.vo_dim) == (4, 4, 4)
    assert site.permute_heads
    assert site.qk_group == "general_linear"
    assert site.vo_group == "general_linear"
    fibres = {(a.tensor.split(".")[-2], a.fibre) for a in site.actions}
    assert {("query", "q"), ("key", "k"), ("value", "v"), ("dense", "v")} <= fibres
    transform = spec.sample(seed=0)
    element = transform.elements[site.name]
    assert not np.array_equal(element.perm, np.arange(4))
    transformed = apply_transform(model, spec, transform, example_inputs=ids)
    report = check_function_preserved(model, transformed, ids)
    assert report.max_rel <= FLOAT64_RTOL, str(report)


@pytest.mark.parametrize("fibre", ["k", "v"])
def test_attention_pair_ignored_changes_outputs(fibre: str) -> None:
    model = tiny_bert()
    ids = {"input_ids": torch.randint(0, 40, (2, 5))}
    spec = find_symmetries(model, ids, resolver=RESOLVER)
    # Dropping the key side breaks q.k; dropping the output projection's
    # columns breaks the value/output pair.
    name = "encoder.layer.0.attention.self"
    if fibre == "k":
        broken = without(spec, lambda a: ".key." in a.tensor)
    else:
        broken = without(
            spec, lambda a: a.tensor.endswith("attention.output.dense.weight")
        )
    transform = broken.sample(seed=0)
    assert broken.site(name).kind == "attention"
    with pytest.raises(FunctionChangedError):
        apply_transform(model, broken, transform, example_inputs=ids)


# 8. LayerNorm sites get permutations only -----------------------------------


def test_layernorm_sites_permutations_only() -> None:
    torch.manual_seed(0)
    model = TiedLM().double().eval()
    ids = (torch.randint(0, 13, (2, 5)),)
    spec = find_symmetries(model, ids, resolver=RESOLVER)
    stream = spec.site("embed")
    assert stream.kind == "monomial"
    assert [c.scalars.kind for c in stream.components] == ["trivial"]
    norm = [a for a in stream.actions if a.tensor.startswith("norm.")]
    assert {a.tensor for a in norm} == {"norm.weight", "norm.bias"}
    assert all(a.factors == () for a in norm)


def test_action_describe_names_tensor() -> None:
    action = Action("w", 1, "in", np.arange(3)[:, None])
    assert action.describe() == "w[1] in"


def _reused_linear() -> nn.Module:
    torch.manual_seed(0)
    first = nn.Linear(4, 4)
    return nn.Sequential(first, nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), first)


def _reused_batchnorm() -> nn.Module:
    torch.manual_seed(0)
    norm = nn.BatchNorm1d(4)
    return nn.Sequential(norm, nn.Linear(4, 4), nn.ReLU(), norm, nn.Linear(4, 2))


@pytest.mark.parametrize("build", [_reused_linear, _reused_batchnorm])
def test_reused_layer_on_input_pins_axes(build) -> None:
    # A layer applied to the model input and again to hidden units cannot
    # move its weights in the second use without changing the first.
    model = build().double().eval()
    inputs = torch.randn(6, 4, dtype=torch.float64)
    spec = find_symmetries(model, inputs)
    reasons = " ".join(site.reason for site in spec.excluded)
    assert "is also used where its axis" in reasons
    for seed in range(4):
        moved = apply_transform(model, spec, spec.sample(seed=seed), check=False)
        report = check_function_preserved(
            model, moved, inputs, rtol=FLOAT64_RTOL, atol=1e-12
        )
        assert report.ok, report.summary()

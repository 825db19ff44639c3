"""Every supported layer kind on a small model: discovery and a preserved transform."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from nn_bridge import (
    apply_transform,
    check_function_preserved,
    find_symmetries,
    fixed_group_resolver,
)
from symgroups._group import Character, GroupDescription

FLOAT64_RTOL = 1e-11

RELU = GroupDescription("monomial", "positive", (), Character(1, 1))
SIGN = GroupDescription("monomial", "sign", (), Character(1, 1))
TRIVIAL = GroupDescription("monomial", "trivial", (), Character(0, 0))
RESOLVER = fixed_group_resolver(
    {
        "aten.relu.default": RELU,
        "aten.tanh.default": SIGN,
        "aten.gelu.default": TRIVIAL,
    }
)


def discover_and_check(model: nn.Module, inputs: tuple, seeds: int = 3):
    model = model.double()
    inputs = tuple(t.double() if t.is_floating_point() else t for t in inputs)
    spec = find_symmetries(model, inputs, resolver=RESOLVER)
    spec.validate()
    for seed in range(seeds):
        transformed = apply_transform(model, spec, spec.sample(seed=seed), check=False)
        report = check_function_preserved(model, transformed, inputs)
        assert report.max_rel <= FLOAT64_RTOL, f"seed {seed}: {report}"
    return spec


def scalar_kinds(spec, name: str) -> list[str]:
    return [c.scalars.kind for c in spec.site(name).components]


class Conv1dNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv1d(2, 6, 3)
        self.b = nn.Conv1d(6, 4, 3, padding=1)
        self.head = nn.Linear(4 * 6, 2)

    def forward(self, x):
        return self.head(torch.tanh(self.b(F.relu(self.a(x)))).flatten(1))


def test_conv1d() -> None:
    torch.manual_seed(0)
    spec = discover_and_check(Conv1dNet().eval(), (torch.randn(2, 2, 8),))
    assert scalar_kinds(spec, "a") == ["positive"]
    assert scalar_kinds(spec, "b") == ["sign"]


class Depthwise(nn.Module):
    def __init__(self, multiplier: int) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1)
        self.dw = nn.Conv2d(4, 4 * multiplier, 3, groups=4, padding=1)
        self.b = nn.Conv2d(4 * multiplier, 2, 1)

    def forward(self, x):
        return self.b(F.relu(self.dw(F.relu(self.a(x)))))


@pytest.mark.parametrize("multiplier", [1, 2])
def test_depthwise_conv_moves_with_its_channels(multiplier: int) -> None:
    torch.manual_seed(0)
    spec = discover_and_check(Depthwise(multiplier).eval(), (torch.randn(2, 3, 5, 5),))
    (site,) = spec.sites
    tensors = {a.tensor for a in site.actions}
    assert {"a.weight", "dw.weight", "dw.bias", "b.weight"} <= tensors
    (dw,) = [a for a in site.actions if a.tensor == "dw.weight"]
    assert dw.positions.shape == (4, multiplier)
    assert scalar_kinds(spec, "a") == ["positive"]


def test_grouped_conv_outputs_move_within_groups() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 6, 1),
        nn.ReLU(),
        nn.Conv2d(6, 6, 1, groups=2),
        nn.ReLU(),
        nn.Conv2d(6, 1, 1),
    ).eval()
    spec = discover_and_check(model, (torch.randn(1, 2, 3, 3),))
    reasons = " ".join(e.reason for e in spec.excluded)
    # The input channels of a group are read by that group's rows only.
    assert "grouped convolution with 2 groups" in reasons
    assert "0.weight" in spec.invariant
    site = spec.site("2")
    assert site.colours.tolist() == [0, 0, 0, 1, 1, 1]
    assert not site.permute_colours
    assert scalar_kinds(spec, "2") == ["positive"]
    perm = spec.sample(seed=0).elements["2"].perm
    assert sorted(perm[:3]) == [0, 1, 2]


class GroupNormNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.GroupNorm(4, 8)
        self.b = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        return self.b(F.relu(self.norm(self.a(x))))


def test_groupnorm_moves_whole_groups() -> None:
    torch.manual_seed(0)
    spec = discover_and_check(GroupNormNet().eval(), (torch.randn(2, 3, 5, 5),), 5)
    site = spec.site("a")
    assert site.colours.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert site.permute_colours
    assert scalar_kinds(spec, "a") == ["trivial"]
    tensors = {a.tensor for a in site.actions}
    assert {"a.weight", "a.bias", "norm.weight", "norm.bias", "b.weight"} <= tensors
    # Some seed moves a group to another place, not only within itself.
    perms = [spec.sample(seed=seed).elements["a"].perm for seed in range(5)]
    assert any(perm[0] // 2 != 0 for perm in perms)
    assert "4 whole groups" in site.describe_group()


def test_groupnorm_rejects_split_group() -> None:
    from nn_bridge import TransformError

    torch.manual_seed(0)
    model = GroupNormNet().double().eval()
    spec = find_symmetries(model, (torch.randn(2, 3, 5, 5).double(),))
    transform = spec.identity()
    # Swapping channels 1 and 2 puts group 0's second channel into group 1.
    transform.elements["a"].perm[[1, 2]] = [2, 1]
    with pytest.raises(TransformError, match="splits group 0"):
        transform.check_fits(spec)
    transform.elements["a"].perm[[0, 1, 2, 3]] = [2, 3, 0, 1]
    transform.check_fits(spec)


class BatchNormNet(nn.Module):
    def __init__(self, dims: int) -> None:
        super().__init__()
        if dims == 1:
            self.a, self.bn, self.b = (
                nn.Linear(3, 5),
                nn.BatchNorm1d(5),
                nn.Linear(5, 2),
            )
        else:
            self.a, self.bn, self.b = (
                nn.Conv2d(3, 5, 1),
                nn.BatchNorm2d(5),
                nn.Conv2d(5, 2, 1),
            )

    def forward(self, x):
        return self.b(F.relu(self.bn(self.a(x))))


def warm(model: nn.Module, shape: tuple[int, ...]) -> nn.Module:
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(*shape) * 2 + 1)
    return model


@pytest.mark.parametrize("dims", [1, 2])
def test_batchnorm_eval_all_four_tensors(dims: int) -> None:
    torch.manual_seed(0)
    shape = (6, 3) if dims == 1 else (6, 3, 4, 4)
    model = warm(BatchNormNet(dims), shape).eval()
    spec = discover_and_check(model, (torch.randn(*shape),))
    (site,) = spec.sites
    tensors = {a.tensor: a for a in site.actions}
    for name in ("bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"):
        assert name in tensors
    # The convolution output scales freely (BatchNorm absorbs it), the BatchNorm
    # output scales positively (ReLU).
    assert [c.scalars.kind for c in site.components] == ["nonzero", "positive"]
    assert tensors["bn.running_var"].factors == ()
    assert "bn.num_batches_tracked" in spec.invariant


def test_batchnorm_train_mode_restricts_input_scaling() -> None:
    torch.manual_seed(0)
    model = warm(BatchNormNet(2), (6, 3, 4, 4))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    spec = discover_and_check(model, (torch.randn(6, 3, 4, 4),))
    assert [c.scalars.kind for c in spec.sites[0].components] == ["sign", "positive"]
    assert model.training
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name


class Stream(nn.Module):
    """Embedding, residual MLP blocks with LayerNorm and dropout, then a head."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(11, 6)
        self.norm = nn.LayerNorm(6)
        self.up = nn.Linear(6, 8)
        self.down = nn.Linear(8, 6)
        self.drop = nn.Dropout(0.1)
        self.head = nn.Linear(6, 3)

    def forward(self, ids):
        x = self.embed(ids)
        x = x + self.drop(self.down(F.gelu(self.up(self.norm(x)))))
        return self.head(self.norm(x).mean(dim=1))


def test_embedding_layernorm_residual_stream() -> None:
    torch.manual_seed(0)
    spec = discover_and_check(Stream().eval(), (torch.randint(0, 11, (2, 5)),))
    stream = spec.site("embed")
    tensors = {(a.tensor, a.axis) for a in stream.actions}
    assert {
        ("embed.weight", 1),
        ("norm.weight", 0),
        ("up.weight", 1),
        ("down.weight", 0),
        ("head.weight", 1),
    } <= tensors
    assert scalar_kinds(spec, "embed") == ["trivial"]
    assert scalar_kinds(spec, "up") == ["trivial"]


class PoolNet(nn.Module):
    def __init__(self, pool: nn.Module) -> None:
        super().__init__()
        self.a = nn.Conv2d(2, 4, 3, padding=1)
        self.pool = pool
        self.b = nn.Conv2d(4, 3, 1)

    def forward(self, x):
        return self.b(self.pool(self.a(x)))


@pytest.mark.parametrize(
    ("pool", "kind", "scalars"),
    [
        (nn.MaxPool2d(2), "monomial", "positive"),
        (nn.AvgPool2d(2), "general_linear", None),
        (nn.AdaptiveAvgPool2d(1), "general_linear", None),
    ],
)
def test_pooling(pool: nn.Module, kind: str, scalars: str | None) -> None:
    torch.manual_seed(0)
    spec = discover_and_check(PoolNet(pool).eval(), (torch.randn(2, 2, 4, 4),))
    site = spec.site("a")
    assert site.kind == kind
    if scalars:
        assert scalar_kinds(spec, "a") == [scalars]


def test_linear_linear_is_general_linear() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.Dropout(0.2), nn.Linear(5, 2)).eval()
    spec = discover_and_check(model, (torch.randn(4, 3),))
    (site,) = spec.sites
    assert site.kind == "general_linear"
    assert not site.orthogonal


class Concat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(3, 4)
        self.b = nn.Linear(3, 5)
        self.c = nn.Linear(9, 2)

    def forward(self, x):
        return self.c(torch.cat([F.relu(self.a(x)), torch.tanh(self.b(x))], dim=-1))


def test_concatenation_keeps_blocks_apart() -> None:
    torch.manual_seed(0)
    spec = discover_and_check(Concat().eval(), (torch.randn(4, 3),))
    (a_in,) = [x for x in spec.site("a").actions if x.tensor == "c.weight"]
    (b_in,) = [x for x in spec.site("b").actions if x.tensor == "c.weight"]
    assert a_in.positions.ravel().tolist() == [0, 1, 2, 3]
    assert b_in.positions.ravel().tolist() == [4, 5, 6, 7, 8]


def test_per_channel_prelu_slopes_move() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 1), nn.PReLU(4), nn.Conv2d(4, 1, 1)).eval()
    with torch.no_grad():
        model[1].weight.copy_(torch.linspace(-0.5, 0.5, 4))
    spec = discover_and_check(model, (torch.randn(2, 2, 3, 3),))
    (site,) = spec.sites
    assert "1.weight" in {a.tensor for a in site.actions}
    assert scalar_kinds(spec, "0") == ["positive"]


class Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(5, 3))
        self.b1 = nn.Parameter(torch.randn(5))
        self.scale = nn.Parameter(torch.randn(5))
        self.w2 = nn.Parameter(torch.randn(2, 5))

    def forward(self, x):
        h = F.relu(x @ self.w1.T + self.b1) * self.scale
        return F.linear(h, self.w2)


def test_bare_parameters_and_broadcast_bias() -> None:
    torch.manual_seed(0)
    model = Functional().eval()
    spec = discover_and_check(model, (torch.randn(4, 3),))
    (site,) = spec.sites
    tensors = {(a.tensor, a.axis) for a in site.actions}
    # x @ w1.T reads w1 transposed: its rows are still the hidden units.
    assert tensors == {("w1", 0), ("b1", 0), ("scale", 0), ("w2", 1)}
    assert scalar_kinds(spec, site.name) == ["positive"]


class MultiHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.up = nn.Linear(8, 6)
        self.down = nn.Linear(6, 8)

    def forward(self, x):
        y = self.attn(x, x, x, need_weights=False)[0]
        return self.down(F.relu(self.up(y)))


def test_multihead_attention_fused_projection_is_split() -> None:
    torch.manual_seed(0)
    spec = discover_and_check(MultiHead().eval(), (torch.randn(2, 3, 8),))
    assert scalar_kinds(spec, "up") == ["positive"]
    site = spec.site("attn")
    assert site.kind == "attention"
    assert (site.size, site.qk_dim, site.vo_dim) == (2, 4, 4)
    fused = {
        a.fibre: a.positions.ravel().tolist()
        for a in site.actions
        if a.tensor == "attn.in_proj_weight"
    }
    # in_proj_weight stacks the query, key and value rows in that order.
    assert fused == {
        "q": list(range(8)),
        "k": list(range(8, 16)),
        "v": list(range(16, 24)),
    }
    assert "attn.in_proj_weight" not in spec.invariant
    assert "attn.in_proj_bias" not in spec.invariant


def test_capture_graph_names_state_dict_tensors() -> None:
    from nn_bridge import capture_graph

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    graph = capture_graph(model, (torch.randn(2, 3),))
    tensors = {
        data["tensor"]
        for _, data in graph.nodes(data=True)
        if data["kind"] == "parameter"
    }
    assert tensors == {"0.weight", "0.bias", "2.weight", "2.bias"}
    ops = [data["target"] for _, data in graph.nodes(data=True) if data["kind"] == "op"]
    assert ops == ["aten.linear.default", "aten.relu.default", "aten.linear.default"]
    (relu,) = [
        n
        for n, data in graph.nodes(data=True)
        if data.get("target") == "aten.relu.default"
    ]
    assert list(graph.predecessors(relu)) == ["linear"]

"""Sequential Linear/Conv2d models and the feed-forward units of MiniLM.

The groups come from hand-built ``GroupDescription`` objects, so these tests
check nn_bridge alone; ``test_default_resolver_queries_symgroups`` uses the
real ``symgroups.query``.
"""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings
from torch import nn

from nn_bridge import (
    apply_transform,
    check_function_preserved,
    find_symmetries,
    fixed_group_resolver,
)
from symgroups._group import Character, GroupDescription

#: Max relative output deviation of a float64 model after a transform.
FLOAT64_RTOL = 1e-12

#: Max deviation of MiniLM sentence embeddings (unit vectors) in float32.
MINILM_ATOL = 1e-5

RELU = GroupDescription("monomial", "positive", (), Character(1, 1))
SIGN = GroupDescription("monomial", "sign", (), Character(1, 1))
SQUARE = GroupDescription("monomial", "nonzero", (), Character(0, 2))
GAUSSIAN = GroupDescription("monomial", "sign", (), Character(0, 0))
TRIVIAL = GroupDescription("monomial", "trivial", (), Character(0, 0))

RESOLVER = fixed_group_resolver(
    {
        "aten.relu.default": RELU,
        "aten.tanh.default": SIGN,
        "aten.sin.default": SIGN,
        "aten.pow.Tensor_Scalar": SQUARE,
        "aten.gelu.default": TRIVIAL,
        "aten.sigmoid.default": TRIVIAL,
        "aten.silu.default": TRIVIAL,
    }
)


class Square(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x**2


class Sin(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(x)


class Gaussian(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(-(x**2))


#: Activation -> expected scalar group kind of its hidden sites.
ACTIVATIONS = {
    "relu": (nn.ReLU, "positive"),
    "tanh": (nn.Tanh, "sign"),
    "sin": (Sin, "sign"),
    "square": (Square, "nonzero"),
    "gelu": (nn.GELU, "trivial"),
    "sigmoid": (nn.Sigmoid, "trivial"),
    "silu": (nn.SiLU, "trivial"),
}


def mlp(widths: list[int], activation: type[nn.Module], seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for index in range(len(widths) - 1):
        layers.append(nn.Linear(widths[index], widths[index + 1]))
        if index < len(widths) - 2:
            layers.append(activation())
    return nn.Sequential(*layers).double().eval()


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_unchanged(model: nn.Module, before: dict[str, torch.Tensor]) -> None:
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_mlp_sites_and_groups(name: str) -> None:
    activation, scalars = ACTIVATIONS[name]
    model = mlp([5, 7, 6, 3], activation)
    x = torch.randn(4, 5, dtype=torch.float64)
    spec = find_symmetries(model, (x,), resolver=RESOLVER)
    assert [site.name for site in spec.sites] == ["0", "2"]
    for site in spec.sites:
        assert site.kind == "monomial"
        assert [c.scalars.kind for c in site.components] == [scalars]
    assert [e.name for e in spec.excluded] == ["4"]
    assert "its values reach a model output" in spec.excluded[0].reason


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_mlp_transform_preserves_outputs(name: str) -> None:
    activation, _ = ACTIVATIONS[name]
    model = mlp([5, 7, 6, 3], activation)
    x = torch.randn(4, 5, dtype=torch.float64)
    before = snapshot(model)
    spec = find_symmetries(model, (x,), resolver=RESOLVER)
    for seed in range(3):
        for scalings in ("dyadic", "lognormal"):
            transform = spec.sample(seed=seed, scalings=scalings)
            transformed = apply_transform(model, spec, transform, example_inputs=(x,))
            report = check_function_preserved(model, transformed, (x,))
            assert report.max_rel <= FLOAT64_RTOL, str(report)
            assert not torch.equal(transformed[0].weight, model[0].weight)
    assert_unchanged(model, before)


def test_square_consumer_divides_by_square() -> None:
    model = mlp([3, 4, 2], Square)
    x = torch.randn(2, 3, dtype=torch.float64)
    spec = find_symmetries(model, (x,), resolver=RESOLVER)
    transform = spec.sample(seed=5, scalings="lognormal")
    transformed = apply_transform(model, spec, transform, check=False)
    element = transform.elements["0"]
    perm, d = element.perm, element.scales[0]
    expected = model[2].weight.detach().clone()
    reordered = torch.empty_like(expected)
    reordered[:, perm] = expected / torch.as_tensor(d**2)
    assert torch.allclose(transformed[2].weight, reordered, rtol=1e-14)


def test_gaussian_composite_gets_sign_flips() -> None:
    # exp(-(x**2)) is exported as pow, neg, exp. The square allows every
    # nonzero scaling with mu(d) = d**2, and exp (no catalogue entry here)
    # only permutations after it, which leaves d**2 = 1: sign flips, the
    # group of the Gaussian itself.
    model = mlp([3, 6, 2], Gaussian)
    x = torch.randn(2, 3, dtype=torch.float64)
    resolver = fixed_group_resolver({"aten.pow.Tensor_Scalar": SQUARE})
    spec = find_symmetries(model, (x,), resolver=resolver)
    (site,) = spec.sites
    assert site.components[0].scalars.kind == "sign"
    transform = spec.sample(seed=3)
    assert (transform.elements["0"].scales[0] < 0).any()
    transformed = apply_transform(model, spec, transform, example_inputs=(x,))
    consumer = transformed[2].weight
    # mu = 1 on signs: the consumer columns are permuted, never negated.
    assert torch.equal(
        consumer.abs().sort(dim=1).values, model[2].weight.abs().sort(dim=1).values
    )
    assert check_function_preserved(model, transformed, (x,)).max_rel <= FLOAT64_RTOL


@settings(max_examples=10, deadline=None)
@given(
    widths=st.lists(st.integers(1, 9), min_size=2, max_size=4),
    seed=st.integers(0, 2**31 - 1),
    name=st.sampled_from(sorted(ACTIVATIONS)),
)
def test_random_mlps_preserve_outputs(widths: list[int], seed: int, name: str) -> None:
    model = mlp([3, *widths, 2], ACTIVATIONS[name][0], seed=seed % 1000)
    x = torch.randn(3, 3, dtype=torch.float64)
    spec = find_symmetries(model, (x,), resolver=RESOLVER)
    assert len(spec.sites) == len(widths)
    transformed = apply_transform(model, spec, spec.sample(seed=seed), check=False)
    report = check_function_preserved(model, transformed, (x,), seed=seed)
    assert report.max_rel <= FLOAT64_RTOL, str(report)


def small_cnn(activation: type[nn.Module]) -> nn.Sequential:
    torch.manual_seed(0)
    return (
        nn.Sequential(
            nn.Conv2d(3, 5, 3, padding=1),
            activation(),
            nn.Conv2d(5, 6, 3, stride=2, padding=1),
            activation(),
            nn.Flatten(),
            nn.Linear(6 * 4 * 4, 4),
        )
        .double()
        .eval()
    )


@pytest.mark.parametrize("name", ["relu", "tanh", "square", "gelu"])
def test_cnn_flatten_blocks(name: str) -> None:
    model = small_cnn(ACTIVATIONS[name][0])
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    spec = find_symmetries(model, (x,), resolver=RESOLVER)
    second = spec.site("2")
    consumer = [a for a in second.actions if a.tensor == "5.weight"]
    assert len(consumer) == 1
    # Each of the 6 channels becomes a block of 16 features in NCHW order.
    assert consumer[0].positions.shape == (6, 16)
    assert consumer[0].positions[1].tolist() == list(range(16, 32))
    transformed = apply_transform(model, spec, spec.sample(seed=1), example_inputs=(x,))
    report = check_function_preserved(model, transformed, (x,))
    assert report.max_rel <= FLOAT64_RTOL, str(report)


def test_channel_last_flatten_follows_permute() -> None:
    class ChannelLast(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 4, 3)
            self.fc = nn.Linear(4 * 2 * 3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.relu(self.conv(x)).permute(0, 3, 2, 1).contiguous()
            return self.fc(y.view(y.shape[0], -1))

    torch.manual_seed(0)
    model = ChannelLast().double().eval()
    x = torch.randn(2, 2, 4, 5, dtype=torch.float64)
    spec = find_symmetries(model, (x,), resolver=RESOLVER)
    (action,) = [a for a in spec.site("conv").actions if a.tensor == "fc.weight"]
    # (width, height, channel) order: channel 0 sits at every 4th feature,
    # and its replicas are listed in the conv output's (height, width) order.
    assert sorted(action.positions[0].tolist()) == list(range(0, 24, 4))
    assert action.positions[0].tolist() == [0, 8, 16, 4, 12, 20]
    transformed = apply_transform(model, spec, spec.sample(seed=2), example_inputs=(x,))
    assert check_function_preserved(model, transformed, (x,)).max_rel <= FLOAT64_RTOL


def test_default_resolver_queries_symgroups() -> None:
    model = mlp([4, 6, 2], nn.ReLU)
    x = torch.randn(2, 4, dtype=torch.float64)
    spec = find_symmetries(model, (x,))
    (site,) = spec.sites
    assert site.components[0].scalars.kind == "positive"
    assert any("proved" in note for note in site.notes)


def _load_minilm() -> tuple[nn.Module, object]:
    from nn_bridge import pretrained

    return pretrained.load_minilm()


def test_minilm_feed_forward_permutations() -> None:
    from nn_bridge import pretrained

    model, tokenizer = _load_minilm()
    inputs = pretrained.minilm_inputs(tokenizer)
    before = snapshot(model)
    resolver = fixed_group_resolver(
        {"aten.gelu.default": TRIVIAL, "aten.tanh.default": SIGN}
    )
    spec = find_symmetries(model, inputs, resolver=resolver)
    feed_forward = [s for s in spec.sites if s.name.endswith("intermediate.dense")]
    assert len(feed_forward) == 6
    for site in feed_forward:
        assert site.size == 1536
        assert site.components[0].scalars.kind == "trivial"
        tensors = {(a.tensor.rsplit(".", 2)[-2], a.axis, a.side) for a in site.actions}
        assert ("dense", 0, "out") in tensors
    expected = pretrained.encode(model, tokenizer)
    transformed = apply_transform(model, spec, spec.sample(seed=0), check=False)
    actual = pretrained.encode(transformed, tokenizer)
    assert (actual - expected).abs().max().item() <= MINILM_ATOL
    for layer in range(6):
        name = f"encoder.layer.{layer}.intermediate.dense.weight"
        assert not torch.equal(transformed.state_dict()[name], before[name])
    assert_unchanged(model, before)

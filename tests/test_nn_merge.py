"""Interpolation paths and loss barriers of :mod:`nn_bridge._merge`."""

from __future__ import annotations

import math

import nets
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nn_bridge import InvalidArgumentError, apply_transform, find_symmetries
from nn_bridge._align import ArchitectureMismatchError, align
from nn_bridge._merge import (
    InterpolationResult,
    interpolate,
    interpolate_weights,
    reset_batchnorm,
)


def classification_data(samples: int = 64, seed: int = 0):
    inputs = nets.random_input((samples, 5), seed=seed, dtype=torch.float64)
    generator = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, 3, (samples,), generator=generator)
    return inputs, targets


def bn_mlp(seed: int = 0) -> nn.Module:
    def build() -> nn.Module:
        return nn.Sequential(
            nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)
        )

    model = nets._seeded(seed, build)
    return nets.warm_batchnorm(model, steps=3, seed=seed, input_shape=(5,)).double()


def test_same_model_has_no_barrier():
    model = nets.mlp((5, 8, 3), nn.Tanh).double()
    result = interpolate(model, model, classification_data())
    assert isinstance(result, InterpolationResult)
    assert result.barrier == pytest.approx(0.0, abs=1e-12)
    assert max(result.losses) - min(result.losses) < 1e-12
    assert result.samples == 64


def test_ends_equal_direct_losses():
    inputs, targets = classification_data()
    model_a = nets.mlp((5, 8, 3), nn.Tanh, seed=0).double()
    model_b = nets.mlp((5, 8, 3), nn.Tanh, seed=1).double()
    result = interpolate(model_a, model_b, (inputs, targets), alphas=[0.5])
    assert result.alphas == [0.0, 0.5, 1.0]
    with torch.no_grad():
        loss_a = float(F.cross_entropy(model_a(inputs), targets))
        loss_b = float(F.cross_entropy(model_b(inputs), targets))
    assert result.losses[0] == pytest.approx(loss_a, rel=1e-12)
    assert result.losses[2] == pytest.approx(loss_b, rel=1e-12)
    chord = 0.5 * (loss_a + loss_b)
    assert result.barrier == pytest.approx(max(result.losses[1] - chord, 0.0))


def test_accuracy_counts_argmax_hits():
    inputs, targets = classification_data()
    model = nets.mlp((5, 8, 3), seed=2).double()
    result = interpolate(model, model, (inputs, targets), alphas=[0.0])
    with torch.no_grad():
        expected = float((model(inputs).argmax(1) == targets).double().mean())
    assert result.accuracies[0] == pytest.approx(expected)


def test_regression_outputs_have_no_accuracy():
    inputs = nets.random_input((16, 5), dtype=torch.float64)
    targets = nets.random_input((16, 3), seed=1, dtype=torch.float64)
    model = nets.mlp((5, 8, 3)).double()
    result = interpolate(model, model, (inputs, targets), loss_fn=F.mse_loss)
    assert all(accuracy is None for accuracy in result.accuracies)


def test_sign_flips_make_barrier_alignment_removes_it():
    model = nets.mlp((5, 16, 3), nn.Tanh).double()
    with torch.no_grad():
        model[2].weight *= 10.0
    inputs = classification_data()[0]
    # Labels the model predicts itself, so both ends have a low loss.
    with torch.no_grad():
        data = (inputs, model(inputs).argmax(1))
    spec = find_symmetries(model, data[0])
    flipped = spec.identity()
    flipped.elements["0"].scales = (-torch.ones(16).numpy(),)
    moved = apply_transform(model, spec, flipped)
    unaligned = interpolate(model, moved, data)
    # Halfway, every hidden weight cancels: the output is the bias alone.
    assert unaligned.barrier > 1e-3
    aligned = align(model, moved, data[0], spec=spec).aligned
    assert interpolate(model, aligned, data).barrier == pytest.approx(0.0, abs=1e-9)


def test_interpolate_weights_ends_and_middle():
    model_a = bn_mlp(0)
    model_b = bn_mlp(1)
    start = interpolate_weights(model_a, model_b, 0.0).state_dict()
    end = interpolate_weights(model_a, model_b, 1.0).state_dict()
    middle = interpolate_weights(model_a, model_b, 0.5).state_dict()
    state_a, state_b = model_a.state_dict(), model_b.state_dict()
    for name, value in state_a.items():
        assert torch.equal(start[name], value)
        if value.is_floating_point():
            assert torch.equal(end[name], state_b[name])
            assert torch.allclose(middle[name], 0.5 * (value + state_b[name]))
        else:
            assert torch.equal(end[name], value)


def test_reset_batchnorm_uses_data_statistics():
    model = bn_mlp(0)
    inputs, targets = classification_data()
    assert reset_batchnorm(model, [(inputs, targets)]) is True
    with torch.no_grad():
        hidden = model[0](inputs)
    assert torch.allclose(model[1].running_mean, hidden.mean(0))
    assert not model.training
    assert reset_batchnorm(nets.mlp((5, 3)), [(inputs, targets)]) is False


def test_reset_bn_changes_path_not_models():
    model_a, model_b = bn_mlp(0), bn_mlp(1)
    before = {k: v.clone() for k, v in model_a.state_dict().items()}
    data = classification_data()
    plain = interpolate(model_a, model_b, data, alphas=[0.5])
    reset = interpolate(model_a, model_b, data, alphas=[0.5], reset_bn=True)
    assert reset.reset_bn is True
    assert plain.losses[1] != reset.losses[1]
    for name, value in model_a.state_dict().items():
        assert torch.equal(value, before[name])


def test_reset_bn_without_batchnorm_noted():
    model = nets.mlp((5, 8, 3)).double()
    result = interpolate(model, model, classification_data(), reset_bn=True)
    assert result.notes == ["reset_bn=True but the model has no BatchNorm layer"]


def test_iterable_batches_weighted_by_size():
    inputs, targets = classification_data(60)
    model_a = nets.mlp((5, 8, 3), seed=0).double()
    model_b = nets.mlp((5, 8, 3), seed=1).double()
    whole = interpolate(model_a, model_b, (inputs, targets), alphas=[0.3])
    batches = [(inputs[:20], targets[:20]), (inputs[20:], targets[20:])]
    split = interpolate(model_a, model_b, batches, alphas=[0.3])
    for first, second in zip(whole.losses, split.losses, strict=True):
        assert first == pytest.approx(second, rel=1e-12)
    assert split.summary()["samples"] == 60


def test_invalid_arguments_rejected():
    model = nets.mlp((5, 8, 3)).double()
    data = classification_data()
    with pytest.raises(InvalidArgumentError, match=r"alphas must be finite"):
        interpolate(model, model, data, alphas=[math.nan])
    with pytest.raises(InvalidArgumentError, match=r"alphas must not be empty"):
        interpolate(model, model, data, alphas=[])
    with pytest.raises(InvalidArgumentError, match=r"alphas must be numbers"):
        interpolate(model, model, data, alphas=["half"])
    with pytest.raises(InvalidArgumentError, match=r"data must be an \(inputs"):
        interpolate(model, model, data[0])
    with pytest.raises(InvalidArgumentError, match=r"alpha must be a finite"):
        interpolate_weights(model, model, math.inf)
    with pytest.raises(ArchitectureMismatchError, match=r"tensor '0\.weight'"):
        interpolate(model, nets.mlp((5, 4, 3)).double(), data)

"""Model stitching on real trained digits models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nn_bridge._errors import InvalidArgumentError, ModelMismatchError
from nn_bridge.experiments import (
    STITCH_KINDS,
    TrainConfig,
    load_digits_split,
    stitch,
    stitch_kinds,
    train_model,
)
from nn_bridge.experiments.stitching import capture

CONFIG = TrainConfig(epochs=5)


@pytest.fixture(scope="module")
def data():
    return load_digits_split()


@pytest.fixture(scope="module")
def relu_pair():
    return (
        train_model("mlp", "relu", 0, CONFIG).build(),
        train_model("mlp", "relu", 1, CONFIG).build(),
    )


def permuted_scaled_copy(model: torch.nn.Module, seed: int) -> tuple:
    """Move the first hidden layer of a ReLU MLP by ``P D``; return it and ``P D``."""
    rng = np.random.default_rng(seed)
    n = model.fc1.out_features
    perm = rng.permutation(n)
    scales = np.exp(rng.normal(0.0, 0.5, size=n))
    element = np.zeros((n, n))
    element[np.arange(n), perm] = scales
    copy = train_model("mlp", "relu", 0, CONFIG).build()
    g = torch.tensor(element, dtype=torch.float32)
    with torch.no_grad():
        copy.fc1.weight.copy_(g @ model.fc1.weight)
        copy.fc1.bias.copy_(g @ model.fc1.bias)
        copy.fc2.weight.copy_(model.fc2.weight @ torch.linalg.inv(g))
    return copy, element


def test_stitch_kinds_cover_every_kind(relu_pair, data) -> None:
    a, b = relu_pair
    results = stitch_kinds(a, b, "act1", data)
    assert list(results) == list(STITCH_KINDS)
    for result in results.values():
        assert 0.0 <= result.accuracy <= 1.0
        assert result.weight.shape == (32, 32)
        assert result.accuracy_a > 0.8
        assert result.accuracy_b > 0.8
    assert results["affine"].group_distance is not None
    assert results["affine"].random_distance is not None
    assert results["group_align"].group_distance is None


def test_affine_stitch_recovers_accuracy(relu_pair, data) -> None:
    a, b = relu_pair
    result = stitch(a, b, "act2", data, "affine")
    assert result.accuracy > min(result.accuracy_a, result.accuracy_b) - 0.05


def test_constrained_stitches_have_group_form(relu_pair, data) -> None:
    a, b = relu_pair
    results = stitch_kinds(a, b, "act1", data, ["group_align", "permutation"])
    align = results["group_align"].weight
    assert (np.count_nonzero(align, axis=0) == 1).all()
    assert (align[align != 0] > 0).all()
    assert set(np.unique(results["permutation"].weight)) == {0.0, 1.0}
    assert not results["group_align"].bias.any()


def test_group_align_recovers_exact_element(relu_pair, data) -> None:
    a, _ = relu_pair
    moved, element = permuted_scaled_copy(a, 3)
    result = stitch(a, moved, "act1", data, "group_align")
    # A unit that is zero on every training input can be matched to any unit.
    hidden = capture(a, "act1", data.x_train)
    live = (hidden > 0).any(dim=0).numpy()
    assert live.sum() > 20
    np.testing.assert_allclose(
        result.weight[:, live], element[:, live], rtol=1e-4, atol=1e-6
    )
    assert result.accuracy == pytest.approx(result.accuracy_a)
    assert result.fit_error < 1e-5
    permutation = stitch(a, moved, "act1", data, "permutation")
    assert permutation.fit_error > 0.05


@pytest.mark.parametrize("kind", ["orthogonal", "group_align", "permutation"])
def test_self_stitch_is_identity(data, kind: str) -> None:
    # tanh units are never constant, so the identity is the unique best fit.
    a = train_model("mlp", "tanh", 0, CONFIG).build()
    result = stitch(a, a, "act2", data, kind)
    np.testing.assert_allclose(result.weight, np.eye(32), atol=1e-5)
    assert result.accuracy == pytest.approx(result.accuracy_a)


def test_stitch_leaves_models_unchanged(relu_pair, data) -> None:
    a, b = relu_pair
    before = [p.detach().clone() for p in b.parameters()]
    stitch(a, b, "act1", data, "affine")
    for old, new in zip(before, b.parameters(), strict=True):
        assert torch.equal(old, new)
        assert new.grad is None
    assert not b.training


@pytest.mark.slow
def test_cnn_stitch_on_channels(data) -> None:
    a = train_model("cnn", "tanh", 0, TrainConfig(epochs=2)).build()
    b = train_model("cnn", "tanh", 1, TrainConfig(epochs=2)).build()
    results = stitch_kinds(a, b, "act2", data, ["affine", "group_align"])
    assert results["group_align"].weight.shape == (16, 16)
    signs = results["group_align"].weight[results["group_align"].weight != 0]
    assert set(np.unique(signs)) <= {-1.0, 1.0}


def test_stitch_rejects_unknown_layer(relu_pair, data) -> None:
    a, b = relu_pair
    with pytest.raises(InvalidArgumentError, match="invalid layer 'act9'"):
        stitch(a, b, "act9", data)


def test_stitch_rejects_linear_layer(relu_pair, data) -> None:
    a, b = relu_pair
    with pytest.raises(InvalidArgumentError, match="Linear is not a recognised"):
        stitch(a, b, "fc1", data)


def test_stitch_rejects_unknown_kind(relu_pair, data) -> None:
    a, b = relu_pair
    with pytest.raises(InvalidArgumentError, match="invalid kind 'lasso'"):
        stitch(a, b, "act1", data, "lasso")


def test_stitch_rejects_other_activation(relu_pair, data) -> None:
    a, _ = relu_pair
    tanh = train_model("mlp", "tanh", 0, TrainConfig(epochs=1)).build()
    with pytest.raises(ModelMismatchError, match="expected the same activation"):
        stitch(a, tanh, "act1", data)

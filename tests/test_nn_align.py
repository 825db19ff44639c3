"""Weight matching and activation matching of :func:`nn_bridge._align.align`.

The central check is planted recovery: B is A moved by a random element of
its whole group (permutations, signs, positive and nonzero scalings,
orthogonal blocks), and alignment must give back A's weights.
"""

from __future__ import annotations

import nets
import numpy as np
import pytest
import torch
from torch import nn

from nn_bridge import (
    InvalidArgumentError,
    apply_transform,
    check_function_preserved,
    find_symmetries,
)
from nn_bridge._align import (
    AlignmentResult,
    ArchitectureMismatchError,
    align,
    apply_element_dict,
    coordinate_descent,
    float_tensors,
    relative_distance,
)
from nn_bridge._canonical import normalize_scales

#: Largest weight difference accepted as recovery, as in
#: ``benchmarks/bench_align.py``. Planted elements of float64 models move
#: weights with float64 rounding only.
RECOVERY_ATOL = 1e-6

#: Output tolerances of the function check in float64.
FUNCTION_ATOL = 1e-9
FUNCTION_RTOL = 1e-7


def bn_cnn(activation: type[nn.Module] = nn.ReLU, seed: int = 0) -> nn.Module:
    """Two convolutions with BatchNorm on 8x8 RGB images, warmed statistics."""

    def build() -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            activation(),
            nn.Conv2d(8, 12, 3, stride=2, padding=1),
            nn.BatchNorm2d(12),
            activation(),
            nn.Flatten(),
            nn.Linear(12 * 4 * 4, 10),
        )

    model = nets._seeded(seed, build)
    return nets.warm_batchnorm(model, steps=3, seed=seed, input_shape=(3, 8, 8))


def max_weight_difference(model_a: nn.Module, model_b: nn.Module, spec) -> float:
    a = float_tensors(model_a, spec)
    b = float_tensors(model_b, spec)
    return max(float((a[name] - b[name]).abs().max()) for name in a)


def planted_pair(model: nn.Module, inputs, seed: int = 1, scalings: str = "dyadic"):
    spec = find_symmetries(model, inputs)
    element = spec.sample(seed, scalings=scalings)
    moved = apply_transform(model, spec, element, example_inputs=inputs)
    return spec, moved


PLANTED_CASES = {
    "mlp-relu": (lambda: nets.mlp((5, 16, 12, 3), nn.ReLU), (4, 5)),
    "mlp-tanh": (lambda: nets.mlp((5, 16, 12, 3), nn.Tanh), (4, 5)),
    "mlp-gelu": (lambda: nets.mlp((5, 16, 12, 3), nn.GELU), (4, 5)),
    "mlp-leaky": (lambda: nets.mlp((5, 16, 12, 3), nn.LeakyReLU), (4, 5)),
    "cnn-relu": (lambda: nets.small_cnn(nn.ReLU), nets.SMALL_CNN_INPUT_SHAPE),
    "cnn-tanh": (lambda: nets.small_cnn(nn.Tanh), nets.SMALL_CNN_INPUT_SHAPE),
    "bn-cnn-relu": (lambda: bn_cnn(nn.ReLU), nets.SMALL_CNN_INPUT_SHAPE),
    "bn-cnn-tanh": (lambda: bn_cnn(nn.Tanh), nets.SMALL_CNN_INPUT_SHAPE),
    "residual-functional": (nets.functional_net, nets.FUNCTIONAL_NET_INPUT_SHAPE),
    "vit": (nets.tiny_vit, nets.VIT_INPUT_SHAPE),
}


@pytest.mark.parametrize("case", sorted(PLANTED_CASES))
@pytest.mark.parametrize("seed", [1, 2])
def test_planted_recovery_float64(case, seed):
    build, shape = PLANTED_CASES[case]
    model = build().double()
    inputs = nets.random_input(shape, dtype=torch.float64)
    spec, moved = planted_pair(model, inputs, seed=seed)
    result = align(model, moved, inputs, spec=spec)
    assert isinstance(result, AlignmentResult)
    assert result.objective_before > 1e-3
    assert result.objective_after < 1e-20
    assert max_weight_difference(model, result.aligned, spec) <= RECOVERY_ATOL


def test_planted_lognormal_scalings():
    model = bn_cnn(nn.ReLU).double()
    inputs = nets.random_input(nets.SMALL_CNN_INPUT_SHAPE, dtype=torch.float64)
    spec, moved = planted_pair(model, inputs, seed=5, scalings="lognormal")
    result = align(model, moved, inputs, spec=spec)
    assert max_weight_difference(model, result.aligned, spec) <= RECOVERY_ATOL


@pytest.mark.slow
def test_planted_resnet_warm_batchnorm():
    model = nets.warm_batchnorm(nets.resnet18_like()).double()
    inputs = nets.random_input(nets.RESNET_INPUT_SHAPE, dtype=torch.float64)
    spec, moved = planted_pair(model, inputs, seed=3, scalings="lognormal")
    result = align(model, moved, inputs, spec=spec)
    assert max_weight_difference(model, result.aligned, spec) <= RECOVERY_ATOL


@pytest.mark.slow
def test_planted_gpt2_tied_embeddings():
    model = nets.tiny_gpt2()
    inputs = nets.random_token_ids()
    spec, moved = planted_pair(model, inputs, seed=4)
    result = align(model, moved, inputs, spec=spec)
    assert max_weight_difference(model, result.aligned, spec) <= RECOVERY_ATOL
    aligned = result.aligned
    assert aligned.lm_head.weight is aligned.transformer.wte.weight


@pytest.mark.parametrize(
    "loader",
    [
        "pnet",
        pytest.param("rnet", marks=pytest.mark.slow),
        pytest.param("onet", marks=pytest.mark.slow),
    ],
)
def test_planted_mtcnn_real_weights(loader):
    model = getattr(nets, f"load_{loader}")()
    shape = getattr(nets, f"{loader.upper()}_INPUT_SHAPE")
    inputs = nets.random_input(shape)
    spec, moved = planted_pair(model, inputs, seed=7)
    result = align(model, moved, inputs, spec=spec)
    assert max_weight_difference(model, result.aligned, spec) <= RECOVERY_ATOL


@pytest.mark.slow
def test_planted_minilm_real_weights():
    from nn_bridge import pretrained

    model, tokenizer = pretrained.load_minilm()
    inputs = pretrained.minilm_inputs(tokenizer)
    spec, moved = planted_pair(model, inputs, seed=11)
    assert any(site.kind == "attention" for site in spec.sites)
    result = align(model, moved, inputs, spec=spec, restarts=1)
    # float32 weights: the orthogonal head blocks round at about 1e-7.
    assert max_weight_difference(model, result.aligned, spec) <= RECOVERY_ATOL


def test_activation_matching_recovers_planted():
    model = nets.mlp((5, 16, 12, 3), nn.Tanh).double()
    inputs = nets.random_input((64, 5), dtype=torch.float64)
    spec, moved = planted_pair(model, inputs, seed=2)
    result = align(model, moved, inputs, spec=spec, method="activations")
    assert result.method == "activations"
    assert max_weight_difference(model, result.aligned, spec) <= RECOVERY_ATOL


def test_activation_matching_cnn_relu():
    model = nets.small_cnn(nn.ReLU).double()
    inputs = nets.random_input((16, 3, 8, 8), dtype=torch.float64)
    spec, moved = planted_pair(model, inputs, seed=3)
    result = align(model, moved, inputs, spec=spec, method="activations")
    assert max_weight_difference(model, result.aligned, spec) <= RECOVERY_ATOL


def test_independent_pair_objective_decreases():
    inputs = nets.random_input((8, 5), dtype=torch.float64)
    model_a = nets.mlp((5, 32, 32, 3), nn.Tanh, seed=0).double()
    model_b = nets.mlp((5, 32, 32, 3), nn.Tanh, seed=1).double()
    result = align(model_a, model_b, inputs, restarts=2)
    assert result.objective_after < result.objective_before
    report = check_function_preserved(
        model_b, result.aligned, inputs, rtol=FUNCTION_RTOL, atol=FUNCTION_ATOL
    )
    assert report.ok, report.summary()


def test_transform_reproduces_aligned_model():
    inputs = nets.random_input((4, 5), dtype=torch.float64)
    model_a = nets.mlp((5, 16, 3), nn.ReLU, seed=0).double()
    model_b = nets.mlp((5, 16, 3), nn.ReLU, seed=1).double()
    result = align(model_a, model_b, inputs)
    again = apply_transform(model_b, result.spec, result.transform, check=False)
    assert max_weight_difference(again, result.aligned, result.spec) == 0.0


def test_models_are_not_modified():
    inputs = nets.random_input((4, 5), dtype=torch.float64)
    model_a = nets.mlp((5, 16, 3), nn.ReLU, seed=0).double()
    model_b = nets.mlp((5, 16, 3), nn.ReLU, seed=1).double()
    before_a = {k: v.clone() for k, v in model_a.state_dict().items()}
    before_b = {k: v.clone() for k, v in model_b.state_dict().items()}
    align(model_a, model_b, inputs)
    for name, value in model_a.state_dict().items():
        assert torch.equal(value, before_a[name])
    for name, value in model_b.state_dict().items():
        assert torch.equal(value, before_b[name])


def test_site_statistics_after_planted():
    model = nets.mlp((5, 16, 12, 3), nn.Tanh).double()
    inputs = nets.random_input((4, 5), dtype=torch.float64)
    spec, moved = planted_pair(model, inputs, seed=1)
    result = align(model, moved, inputs, spec=spec)
    assert [s.name for s in result.sites] == [s.name for s in spec.sites]
    for statistics in result.sites:
        assert statistics.similarity == pytest.approx(1.0, abs=1e-12)
    assert sum(s.moved for s in result.sites) > 0
    assert sum(s.flipped for s in result.sites) > 0
    summary = result.summary()
    assert summary["objective_after"] == result.objective_after
    assert len(summary["sites"]) == len(spec.sites)


def test_progress_callback_receives_sweeps():
    model = nets.mlp((5, 8, 3), nn.ReLU).double()
    other = nets.mlp((5, 8, 3), nn.ReLU, seed=3).double()
    inputs = nets.random_input((4, 5), dtype=torch.float64)
    calls = []
    align(model, other, inputs, restarts=2, progress=lambda *a: calls.append(a))
    assert calls
    assert {call[0] for call in calls} == {"sweep"}
    assert {call[1] for call in calls} == {0, 1}


def test_restarts_keep_best_objective():
    inputs = nets.random_input((4, 5), dtype=torch.float64)
    model_a = nets.mlp((5, 24, 24, 3), nn.ReLU, seed=0).double()
    model_b = nets.mlp((5, 24, 24, 3), nn.ReLU, seed=1).double()
    one = align(model_a, model_b, inputs, restarts=1)
    several = align(model_a, model_b, inputs, restarts=4, seed=9)
    assert several.objective_after <= one.objective_after + 1e-12


def test_mismatched_width_names_tensor():
    inputs = nets.random_input((4, 5))
    model_a = nets.mlp((5, 16, 3))
    model_b = nets.mlp((5, 12, 3))
    with pytest.raises(ArchitectureMismatchError, match=r"tensor '0\.weight'"):
        align(model_a, model_b, inputs)


def test_mismatched_layers_names_tensor():
    inputs = nets.random_input((4, 5))
    model_a = nets.mlp((5, 16, 3))
    model_b = nets.mlp((5, 16, 16, 3))
    with pytest.raises(ArchitectureMismatchError, match=r"tensor '2\.weight'"):
        align(model_a, model_b, inputs)


def test_mismatched_dtype_names_tensor():
    inputs = nets.random_input((4, 5))
    model_a = nets.mlp((5, 16, 3))
    model_b = nets.mlp((5, 16, 3)).double()
    with pytest.raises(ArchitectureMismatchError, match=r"'0\.weight'.*float64"):
        align(model_a, model_b, inputs)


def test_invalid_arguments_rejected():
    inputs = nets.random_input((4, 5))
    model = nets.mlp((5, 8, 3))
    with pytest.raises(InvalidArgumentError, match=r"method must be one of"):
        align(model, model, inputs, method="gradients")
    with pytest.raises(InvalidArgumentError, match=r"restarts must be a positive"):
        align(model, model, inputs, restarts=0)
    with pytest.raises(InvalidArgumentError, match=r"progress must be"):
        align(model, model, inputs, progress="yes")
    with pytest.raises(InvalidArgumentError, match=r"model_b must be a torch"):
        align(model, np.zeros(3), inputs)


def test_identical_models_align_to_identity():
    model = nets.small_cnn(nn.Tanh).double()
    inputs = nets.random_input(nets.SMALL_CNN_INPUT_SHAPE, dtype=torch.float64)
    result = align(model, model, inputs)
    assert result.objective_before == 0.0
    assert result.objective_after == 0.0
    assert result.transform.is_identity(tol=1e-12)


def test_scaled_sites_keep_closer_candidate():
    # Independent ReLU nets: the result must be at least as close on the
    # original weights as both candidates, the normalized match with A's
    # scales and that match alone.
    inputs = nets.random_input((8, 6), dtype=torch.float64)
    model_a = nets.mlp((6, 10, 10, 3), nn.ReLU, seed=3).double()
    model_b = nets.mlp((6, 10, 10, 3), nn.ReLU, seed=4).double()
    result = align(model_a, model_b, inputs)
    spec = result.spec
    raw_a = float_tensors(model_a, spec)
    raw_b = float_tensors(model_b, spec)
    scale_a = normalize_scales(spec, raw_a)
    scale_b = normalize_scales(spec, raw_b)
    match, _ = coordinate_descent(
        spec,
        apply_element_dict(raw_a, spec, scale_a),
        apply_element_dict(raw_b, spec, scale_b),
    )
    normalized = scale_a.inverse() @ match @ scale_b
    for candidate in (normalized, match):
        distance = relative_distance(raw_a, apply_element_dict(raw_b, spec, candidate))
        assert result.objective_after <= distance + 1e-12
    assert result.objective_after < result.objective_before

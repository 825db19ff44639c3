"""Affine symmetries in nn_bridge: flips and shifts whose constant a bias absorbs."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from nn_bridge import (
    AffineSymmetrySpec,
    AffineTransform,
    TransformError,
    align,
    apply_affine_transform,
    apply_transform,
    check_function_preserved,
    find_affine_symmetries,
)
from nn_bridge.cli import main


def sigmoid_mlp(seed: int = 0, bias: bool = True) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(5, 7),
        nn.Sigmoid(),
        nn.Linear(7, 6, bias=bias),
        nn.Sigmoid(),
        nn.Linear(6, 3),
    ).double()


def sigmoid_cnn(padding: int = 0) -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3),
        nn.Sigmoid(),
        nn.Conv2d(4, 3, 3, padding=padding),
        nn.Sigmoid(),
        nn.Flatten(),
        nn.Linear(3 * (2 + 2 * padding) ** 2, 2),
    ).double()


def inputs(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(7)).double()


def cli_sigmoid_mlp() -> nn.Module:
    return sigmoid_mlp().float()


@pytest.fixture(scope="module")
def mlp_spec():
    model = sigmoid_mlp()
    return model, find_affine_symmetries(model, inputs(9, 5))


def flip(spec: AffineSymmetrySpec, site: str, units: list[int]) -> AffineTransform:
    """The identity except a sign flip of ``units`` at ``site``."""
    transform = spec.identity()
    lam, a = transform.pairs[site]
    lam = lam.copy()
    lam[units] = -1.0
    transform.pairs[site] = (lam, a)
    return transform


def test_mlp_has_two_sigmoid_sites(mlp_spec):
    _, spec = mlp_spec
    assert [s.site for s in spec.sites] == ["0", "2"]
    assert spec.sites[0].status == "proved"
    assert spec.sites[0].producer_bias == "0.bias"
    assert [c.bias for c in spec.sites[0].consumers] == ["2.bias"]


@pytest.mark.parametrize("seed", range(4))
def test_random_element_preserves_function(mlp_spec, seed):
    model, spec = mlp_spec
    transform = spec.sample(seed)
    moved = apply_affine_transform(model, spec, transform)
    report = check_function_preserved(model, moved, inputs(9, 5))
    assert report.max_abs <= 1e-10


def test_sign_flip_formulas_exact(mlp_spec):
    model, spec = mlp_spec
    moved = apply_affine_transform(model, spec, flip(spec, "0", [2]))
    before, after = model.state_dict(), moved.state_dict()
    assert torch.equal(after["0.weight"][2], -before["0.weight"][2])
    assert torch.equal(after["0.bias"][2], -before["0.bias"][2])
    assert torch.equal(after["2.weight"][:, 2], -before["2.weight"][:, 2])
    # d' = d - V diag(1/mu) b with mu = -1, b = 1 for the flipped unit.
    expected = before["2.bias"] + before["2.weight"][:, 2]
    assert torch.allclose(after["2.bias"], expected, rtol=0, atol=1e-15)
    others = [i for i in range(7) if i != 2]
    assert torch.equal(after["0.weight"][others], before["0.weight"][others])


def test_linear_group_cannot_reach_flip(mlp_spec):
    model, spec = mlp_spec
    moved = apply_affine_transform(model, spec, flip(spec, "0", [0, 3]))
    rows = model.state_dict()["0.weight"]
    flipped = moved.state_dict()["0.weight"]
    # The linear group of sigmoid is the permutations: a flipped row is no
    # row of the original, so no permutation maps one onto the other.
    for unit in (0, 3):
        distances = torch.linalg.vector_norm(rows - flipped[unit], dim=1)
        assert float(distances.min()) > 0.1
    assert all(
        not torch.equal(rows[list(perm)], flipped)
        for perm in itertools.islice(itertools.permutations(range(7)), 5000)
    )


def test_align_with_linear_spec_leaves_distance(mlp_spec):
    model, spec = mlp_spec
    x = inputs(9, 5)
    permuted = apply_transform(model, spec.linear, spec.linear.sample(3))
    back = align(model, permuted, x, spec=spec.linear)
    assert back.objective_after <= 1e-20
    flipped = apply_affine_transform(model, spec, flip(spec, "0", [0, 3]))
    stuck = align(model, flipped, x, spec=spec.linear)
    assert stuck.objective_after > 1e-3


def test_compose_matches_sequential_application(mlp_spec):
    model, spec = mlp_spec
    first, second = spec.sample(1), spec.sample(2)
    step = apply_affine_transform(model, spec, first, check=False)
    step = apply_affine_transform(step, spec, second, check=False)
    once = apply_affine_transform(model, spec, second @ first, check=False)
    for name, value in step.state_dict().items():
        assert torch.allclose(value, once.state_dict()[name], atol=1e-12), name


def test_inverse_undoes(mlp_spec):
    model, spec = mlp_spec
    transform = spec.sample(5)
    there = apply_affine_transform(model, spec, transform)
    back = apply_affine_transform(there, spec, transform.inverse())
    for name, value in model.state_dict().items():
        assert torch.allclose(value, back.state_dict()[name], atol=1e-12), name
    identity = transform @ transform.inverse()
    for lam, a in identity.pairs.values():
        assert np.all(lam == 1.0)
        assert np.all(a == 0.0)


def test_spec_and_transform_json(mlp_spec):
    model, spec = mlp_spec
    again = AffineSymmetrySpec.from_json(json.dumps(spec.to_json()))
    assert again.fingerprint() == spec.fingerprint()
    assert [s.group for s in again.sites] == [s.group for s in spec.sites]
    transform = spec.sample(4)
    copy = AffineTransform.from_json(json.dumps(transform.to_json()))
    moved = apply_affine_transform(model, again, copy, example_inputs=inputs(9, 5))
    reference = apply_affine_transform(model, spec, transform)
    for name, value in reference.state_dict().items():
        assert torch.equal(value, moved.state_dict()[name]), name


def test_pair_outside_group_rejected(mlp_spec):
    model, spec = mlp_spec
    transform = spec.identity()
    lam, a = transform.pairs["0"]
    transform.pairs["0"] = (lam, a + 0.5)
    with pytest.raises(TransformError, match="is not in"):
        apply_affine_transform(model, spec, transform)


def test_model_not_modified(mlp_spec):
    model, spec = mlp_spec
    before = {k: v.clone() for k, v in model.state_dict().items()}
    apply_affine_transform(model, spec, flip(spec, "2", [1]))
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name])


def test_consumer_without_bias_excluded():
    model = sigmoid_mlp(bias=False)
    spec = find_affine_symmetries(model, inputs(4, 5))
    assert [s.site for s in spec.sites] == ["2"]
    assert "2.weight has no bias (bias=False)" in spec.excluded["0"]


def test_producer_without_bias_keeps_flip():
    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Linear(4, 5, bias=False), nn.Sigmoid(), nn.Linear(5, 2)
    ).double()
    spec = find_affine_symmetries(model, inputs(6, 4))
    assert [s.site for s in spec.sites] == ["0"]
    moved = apply_affine_transform(model, spec, flip(spec, "0", [0, 4]))
    assert check_function_preserved(model, moved, inputs(6, 4)).max_abs <= 1e-10


def test_cnn_flips_preserve_function():
    model = sigmoid_cnn()
    x = inputs(3, 2, 6, 6)
    spec = find_affine_symmetries(model, x)
    assert [s.site for s in spec.sites] == ["0", "2"]
    for seed in range(3):
        moved = apply_affine_transform(model, spec, spec.sample(seed))
        assert check_function_preserved(model, moved, x).max_abs <= 1e-10


def test_padded_convolution_consumer_excluded():
    model = sigmoid_cnn(padding=1)
    x = inputs(2, 2, 6, 6)
    spec = find_affine_symmetries(model, x)
    assert [s.site for s in spec.sites] == ["2"]
    assert "pads its input" in spec.excluded["0"]


@pytest.mark.parametrize(
    ("activation", "site_count"),
    [(nn.Hardsigmoid, 1), (nn.ReLU6, 1), (nn.Tanh, 0), (nn.ReLU, 0)],
)
def test_other_activations(activation, site_count):
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(3, 6), activation(), nn.Linear(6, 2)).double()
    x = 4 * inputs(16, 3)
    spec = find_affine_symmetries(model, x)
    assert len(spec.sites) == site_count
    moved = apply_affine_transform(model, spec, spec.sample(0))
    assert check_function_preserved(model, moved, x).max_abs <= 1e-10


def test_exp_translation_preserves_function():
    class ExpNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = nn.Linear(3, 4)
            self.outer = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.outer(torch.exp(self.inner(x)))

    torch.manual_seed(5)
    model = ExpNet().double()
    x = inputs(8, 3)
    spec = find_affine_symmetries(model, x)
    assert spec.sites[0].group.kind == "translations"
    transform = spec.sample(0)
    _, shifts = transform.pairs["inner"]
    assert np.all(shifts != 0.0)
    moved = apply_affine_transform(model, spec, transform)
    assert check_function_preserved(model, moved, x).max_rel <= 1e-10


def test_sine_shifts_by_multiples_of_pi():
    class SineNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = nn.Linear(3, 6)
            self.outer = nn.Linear(6, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.outer(torch.sin(self.inner(x)))

    torch.manual_seed(6)
    model = SineNet().double()
    x = inputs(8, 3)
    spec = find_affine_symmetries(model, x)
    assert spec.sites[0].group.kind == "periodic"
    for seed in range(3):
        transform = spec.sample(seed)
        moved = apply_affine_transform(model, spec, transform)
        assert check_function_preserved(model, moved, x).max_abs <= 1e-10
    lam, a = (transform @ transform.inverse()).pairs["inner"]
    assert np.allclose(lam, 1.0)
    assert np.allclose(a, 0.0, atol=1e-12)


def test_flip_without_bias_correction_changes_function(mlp_spec):
    model, spec = mlp_spec
    moved = apply_affine_transform(model, spec, flip(spec, "0", [1]))
    with torch.no_grad():
        moved.get_submodule("2").bias.copy_(model.get_submodule("2").bias)
    report = check_function_preserved(model, moved, inputs(9, 5))
    assert not report.ok
    assert report.max_abs > 1e-3


# ----------------------------------------------------------------------
# Command line

FACTORY = "test_nn_affine:cli_sigmoid_mlp"


def test_cli_inspect_affine(capsys):
    assert main(["inspect", FACTORY, "--input-shape", "2,5", "--affine"]) == 0
    out = capsys.readouterr().out
    assert "affine sites (2):" in out
    assert "b = 1" in out


def test_cli_randomize_affine(tmp_path, capsys):
    path = tmp_path / "flipped.safetensors"
    code = main(
        [
            "randomize",
            FACTORY,
            "--input-shape",
            "2,5",
            "--affine",
            "--seed",
            "1",
            "-o",
            str(path),
        ]
    )
    assert code == 0
    assert "2 with affine pairs" in capsys.readouterr().out
    weights = load_file(str(path))
    original = cli_sigmoid_mlp().state_dict()
    assert not torch.equal(weights["2.bias"], original["2.bias"])

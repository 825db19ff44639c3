"""Canonical forms and fingerprints of :mod:`nn_bridge._canonical`.

The laws under test: every member of a model's orbit gets the same canonical
weights and fingerprint, the canonical model computes the model's function,
and a model moved off its orbit gets another fingerprint.
"""

from __future__ import annotations

import functools

import nets
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from nn_bridge import apply_transform, find_symmetries
from nn_bridge._align import float_tensors
from nn_bridge._canonical import (
    FINGERPRINT_DIGITS,
    CanonicalForm,
    canonicalize,
    fingerprint,
    round_to_grid,
    row_signs,
    sorting_perm,
)

#: Largest difference of canonical weights between two members of one orbit
#: in float64.
CANONICAL_ATOL = 1e-9

HYPOTHESIS_SETTINGS = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def bn_mlp() -> nn.Module:
    """Linear, BatchNorm, ReLU, Linear, tanh, Linear with warmed statistics."""

    def build() -> nn.Module:
        return nn.Sequential(
            nn.Linear(5, 12),
            nn.BatchNorm1d(12),
            nn.ReLU(),
            nn.Linear(12, 10),
            nn.Tanh(),
            nn.Linear(10, 3),
        )

    model = nets._seeded(0, build)
    return nets.warm_batchnorm(model, steps=3, input_shape=(5,))


MODELS = {
    "mlp-relu": (lambda: nets.mlp((5, 12, 10, 3), nn.ReLU), (4, 5)),
    "mlp-tanh": (lambda: nets.mlp((5, 12, 10, 3), nn.Tanh), (4, 5)),
    "bn-mlp": (bn_mlp, (4, 5)),
    "cnn-relu": (lambda: nets.small_cnn(nn.ReLU), nets.SMALL_CNN_INPUT_SHAPE),
    "residual-functional": (nets.functional_net, nets.FUNCTIONAL_NET_INPUT_SHAPE),
    "vit": (nets.tiny_vit, nets.VIT_INPUT_SHAPE),
}


@functools.cache
def prepared(name: str):
    """Model, inputs, spec and canonical form of one fixture, in float64."""
    build, shape = MODELS[name]
    model = build().double()
    inputs = nets.random_input(shape, dtype=torch.float64)
    spec = find_symmetries(model, inputs)
    return model, inputs, spec, canonicalize(model, inputs, spec=spec)


def canonical_difference(first: CanonicalForm, second: CanonicalForm) -> float:
    a = float_tensors(first.model, first.spec)
    b = float_tensors(second.model, second.spec)
    return max(float((a[name] - b[name]).abs().max()) for name in a)


@HYPOTHESIS_SETTINGS
@given(name=st.sampled_from(sorted(MODELS)), seed=st.integers(0, 2**32 - 1))
def test_group_elements_keep_fingerprint(name, seed):
    model, inputs, spec, base = prepared(name)
    moved = apply_transform(model, spec, spec.sample(seed), check=False)
    form = canonicalize(moved, inputs, spec=spec, check=False)
    assert form.fingerprint == base.fingerprint
    assert canonical_difference(form, base) <= CANONICAL_ATOL


@HYPOTHESIS_SETTINGS
@given(
    name=st.sampled_from(["mlp-relu", "bn-mlp", "residual-functional"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_lognormal_scalings_keep_fingerprint(name, seed):
    model, inputs, spec, base = prepared(name)
    element = spec.sample(seed, scalings="lognormal")
    moved = apply_transform(model, spec, element, check=False)
    form = canonicalize(moved, inputs, spec=spec, check=False)
    assert form.fingerprint == base.fingerprint


@HYPOTHESIS_SETTINGS
@given(
    name=st.sampled_from(sorted(MODELS)),
    tensor_index=st.integers(0, 10**6),
    entry_index=st.integers(0, 10**9),
    size=st.floats(1e-3, 1.0),
    negative=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_perturbations_change_fingerprint(
    name, tensor_index, entry_index, size, negative, seed
):
    model, inputs, spec, base = prepared(name)
    moved = apply_transform(model, spec, spec.sample(seed), check=False)
    names = sorted(n for n, info in spec.tensors.items() if info.is_float)
    target = dict(moved.named_parameters(remove_duplicate=False)) | dict(
        moved.named_buffers()
    )
    tensor = target[names[tensor_index % len(names)]]
    with torch.no_grad():
        flat = tensor.view(-1)
        scale = float(flat.abs().max()) or 1.0
        flat[entry_index % flat.numel()] += (-size if negative else size) * scale
    form = canonicalize(moved, inputs, spec=spec, check=False)
    assert form.fingerprint != base.fingerprint


@pytest.mark.parametrize("name", sorted(MODELS))
def test_canonical_model_keeps_function(name):
    model, inputs, spec, base = prepared(name)
    # canonicalize(check=True) already raised if the outputs had changed; the
    # transform must also reproduce the canonical model.
    again = apply_transform(model, spec, base.transform, check=False)
    a = float_tensors(again, spec)
    b = float_tensors(base.model, spec)
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert base.ambiguous == []


@pytest.mark.parametrize("name", sorted(MODELS))
def test_canonical_form_is_idempotent(name):
    _, inputs, spec, base = prepared(name)
    twice = canonicalize(base.model, inputs, spec=spec)
    assert twice.fingerprint == base.fingerprint
    assert twice.transform.is_identity(tol=1e-9)


def test_float32_dyadic_elements_keep_fingerprint():
    model = nets.load_pnet()
    inputs = nets.random_input(nets.PNET_INPUT_SHAPE)
    spec = find_symmetries(model, inputs)
    base = canonicalize(model, inputs, spec=spec)
    for seed in range(3):
        moved = apply_transform(model, spec, spec.sample(seed))
        assert canonicalize(moved, inputs, spec=spec).fingerprint == base.fingerprint


def test_different_seeds_different_fingerprints():
    inputs = nets.random_input((4, 5), dtype=torch.float64)
    first = canonicalize(nets.mlp((5, 8, 3), seed=0).double(), inputs)
    second = canonicalize(nets.mlp((5, 8, 3), seed=1).double(), inputs)
    assert first.fingerprint != second.fingerprint
    assert len(first.fingerprint) == 64
    int(first.fingerprint, 16)


def test_duplicate_units_reported_ambiguous():
    model = nets.mlp((5, 6, 3), nn.Tanh).double()
    with torch.no_grad():
        model[0].weight[1] = model[0].weight[0]
        model[0].bias[1] = model[0].bias[0]
        model[2].weight[:, 1] = model[2].weight[:, 0]
    inputs = nets.random_input((4, 5), dtype=torch.float64)
    form = canonicalize(model, inputs)
    assert form.ambiguous == ["0"]
    assert form.summary()["ambiguous"] == ["0"]


def test_model_not_modified():
    model, inputs, spec, _ = prepared("bn-mlp")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    canonicalize(model, inputs, spec=spec)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])


def test_row_signs_largest_entry_positive():
    rows = np.array([[0.1, -2.0, 1.0], [0.5, 0.2, -0.1]])
    signs, undecided = row_signs(rows)
    assert signs.tolist() == [-1.0, 1.0]
    assert undecided.tolist() == [False, False]


def test_row_signs_tie_passes_to_next_class():
    rows = np.array(
        [[3.0, -3.0, -1.0, 0.0], [2.0, -2.0, 0.5, -0.5], [0.0, 0.0, 0.0, 0.0]]
    )
    signs, undecided = row_signs(rows)
    assert signs[0] == -1.0
    assert undecided[0] == False  # noqa: E712
    assert signs[1] == 1.0
    assert undecided[1] == True  # noqa: E712
    assert undecided[2] == True  # noqa: E712


def test_sorting_perm_respects_colours():
    keys = np.array([[5.0, 1.0, 4.0, 2.0, 3.0]])
    colours = np.array([0, 1, 0, 1, 0])
    perm, tied = sorting_perm(keys, colours)
    assert tied is False
    assert np.array_equal(colours[perm], colours)
    # Colour 0 is positions 0, 2, 4 with keys 5, 4, 3, so their order flips.
    assert perm[4] == 0
    assert perm[2] == 2
    assert perm[0] == 4
    perm, tied = sorting_perm(np.array([[1.0, 1.0, 0.0]]), None)
    assert tied is True


def test_fingerprint_rounding_grid():
    values = np.array([1.0, 0.25, -0.5])
    step = 10.0 ** (1 - FINGERPRINT_DIGITS)
    base = fingerprint({"w": values})
    assert fingerprint({"w": values + step * 1e-3}) == base
    assert fingerprint({"w": values + np.array([0, 3 * step, 0])}) != base
    assert fingerprint({"w": np.array([0.0, -0.0])}) == fingerprint(
        {"w": np.array([-0.0, 0.0])}
    )
    assert fingerprint({"v": values}) != base


def test_round_to_grid_keeps_digits():
    rounded = round_to_grid(np.array([123.456789, -0.000001]), 4)
    assert rounded.tolist() == [123.5, 0.0]

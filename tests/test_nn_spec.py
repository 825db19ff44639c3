"""SymmetrySpec text and JSON, Transform algebra and files, and argument errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from nn_bridge import (
    InvalidArgumentError,
    ModelMismatchError,
    NNBridgeError,
    SpecError,
    SymmetrySpec,
    Transform,
    TransformError,
    apply_transform,
    check_function_preserved,
    find_symmetries,
    fixed_group_resolver,
)
from symgroups._errors import SymgroupsError
from symgroups._group import Character, GroupDescription

RELU = GroupDescription("monomial", "positive", (), Character(1, 1))
SIGN = GroupDescription("monomial", "sign", (), Character(1, 1))
RESOLVER = fixed_group_resolver({"aten.relu.default": RELU, "aten.tanh.default": SIGN})
FLOAT64_RTOL = 1e-11


def model_and_spec(seed: int = 0) -> tuple[nn.Module, SymmetrySpec, tuple]:
    torch.manual_seed(seed)
    model = (
        nn.Sequential(
            nn.Linear(3, 6),
            nn.ReLU(),
            nn.Linear(6, 5),
            nn.Tanh(),
            nn.Linear(5, 4),
            nn.Dropout(0.1),
            nn.Linear(4, 2),
        )
        .double()
        .eval()
    )
    x = (torch.randn(4, 3, dtype=torch.float64),)
    return model, find_symmetries(model, x, resolver=RESOLVER), x


def test_error_root_is_symgroups_error() -> None:
    assert issubclass(NNBridgeError, SymgroupsError)
    for error in (SpecError, TransformError, InvalidArgumentError, ModelMismatchError):
        assert issubclass(error, NNBridgeError)


def test_table_lists_sites_groups_and_tensors() -> None:
    _, spec, _ = model_and_spec()
    text = str(spec)
    assert text == spec.table()
    assert "positive scalings" in text
    assert "sign flips" in text
    assert "GL(4)" in text
    assert "2.weight[1] in" in text
    assert "excluded hidden units (1)" in text


def test_spec_json_round_trip() -> None:
    model, spec, x = model_and_spec()
    text = json.dumps(spec.to_json())
    again = SymmetrySpec.from_json(text)
    assert again.to_json() == spec.to_json()
    assert again.fingerprint() == spec.fingerprint()
    transform = again.sample(seed=4)
    transformed = apply_transform(model, again, transform, example_inputs=x)
    assert check_function_preserved(model, transformed, x).max_rel <= FLOAT64_RTOL


def test_spec_json_rejects_bad_format() -> None:
    with pytest.raises(SpecError, match="format 1, got 7"):
        SymmetrySpec.from_json({"format": 7})
    with pytest.raises(SpecError, match="not valid JSON"):
        SymmetrySpec.from_json("{")


def test_compose_matches_sequential_application() -> None:
    model, spec, x = model_and_spec()
    first, second = spec.sample(seed=1), spec.sample(seed=2)
    sequential = apply_transform(
        apply_transform(model, spec, second, check=False), spec, first, check=False
    )
    composed = apply_transform(model, spec, first @ second, check=False)
    for a, b in zip(
        sequential.state_dict().values(), composed.state_dict().values(), strict=True
    ):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)


def test_inverse_and_identity() -> None:
    model, spec, _ = model_and_spec()
    transform = spec.sample(seed=3)
    assert (transform @ transform.inverse()).is_identity()
    assert (transform.inverse() @ transform).is_identity()
    assert spec.identity().is_identity()
    assert not transform.is_identity()
    back = apply_transform(
        apply_transform(model, spec, transform, check=False),
        spec,
        transform.inverse(),
        check=False,
    )
    for a, b in zip(
        model.state_dict().values(), back.state_dict().values(), strict=True
    ):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)


@settings(max_examples=15, deadline=None)
@given(a=st.integers(0, 10**6), b=st.integers(0, 10**6), c=st.integers(0, 10**6))
def test_composition_is_associative(a: int, b: int, c: int) -> None:
    _, spec, _ = CACHED
    x, y, z = spec.sample(seed=a), spec.sample(seed=b), spec.sample(seed=c)
    left, right = (x @ y) @ z, x @ (y @ z)
    for name, element in left.elements.items():
        for key, value in element.arrays().items():
            assert np.allclose(value, right.elements[name].arrays()[key], rtol=1e-12)


CACHED = model_and_spec()


def test_transform_json_and_safetensors_round_trip(tmp_path) -> None:
    _, spec, _ = model_and_spec()
    transform = spec.sample(seed=5)
    again = Transform.from_json(json.dumps(transform.to_json()))
    path = tmp_path / "t.safetensors"
    transform.save(path)
    loaded = Transform.load(path)
    for other in (again, loaded):
        assert other.fingerprint == transform.fingerprint
        assert (other @ transform.inverse()).is_identity()
    assert [p.name for p in tmp_path.iterdir()] == ["t.safetensors"]


def test_transform_of_other_spec_is_rejected() -> None:
    model, spec, _ = model_and_spec()
    other = find_symmetries(
        nn.Sequential(nn.Linear(3, 2)), (torch.randn(1, 3),), resolver=RESOLVER
    )
    with pytest.raises(TransformError, match="fingerprint"):
        apply_transform(model, spec, other.identity(), check=False)


def test_scale_outside_group_is_rejected() -> None:
    model, spec, _ = model_and_spec()
    transform = spec.sample(seed=0)
    transform.elements["0"].scales[0][0] = -2.0
    with pytest.raises(
        TransformError,
        match=r"scale -2.0 of '0' is not in its group \(positive scalings\)",
    ):
        apply_transform(model, spec, transform, check=False)


def test_non_permutation_is_rejected() -> None:
    model, spec, _ = model_and_spec()
    transform = spec.sample(seed=0)
    transform.elements["0"].perm[:] = 0
    with pytest.raises(TransformError, match="perm is not a permutation"):
        apply_transform(model, spec, transform, check=False)


def test_model_mismatch_is_rejected() -> None:
    _, spec, _ = model_and_spec()
    other = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(ModelMismatchError, match="missing tensors"):
        apply_transform(other, spec, spec.identity(), check=False)


def test_check_needs_inputs_when_spec_has_none() -> None:
    model, spec, _ = model_and_spec()
    spec.example_inputs = None
    with pytest.raises(InvalidArgumentError, match="check=True needs example_inputs"):
        apply_transform(model, spec, spec.identity())


def test_inplace_changes_model_only_when_asked() -> None:
    model, spec, x = model_and_spec()
    weight = model[0].weight.detach().clone()
    result = apply_transform(
        model, spec, spec.sample(seed=1), inplace=True, example_inputs=x
    )
    assert result is model
    assert not torch.equal(model[0].weight, weight)


def test_check_reports_changed_model() -> None:
    model, _, x = model_and_spec()
    other, _, _ = model_and_spec(seed=1)
    report = check_function_preserved(model, other, x, n_probes=1)
    assert not report.ok
    assert report.n_inputs == 2
    assert report.max_abs > 0
    assert "CHANGED" in str(report)


def test_check_handles_dict_and_tuple_outputs() -> None:
    class Outputs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(2, 2)

        def forward(self, x, ids):
            return {"y": self.a(x), "pair": (ids * 2, self.a(x).sum())}

    model = Outputs()
    report = check_function_preserved(
        model, model, {"x": torch.randn(3, 2), "ids": torch.randint(0, 9, (3,))}
    )
    assert report.ok
    assert {o.path.split(": ")[1] for o in report.outputs} == {
        "output.y",
        "output.pair[0]",
        "output.pair[1]",
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_probes": -1}, r"n_probes must be an integer >= 0, got -1"),
        ({"rtol": "x"}, r"rtol must be a number >= 0, got 'x'"),
    ],
)
def test_check_argument_errors(kwargs: dict, message: str) -> None:
    model, _, x = model_and_spec()
    with pytest.raises(InvalidArgumentError, match=message):
        check_function_preserved(model, model, x, **kwargs)


def test_example_inputs_type_error() -> None:
    model, _, _ = model_and_spec()
    with pytest.raises(InvalidArgumentError, match="example_inputs must be a tensor"):
        find_symmetries(model, 3.0)


def test_lognormal_scalings_and_bad_mode() -> None:
    _, spec, _ = model_and_spec()
    scales = spec.sample(seed=0, scalings="lognormal").elements["0"].scales[0]
    assert not np.allclose(np.log2(scales), np.rint(np.log2(scales)))
    dyadic = spec.sample(seed=0).elements["0"].scales[0]
    assert np.allclose(np.log2(dyadic), np.rint(np.log2(dyadic)))
    with pytest.raises(TransformError, match="scalings must be one of"):
        spec.sample(seed=0, scalings="uniform")


def test_spec_json_keeps_group_colours() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 1), nn.GroupNorm(2, 4), nn.ReLU(), nn.Conv2d(4, 2, 1)
    ).double()
    x = (torch.randn(2, 3, 4, 4, dtype=torch.float64),)
    spec = find_symmetries(model, x, resolver=RESOLVER)
    again = SymmetrySpec.from_json(json.dumps(spec.to_json()))
    site = again.site("0")
    assert site.colours.tolist() == [0, 0, 1, 1]
    assert site.permute_colours
    legacy = spec.to_json()
    for entry in legacy["sites"]:
        del entry["permute_colours"]
    assert not SymmetrySpec.from_json(legacy).site("0").permute_colours
